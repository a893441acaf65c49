//! A stream of a shared SRT listener as a route endpoint: its publisher is the route's input,
//! its players one output (`players`). Opening a side registers it with the server's
//! directory; closing it (the route stopping) unregisters it.

use super::directory::{self, Access, Role};
use crate::relay::{InputLink, LinkError, OutputLink, TransportRelay};
use crate::srt::relay::{SrtInput, SrtOutput};
use crate::srt::uri::SrtEndpoint;
use std::fmt;

#[derive(Clone)]
pub struct StreamEndpoint {
    pub server: String,
    pub stream: String,
    pub access: Access,
    /// The server's listen endpoint: the options accepted sockets get after connecting.
    pub listen: SrtEndpoint,
}

impl fmt::Display for StreamEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The listen URI is shown redacted; the stream name is the caller-facing Stream ID.
        write!(f, "{} streamid={}", self.listen, self.stream)
    }
}

impl TransportRelay for StreamEndpoint {
    fn transport(&self) -> &'static str {
        "srt"
    }

    fn published_stream(&self) -> Option<String> {
        Some(self.stream.clone())
    }

    fn open_input(&self) -> Result<Box<dyn InputLink>, LinkError> {
        let (rx, reg) = directory::directory(&self.server)
            .register(&self.stream, Role::Publisher, self.access.clone())
            .map_err(LinkError::Fatal)?;
        Ok(Box::new(SrtInput::handed(self.listen.clone(), rx, reg)?))
    }

    fn open_output(&self) -> Result<Box<dyn OutputLink>, LinkError> {
        let (rx, reg) = directory::directory(&self.server)
            .register(&self.stream, Role::Players, self.access.clone())
            .map_err(LinkError::Fatal)?;
        Ok(Box::new(SrtOutput::handed(self.listen.clone(), rx, reg)?))
    }
}
