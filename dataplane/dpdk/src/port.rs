//! Ethernet ports (physical or virtual devices): configuration, queues, bursts and counters.
use crate::mbuf::{Burst, Mempool, TxBuffer, TxResult};
use crate::sys;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Port ids this binding tracks (DPDK's RTE_MAX_ETHPORTS is 32 by default).
const MAX_PORTS: usize = 1024;

/// Process-wide state of a port id: whether its queues were handed out (`start`), and how
/// many queue handles are alive. DPDK port ids are process-wide, so this is too: two `Port`
/// values found by the same name share it.
struct Slot {
    started: AtomicBool,
    handles: AtomicU32,
}

static SLOTS: [Slot; MAX_PORTS] = [const {
    Slot {
        started: AtomicBool::new(false),
        handles: AtomicU32::new(0),
    }
}; MAX_PORTS];

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("name {0:?} contains a NUL byte")]
    Name(String),
    #[error(
        "no DPDK port named {name:?} (is the device in the EAL arguments, e.g. --vdev={name},...?)"
    )]
    NotFound { name: String },
    #[error("cannot create mempool {name:?} of {size} mbufs: {reason}")]
    Mempool {
        name: String,
        size: u32,
        reason: String,
    },
    #[error("port {port} ({name}): {op} failed: {reason}")]
    Op {
        port: u16,
        name: String,
        op: &'static str,
        reason: String,
    },
    #[error("port {port} ({name}) has {max} {what} queues, {wanted} wanted")]
    Queues {
        port: u16,
        name: String,
        what: &'static str,
        max: u16,
        wanted: u16,
    },
    #[error("port {port} ({name}) was started already: its queues have their owners")]
    AlreadyStarted { port: u16, name: String },
    #[error("port {port} ({name}) cannot stop while {handles} of its queue handles are alive")]
    QueuesInUse {
        port: u16,
        name: String,
        handles: u32,
    },
    #[error("port id {0} is beyond the {MAX_PORTS} ports this binding tracks")]
    TooMany(u16),
    #[error(
        "port {name} (driver {driver}) cannot spread flows over {queues} workers: {why}. Both directions of a flow must reach the same worker; give this port one worker (workers.lcores with one entry), or use a NIC with RSS (README, Troubleshooting)"
    )]
    NoSymmetricSpread {
        name: String,
        driver: String,
        queues: u16,
        why: String,
    },
}

/// How a port spreads what it receives over its rx queues (`Port::start`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    /// One rx queue: nothing to spread.
    Single,
    /// The device's RSS, with a symmetric Toeplitz key (both directions of a flow hash
    /// alike) over IPv4/IPv6 addresses and TCP/UDP ports (`rss_hf`: the DPDK hash types in
    /// use), the redirection table spread evenly over the queues.
    SymmetricRss { rss_hf: u64 },
    /// The kernel spreads (net_af_packet: PACKET_FANOUT_HASH on the kernel's flow hash,
    /// which orders the endpoints, so it is symmetric). With a queue's ring full the kernel
    /// rolls packets over to another queue: under overload a flow may split.
    KernelFanout,
    /// Each queue has its own feeder, who decides (net_ring, net_memif, net_null).
    Feeder,
}

/// RSS hash types Aperture asks for: IPv4/IPv6 addresses, and TCP/UDP ports.
const RSS_WANTED: u64 = (1 << 2) // IPV4
    | (1 << 3) // FRAG_IPV4
    | (1 << 4) // NONFRAG_IPV4_TCP
    | (1 << 5) // NONFRAG_IPV4_UDP
    | (1 << 7) // NONFRAG_IPV4_OTHER
    | (1 << 8) // IPV6
    | (1 << 9) // FRAG_IPV6
    | (1 << 10) // NONFRAG_IPV6_TCP
    | (1 << 11) // NONFRAG_IPV6_UDP
    | (1 << 13); // NONFRAG_IPV6_OTHER
/// The IPv4 types without which RSS would not spread ordinary traffic.
const RSS_NEEDED_V4: u64 = (1 << 2) | (1 << 4) | (1 << 5);

/// The symmetric Toeplitz key (Woo and Park, "Scalable TCP Session Monitoring with
/// Symmetric Receive-side Scaling"): 0x6d5a repeated. Its period of 16 bits makes the hash
/// of (a, b, pa, pb) equal that of (b, a, pb, pa), for IPv4 and IPv6 alike. As long as the
/// longest key a driver takes (52 bytes for i40e/ice).
fn symmetric_key(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| if i % 2 == 0 { 0x6d } else { 0x5a })
        .collect()
}

