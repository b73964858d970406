//! Starting and stopping the workers: one per worker lcore, each owning a queue on every port.
//! The main lcore stays the service thread: it drains the flow log, watches for the end of a
//! replay or a signal, and collects the final counters.
use crate::appid::catalog::{AppId, Catalog, MAX_CUSTOM_APPS};
use crate::appid::engine::{Engine, Limits};
use crate::clock::Clock;
use crate::config::{Config, Forwarding};
use crate::flow::affinity::Affinity;
use crate::flow::handoff::{self, Handoff};
use crate::flow::FlowTable;
use crate::flowdump::FlowDumps;
use crate::flowlog::{FlowLogSink, FlowRecord};
use crate::forward::{Router, VirtualWire};
use crate::nat::PortRange;
use crate::policy::{Action, PolicyStore};
use crate::port::{Eal, Ports, RxTimestamp};
use crate::stats::{read_snapshot, Counters, Layout, StatsError, StatsSegment, PORT_COUNTERS};
use crate::worker::{Mode, Worker};
use crossbeam_queue::ArrayQueue;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Flow records in flight between workers and the writer, per worker.
const LOG_QUEUE: usize = 16_384;

pub struct Options {
    /// Use capture timestamps as the clock (replay) instead of the TSC.
    pub capture_clock: bool,
    /// Never lose a flow record: workers wait for the writer when the queue is full.
    pub lossless_log: bool,
    /// Workers wait for room in each other's handoff rings instead of dropping (a replay,
    /// whose workers read as fast as they can, must lose nothing).
    pub lossless_handoff: bool,
    pub stats_segment: PathBuf,
    /// The policy the workers enforce (None: nothing is enforced, every packet passes).
    pub policy: Option<Arc<PolicyStore>>,
    /// The seed of the hash that steers flows between workers under NAT (None: a random
    /// one). A replay gives the one it split the capture with.
    pub steer_seed: Option<u64>,
}

