//! Ring-backed ports (`rte_eth_from_rings`) to run the worker pipeline from memory in
//! benchmarks and tests: a pair wired back to back (what one transmits, the other receives),
//! or one port looped onto itself. Rings are single-producer/single-consumer: each side is
//! driven by one thread.
use crate::port::{Port, PortError};
use crate::sys;
use std::ffi::CString;

/// Two ports `a` and `b`: a's tx ring is b's rx ring and the other way round.
pub struct RingPair {
    pub a: Port,
    pub b: Port,
}

impl RingPair {
    /// Creates rings `<name>_ab`/`<name>_ba` of `size` slots (power of two) and the ports
    /// `<name>_a`/`<name>_b` on them, one queue each.
    pub fn new(name: &str, size: u32) -> Result<RingPair, PortError> {
        RingPair::with_queues(name, 1, size)
    }

    /// Like `new` with `queues` queue pairs: queue i of one port sends to queue i of the
    /// other (rings `<name>_ab<i>`/`<name>_ba<i>`).
    pub fn with_queues(name: &str, queues: u16, size: u32) -> Result<RingPair, PortError> {
        let mk_ring = |suffix: String| -> Result<*mut sys::rte_ring, PortError> {
            let n = format!("{name}_{suffix}");
            let c = CString::new(n.clone()).map_err(|_| PortError::Name(n.clone()))?;
            // Exactly `size` usable slots: a sender of whole bursts into a ring of a multiple
            // of the burst size always finds room for a whole burst or none.
            let flags = sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ | sys::RING_F_EXACT_SZ;
            // SAFETY: valid name; SP/SC ring; NULL on failure.
            let r = unsafe { sys::rte_ring_create(c.as_ptr(), size, 0, flags) };
            if r.is_null() {
                return Err(PortError::Mempool {
                    name: n,
                    size,
                    reason: crate::last_error(),
                });
            }
            Ok(r)
        };
        let (mut ab, mut ba) = (Vec::new(), Vec::new());
        for i in 0..queues {
            // The first pair keeps the one-queue names.
            let k = if i == 0 { String::new() } else { i.to_string() };
            ab.push(mk_ring(format!("ab{k}"))?);
            ba.push(mk_ring(format!("ba{k}"))?);
        }
        let a = ring_port(format!("{name}_a"), &ba, &ab)?;
        let b = ring_port(format!("{name}_b"), &ab, &ba)?;
        Ok(RingPair { a, b })
    }

    /// One port whose transmitted packets come back on its own rx queue.
    pub fn looped(name: &str, size: u32) -> Result<Port, PortError> {
        let n = format!("{name}_loop");
        let c = CString::new(n.clone()).map_err(|_| PortError::Name(n.clone()))?;
        // SAFETY: valid name; single-producer/single-consumer ring; NULL on failure.
        let r = unsafe {
            sys::rte_ring_create(c.as_ptr(), size, 0, sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ)
        };
        if r.is_null() {
            return Err(PortError::Mempool {
                name: n,
                size,
                reason: crate::last_error(),
            });
        }
        ring_port(format!("{name}_p"), &[r], &[r])
    }
}

fn ring_port(
    pname: String,
    rx: &[*mut sys::rte_ring],
    tx: &[*mut sys::rte_ring],
) -> Result<Port, PortError> {
    let c = CString::new(pname.clone()).map_err(|_| PortError::Name(pname.clone()))?;
    // SAFETY: `rx.len()` rx and `tx.len()` tx rings, all live for the process; the PMD
    // copies the pointer arrays it is given.
    let id = unsafe {
        sys::rte_eth_from_rings(
            c.as_ptr(),
            rx.as_ptr(),
            rx.len() as u32,
            tx.as_ptr(),
            tx.len() as u32,
            0,
        )
    };
    if id < 0 {
        return Err(PortError::NotFound { name: pname });
    }
    Port::by_name(&format!("net_ring_{pname}")).or_else(|_| Port::by_name(&pname))
}
