//! The stream the benchmark sends: valid MPEG-TS, 7 x 188-byte packets per 1316-byte datagram
//! (as encoders send over SRT/RIST), on one PID with a proper continuity counter. The first TS
//! packet of each datagram carries the benchmark's sequence number and send time in its
//! payload, behind a magic word, so any relay that forwards the datagram intact lets the sink
//! measure it.

pub const TS: usize = 188;
pub const PER_DATAGRAM: usize = 7;
pub const DATAGRAM: usize = TS * PER_DATAGRAM;
const SYNC: u8 = 0x47;
const PID: u16 = 0x0100;
const MAGIC: &[u8; 4] = b"RBv1";

/// Builds datagrams with a running continuity counter.
#[derive(Debug, Default)]
pub struct Muxer {
    cc: u8,
}

impl Muxer {
    /// Fills `out` (1316 bytes) with datagram `seq`, stamped `send_ns`.
    pub fn fill(&mut self, out: &mut [u8; DATAGRAM], seq: u64, send_ns: u64) {
        for (i, pkt) in out.chunks_exact_mut(TS).enumerate() {
            pkt[0] = SYNC;
            // payload_unit_start on the stamped packet; PID 0x100.
            let pusi = if i == 0 { 0x40 } else { 0 };
            pkt[1] = pusi | ((PID >> 8) as u8 & 0x1f);
            pkt[2] = (PID & 0xff) as u8;
            // No scrambling, payload only, continuity counter.
            pkt[3] = 0x10 | self.cc;
            self.cc = (self.cc + 1) & 0x0f;
            let payload = &mut pkt[4..];
            payload.fill(0xff);
            if i == 0 {
                payload[..4].copy_from_slice(MAGIC);
                payload[4..12].copy_from_slice(&seq.to_be_bytes());
                payload[12..20].copy_from_slice(&send_ns.to_be_bytes());
            }
        }
    }
}

/// Reads (sequence number, send time) back from a datagram, or None if it is not ours or not
/// valid TS.
pub fn parse(d: &[u8]) -> Option<(u64, u64)> {
    if d.len() != DATAGRAM || d.chunks_exact(TS).any(|p| p[0] != SYNC) {
        return None;
    }
    let payload = &d[4..TS];
    if &payload[..4] != MAGIC {
        return None;
    }
    let seq = u64::from_be_bytes(payload[4..12].try_into().ok()?);
    let ns = u64::from_be_bytes(payload[12..20].try_into().ok()?);
    Some((seq, ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_continuity() {
        let mut m = Muxer::default();
        let mut d = [0u8; DATAGRAM];
        m.fill(&mut d, 42, 123_456_789);
        assert_eq!(parse(&d), Some((42, 123_456_789)));
        let ccs: Vec<u8> = d.chunks_exact(TS).map(|p| p[3] & 0x0f).collect();
        assert_eq!(ccs, vec![0, 1, 2, 3, 4, 5, 6]);
        m.fill(&mut d, 43, 1);
        assert_eq!(d[3] & 0x0f, 7);
        assert!(d
            .chunks_exact(TS)
            .all(|p| p[0] == 0x47 && p[2] == 0x00 && p[1] & 0x1f == 1));
        d[188] = 0;
        assert_eq!(parse(&d), None);
    }
}