/// Whether `key` hashes symmetrically (its bytes repeat with period 2).
fn is_symmetric_key(key: &[u8]) -> bool {
    key.len() >= 2 && key.chunks(2).all(|c| c == &key[..c.len()])
}

/// How to configure a port.
#[derive(Clone, Debug)]
pub struct EthConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub promiscuous: bool,
}

impl Default for EthConfig {
    fn default() -> Self {
        EthConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            promiscuous: true,
        }
    }
}

/// Port identity as the driver reports it.
#[derive(Clone, Debug)]
pub struct PortInfo {
    pub driver: String,
    pub mac: [u8; 6],
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub socket: i32,
    /// RSS: the hash types the device offers (DPDK's `RTE_ETH_RSS_*` bits), its key length
    /// (0: unsaid) and redirection table size.
    pub rss_offloads: u64,
    pub rss_key_len: u8,
    pub reta_size: u16,
}

/// Port counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Dropped by the hardware/driver because rx queues were full.
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    /// Receive failures because the mempool was empty.
    pub rx_nombuf: u64,
}

impl PortStats {
    /// The counters in declaration order (ipackets, opackets, ibytes, obytes, imissed,
    /// ierrors, oerrors, rx_nombuf): the order the stats segment and reports use.
    pub fn words(&self) -> [u64; 8] {
        [
            self.ipackets,
            self.opackets,
            self.ibytes,
            self.obytes,
            self.imissed,
            self.ierrors,
            self.oerrors,
            self.rx_nombuf,
        ]
    }
}

/// An ethdev port: the control handle (information, counters, start and stop). Packets go
/// through the queue handles `start` returns, one owner each. `stop` closes the port (which
/// flushes net_pcap output files) once no queue handle is left.
#[derive(Clone, Debug)]
pub struct Port {
    id: u16,
    name: String,
}

/// One receive queue of a started port. Exactly one exists per queue set up (`Port::start`
/// makes them, once per port), it is not `Clone`, and receiving takes `&mut self`: safe code
/// can neither poll a queue from two threads, nor poll a queue that was never set up, nor
/// poll after the port stopped (`Port::stop` refuses while a handle is alive).
///
/// A second owner cannot be made:
/// ```compile_fail
/// fn second_poller(q: &aperture_dpdk::RxQueue) -> aperture_dpdk::RxQueue {
///     q.clone()
/// }
/// ```
/// nor can a shared reference poll:
/// ```compile_fail
/// fn poll_shared(q: &aperture_dpdk::RxQueue, b: &mut aperture_dpdk::Burst) -> usize {
///     q.burst(b)
/// }
/// ```
#[derive(Debug)]
pub struct RxQueue(Handle);

/// One transmit queue of a started port, owned like an [`RxQueue`].
#[derive(Debug)]
pub struct TxQueue(Handle);

/// The queues `Port::start` set up, in queue order.
#[derive(Debug)]
pub struct Queues {
    pub rx: Vec<RxQueue>,
    pub tx: Vec<TxQueue>,
    /// How the port spreads what it receives over `rx`.
    pub spread: Spread,
}

impl Queues {
    /// The queues as (rx, tx) pairs of the same index (the first `min(rx, tx)`; the rest
    /// are dropped).
    pub fn into_pairs(self) -> Vec<(RxQueue, TxQueue)> {
        self.rx.into_iter().zip(self.tx).collect()
    }
}

/// The one handle of a queue: counted in its port's slot while it lives.
#[derive(Debug)]
struct Handle {
    port: u16,
    queue: u16,
}

impl Handle {
    fn new(port: u16, queue: u16) -> Handle {
        SLOTS[port as usize].handles.fetch_add(1, Ordering::AcqRel);
        Handle { port, queue }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        SLOTS[self.port as usize]
            .handles
            .fetch_sub(1, Ordering::AcqRel);
    }
}

impl RxQueue {
    pub fn port(&self) -> u16 {
        self.0.port
    }

    pub fn queue(&self) -> u16 {
        self.0.queue
    }

    /// Receives up to a burst into `burst` (emptied first). Returns the count.
    #[inline]
    pub fn burst(&mut self, burst: &mut Burst) -> usize {
        let (id, q) = (self.0.port, self.0.queue);
        // SAFETY: this handle is the only one for a queue `start` set up on a port that
        // cannot stop while it lives, and `&mut self` keeps it to one thread at a time; the
        // shim writes at most `n` owned mbuf pointers.
        burst.fill_raw(|ptr, n| unsafe { sys::aperture_rx_burst(id, q, ptr, n) })
    }
}