/// Flows, packets and bytes of the flow records with one rule and action (or application).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, r: &FlowRecord) {
        self.flows += 1;
        self.packets += r.packets[0] + r.packets[1];
        self.bytes += r.bytes[0] + r.bytes[1];
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Stats(#[from] StatsError),
    #[error(transparent)]
    Eal(#[from] aperture_dpdk::EalError),
    #[error("worker on lcore {lcore} exited with status {status}")]
    Worker { lcore: u32, status: i32 },
    #[error("worker {worker} (lcore {lcore}) panicked: {message}; the dataplane stopped (its flows were logged)")]
    WorkerPanic {
        worker: usize,
        lcore: u32,
        message: String,
    },
    #[error("flow log: {0}")]
    Log(std::io::Error),
    #[error("no random numbers from the operating system ({0}): the flow tables' hash keys would be guessable, so the dataplane does not start")]
    Random(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot create the rings between workers: {0}")]
    Handoff(#[from] aperture_dpdk::PortError),
}

/// Workers running on their lcores.
pub struct Running {
    pub stop: Arc<AtomicBool>,
    /// Workers that have returned from their loop.
    done: Arc<AtomicUsize>,
    /// The first worker panic: (worker, lcore, message). Set once, off the packet path.
    panicked: Arc<std::sync::Mutex<Option<(usize, u32, String)>>>,
    logs: Vec<Arc<ArrayQueue<FlowRecord>>>,
    pub stats: Arc<StatsSegment>,
    lcores: Vec<u32>,
    /// Flows whose final record was written so far (interim records are not counted).
    pub records: u64,
    /// Per IP protocol: (flows, packets, bytes) of the records written.
    pub per_proto: Vec<(u64, u64, u64)>,
    /// Per application: (flows, packets, bytes), indexed by `AppId`.
    pub per_app: Vec<(u64, u64, u64)>,
    pub catalog: Arc<Catalog>,
    /// The largest flows by bytes seen in the log, largest first (at most `TOP_FLOWS`).
    pub top: Vec<FlowRecord>,
    pub policy: Option<Arc<PolicyStore>>,
    /// Under a policy: the flow records by (rule, action), and by (application, action).
    pub per_rule: BTreeMap<(String, Action), Tally>,
    pub per_app_action: BTreeMap<(AppId, Action), Tally>,
    /// The ports whose driver counters `service` publishes.
    ports: Vec<aperture_dpdk::Port>,
    port_words: Vec<[u64; PORT_COUNTERS.len()]>,
    /// Rule slots named in the stats segment so far.
    named_slots: usize,
    /// The workers' `show flows` mailbox.
    pub dumps: Arc<FlowDumps>,
}

/// How many of the largest flows `Running::top` keeps.
pub const TOP_FLOWS: usize = 10;

pub fn random_seeds() -> Result<[u64; 4], RuntimeError> {
    let mut b = [0u8; 32];
    // Tables keyed by attacker-controlled tuples with a guessable hash could be flooded
    // into one bucket: without the OS's random source the dataplane does not start.
    getrandom::getrandom(&mut b).map_err(|e| RuntimeError::Random(e.to_string()))?;
    let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    Ok([w(0), w(1), w(2), w(3)])
}

/// The text of a panic's payload.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Launches one worker per configured lcore.
pub fn start(
    eal: &Eal,
    cfg: &Config,
    ports: &Ports,
    opts: &Options,
) -> Result<Running, RuntimeError> {
    let catalog = Arc::new(Catalog::of_config(&cfg.app_id)?);
    let layout = Layout {
        apps: catalog.apps.iter().map(|a| a.name.clone()).collect(),
        custom_apps: MAX_CUSTOM_APPS,
        ports: cfg.ports.iter().map(|p| p.name.clone()).collect(),
    };
    let stats = Arc::new(StatsSegment::create(
        &opts.stats_segment,
        cfg.workers.lcores.len(),
        &layout,
    )?);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let panicked = Arc::new(std::sync::Mutex::new(None));
    let ts_field = RxTimestamp::lookup();
    let dumps = FlowDumps::new();
    let mut logs = Vec::new();
    let workers = cfg.workers.lcores.len();
    // Several workers: the rings that hand each one the packets of flows it owns under NAT.
    // Several workers: the endpoints each one's calls claim, so the others hand it the
    // calls' media.
    let affinity = (workers > 1).then(|| {
        Arc::new(Affinity::new(
            cfg.alg
                .sip
                .pinholes
                .saturating_mul(2)
                .saturating_mul(workers),
        ))
    });
    let mut handoffs: Vec<Option<Handoff>> = if workers > 1 {
        handoff::mesh(
            "handoff",
            workers,
            ports.ports.len(),
            match opts.steer_seed {
                Some(s) => s,
                None => random_seeds()?[0],
            },
        )?
        .into_iter()
        .map(Some)
        .collect()
    } else {
        vec![None]
    };
    for (i, &lcore) in cfg.workers.lcores.iter().enumerate() {
        let handoff = handoffs.get_mut(i).and_then(Option::take);
        let queue = Arc::new(ArrayQueue::new(LOG_QUEUE));
        logs.push(queue.clone());
        let mode = match &cfg.forwarding {
            Forwarding::VirtualWire { pairs } => {
                let idx: Vec<(usize, usize)> = pairs
                    .iter()
                    .map(|[a, b]| {
                        (
                            cfg.port_index(a).unwrap_or(0),
                            cfg.port_index(b).unwrap_or(0),
                        )
                    })
                    .collect();
                Mode::Wire(VirtualWire::new(ports.ports.len(), &idx))
            }
            f @ Forwarding::Routed { .. } => Mode::Routed(
                Router::new(f, |n| cfg.port_index(n).unwrap_or(0), &ports.macs)
                    .expect("routed config"),
            ),
        };
        let capacity = cfg.flow_table.capacity;
        let limits = Limits::of(&cfg.app_id);
        let cat = catalog.clone();
        let timeouts = cfg.flow_table.timeouts;
        let per_source = cfg.flow_table.per_source.per_worker(workers);
        let active_timeout = cfg.flow_log.active_timeout;
        let seeds = random_seeds()?;
        let port_list = ports
            .take_queues(i)
            .expect("each worker's queues are taken once");
        let pool = ports.pool.clone();
        let log = FlowLogSink {
            queue,
            lossless: opts.lossless_log,
        };
        let capture_clock = opts.capture_clock;
        let stop = stop.clone();
        let done = done.clone();
        let panicked = panicked.clone();
        let stats = stats.clone();
        let publish_ms = cfg.stats.publish_ms;
        let reader = opts.policy.as_ref().map(|p| p.reader());
        let worker_dumps = dumps.clone();
        let sip_alg = cfg.alg.sip.clone();
        let fragments = cfg.fragments.clone();
        let affinity = affinity.clone();
        let lossless_handoff = opts.lossless_handoff;
        let big = ports.big.clone();
        eal.launch(lcore, move || {
            // Built on the worker's own lcore so its memory is first touched there.
            let mut flows = FlowTable::new(capacity, &timeouts, seeds);
            flows.limit_sources(per_source);
            flows.set_active_timeout(active_timeout);
            let appid = Engine::new(cat, flows.capacity(), limits);
            let clock = if capture_clock {
                Clock::capture(ts_field)
            } else {
                Clock::tsc()
            };
            let mut w = Worker::new(i, port_list, mode, flows, appid, clock, log, pool)
                .with_flow_dumps(worker_dumps)
                .with_nat_ports(PortRange::of_worker(i, workers))
                .with_sip_alg(&sip_alg)
                .with_defrag(&fragments, big);
            if let Some(r) = reader {
                w = w.with_policy(r);
            }
            if let Some(h) = handoff {
                w = w.with_handoff(h, lossless_handoff);
            }
            if let Some(a) = affinity {
                w = w.with_affinity(a);
            }
            // A panic must not unwind into the EAL's C frames (that aborts the process with
            // nothing logged): it is caught here, reported, and stops every worker; this
            // worker's flows are still ended and logged.
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                w.run(&stop, &stats, publish_ms)
            }));
            let rc = match run {
                Ok(()) => 0,
                Err(payload) => {
                    // Reported once, by `check_workers`/`finish` (the panic hook printed where).
                    let message = panic_message(payload.as_ref());
                    panicked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert((i, lcore, message));
                    stop.store(true, Ordering::SeqCst);
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        w.finish_after_panic();
                        stats.publish(i, &w.counters, &w.tables);
                    }));
                    aperture_dpdk::PANICKED
                }
            };
            done.fetch_add(1, Ordering::SeqCst);
            rc
        })?;
    }
    Ok(Running {
        stop,
        done,
        panicked,
        logs,
        stats,
        lcores: cfg.workers.lcores.clone(),
        records: 0,
        per_proto: vec![(0, 0, 0); 256],
        per_app: vec![(0, 0, 0); catalog.apps.len() + MAX_CUSTOM_APPS],
        catalog,
        top: Vec::with_capacity(TOP_FLOWS + 1),
        policy: opts.policy.clone(),
        per_rule: BTreeMap::new(),
        per_app_action: BTreeMap::new(),
        ports: ports.ports.clone(),
        port_words: vec![[0; PORT_COUNTERS.len()]; ports.ports.len()],
        named_slots: 0,
        dumps,
    })
}

