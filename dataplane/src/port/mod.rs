//! DPDK ports as the configuration names them: EAL start, the mbuf pool, and every port
//! started with one rx and one tx queue per worker. The rte_* types stay behind the
//! `aperture_dpdk` binding; this module only wires them to `dataplane.yaml`.
use crate::config::Config;
use crate::packet::MacAddr;
pub use aperture_dpdk::{
    Burst, Eal, EthConfig, Mbuf, Mempool, Port, PortStats, RxQueue, RxTimestamp, TxBuffer, TxQueue,
};
use std::sync::{Arc, Mutex};

/// Exits with a message if the CPU lacks an instruction set extension this build uses
/// (checked before `main` already; calling it links the check into a binary).
pub fn ensure_cpu_supported() {
    aperture_dpdk::cpu::ensure_supported();
}

/// A worker's queues: one (rx, tx) pair on every port, in port order.
pub type WorkerQueues = Vec<(RxQueue, TxQueue)>;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Eal(#[from] aperture_dpdk::EalError),
    #[error(transparent)]
    Port(#[from] aperture_dpdk::PortError),
    #[error("workers.lcores: lcore {0} is not a worker lcore of the EAL arguments (check -l/--lcores; the first lcore is the main one)")]
    Lcore(u32),
}

/// Started ports, in configuration order, and the pool their queues draw from.
pub struct Ports {
    pub ports: Vec<Port>,
    pub macs: Vec<MacAddr>,
    pub drivers: Vec<String>,
    pub pool: Arc<Mempool>,
    /// Buffers for reassembled datagrams larger than a `pool` mbuf (None: reassembly off).
    pub big: Option<Arc<Mempool>>,
    /// Each worker's queues until it takes them (`take_queues`).
    queues: Mutex<Vec<Option<WorkerQueues>>>,
}

impl Ports {
    /// Worker `i`'s queue pair on every port: queue `i` of each. Given once.
    pub fn take_queues(&self, i: usize) -> Option<WorkerQueues> {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(i)?
            .take()
    }

    /// Stops and closes every port (net_pcap writes out its files here), once the workers
    /// have given their queues back.
    pub fn stop(&self) {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        for p in &self.ports {
            if let Err(e) = p.stop() {
                tracing::warn!("{e}");
            }
        }
    }
}

/// DPDK's statistics of every port, by the configured name.
pub fn stats_by_name(ports: &Ports, cfg: &Config) -> Vec<(String, PortStats)> {
    ports
        .ports
        .iter()
        .zip(&cfg.ports)
        .map(|(p, c)| (c.name.clone(), p.stats().unwrap_or_default()))
        .collect()
}

/// Reassembled-datagram buffers per worker.
const BIG_PER_WORKER: u32 = 64;

/// Initialises the EAL with the configuration's arguments plus `extra`.
pub fn init_eal(cfg: &Config, extra: &[String]) -> Result<Eal, SetupError> {
    let mut args = cfg.eal_args();
    args.extend_from_slice(extra);
    let eal = Eal::init(&args)?;
    let workers = eal.worker_lcores();
    if let Some(l) = cfg.workers.lcores.iter().find(|l| !workers.contains(l)) {
        return Err(SetupError::Lcore(*l));
    }
    Ok(eal)
}

/// Creates the pool and starts every configured port with one queue pair per worker.
pub fn start_ports(cfg: &Config) -> Result<Ports, SetupError> {
    let pool = Arc::new(Mempool::new(
        "aperture_mbufs",
        cfg.mempool.mbufs,
        cfg.mempool.cache,
        cfg.mempool.data_room,
        -1,
    )?);
    let queues = cfg.workers.lcores.len() as u16;
    // Reassembled datagrams are re-fragmented (or sent) as soon as they are processed: a few
    // per worker are ever in flight.
    let big = if cfg.fragments.datagrams > 0 {
        let room = (crate::flow::defrag::HEAD_ROOM + cfg.fragments.max_bytes) as u16;
        Some(Arc::new(Mempool::new(
            "aperture_reasm",
            BIG_PER_WORKER * queues as u32,
            0,
            room,
            -1,
        )?))
    } else {
        None
    };
    let mut ports = Vec::new();
    let mut macs = Vec::new();
    let mut drivers = Vec::new();
    let mut per_worker: Vec<WorkerQueues> = (0..queues).map(|_| Vec::new()).collect();
    for pc in &cfg.ports {
        let port = Port::by_name(&pc.device)?;
        let ec = EthConfig {
            rx_queues: queues,
            tx_queues: queues,
            rx_desc: pc.rx_desc,
            tx_desc: pc.tx_desc,
            promiscuous: true,
        };
        let started = port.start(&ec, &pool)?;
        let spread = started.spread;
        for (w, pair) in started.into_pairs().into_iter().enumerate() {
            per_worker[w].push(pair);
        }
        let info = port.info()?;
        match spread {
            aperture_dpdk::Spread::Single => {}
            aperture_dpdk::Spread::SymmetricRss { rss_hf } => tracing::info!(
                "port {}: {queues} queues, symmetric RSS (hash types {rss_hf:#x})",
                pc.name
            ),
            aperture_dpdk::Spread::KernelFanout => tracing::info!(
                "port {}: {queues} queues spread by the kernel's symmetric fanout hash (a full queue rolls packets over to another: size framecnt for the peak)",
                pc.name
            ),
            aperture_dpdk::Spread::Feeder => {
                tracing::info!("port {}: {queues} queues, each fed on its own", pc.name)
            }
        }
        macs.push(MacAddr(info.mac));
        drivers.push(info.driver);
        ports.push(port);
    }
    Ok(Ports {
        ports,
        macs,
        drivers,
        pool,
        big,
        queues: Mutex::new(per_worker.into_iter().map(Some).collect()),
    })
}