impl TxQueue {
    pub fn port(&self) -> u16 {
        self.0.port
    }

    pub fn queue(&self) -> u16 {
        self.0.queue
    }

    /// Sends what `buf` holds; frees and reports what the queue refused.
    #[inline]
    pub fn flush(&mut self, buf: &mut TxBuffer) -> TxResult {
        let (id, q) = (self.0.port, self.0.queue);
        // SAFETY: as `RxQueue::burst`: the one owner of a set-up queue of a live port; the
        // PMD takes ownership of the first `rc` mbufs.
        buf.flush_raw(|ptr, n| unsafe { sys::aperture_tx_burst(id, q, ptr, n) })
    }

    /// Sends what `buf` holds; what the queue refuses stays in `buf` (for a sender that
    /// waits rather than drops).
    #[inline]
    pub fn keep(&mut self, buf: &mut TxBuffer) -> TxResult {
        let (id, q) = (self.0.port, self.0.queue);
        // SAFETY: as `flush`.
        buf.flush_keep_raw(|ptr, n| unsafe { sys::aperture_tx_burst(id, q, ptr, n) })
    }
}

impl Port {
    /// Finds a port by device name (`net_pcap0`, `0000:01:00.0`, ...).
    pub fn by_name(name: &str) -> Result<Port, PortError> {
        let c = CString::new(name).map_err(|_| PortError::Name(name.to_string()))?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(PortError::NotFound {
                name: name.to_string(),
            });
        }
        if id as usize >= MAX_PORTS {
            return Err(PortError::TooMany(id));
        }
        Ok(Port {
            id,
            name: name.to_string(),
        })
    }

    pub fn id(&self) -> u16 {
        self.id
    }
    pub fn name(&self) -> &str {
        &self.name
    }

    fn op_err(&self, op: &'static str, rc: i32) -> PortError {
        PortError::Op {
            port: self.id,
            name: self.name.clone(),
            op,
            reason: format!("{} (rc {rc})", crate::last_error()),
        }
    }

    pub fn info(&self) -> Result<PortInfo, PortError> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: valid port id (found by name) and out-pointer.
        let rc = unsafe { sys::rte_eth_dev_info_get(self.id, &mut info) };
        if rc != 0 {
            return Err(self.op_err("rte_eth_dev_info_get", rc));
        }
        let mut mac = sys::rte_ether_addr::default();
        // SAFETY: as above.
        let rc = unsafe { sys::rte_eth_macaddr_get(self.id, &mut mac) };
        if rc != 0 {
            return Err(self.op_err("rte_eth_macaddr_get", rc));
        }
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name points to the driver's static name string.
            unsafe { std::ffi::CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        // SAFETY: getter.
        let socket = unsafe { sys::rte_eth_dev_socket_id(self.id) };
        Ok(PortInfo {
            driver,
            mac: mac.addr_bytes,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            socket,
            rss_offloads: info.flow_type_rss_offloads,
            rss_key_len: info.hash_key_size,
            reta_size: info.reta_size,
        })
    }

    /// Configures queues on `pool`, starts the port, and hands out its queues: once per
    /// port (a second `start` is an error, so each queue has one owner).
    pub fn start(&self, cfg: &EthConfig, pool: &Mempool) -> Result<Queues, PortError> {
        let slot = &SLOTS[self.id as usize];
        if slot.started.swap(true, Ordering::AcqRel) {
            return Err(PortError::AlreadyStarted {
                port: self.id,
                name: self.name.clone(),
            });
        }
        let spread = self.configure(cfg, pool).inspect_err(|_| {
            slot.started.store(false, Ordering::Release);
        })?;
        Ok(Queues {
            spread,
            rx: (0..cfg.rx_queues)
                .map(|q| RxQueue(Handle::new(self.id, q)))
                .collect(),
            tx: (0..cfg.tx_queues)
                .map(|q| TxQueue(Handle::new(self.id, q)))
                .collect(),
        })
    }

    fn configure(&self, cfg: &EthConfig, pool: &Mempool) -> Result<Spread, PortError> {
        let info = self.info()?;
        for (what, max, wanted) in [
            ("rx", info.max_rx_queues, cfg.rx_queues),
            ("tx", info.max_tx_queues, cfg.tx_queues),
        ] {
            if wanted > max || wanted == 0 {
                return Err(PortError::Queues {
                    port: self.id,
                    name: self.name.clone(),
                    what,
                    max,
                    wanted,
                });
            }
        }
        let mut conf = sys::rte_eth_conf::default();
        let (spread, key_len, reta_size) = self.spread_of(&info, cfg.rx_queues)?;
        let mut key = symmetric_key(key_len);
        if let Spread::SymmetricRss { rss_hf } = spread {
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf = sys::rte_eth_rss_conf {
                rss_key: key.as_mut_ptr(),
                rss_key_len: key_len as u8,
                rss_hf,
            };
        }
        // SAFETY: valid port and config struct (zeroed but for RSS: no offloads); the key
        // outlives the call (the driver copies it).
        let rc =
            unsafe { sys::rte_eth_dev_configure(self.id, cfg.rx_queues, cfg.tx_queues, &conf) };
        if rc != 0 {
            return Err(self.op_err("rte_eth_dev_configure", rc));
        }
        let socket = info.socket.max(0) as u32;
        for q in 0..cfg.rx_queues {
            // SAFETY: NULL rx_conf = driver defaults; the pool outlives the port (process-wide).
            let rc = unsafe {
                sys::rte_eth_rx_queue_setup(
                    self.id,
                    q,
                    cfg.rx_desc,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if rc != 0 {
                return Err(self.op_err("rte_eth_rx_queue_setup", rc));
            }
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: NULL tx_conf = driver defaults.
            let rc = unsafe {
                sys::rte_eth_tx_queue_setup(self.id, q, cfg.tx_desc, socket, std::ptr::null())
            };
            if rc != 0 {
                return Err(self.op_err("rte_eth_tx_queue_setup", rc));
            }
        }
        // SAFETY: configured port.
        let rc = unsafe { sys::rte_eth_dev_start(self.id) };
        if rc != 0 {
            return Err(self.op_err("rte_eth_dev_start", rc));
        }
        if cfg.promiscuous {
            // Virtual devices may not support it; that is not an error for forwarding.
            // SAFETY: started port.
            let _ = unsafe { sys::rte_eth_promiscuous_enable(self.id) };
        }
        if matches!(spread, Spread::SymmetricRss { .. }) {
            self.spread_reta(reta_size, cfg.rx_queues)?;
            self.check_key(&info, cfg.rx_queues, key_len)?;
        }
        Ok(spread)
    }

    /// How this port can spread over `queues` rx queues, with the RSS key length and
    /// redirection table size to use; an error when it cannot do so symmetrically.
    fn spread_of(&self, info: &PortInfo, queues: u16) -> Result<(Spread, usize, u16), PortError> {
        if queues <= 1 {
            return Ok((Spread::Single, 0, 0));
        }
        let rss_hf = info.rss_offloads & RSS_WANTED;
        if rss_hf & RSS_NEEDED_V4 == RSS_NEEDED_V4 || rss_hf & (1 << 2) != 0 {
            let key_len = match info.rss_key_len {
                0 => 40,
                n => n as usize,
            };
            return Ok((Spread::SymmetricRss { rss_hf }, key_len, info.reta_size));
        }
        match info.driver.as_str() {
            "net_af_packet" => Ok((Spread::KernelFanout, 0, 0)),
            "net_ring" | "net_memif" | "net_null" => Ok((Spread::Feeder, 0, 0)),
            _ => Err(PortError::NoSymmetricSpread {
                name: self.name.clone(),
                driver: info.driver.clone(),
                queues,
                why: if info.rss_offloads == 0 {
                    "the device offers no RSS".into()
                } else {
                    format!(
                        "its RSS does not hash IPv4 addresses and ports (hash types {:#x})",
                        info.rss_offloads
                    )
                },
            }),
        }
    }

    /// Points the redirection table's entries at the queues in turn. A driver without a
    /// table to set (ENOTSUP) keeps its own, which spreads evenly by default.
    fn spread_reta(&self, reta_size: u16, queues: u16) -> Result<(), PortError> {
        if reta_size == 0 {
            return Ok(());
        }
        let groups = (reta_size as usize).div_ceil(64);
        let mut reta = vec![
            sys::rte_eth_rss_reta_entry64 {
                mask: 0,
                reta: [0; 64]
            };
            groups
        ];
        for i in 0..reta_size as usize {
            let g = &mut reta[i / 64];
            g.mask |= 1 << (i % 64);
            g.reta[i % 64] = (i % queues as usize) as u16;
        }
        // SAFETY: `reta` holds `reta_size` entries (in groups of 64) for a started port.
        let rc = unsafe { sys::rte_eth_dev_rss_reta_update(self.id, reta.as_mut_ptr(), reta_size) };
        if rc != 0 && rc != -libc::ENOTSUP {
            return Err(self.op_err("rte_eth_dev_rss_reta_update", rc));
        }
        Ok(())
    }

    /// Reads the RSS key back: a driver that kept a key of its own (not symmetric) would
    /// split flows across workers, which is refused. A driver that cannot say is trusted.
    fn check_key(&self, info: &PortInfo, queues: u16, key_len: usize) -> Result<(), PortError> {
        let mut key = vec![0u8; key_len];
        let mut conf = sys::rte_eth_rss_conf {
            rss_key: key.as_mut_ptr(),
            rss_key_len: key_len as u8,
            rss_hf: 0,
        };
        // SAFETY: `conf.rss_key` points at `key_len` writable bytes for a started port.
        let rc = unsafe { sys::rte_eth_dev_rss_hash_conf_get(self.id, &mut conf) };
        if rc == 0 && !is_symmetric_key(&key[..(conf.rss_key_len as usize).min(key_len)]) {
            return Err(PortError::NoSymmetricSpread {
                name: self.name.clone(),
                driver: info.driver.clone(),
                queues,
                why: "the device kept an RSS key of its own instead of the symmetric one".into(),
            });
        }
        Ok(())
    }

    /// Stops and closes the port (net_pcap flushes and closes its files here). Refused while
    /// a queue handle is alive (the workers have not returned, a sender still holds one).
    pub fn stop(&self) -> Result<(), PortError> {
        let handles = SLOTS[self.id as usize].handles.load(Ordering::Acquire);
        if handles > 0 {
            return Err(PortError::QueuesInUse {
                port: self.id,
                name: self.name.clone(),
                handles,
            });
        }
        // SAFETY: valid port id; stopping a stopped port returns 0.
        let rc = unsafe { sys::rte_eth_dev_stop(self.id) };
        if rc != 0 {
            return Err(self.op_err("rte_eth_dev_stop", rc));
        }
        // SAFETY: stopped port; after close the id is invalid and we never use it again
        // through this handle's owner (callers drop the Port).
        let rc = unsafe { sys::rte_eth_dev_close(self.id) };
        if rc != 0 {
            return Err(self.op_err("rte_eth_dev_close", rc));
        }
        Ok(())
    }

    pub fn stats(&self) -> Result<PortStats, PortError> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port and out-pointer.
        let rc = unsafe { sys::rte_eth_stats_get(self.id, &mut s) };
        if rc != 0 {
            return Err(self.op_err("rte_eth_stats_get", rc));
        }
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }
}

