//! Mempools, mbufs and fixed-size bursts of mbufs.
use crate::sys;
use std::ffi::CString;
use std::ptr::NonNull;

/// Packets per rx/tx burst.
pub const BURST_SIZE: usize = 32;

/// A packet-buffer pool (`rte_pktmbuf_pool_create`). Lives as long as the process.
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
    data_room: u16,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe; the pointer is stable.
unsafe impl Send for Mempool {}
// SAFETY: as above; every operation on a mempool is thread-safe.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `size` mbufs with `data_room` bytes of data room (plus headroom).
    pub fn new(
        name: &str,
        size: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool, crate::PortError> {
        let cname = CString::new(name).map_err(|_| crate::PortError::Name(name.to_string()))?;
        // SAFETY: valid NUL-terminated name; the call validates sizes and returns NULL on error.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                size,
                cache,
                0,
                data_room + sys::RTE_PKTMBUF_HEADROOM as u16,
                socket,
            )
        };
        NonNull::new(raw)
            .map(|raw| Mempool { raw, data_room })
            .ok_or_else(|| crate::PortError::Mempool {
                name: name.to_string(),
                size,
                reason: crate::last_error(),
            })
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }

    /// Bytes one mbuf holds (after its headroom).
    pub fn data_room(&self) -> usize {
        self.data_room as usize
    }

    /// Free mbufs in the pool (approximate while other threads use it).
    pub fn available(&self) -> u32 {
        // SAFETY: read-only count over a valid pool.
        unsafe { sys::aperture_mempool_avail(self.raw.as_ptr()) }
    }
}

/// One packet buffer, owned. Dropping it returns it (and its chained segments) to its pool.
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<sys::rte_mbuf>,
}

