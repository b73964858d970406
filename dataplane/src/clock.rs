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
    /// (nanoseconds since the epoch).
    /// `now_ns` only moves forward; packets without a timestamp keep the last time.
    Capture {
        field: Option<RxTimestamp>,
        now_ns: u64,
    },
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
        Clock::Capture { field, now_ns: 0 }
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
            Clock::Capture { field, now_ns } => {
                if let Some(ns) = field.as_ref().and_then(|f| m.rx_timestamp(f)) {
                    *now_ns = (*now_ns).max(ns);
                }
                *now_ns
            }
        }
    }

    /// Current time for timers.
    #[inline]
    pub fn now(&self) -> u64 {
        match self {
            Clock::Tsc { now_ns, .. } | Clock::Capture { now_ns, .. } => *now_ns,
        }
    }
}