#[cfg(test)]
mod rss_tests {
    use super::*;

    /// The Toeplitz hash as NICs compute it (Microsoft's RSS specification).
    fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
        let mut result = 0u32;
        let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
        for (next, byte) in (4..).zip(input) {
            for bit in (0..8).rev() {
                if byte >> bit & 1 == 1 {
                    result ^= window;
                }
                let k = key.get(next).copied().unwrap_or(0);
                window = window << 1 | ((k >> bit) & 1) as u32;
            }
        }
        result
    }

    fn tuple(a: [u8; 4], b: [u8; 4], pa: u16, pb: u16) -> Vec<u8> {
        [&a[..], &b[..], &pa.to_be_bytes(), &pb.to_be_bytes()].concat()
    }

    #[test]
    fn the_key_hashes_both_directions_alike() {
        let key = symmetric_key(40);
        assert!(is_symmetric_key(&key));
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200u32 {
            let a = (0x0a00_0001 + i * 7919).to_be_bytes();
            let b = (0xc633_6402 ^ (i * 104_729)).to_be_bytes();
            let (pa, pb) = (1024 + i as u16 * 31, 443 + i as u16);
            let fwd = toeplitz(&key, &tuple(a, b, pa, pb));
            assert_eq!(fwd, toeplitz(&key, &tuple(b, a, pb, pa)));
            seen.insert(fwd % 4);
        }
        // And it still spreads: every queue of four gets flows.
        assert_eq!(seen.len(), 4);
        // A key of the usual kind is not symmetric (the check at start would refuse it).
        let msft: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37) ^ 0x6d).collect();
        assert!(!is_symmetric_key(&msft));
        let (a, b) = ([10, 0, 0, 1], [198, 51, 100, 2]);
        assert_ne!(
            toeplitz(&msft, &tuple(a, b, 5000, 80)),
            toeplitz(&msft, &tuple(b, a, 80, 5000))
        );
    }
}
