//! librist failures as a typed Rust error. librist returns a negative number and logs the
//! reason through its log callback, so the error carries the function and the code only.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    pub function: &'static str,
    /// librist's return code; 0 when librist did not answer (it could not be loaded).
    pub code: i32,
    /// Our own explanation where we know more than the code says.
    pub detail: Option<String>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.function)?;
        if self.code != 0 {
            write!(f, " (librist error {})", self.code)?;
        }
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn new(function: &'static str, code: i32) -> Error {
        Error {
            function,
            code,
            detail: None,
        }
    }

    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Error {
        self.detail = Some(detail.into());
        self
    }
}

/// librist's convention: negative is failure, anything else is a count or success.
pub(crate) fn check(function: &'static str, rc: i32) -> Result<i32> {
    if rc < 0 {
        Err(Error::new(function, rc))
    } else {
        Ok(rc)
    }
}
