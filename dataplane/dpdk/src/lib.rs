//! Thin, safe binding to the system DPDK (22.11 LTS).
//!
//! This crate owns every `unsafe` block of Aperture. It exposes the handful of DPDK objects the
//! dataplane needs (EAL, mempool, ethdev port and queues, mbuf, ring, handoff ring) and one shared-memory
//! mapping for the stats segment, each behind an API that cannot be misused from safe code:
//! mbufs free themselves, bursts own what they hold, and the EAL can be initialised only once.
//! Nothing here allocates or locks on the per-packet path; bursts are fixed arrays.

#![allow(clippy::missing_safety_doc)]

pub mod cpu;
mod eal;
mod handoff;
mod mbuf;
mod port;
mod ring;
pub mod shm;

/// Raw bindgen output. Only this crate uses it.
#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::all,
    unnecessary_transmutes
)]
mod sys {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

pub use eal::{Eal, EalError, Lcore, PANICKED};
pub use handoff::{handoff, HandoffRx, HandoffTx};
pub use mbuf::{Burst, Mbuf, Mempool, RxTimestamp, TxBuffer, TxResult, BURST_SIZE};
pub use port::{EthConfig, Port, PortError, PortInfo, PortStats, Queues, RxQueue, Spread, TxQueue};
pub use ring::RingPair;

/// The last DPDK error (`rte_errno`) as text.
pub(crate) fn last_error() -> String {
    // SAFETY: rte_errno is a per-thread int; rte_strerror returns a pointer to a static or
    // per-thread buffer that stays valid until the next call on this thread; we copy it at once.
    unsafe {
        let code = sys::aperture_errno();
        let s = std::ffi::CStr::from_ptr(sys::rte_strerror(code));
        format!("{} (rte_errno {code})", s.to_string_lossy())
    }
}

/// The DPDK version string, e.g. "DPDK 22.11.11".
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    unsafe {
        std::ffi::CStr::from_ptr(sys::aperture_version())
            .to_string_lossy()
            .into_owned()
    }
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: rte_rdtsc only executes the RDTSC instruction.
    unsafe { sys::aperture_rdtsc() }
}

/// Asks the CPU to start loading the cache line holding `r` (a hint; never faults).
#[inline]
pub fn prefetch<T>(r: &T) {
    mbuf::prefetch(r as *const T as *const u8)
}

/// TSC frequency in Hz as measured by the EAL (0 before EAL init).
pub fn tsc_hz() -> u64 {
    // SAFETY: plain getter of a value set at EAL init.
    unsafe { sys::rte_get_tsc_hz() }
}
