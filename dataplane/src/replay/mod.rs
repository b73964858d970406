//! Capture replay: the same workers as live traffic, fed through DPDK ring ports (`feed`).
//!
//! Frames are read in Ethernet form (`capture`: Linux cooked (v1/v2), raw IP and BSD loopback
//! frames get a synthetic Ethernet header, pcapng is flattened) and handed to the worker a
//! symmetric flow hash (or, under NAT, the live handoff's steering) gives them. The workers'
//! clock is the capture time, so results do not depend on the machine's speed.
pub mod capture;
pub mod feed;

use crate::appid::catalog::{AppId, Catalog};
use crate::config::{Config, Forwarding, PortConfig};
use crate::flowlog::FlowRecord;
use crate::nat::steer::Steer;
use crate::policy::{self, Action, Diagnostic, PolicyStore};
use crate::port::{self, PortStats};
use crate::runtime::{self, Options, Tally};
use crate::stats::Counters;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to replay and where the results go.
#[derive(Clone, Debug)]
pub struct Request {
    /// The capture; without it the bundled sample is generated into `out_dir/sample.pcap`.
    pub pcap: Option<PathBuf>,
    /// Transmitted packets (default `out_dir/out.pcap`, or none when only `flow_log` is
    /// given: the caller asked for the flow log alone).
    pub out: Option<PathBuf>,
    /// Flow log, JSON Lines (default `out_dir/flows.jsonl`).
    pub flow_log: Option<PathBuf>,
    /// Directory for the defaults and the intermediate files.
    pub out_dir: PathBuf,
    /// Give up after this long.
    pub timeout: Duration,
    /// No progress line on stderr (it is shown only on a terminal, for replays that take
    /// more than two seconds).
    pub quiet: bool,
    /// policy.yaml to enforce (None: enforce nothing; every packet is forwarded, as a tap
    /// would, so the output is byte-identical to the input). Zones name the replay's ports,
    /// `capture-in` and `capture-out`.
    pub policy: Option<PathBuf>,
}

/// What a replay did: the figures the summary tables print and tests check.
pub struct Report {
    pub input: PathBuf,
    /// Whether `input` is the bundled sample, generated for this run.
    pub generated_sample: bool,
    /// The output capture (None: none was asked for).
    pub out: Option<PathBuf>,
    pub flow_log: PathBuf,
    /// Packets in the capture that were fed to the workers.
    pub packets: u64,
    /// Frames of link types or families the replay cannot carry.
    pub skipped: u64,
    /// The capture ends inside this record: the ones before it were replayed.
    pub cut_at: Option<u64>,
    /// Final counters per worker.
    pub workers: Vec<Counters>,
    /// DPDK's statistics per port (name, figures).
    pub ports: Vec<(String, PortStats)>,
    /// Flow records written.
    pub records: u64,
    /// Per IP protocol number: (flows, packets, bytes), only protocols that were seen.
    pub per_proto: Vec<(u8, u64, u64, u64)>,
    /// Per application, indexed by `AppId`: (flows, packets, bytes).
    pub per_app: Vec<(u64, u64, u64)>,
    /// The largest flows by bytes, largest first.
    pub top: Vec<FlowRecord>,
    pub catalog: Arc<Catalog>,
    /// Wall time from the workers' start to the last flow record.
    pub elapsed: Duration,
    /// The policy enforced, if any: its file, what the compiler warned about, and the flow
    /// records by rule and action, and by application and action.
    pub policy: Option<PolicySummary>,
}