// SAFETY: an mbuf is owned by exactly one Mbuf value; moving it to another thread moves that
// ownership (DPDK mbufs are not tied to the allocating lcore).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Allocates an empty mbuf from `pool`.
    pub fn alloc(pool: &Mempool) -> Option<Mbuf> {
        // SAFETY: valid pool; returns NULL when empty.
        NonNull::new(unsafe { sys::aperture_pktmbuf_alloc(pool.as_ptr()) }).map(|raw| Mbuf { raw })
    }

    /// Allocates an mbuf holding a copy of `bytes` (one segment; `None` if the pool is empty or
    /// the bytes do not fit in the data room).
    pub fn from_bytes(pool: &Mempool, bytes: &[u8]) -> Option<Mbuf> {
        let m = Mbuf::alloc(pool)?;
        let len = u16::try_from(bytes.len()).ok()?;
        // SAFETY: append returns NULL or a pointer to `len` writable bytes inside this mbuf.
        let dst = unsafe { sys::aperture_pktmbuf_append(m.raw.as_ptr(), len) };
        if dst.is_null() {
            return None;
        }
        // SAFETY: `dst` points to `len` bytes we own exclusively; `bytes` does not overlap them.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst as *mut u8, bytes.len()) };
        Some(m)
    }

    /// Like `from_bytes`, but bytes beyond one mbuf's data room go into chained segments
    /// (as a PMD receives a jumbo frame). `None` if the pool runs out (nothing is kept).
    pub fn from_bytes_chained(pool: &Mempool, bytes: &[u8]) -> Option<Mbuf> {
        let room = pool.data_room().max(1);
        let mut parts = bytes.chunks(room);
        let head = Mbuf::from_bytes(pool, parts.next().unwrap_or_default())?;
        for part in parts {
            let seg = Mbuf::from_bytes(pool, part)?;
            // SAFETY: both mbufs are ours; on success the head owns the segment (so it is
            // not freed on its own), on failure (too many segments) it is still ours and
            // dropped, and the head with it.
            let rc = unsafe { sys::aperture_pktmbuf_chain(head.raw.as_ptr(), seg.raw.as_ptr()) };
            if rc != 0 {
                return None;
            }
            let _ = seg.into_raw();
        }
        Some(head)
    }

    #[inline]
    fn hdr(&self) -> &sys::rte_mbuf {
        // SAFETY: `raw` points to a live mbuf we own for as long as `self` lives.
        unsafe { self.raw.as_ref() }
    }

    /// Bytes in the first segment (where all headers are).
    #[inline]
    pub fn data(&self) -> &[u8] {
        let h = self.hdr();
        // SAFETY: buf_addr + data_off .. + data_len is the initialised data of segment one.
        unsafe {
            std::slice::from_raw_parts(
                (h.buf_addr as *const u8).add(h.data_off as usize),
                h.data_len as usize,
            )
        }
    }

    /// Mutable bytes of the first segment.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let h = self.hdr();
        let (addr, off, len) = (
            h.buf_addr as *mut u8,
            h.data_off as usize,
            h.data_len as usize,
        );
        // SAFETY: as in `data`, and `&mut self` gives exclusive access to the buffer.
        unsafe { std::slice::from_raw_parts_mut(addr.add(off), len) }
    }

    /// Bytes this packet's first segment can hold from its data offset (what `set_len`
    /// accepts).
    pub fn room(&self) -> usize {
        let h = self.hdr();
        (h.buf_len as usize).saturating_sub(h.data_off as usize)
    }

    /// Sets the length of a one-segment packet to `len` bytes (an ALG that rewrote its
    /// payload), within the buffer's room after the data offset; bytes it grows by are
    /// zeroed. False, and nothing changed, for a chained packet or a length that does not fit.
    pub fn set_len(&mut self, len: usize) -> bool {
        let h = self.hdr();
        let room = (h.buf_len as usize).saturating_sub(h.data_off as usize);
        if h.nb_segs != 1 || len > room || len > u16::MAX as usize {
            return false;
        }
        let (addr, off, old) = (
            h.buf_addr as *mut u8,
            h.data_off as usize,
            h.data_len as usize,
        );
        if len > old {
            // SAFETY: off + len <= buf_len, so old..len lies inside this mbuf's buffer, which
            // `&mut self` owns exclusively.
            unsafe { std::ptr::write_bytes(addr.add(off + old), 0, len - old) };
        }
        // SAFETY: one segment, so data_len and pkt_len describe the same bytes; the new
        // length is within the buffer (checked above) and initialised (zeroed or old data).
        let m = unsafe { self.raw.as_mut() };
        m.data_len = len as u16;
        m.pkt_len = len as u32;
        true
    }

    /// Asks the CPU to start loading the first cache line of packet data (the headers).
    #[inline]
    pub fn prefetch_data(&self) {
        let h = self.hdr();
        prefetch((h.buf_addr as *const u8).wrapping_add(h.data_off as usize));
    }

    /// Total packet length over all segments.
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.hdr().pkt_len
    }

    /// Number of segments in the chain.
    #[inline]
    pub fn segments(&self) -> u16 {
        self.hdr().nb_segs
    }

    /// Copies the whole packet (all segments) into `out`, for slow-path consumers.
    pub fn copy_to_vec(&self, out: &mut Vec<u8>) {
        out.clear();
        self.append_to_vec(out);
    }

    /// Appends the whole packet (all segments) to `out`.
    pub fn append_to_vec(&self, out: &mut Vec<u8>) {
        let mut seg: *const sys::rte_mbuf = self.raw.as_ptr();
        while !seg.is_null() {
            // SAFETY: each segment in the chain is live while the head is owned by us.
            let h = unsafe { &*seg };
            // SAFETY: as in `data`, for this segment.
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    (h.buf_addr as *const u8).add(h.data_off as usize),
                    h.data_len as usize,
                )
            };
            out.extend_from_slice(bytes);
            seg = h.next;
        }
    }

    /// The rx timestamp (as the PMD stored it) if the PMD set one on this mbuf.
    #[inline]
    pub fn rx_timestamp(&self, ts: &RxTimestamp) -> Option<u64> {
        let h = self.hdr();
        if h.ol_flags & ts.flag_mask == 0 {
            return None;
        }
        // SAFETY: the dynamic field at `offset` was registered as a u64 timestamp field and lies
        // inside the mbuf header (rte_mbuf_dynfield_lookup guarantees both).
        Some(unsafe {
            std::ptr::read_unaligned((self.raw.as_ptr() as *const u8).add(ts.offset) as *const u64)
        })
    }

    /// Stores `value` as this mbuf's rx timestamp and flags it as set (what a PMD does on
    /// receive: a feeder that builds packets itself stamps them so).
    #[inline]
    pub fn set_rx_timestamp(&mut self, ts: &RxTimestamp, value: u64) {
        let raw = self.raw.as_ptr();
        // SAFETY: we own the mbuf exclusively; the dynamic field at `offset` was registered as
        // a u64 timestamp field inside the mbuf header (checked by `RxTimestamp`), and
        // `ol_flags` is a plain field of the header.
        unsafe {
            std::ptr::write_unaligned((raw as *mut u8).add(ts.offset) as *mut u64, value);
            (*raw).ol_flags |= ts.flag_mask;
        }
    }

    pub(crate) fn into_raw(self) -> *mut sys::rte_mbuf {
        let p = self.raw.as_ptr();
        std::mem::forget(self);
        p
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; rte_pktmbuf_free frees the whole chain exactly once.
        unsafe { sys::aperture_pktmbuf_free(self.raw.as_ptr()) }
    }
}

