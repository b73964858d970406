//! The worker clock. Live runs read the TSC once per burst and map it to wall time; capture
//! replay uses each packet's capture timestamp, so timeouts and the flow log are the same on
//! every replay of a capture, however fast or slow the machine.
use aperture_dpdk::{Mbuf, RxTimestamp};

pub enum Clock {
    /// TSC-derived wall time: `wall0_ns + (tsc - tsc0) / hz`.
    /// (`ns_per_tick` is `1e9 / hz` in 32.32 fixed point: a burst costs a multiply, not a
    /// division.)
    Tsc {
        ns_per_tick: u64,
        tsc0: u64,
        wall0_ns: u64,
        now_ns: u64,
    },
    /// Capture time from the rx timestamp the replay's feeder stamps each packet with
    /// (nanoseconds since the epoch). Packets without a timestamp keep the last time.
    Capture {
        field: Option<RxTimestamp>,
        time: CaptureTime,
    },
}

/// A jump in capture time larger than this is believed only when the next packet confirms it.
pub const MAX_JUMP_NS: u64 = 3_600 * 1_000_000_000;

/// Time as a capture's packets tell it. It does not go back for a packet stamped earlier
/// (reordered by the capture, or a stamp far in the past: that one is counted), and one
/// packet stamped far ahead of the others (a damaged record, a glitch of the capturing
/// host's clock) does not drag it along: a jump of more than `MAX_JUMP_NS` is believed
/// when the next packet confirms it (a real gap in the capture), else ignored and counted.
/// The first stamp counts once a second one near it confirms it; a first stamp far from
/// the second was the odd one out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureTime {
    pub now_ns: u64,
    /// A packet near `now_ns` has confirmed it.
    confirmed: bool,
    /// A jump seen once, not yet confirmed.
    pending: Option<u64>,
    /// Stamps ignored as far from the packets around them.
    pub outliers: u64,
}

impl CaptureTime {
    /// The time of a packet stamped `ts`.
    #[inline]
    pub fn see(&mut self, ts: u64) -> u64 {
        if self.now_ns == 0 {
            self.now_ns = ts;
        } else if ts.abs_diff(self.now_ns) <= MAX_JUMP_NS {
            self.now_ns = self.now_ns.max(ts);
            self.confirmed = true;
            self.forget_pending();
        } else if !self.confirmed {
            // The first stamp, alone and far from this one.
            self.now_ns = ts;
            self.outliers += 1;
        } else if ts > self.now_ns {
            match self.pending {
                Some(p) if p.abs_diff(ts) <= MAX_JUMP_NS => {
                    self.now_ns = ts;
                    self.pending = None;
                }
                _ => {
                    self.forget_pending();
                    self.pending = Some(ts);
                }
            }
        } else {
            self.forget_pending();
            self.outliers += 1;
        }
        self.now_ns
    }

    fn forget_pending(&mut self) {
        if self.pending.take().is_some() {
            self.outliers += 1;
        }
    }
}

impl Clock {
    pub fn tsc() -> Clock {
        let wall0_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let hz = aperture_dpdk::tsc_hz().max(1) as u128;
        Clock::Tsc {
            ns_per_tick: ((1_000_000_000u128 << 32) / hz) as u64,
            tsc0: aperture_dpdk::rdtsc(),
            wall0_ns,
            now_ns: wall0_ns,
        }
    }

    pub fn capture(field: Option<RxTimestamp>) -> Clock {
        Clock::Capture {
            field,
            time: CaptureTime::default(),
        }
    }

    /// Whether time is the capture's (it moves only with packets).
    pub fn is_capture(&self) -> bool {
        matches!(self, Clock::Capture { .. })
    }

    /// Called once per burst.
    #[inline]
    pub fn burst(&mut self) {
        if let Clock::Tsc {
            ns_per_tick,
            tsc0,
            wall0_ns,
            now_ns,
        } = self
        {
            let d = aperture_dpdk::rdtsc().wrapping_sub(*tsc0) as u128;
            *now_ns = *wall0_ns + ((d * *ns_per_tick as u128) >> 32) as u64;
        }
    }

    /// The time of packet `m`.
    #[inline]
    pub fn packet(&mut self, m: &Mbuf) -> u64 {
        match self {
            Clock::Tsc { now_ns, .. } => *now_ns,
            Clock::Capture { field, time } => {
                match field.as_ref().and_then(|f| m.rx_timestamp(f)) {
                    Some(ns) => time.see(ns),
                    None => time.now_ns,
                }
            }
        }
    }

    /// The time of packet `m` that another worker handed over. Live, the same as `packet`.
    /// On the capture clock, this worker's own time: the other worker may be ahead of this
    /// one in the capture (how far depends on how the two were scheduled), and its stamps
    /// must not move this worker's timers, or flows that are still waiting for their next
    /// packet in this worker's input would time out early, differently from run to run.
    #[inline]
    pub fn handed(&mut self, m: &Mbuf) -> u64 {
        match self {
            Clock::Tsc { .. } => self.packet(m),
            Clock::Capture { time, .. } => time.now_ns,
        }
    }

    /// Capture stamps set aside as far from the others (0 live).
    pub fn outliers(&self) -> u64 {
        match self {
            Clock::Tsc { .. } => 0,
            Clock::Capture { time, .. } => time.outliers,
        }
    }

    /// Current time for timers.
    #[inline]
    pub fn now(&self) -> u64 {
        match self {
            Clock::Tsc { now_ns, .. } => *now_ns,
            Clock::Capture { time, .. } => time.now_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn one_stamp_far_ahead_does_not_move_capture_time() {
        let mut t = CaptureTime::default();
        let t0 = 1_700_000_000 * S;
        assert_eq!(t.see(t0), t0);
        assert_eq!(t.see(t0 + S), t0 + S);
        // 0xffffffff seconds: a damaged record, alone.
        assert_eq!(t.see(u32::MAX as u64 * S), t0 + S);
        assert_eq!(t.see(t0 + 2 * S), t0 + 2 * S);
        assert_eq!(t.outliers, 1);
        // Earlier stamps keep the time; one far in the past is counted.
        assert_eq!(t.see(t0 + S), t0 + 2 * S);
        assert_eq!(t.see(S), t0 + 2 * S);
        assert_eq!(t.outliers, 2);
    }

    #[test]
    fn a_real_gap_is_followed_once_the_next_packet_confirms_it() {
        let mut t = CaptureTime::default();
        let t0 = 1_700_000_000 * S;
        t.see(t0);
        t.see(t0 + S);
        let later = t0 + 2 * MAX_JUMP_NS;
        assert_eq!(t.see(later), t0 + S, "one packet: not yet");
        assert_eq!(t.see(later + S), later + S, "confirmed");
        assert_eq!(t.outliers, 0);
    }

    #[test]
    fn a_first_stamp_far_from_the_rest_is_the_odd_one_out() {
        let mut t = CaptureTime::default();
        let t0 = 1_700_000_000 * S;
        t.see(u32::MAX as u64 * S);
        assert_eq!(t.see(t0), t0);
        assert_eq!(t.see(t0 + S), t0 + S);
        assert_eq!(t.outliers, 1);
    }
}
