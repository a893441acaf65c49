//! The relay's one clock for packet source times (`Packet::src_time_us`) and its mapping to
//! RIST's NTP timestamps. Source times are kept on libsrt's steady clock, because SRT sockets
//! take and give them in that clock: CLOCK_MONOTONIC in microseconds, read without libsrt
//! (`srt::now_us`, which checks the two agree when libsrt is loaded); RIST timestamps are 64-bit NTP (32.32 fixed point seconds
//! since 1900) on the sender's wall clock. One offset, taken once, maps between them, so a
//! timestamp that goes in and comes back out is unchanged.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// Microseconds on libsrt's steady clock (CLOCK_MONOTONIC; libsrt need not be loaded).
pub fn now_us() -> i64 {
    crate::srt::now_us()
}

/// Wall-clock NTP microseconds minus steady-clock microseconds, taken once.
fn offset_us() -> i64 {
    static OFFSET: OnceLock<i64> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        wall + (NTP_UNIX_OFFSET_S as i64) * 1_000_000 - now_us()
    })
}

pub fn ntp_to_us(ntp: u64) -> u64 {
    let secs = ntp >> 32;
    let frac = ntp & 0xffff_ffff;
    secs * 1_000_000 + ((frac * 1_000_000) >> 32)
}

pub fn us_to_ntp(us: u64) -> u64 {
    let secs = us / 1_000_000;
    let rem = us % 1_000_000;
    // Round up so that ntp_to_us(us_to_ntp(x)) == x.
    (secs << 32) | ((rem << 32).div_ceil(1_000_000))
}

/// A RIST timestamp as a source time on the relay's clock (0 stays "unknown").
pub fn src_time_from_ntp(ntp: u64) -> i64 {
    if ntp == 0 {
        return 0;
    }
    ntp_to_us(ntp) as i64 - offset_us()
}

/// A source time as a RIST timestamp (0 lets librist stamp the packet itself).
pub fn ntp_from_src_time(src_time_us: i64) -> u64 {
    if src_time_us <= 0 {
        return 0;
    }
    let us = src_time_us + offset_us();
    if us <= 0 {
        0
    } else {
        us_to_ntp(us as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_round_trips_at_microsecond_precision() {
        for us in [
            0u64,
            1,
            999_999,
            1_000_000,
            3_900_000_000_123_456,
            u32::MAX as u64 * 7,
        ] {
            assert_eq!(ntp_to_us(us_to_ntp(us)), us, "{us}");
        }
        // 0.5 s in NTP fraction.
        assert_eq!(ntp_to_us(1 << 31), 500_000);
    }

    #[test]
    fn source_times_survive_the_trip_through_ntp() {
        let t = now_us();
        assert_eq!(src_time_from_ntp(ntp_from_src_time(t)), t);
        assert_eq!(ntp_from_src_time(0), 0);
        assert_eq!(src_time_from_ntp(0), 0);
        // The NTP time of "now" is within a second of the wall clock.
        let wall_ntp_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + NTP_UNIX_OFFSET_S;
        let ntp_s = ntp_from_src_time(t) >> 32;
        assert!(ntp_s.abs_diff(wall_ntp_s) <= 1);
    }
}