#[inline]
pub(crate) fn prefetch(p: *const u8) {
    // SAFETY: a prefetch is a hint: it never faults and has no effect on program semantics,
    // whatever the address.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    }
}

/// Where a PMD keeps rx timestamps: the `rte_dynfield_timestamp` field and the
/// `rte_dynflag_rx_timestamp` flag, looked up at run time (net_pcap registers them itself).
#[derive(Clone, Copy, Debug)]
pub struct RxTimestamp {
    offset: usize,
    flag_mask: u64,
}

impl RxTimestamp {
    /// Looks the field and flag up; `None` if no PMD registered them.
    pub fn lookup() -> Option<RxTimestamp> {
        // SAFETY: lookups by NUL-terminated name; they return -1 when absent.
        let (off, bit) = unsafe {
            (
                sys::rte_mbuf_dynfield_lookup(
                    c"rte_dynfield_timestamp".as_ptr(),
                    std::ptr::null_mut(),
                ),
                sys::rte_mbuf_dynflag_lookup(
                    c"rte_dynflag_rx_timestamp".as_ptr(),
                    std::ptr::null_mut(),
                ),
            )
        };
        RxTimestamp::checked(off, bit)
    }

    /// Registers the field and flag (or finds them, if a PMD already did), for a feeder
    /// that stamps the mbufs it builds.
    pub fn register() -> Option<RxTimestamp> {
        let (mut off, mut flag) = (-1i32, 0u64);
        // SAFETY: both out-pointers are valid for writes; returns -1 on failure.
        let rc = unsafe { sys::rte_mbuf_dyn_rx_timestamp_register(&mut off, &mut flag) };
        if rc < 0 || flag.count_ones() != 1 {
            return None;
        }
        RxTimestamp::checked(off, flag.trailing_zeros() as i32)
    }

    fn checked(off: i32, bit: i32) -> Option<RxTimestamp> {
        if off < 0 || !(0..64).contains(&bit) {
            return None;
        }
        let offset = off as usize;
        if offset + 8 > std::mem::size_of::<sys::rte_mbuf>() {
            return None;
        }
        Some(RxTimestamp {
            offset,
            flag_mask: 1u64 << bit,
        })
    }
}

/// Up to [`BURST_SIZE`] received mbufs, owned. Take them out one by one; what is left is freed.
pub struct Burst {
    slots: [Option<Mbuf>; BURST_SIZE],
    len: usize,
}

impl Default for Burst {
    fn default() -> Self {
        Burst {
            slots: [const { None }; BURST_SIZE],
            len: 0,
        }
    }
}

impl Burst {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The mbuf in slot `i`, if still there.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&Mbuf> {
        self.slots.get(i).and_then(|s| s.as_ref())
    }
    /// Starts loading the mbuf headers of the whole burst (the PMD may not have touched them).
    #[inline]
    pub fn prefetch_headers(&self) {
        for m in self.slots[..self.len].iter().flatten() {
            prefetch(m.raw.as_ptr() as *const u8);
        }
    }

    /// Takes the mbuf out of slot `i`.
    #[inline]
    pub fn take(&mut self, i: usize) -> Option<Mbuf> {
        self.slots.get_mut(i).and_then(|s| s.take())
    }
    /// Puts `m` into slot `i` (below `len()`), giving back what was there; `Err` gives `m`
    /// back for a slot past the burst.
    #[inline]
    pub fn replace(&mut self, i: usize, m: Mbuf) -> Result<Option<Mbuf>, Mbuf> {
        if i >= self.len {
            return Err(m);
        }
        Ok(self.slots[i].replace(m))
    }
    /// Frees what is left and empties the burst.
    pub fn clear(&mut self) {
        for s in &mut self.slots[..self.len] {
            *s = None;
        }
        self.len = 0;
    }

