//! Handing packets from one worker to another: a single-producer/single-consumer `rte_ring`
//! of mbufs, split into its two ends. Each end is owned (neither is `Clone`, every operation
//! takes `&mut self`), so one thread at most enqueues and one dequeues, which is what the
//! SP/SC ring requires. Enqueue and dequeue move whole bursts: one ring operation per burst.
use crate::mbuf::{Burst, TxBuffer, TxResult};
use crate::port::PortError;
use crate::sys;
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

/// The ring both ends share; freed (with any mbufs still in it) when both are gone.
struct Ring(NonNull<sys::rte_ring>);

// SAFETY: an rte_ring may be used from any thread; SP/SC use is enforced by the owned ends.
unsafe impl Send for Ring {}
// SAFETY: `Ring` itself offers no operation; the ends do, each through `&mut self`.
unsafe impl Sync for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // Both ends are gone (this is the last reference): nothing else touches the ring.
        let mut rest = Burst::default();
        loop {
            // SAFETY: valid ring, no other user; dequeued pointers are owned mbufs, which
            // the burst frees (mempools live as long as the process).
            let n = rest.fill_raw(|ptr, n| unsafe {
                sys::aperture_ring_dequeue_burst(self.0.as_ptr(), ptr, n as u32) as u16
            });
            if n == 0 {
                break;
            }
        }
        rest.clear();
        // SAFETY: created by rte_ring_create, freed once, empty now.
        unsafe { sys::rte_ring_free(self.0.as_ptr()) };
    }
}

/// The sending end.
pub struct HandoffTx {
    ring: Arc<Ring>,
}

/// The receiving end.
pub struct HandoffRx {
    ring: Arc<Ring>,
}

/// A ring named `name` with room for `size - 1` mbufs (`size` a power of two).
pub fn handoff(name: &str, size: u32) -> Result<(HandoffTx, HandoffRx), PortError> {
    let c = CString::new(name).map_err(|_| PortError::Name(name.to_string()))?;
    // SAFETY: valid name; single-producer/single-consumer ring; NULL on failure.
    let r = unsafe {
        sys::rte_ring_create(
            c.as_ptr(),
            size,
            -1,
            sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ,
        )
    };
    let ring = NonNull::new(r).ok_or_else(|| PortError::Mempool {
        name: name.to_string(),
        size,
        reason: crate::last_error(),
    })?;
    let ring = Arc::new(Ring(ring));
    Ok((HandoffTx { ring: ring.clone() }, HandoffRx { ring }))
}

impl HandoffTx {
    /// Moves what `buf` holds onto the ring in one operation; what does not fit is freed
    /// and reported as dropped.
    #[inline]
    pub fn send(&mut self, buf: &mut TxBuffer) -> TxResult {
        let r = self.ring.0.as_ptr();
        // SAFETY: valid ring, this end is its only producer; the ring takes ownership of the
        // first `rc` mbufs.
        buf.flush_raw(|ptr, n| unsafe { sys::aperture_ring_enqueue_burst(r, ptr, n as u32) as u16 })
    }
}

impl HandoffTx {
    /// Moves what fits of `buf` onto the ring; the rest stays in `buf` (nothing dropped).
    #[inline]
    pub fn send_keep(&mut self, buf: &mut TxBuffer) -> TxResult {
        let r = self.ring.0.as_ptr();
        // SAFETY: as in `send`; the ring takes ownership of the first `rc` mbufs only.
        buf.flush_keep_raw(|ptr, n| unsafe {
            sys::aperture_ring_enqueue_burst(r, ptr, n as u32) as u16
        })
    }
}

impl HandoffRx {
    /// Takes up to a burst of mbufs off the ring into `burst` (emptied first).
    #[inline]
    pub fn receive(&mut self, burst: &mut Burst) -> usize {
        let r = self.ring.0.as_ptr();
        // SAFETY: valid ring, this end is its only consumer; it writes at most `n` owned
        // mbuf pointers.
        burst
            .fill_raw(|ptr, n| unsafe { sys::aperture_ring_dequeue_burst(r, ptr, n as u32) as u16 })
    }
}
