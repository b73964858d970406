//! Capture replay: the same workers, fed by DPDK's `net_pcap` virtual device.
//!
//! net_pcap passes frames through as they are stored, so captures are first normalised to
//! Ethernet pcap files (`capture`): Linux cooked (v1/v2), raw IP and BSD loopback frames get a
//! synthetic Ethernet header, pcapng is flattened, and with several workers the packets are
//! split into one file per worker by a symmetric flow hash (net_pcap has no RSS). The workers'
//! clock is the capture time, so results do not depend on the machine's speed.
pub mod capture;

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
use std::sync::atomic::Ordering;
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
    #[error("replay did not finish within {0} s (received {1} of {2} packets)")]
    Timeout(u64, u64, u64),
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Policy(Vec<Diagnostic>),
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
    std::fs::create_dir_all(&work).map_err(io("cannot create", &work))?;
    // Without an output capture the workers still send, to /dev/null.
    let outs: Vec<PathBuf> = (0..workers)
        .map(|i| match out {
            Some(_) => work.join(format!("out-{i}.pcap")),
            None => PathBuf::from("/dev/null"),
        })
        .collect();
    capture_ports(&mut cfg, &[], &outs);
    let compiled = match &req.policy {
        Some(p) => {
            let catalog = Catalog::of_config(&cfg.app_id)?;
            let c = load_policy(p, &cfg, &catalog).map_err(ReplayError::Policy)?;
            Some((p.clone(), c.warnings, PolicyStore::new(c.policy)))
        }
        None => None,
    };
    // Under NAT with several workers, each packet goes to the worker the live handoff would
    // give it (`nat::steer`, the same seed): the workers read their shares at their own
    // pace, so a handoff between them would reorder a call's signalling and its media.
    let steer_seed = runtime::random_seeds()[0];
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
    let owner = |frame: &[u8]| -> Option<usize> {
        let s = steer.as_ref()?;
        let h = crate::packet::parse(frame, frame.len()).ok()?;
        // A fragment goes where its datagram's other fragments go: the worker that
        // reassembles it hands the datagram on to its owner.
        if h.fragment != crate::packet::Fragment::No {
            return None;
        }
        s.owner(&h, frame, 0, Some(1))
    };
    // One worker and an Ethernet pcap: net_pcap reads the file itself (no copy to write).
    let direct = if workers == 1 {
        capture::ethernet_pcap_packets(&input)
    } else {
        None
    };
    let (files, total, skipped) = match direct {
        Some(n) => (vec![input.clone()], n, 0),
        None => {
            let split = capture::split_for_workers(&input, &work, workers, &owner)?;
            let total: u64 = split.packets.iter().sum();
            (split.files, total, split.skipped)
        }
    };
    capture_ports(&mut cfg, &files, &outs);
    // No more flows (nor flows being classified) than packets: a small capture does not
    // pay for the full tables at start.
    let most = total.max(1024).min(usize::MAX as u64) as usize;
    cfg.flow_table.capacity = cfg.flow_table.capacity.min(most);
    cfg.app_id.contexts = cfg.app_id.contexts.min(most);
    let mut extra = Vec::new();
    if !cfg.eal.args.iter().any(|a| a.starts_with("--file-prefix")) {
        extra.push(format!(
            "--file-prefix=aperture-replay-{}",
            std::process::id()
        ));
    }
    let eal = port::init_eal(&cfg, &extra)?;
    let ports = port::start_ports(&cfg)?;
    let segment =
        std::env::temp_dir().join(format!("aperture-replay-stats-{}", std::process::id()));
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
    // net_pcap signals no end of file: the capture is done when every packet has been
    // received, dropped for lack of mbufs, or counted as an error.
    let input_port = &ports.ports[0];
    let mut progress = Progress::new(req.quiet, total);
    loop {
        running.drain_log(&mut log)?;
        running.service();
        let s = input_port.stats().unwrap_or_default();
        let seen = s.ipackets + s.ierrors + s.rx_nombuf;
        progress.show(seen);
        if seen >= total {
            progress.done();
            break;
        }
        if started.elapsed() > req.timeout {
            running.stop.store(true, Ordering::SeqCst);
            return Err(ReplayError::Timeout(req.timeout.as_secs(), seen, total));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let counters = running.finish(&eal, &mut log)?;
    log.flush()
        .map_err(io("cannot write flow log", &flow_log))?;
    let elapsed = started.elapsed();
    let port_stats = port::stats_by_name(&ports, &cfg);
    ports.stop();
    // Only now are net_pcap's output files complete.
    match &out {
        None => {}
        Some(out) if outs.len() == 1 => {
            std::fs::rename(&outs[0], out)
                .or_else(|_| std::fs::copy(&outs[0], out).map(|_| ()))
                .map_err(io("cannot write", out))?;
        }
        Some(out) => {
            capture::merge(&outs, out)?;
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_file(&segment);
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
        skipped,
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

/// The progress line of a long replay: packets read, rate, share of the capture, on stderr,
/// once a second after the first two, only when stderr is a terminal.
struct Progress {
    on: bool,
    total: u64,
    started: Instant,
    next: Duration,
    shown: bool,
}

impl Progress {
    fn new(quiet: bool, total: u64) -> Progress {
        use std::io::IsTerminal;
        Progress {
            on: !quiet && std::io::stderr().is_terminal(),
            total,
            started: Instant::now(),
            next: Duration::from_secs(2),
            shown: false,
        }
    }

    fn show(&mut self, seen: u64) {
        let t = self.started.elapsed();
        if !self.on || t < self.next {
            return;
        }
        self.next = t + Duration::from_secs(1);
        self.shown = true;
        eprint!(
            "\rreplay: {seen} of {} packets ({:.0}%), {:.2} Mpps   ",
            self.total,
            100.0 * seen as f64 / self.total.max(1) as f64,
            seen as f64 / t.as_secs_f64() / 1e6
        );
    }

    fn done(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

/// Replaces the configured ports by the net_pcap pair that reads `inputs` (one rx queue per
/// worker) and writes `outputs` (one tx queue per worker), wired as a virtual wire.
fn capture_ports(cfg: &mut Config, inputs: &[PathBuf], outputs: &[PathBuf]) {
    let rx: Vec<String> = inputs
        .iter()
        .map(|f| format!("rx_pcap={}", f.display()))
        .collect();
    let tx: Vec<String> = outputs
        .iter()
        .map(|f| format!("tx_pcap={}", f.display()))
        .collect();
    // capture-in must have a tx queue per worker too; what it would send goes nowhere.
    let sink: Vec<String> = outputs
        .iter()
        .map(|_| "tx_pcap=/dev/null".to_string())
        .collect();
    cfg.ports = vec![
        PortConfig {
            name: "capture-in".into(),
            device: "net_pcap_in".into(),
            vdev_args: Some(format!("{},{}", rx.join(","), sink.join(","))),
            rx_desc: 1024,
            tx_desc: 1024,
        },
        PortConfig {
            name: "capture-out".into(),
            device: "net_pcap_out".into(),
            vdev_args: Some(tx.join(",")),
            rx_desc: 1024,
            tx_desc: 1024,
        },
    ];
    cfg.forwarding = Forwarding::VirtualWire {
        pairs: vec![["capture-in".into(), "capture-out".into()]],
    };
}
