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
        let mk_ring = |suffix: &str| -> Result<*mut sys::rte_ring, PortError> {
            let n = format!("{name}_{suffix}");
            let c = CString::new(n.clone()).map_err(|_| PortError::Name(n.clone()))?;
            let flags = sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ;
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
        let ab = mk_ring("ab")?;
        let ba = mk_ring("ba")?;
        let a = ring_port(format!("{name}_a"), ba, ab)?;
        let b = ring_port(format!("{name}_b"), ab, ba)?;
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
        ring_port(format!("{name}_p"), r, r)
    }
}

fn ring_port(
    pname: String,
    rx: *mut sys::rte_ring,
    tx: *mut sys::rte_ring,
) -> Result<Port, PortError> {
    let c = CString::new(pname.clone()).map_err(|_| PortError::Name(pname.clone()))?;
    // SAFETY: one rx and one tx ring, both live for the process; the PMD copies the pointer
    // arrays it is given.
    let id = unsafe { sys::rte_eth_from_rings(c.as_ptr(), &rx, 1, &tx, 1, 0) };
    if id < 0 {
        return Err(PortError::NotFound { name: pname });
    }
    Port::by_name(&format!("net_ring_{pname}")).or_else(|_| Port::by_name(&pname))
}
