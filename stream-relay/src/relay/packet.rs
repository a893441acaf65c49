//! The unit that travels from a Reader to its Writers.

use bytes::Bytes;
use std::time::Instant;

/// One datagram (for MPEG-TS usually 7 x 188 = 1316 bytes) with the timing the input library
/// reported, so an output can reproduce the source's timing instead of the relay's.
#[derive(Clone, Debug)]
pub struct Packet {
    pub payload: Bytes,
    /// Source time in microseconds on the input library's clock, 0 when unknown. For SRT this is
    /// libsrt's `srt_time_now()` clock, so an SRT output in the same process can hand it back.
    pub src_time_us: i64,
    /// When the input library handed the packet to us; transit time through the relay and the
    /// observed jitter are measured from here.
    pub received_at: Instant,
    /// Which connection of the input this packet came from (the route counts them). Source
    /// times are only comparable within one epoch: a new sender brings a new clock.
    pub epoch: u64,
}

impl Packet {
    pub fn new(payload: Bytes, src_time_us: i64, received_at: Instant) -> Self {
        Packet {
            payload,
            src_time_us,
            received_at,
            epoch: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.payload.len()
    }

    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }
}