pub struct PolicySummary {
    pub file: PathBuf,
    pub warnings: Vec<Diagnostic>,
    pub per_rule: Vec<((String, Action), Tally)>,
    pub per_app: Vec<((AppId, Action), Tally)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Setup(#[from] port::SetupError),
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    #[error(transparent)]
    Capture(#[from] capture::CaptureError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write the sample capture {path}: {message}")]
    Sample { path: String, message: String },
    #[error("replay did not finish within {0} s ({1} packets read)")]
    Timeout(u64, u64),
    #[error("replay stalled: nothing moved for {0} s after {1} packets (the workers hold every mbuf? raise mempool.mbufs)")]
    Stalled(u64, u64),
    #[error("cannot register the mbuf timestamp field the replay stamps packets with")]
    Timestamps,
    #[error("{path}: packet {index}: a frame of {len} bytes is larger than any the replay carries ({max})")]
    TooBig {
        path: String,
        index: u64,
        len: usize,
        max: usize,
    },
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Policy(Vec<Diagnostic>),
    #[error("{path}: a packet stamped {secs} s after 1970 (past 2106) cannot be written to a pcap file, whose seconds are 32 bits")]
    LateStamp { path: String, secs: u64 },
}

/// Reads and compiles a policy file for the dataplane's ports (`cfg.ports`, index order).
pub fn load_policy(
    path: &Path,
    cfg: &Config,
    catalog: &Catalog,
) -> Result<policy::Compiled, Vec<Diagnostic>> {
    let name = path.display().to_string();
    let text = policy::compile::read_file(path)?;
    let ports: Vec<String> = cfg.ports.iter().map(|p| p.name.clone()).collect();
    policy::compile(&text, &name, catalog, Some(&ports))
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ReplayError + 'a {
    move |source| ReplayError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// Replays a capture through the workers configured in `cfg` (its ports are replaced by a
/// net_pcap pair in virtual-wire mode: worker i reads its share of the capture on queue i of
/// `capture-in` and sends on queue i of `capture-out`). The EAL can start once per process.
pub fn run(mut cfg: Config, req: &Request) -> Result<Report, ReplayError> {
    let out_dir = &req.out_dir;
    std::fs::create_dir_all(out_dir).map_err(io("cannot create", out_dir))?;
    let (input, generated_sample) = match &req.pcap {
        Some(p) => (p.clone(), false),
        None => {
            let p = out_dir.join("sample.pcap");
            aperture_traffic::sample::write_sample(&p, 1).map_err(|e| ReplayError::Sample {
                path: p.display().to_string(),
                message: e.to_string(),
            })?;
            (p, true)
        }
    };
    let out = match (&req.out, &req.flow_log) {
        (Some(o), _) => Some(o.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(out_dir.join("out.pcap")),
    };
    let flow_log = req
        .flow_log
        .clone()
        .unwrap_or_else(|| out_dir.join("flows.jsonl"));
    let workers = cfg.workers.lcores.len();
    let work = out_dir.join(format!(".replay-{}", std::process::id()));
    let segment =
        std::env::temp_dir().join(format!("aperture-replay-stats-{}", std::process::id()));
    // The replay's own files go however it ends (an error returns early).
    let _cleanup = Cleanup(vec![work.clone(), segment.clone()]);
    // With several workers each writes its own output, merged by time at the end.
    let outs: Option<Vec<PathBuf>> = out.as_ref().map(|o| {
        if workers == 1 {
            vec![o.clone()]
        } else {
            (0..workers)
                .map(|i| work.join(format!("out-{i}.pcap")))
                .collect()
        }
    });
    if workers > 1 && outs.is_some() {
        std::fs::create_dir_all(&work).map_err(io("cannot create", &work))?;
    }
    let size = std::fs::metadata(&input)
        .map_err(|source| capture::CaptureError::Open {
            path: input.display().to_string(),
            source,
        })?
        .len();
    // The ports are the feeder's rings, created once the EAL runs.
    cfg.ports.clear();
    let compiled = match &req.policy {
        Some(p) => {
            let catalog = Catalog::of_config(&cfg.app_id)?;
            let mut ports = cfg.clone();
            capture_ports(&mut ports, ["capture-in".into(), "capture-out".into()]);
            let c = load_policy(p, &ports, &catalog).map_err(ReplayError::Policy)?;
            Some((p.clone(), c.warnings, PolicyStore::new(c.policy)))
        }
        None => None,
    };
    // Under NAT with several workers, each packet goes to the worker the live handoff would
    // give it (`nat::steer`, the same seed): the workers read their shares at their own
    // pace, so a handoff between them would reorder a call's signalling and its media.
    let steer_seed = runtime::random_seeds()?[0];
    let steer = compiled.as_ref().and_then(|(_, _, s)| {
        let p = s.reader().load().clone();
        // The capture's one virtual wire: in on port 0, out on port 1.
        Steer::of(
            &p.nat,
            &p.zone_of_port,
            workers,
            steer_seed,
            |_| None,
            |_| None,
        )
    });
    let owner = |frame: &[u8]| -> usize {
        if workers == 1 {
            return 0;
        }
        let steered = steer.as_ref().and_then(|s| {
            let h = crate::packet::parse(frame, frame.len()).ok()?;
            // A fragment goes where its datagram's other fragments go: the worker that
            // reassembles it hands the datagram on to its owner.
            if h.fragment != crate::packet::Fragment::No {
                return None;
            }
            s.owner(&h, frame, 0, Some(1))
        });
        steered
            .filter(|&w| w < workers)
            .unwrap_or_else(|| capture::worker_of(frame, workers))
    };
    // No more flows than packets (bounded by the size: a record takes at least 16 bytes of
    // header and a 14-byte frame; counted from the record headers when that bound is below
    // the table's size): a small capture does not pay for the full table at start.
    let bound = size / 30;
    let most = if bound < cfg.flow_table.capacity as u64 {
        capture::pcap_records(&input).unwrap_or(bound)
    } else {
        bound
    };
    let most = most.max(64).min(usize::MAX as u64) as usize;
    cfg.flow_table.capacity = cfg.flow_table.capacity.min(most);
    cfg.app_id.contexts = cfg.app_id.contexts.min(most);
    // Packets in flight are bounded by the rings (the feeder waits for room, and takes
    // what the workers send as it waits): a pool for that, not for a NIC's bursts.
    cfg.mempool.mbufs = cfg
        .mempool
        .mbufs
        .min(workers as u32 * (feed::IN_RING + 1024) + 1023);
    let mut extra = Vec::new();
    if !cfg.eal.args.iter().any(|a| a.starts_with("--file-prefix")) {
        extra.push(format!(
            "--file-prefix=aperture-replay-{}",
            std::process::id()
        ));
    }
    let eal = port::init_eal(&cfg, &extra)?;
    let mut wire = feed::Wire::new(workers as u16)?;
    capture_ports(&mut cfg, wire.worker_devices());
    let ts = aperture_dpdk::RxTimestamp::register().ok_or(ReplayError::Timestamps)?;
    let ports = port::start_ports(&cfg)?;
    wire.start(workers as u16, &ports.pool)?;
    let opts = Options {
        capture_clock: true,
        lossless_log: true,
        lossless_handoff: true,
        stats_segment: segment.clone(),
        policy: compiled.as_ref().map(|(_, _, s)| s.clone()),
        steer_seed: Some(steer_seed),
    };
    let mut log = BufWriter::new(
        std::fs::File::create(&flow_log).map_err(io("cannot create flow log", &flow_log))?,
    );
    let started = Instant::now();
    let mut running = runtime::start(&eal, &cfg, &ports, &opts)?;
    let mut feeder = feed::Feeder::new(&mut wire, &ports.pool, ts, workers, outs.as_deref())?;
    let input_port = &ports.ports[0];
    let mut progress = Progress::new(req.quiet);
    let mut stall = Stall::new(req.timeout);
    let mut index = 0u64;
    let input_name = input.display().to_string();
    // Everything the main thread does while it waits: take what the workers sent and the
    // flow records they wrote, publish, and give up when nothing moves for too long.
    let tend = |feeder: &mut feed::Feeder,
                running: &mut runtime::Running,
                log: &mut BufWriter<std::fs::File>,
                stall: &mut Stall|
     -> Result<(), ReplayError> {
        feeder.drain()?;
        running.drain_log(log)?;
        running.service();
        running.check_workers()?;
        let s = input_port.stats().unwrap_or_default();
        stall.check(feeder.fed + feeder.written + s.ipackets, feeder.fed)
    };
    let mut waits = 0u64;
    let read = capture::read_frames(&input, |fr| {
        index += 1;
        let w = owner(&fr.data);
        let t = feed::ns(fr.ts);
        loop {
            match feeder.push(w, &fr.data, t) {
                feed::Push::Queued => break,
                feed::Push::TooBig => {
                    return Err(ReplayError::TooBig {
                        path: input_name.clone(),
                        index,
                        len: fr.data.len(),
                        max: feed::MAX_FRAME,
                    })
                }
                feed::Push::Wait => {
                    tend(&mut feeder, &mut running, &mut log, &mut stall)?;
                    waits += 1;
                    if waits.is_multiple_of(1024) && ports.pool.available() == 0 {
                        // A pool too small for whole bursts: partial ones, or nothing moves.
                        feeder.send_all();
                    }
                    std::thread::yield_now();
                }
            }
        }
        // What the workers sent is taken often (it holds the pool's mbufs), the rest of
        // the main thread's work less so.
        if index.is_multiple_of(512) {
            feeder.drain()?;
        }
        if index.is_multiple_of(4096) {
            tend(&mut feeder, &mut running, &mut log, &mut stall)?;
            progress.show(index);
        }
        Ok(())
    });
    // On an error (a damaged capture, a stall, a worker's panic) the workers still stop
    // and end their flows, and what they log is written before the error is reported.
    let fail = |running: &mut runtime::Running, log: &mut BufWriter<std::fs::File>, e| {
        let _ = running.finish(&eal, log);
        let _ = log.flush();
        e
    };
    let read = match read {
        Ok(r) => r,
        Err(e) => return Err(fail(&mut running, &mut log, e)),
    };
    // Every frame read; hand over the last partial bursts and wait until the workers have
    // taken them all.
    let total = feeder.fed;
    loop {
        feeder.send_all();
        if let Err(e) = tend(&mut feeder, &mut running, &mut log, &mut stall) {
            return Err(fail(&mut running, &mut log, e));
        }
        let s = input_port.stats().unwrap_or_default();
        if s.ipackets + s.ierrors >= total {
            break;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    progress.done();
    let counters = running.finish(&eal, &mut log)?;
    feeder.finish()?;
    log.flush()
        .map_err(io("cannot write flow log", &flow_log))?;
    let elapsed = started.elapsed();
    let port_stats = port::stats_by_name(&ports, &cfg);
    ports.stop();
    if let (Some(out), Some(outs)) = (&out, &outs) {
        if outs.len() > 1 {
            capture::merge(outs, out)?;
        }
    }
    let per_proto = running
        .per_proto
        .iter()
        .enumerate()
        .filter(|(_, e)| e.0 > 0)
        .map(|(p, e)| (p as u8, e.0, e.1, e.2))
        .collect();
    Ok(Report {
        input,
        generated_sample,
        out,
        flow_log,
        packets: total,
        skipped: read.skipped,
        cut_at: read.cut_at,
        workers: counters,
        ports: port_stats,
        records: running.records,
        per_proto,
        per_app: std::mem::take(&mut running.per_app),
        top: std::mem::take(&mut running.top),
        catalog: running.catalog.clone(),
        elapsed,
        policy: compiled.map(|(file, warnings, _)| PolicySummary {
            file,
            warnings,
            per_rule: std::mem::take(&mut running.per_rule).into_iter().collect(),
            per_app: std::mem::take(&mut running.per_app_action)
                .into_iter()
                .collect(),
        }),
    })
}

/// Paths removed when dropped (directories with what they hold), whether the replay
/// succeeded or not.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_file(p)
            };
        }
    }
}

/// The progress line of a long replay: packets read and rate, on stderr, once a second
/// after the first two, only when stderr is a terminal.
struct Progress {
    on: bool,
    started: Instant,
    next: Duration,
    shown: bool,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        use std::io::IsTerminal;
        Progress {
            on: !quiet && std::io::stderr().is_terminal(),
            started: Instant::now(),
            next: Duration::from_secs(2),
            shown: false,
        }
    }

    fn show(&mut self, read: u64) {
        let t = self.started.elapsed();
        if !self.on || t < self.next {
            return;
        }
        self.next = t + Duration::from_secs(1);
        self.shown = true;
        eprint!(
            "\rreplay: {read} packets, {:.2} Mpps   ",
            read as f64 / t.as_secs_f64() / 1e6
        );
    }

    fn done(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

/// Nothing may wait forever: the replay's time limit, and a shorter one for no movement at
/// all (a pool the workers hold whole cannot feed them).
struct Stall {
    started: Instant,
    limit: Duration,
    last: u64,
    since: Instant,
}

/// No movement for this long is a stall.
const STALL: Duration = Duration::from_secs(10);

impl Stall {
    fn new(limit: Duration) -> Stall {
        let now = Instant::now();
        Stall {
            started: now,
            limit,
            last: 0,
            since: now,
        }
    }

    /// `moved`: a sum that grows whenever anything moves; `read`: packets read so far.
    fn check(&mut self, moved: u64, read: u64) -> Result<(), ReplayError> {
        let now = Instant::now();
        if now.duration_since(self.started) > self.limit {
            return Err(ReplayError::Timeout(self.limit.as_secs(), read));
        }
        if moved != self.last {
            self.last = moved;
            self.since = now;
        } else if now.duration_since(self.since) > STALL {
            return Err(ReplayError::Stalled(STALL.as_secs(), read));
        }
        Ok(())
    }
}

/// Sets the ports to the replay's ring pair (`devices`: capture-in's and capture-out's),
/// wired as a virtual wire.
fn capture_ports(cfg: &mut Config, devices: [String; 2]) {
    let [input, output] = devices;
    cfg.ports = vec![
        PortConfig {
            name: "capture-in".into(),
            device: input,
            vdev_args: None,
            rx_desc: feed::IN_RING as u16,
            tx_desc: feed::IN_RING as u16,
        },
        PortConfig {
            name: "capture-out".into(),
            device: output,
            vdev_args: None,
            rx_desc: feed::IN_RING as u16,
            tx_desc: feed::IN_RING as u16,
        },
    ];
    cfg.forwarding = Forwarding::VirtualWire {
        pairs: vec![["capture-in".into(), "capture-out".into()]],
    };
}
