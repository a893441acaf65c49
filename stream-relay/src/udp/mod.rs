//! Plain UDP (MPEG-TS over UDP, unicast or multicast) for the relay core. Only `socket.rs`
//! contains `unsafe` (socket options std does not offer).

pub mod relay;
mod socket;
pub mod uri;