    pub(crate) fn fill_raw(
        &mut self,
        f: impl FnOnce(*mut *mut sys::rte_mbuf, u16) -> u16,
    ) -> usize {
        self.clear();
        // SAFETY: `Option<Mbuf>` is a transparent NonNull with the null niche, so the slot array
        // has the layout of `[*mut rte_mbuf; N]` with None == NULL; all slots are None now, and
        // the callee writes `n <= BURST_SIZE` valid owned pointers into the first n slots.
        let n = f(
            self.slots.as_mut_ptr() as *mut *mut sys::rte_mbuf,
            BURST_SIZE as u16,
        ) as usize;
        self.len = n.min(BURST_SIZE);
        self.len
    }

    /// Puts a packet into the burst (for feeding pipelines from memory); `Err` gives it back
    /// when the burst is full.
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST_SIZE {
            return Err(m);
        }
        self.slots[self.len] = Some(m);
        self.len += 1;
        Ok(())
    }
}

/// Packets waiting to be sent on one tx queue. `flush` sends them; what the queue refuses is
/// freed and reported.
pub struct TxBuffer {
    slots: [Option<Mbuf>; TX_CAP],
    len: usize,
    /// Bytes of the queued packets, summed as they are pushed.
    bytes: u64,
}

const TX_CAP: usize = 2 * BURST_SIZE;

impl Default for TxBuffer {
    fn default() -> Self {
        TxBuffer {
            slots: [const { None }; TX_CAP],
            len: 0,
            bytes: 0,
        }
    }
}

/// What one `TxBuffer::flush` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxResult {
    pub sent: u32,
    pub sent_bytes: u64,
    pub dropped: u32,
    pub dropped_bytes: u64,
}

impl TxBuffer {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn is_full(&self) -> bool {
        self.len == TX_CAP
    }
    /// Queues `m`; `Err` gives it back if the buffer is full (flush first).
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == TX_CAP {
            return Err(m);
        }
        self.bytes += m.pkt_len() as u64;
        self.slots[self.len] = Some(m);
        self.len += 1;
        Ok(())
    }

    /// Like `flush_raw`, but what `f` does not take stays queued (moved to the front), for
    /// a caller that would rather wait than drop.
    pub(crate) fn flush_keep_raw(
        &mut self,
        f: impl FnOnce(*mut *mut sys::rte_mbuf, u16) -> u16,
    ) -> TxResult {
        let mut r = TxResult::default();
        if self.len == 0 {
            return r;
        }
        // SAFETY: same layout argument as Burst::fill_raw; the first `len` slots are Some.
        let sent = f(
            self.slots.as_mut_ptr() as *mut *mut sys::rte_mbuf,
            self.len as u16,
        ) as usize;
        let sent = sent.min(self.len);
        // All sent (the common case): the running sum, without reading each mbuf again.
        let all = sent == self.len;
        let mut sent_bytes = if all { self.bytes } else { 0 };
        for s in &mut self.slots[..sent] {
            // The PMD (or ring) owns the sent mbufs now: forget them without freeing.
            if let Some(m) = s.take() {
                if !all {
                    sent_bytes += m.pkt_len() as u64;
                }
                let _ = m.into_raw();
            }
        }
        if sent < self.len {
            self.slots[..self.len].rotate_left(sent);
        }
        self.len -= sent;
        self.bytes -= sent_bytes;
        r.sent = sent as u32;
        r.sent_bytes = sent_bytes;
        r
    }

    pub(crate) fn flush_raw(
        &mut self,
        f: impl FnOnce(*mut *mut sys::rte_mbuf, u16) -> u16,
    ) -> TxResult {
        let mut r = self.flush_keep_raw(f);
        for s in &mut self.slots[..self.len] {
            if let Some(m) = s.take() {
                r.dropped += 1;
                r.dropped_bytes += m.pkt_len() as u64;
            } // dropping `m` frees it
        }
        self.bytes = 0;
        self.len = 0;
        r
    }
}
