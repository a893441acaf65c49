//! The protocol-independent relay core: the packet type, the traits every transport implements,
//! and the decisions (fan-out, queueing, backoff, idle detection, jitter, rates). Nothing here
//! touches a socket, a C library, a thread or the clock: callers pass `now`.

pub mod backoff;
pub mod jitter;
pub mod link;
pub mod origin;
pub mod packet;
pub mod pipe;
pub mod quantile;
pub mod queue;
pub mod rate;
pub mod rebase;
pub mod reorder;
pub mod source_lock;
pub mod time_buffer;

pub use link::{InputLink, LinkError, LinkStats, OutputLink, SendOutcome, TransportRelay};
pub use packet::Packet;