impl Running {
    /// The service thread's periodic work besides the flow log: names the rule slots the
    /// policy store has assigned since the last call, and publishes the ports' driver
    /// counters. Cheap enough to call every few milliseconds.
    /// Err once a worker has panicked (the others are stopping): the caller ends the run.
    pub fn check_workers(&self) -> Result<(), RuntimeError> {
        match &*self.panicked.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((worker, lcore, message)) => Err(RuntimeError::WorkerPanic {
                worker: *worker,
                lcore: *lcore,
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }

    pub fn service(&mut self) {
        self.refresh_catalog();
        if let Some(store) = &self.policy {
            if store.slot_count() != self.named_slots {
                let names = store.slot_names();
                self.stats.name_rules(&names);
                self.named_slots = names.len();
            }
        }
        // A port that cannot say (closed at exit) keeps its last figures: a counter
        // never goes back.
        for (p, w) in self.ports.iter().zip(self.port_words.iter_mut()) {
            if let Ok(s) = p.stats() {
                *w = s.words();
            }
        }
        self.stats.publish_ports(&self.port_words);
    }

    /// Takes on the running policy's catalog when it brought custom applications (the
    /// catalog only grows, so every id a record holds keeps its name) and names their rows
    /// in the stats segment.
    fn refresh_catalog(&mut self) {
        let Some(store) = &self.policy else {
            return;
        };
        let p = store.current();
        let Some(c) = &p.catalog else {
            return;
        };
        if Arc::ptr_eq(c, &self.catalog) {
            return;
        }
        self.catalog = Arc::clone(c);
        let names: Vec<&str> = c.apps.iter().map(|a| a.name.as_str()).collect();
        self.stats.name_apps(&names);
    }

    /// Writes every queued flow record to `out`.
    pub fn drain_log(&mut self, out: &mut impl Write) -> Result<(), RuntimeError> {
        self.refresh_catalog();
        for q in &self.logs {
            while let Some(r) = q.pop() {
                let rule = r.rule_of(self.policy.as_deref());
                r.write_json(out, &self.catalog, rule.as_ref())
                    .map_err(RuntimeError::Log)?;
                if r.interim() {
                    // The flow's final record is what the summaries count.
                    continue;
                }
                if let Some((rule, _)) = rule {
                    self.per_rule.entry((rule, r.action)).or_default().add(&r);
                    self.per_app_action
                        .entry((r.app, r.action))
                        .or_default()
                        .add(&r);
                }
                if let Some(e) = self.per_app.get_mut(r.app.0 as usize) {
                    e.0 += 1;
                    e.1 += r.packets[0] + r.packets[1];
                    e.2 += r.bytes[0] + r.bytes[1];
                }
                self.records += 1;
                let e = &mut self.per_proto[r.proto as usize];
                e.0 += 1;
                e.1 += r.packets[0] + r.packets[1];
                e.2 += r.bytes[0] + r.bytes[1];
                let total = |f: &FlowRecord| f.bytes[0] + f.bytes[1];
                let at = self.top.partition_point(|t| total(t) >= total(&r));
                if at < TOP_FLOWS {
                    self.top.insert(at, r);
                    self.top.truncate(TOP_FLOWS);
                }
            }
        }
        Ok(())
    }

    /// Stops the workers, waits for them, writes the last records; returns final counters.
    pub fn finish(
        &mut self,
        eal: &Eal,
        out: &mut impl Write,
    ) -> Result<Vec<Counters>, RuntimeError> {
        self.stop.store(true, Ordering::SeqCst);
        // Keep draining while the workers end their flows: a lossless worker waits on a
        // full queue, so waiting for it without draining could never finish.
        while self.done.load(Ordering::SeqCst) < self.lcores.len() {
            self.drain_log(out)?;
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let mut status = Ok(());
        for &l in &self.lcores {
            let rc = eal.wait(l);
            if rc != 0 && status.is_ok() {
                status = Err(RuntimeError::Worker {
                    lcore: l,
                    status: rc,
                });
            }
        }
        self.drain_log(out)?;
        self.service();
        self.check_workers()?;
        status?;
        Ok(read_snapshot(self.stats.path())?)
    }
}
