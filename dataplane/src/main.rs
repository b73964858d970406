//! `aperture-dataplane`: runs the packet path on the configured ports, or replays a capture
//! through the same workers via DPDK ring ports (`replay::run`). The binary only reads
//! its arguments, calls the library and prints (`report`).
use aperture_dataplane::appid::catalog::Catalog;
use aperture_dataplane::config::{Config, ConfigError, Forwarding};
use aperture_dataplane::control::ControlServer;
use aperture_dataplane::logging;
use aperture_dataplane::policy::{Action, Policy, PolicyStore};
use aperture_dataplane::port;
use aperture_dataplane::replay::{self, ReplayError, Request};
use aperture_dataplane::report;
use aperture_dataplane::runtime::{self, Options};
use clap::{Parser, Subcommand};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "aperture-dataplane",
    version,
    about = "Aperture's application-aware firewall dataplane (DPDK)"
)]
struct Cli {
    /// dataplane.yaml; without it the embedded default (conf/dataplane.yaml) is used.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Print per-worker counters and port statistics at exit.
    #[arg(long, global = true)]
    stats: bool,
    /// Diagnostics level (error, warn, info, debug, trace; or a `tracing` filter). Default:
    /// APERTURE_LOG, else info.
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// What to do; there is no default (a bare `aperture-dataplane` prints this help rather
    /// than start forwarding).
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Forward on the configured ports until SIGINT/SIGTERM.
    Run {
        /// Flow log (JSON Lines) to append flow records to; default: dataplane.yaml's
        /// `flow-log.path` (/var/log/aperture/flows.json). SIGHUP reopens it (log rotation).
        #[arg(long)]
        flow_log: Option<PathBuf>,
    },
    /// List the application catalog: each application, what it is identified on, and what it
    /// depends on (what a policy must also allow for it to work).
    Apps,
    /// Replay a capture through the workers (ring ports, virtual-wire) and write what they send.
    Replay {
        /// Capture to replay (pcap or pcapng; Ethernet, Linux cooked, raw IP, BSD loopback).
        /// Without it, a bundled sample (FaceTime-like calls and ordinary traffic) is generated.
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Where to write the transmitted packets (default: <out-dir>/out.pcap, or none when
        /// --flow-log alone is given).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Flow log, JSON Lines, one record per flow (default: <out-dir>/flows.jsonl).
        #[arg(long)]
        flow_log: Option<PathBuf>,
        /// Directory for defaults and intermediate files.
        #[arg(long, default_value = "aperture-out")]
        out_dir: PathBuf,
        /// Give up if the replay has not finished after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// No progress line on stderr (shown only on a terminal, after two seconds).
        #[arg(long)]
        quiet: bool,
        /// policy.yaml to enforce. Without it nothing is enforced: every packet is forwarded
        /// (as a tap would), so the output is the input. Zones may name the replay's ports,
        /// capture-in and capture-out.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] port::SetupError),
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

fn main() -> ExitCode {
    aperture_dpdk::cpu::ensure_supported();
    let cli = Cli::parse();
    if let Err(e) = logging::init("aperture-dataplane", cli.log_level.as_deref()) {
        eprintln!("aperture-dataplane: {e}");
        return ExitCode::FAILURE;
    }
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<(), Error> {
    let cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::embedded(),
    };
    let stdout = &mut std::io::stdout().lock();
    match cli.cmd {
        Cmd::Run { flow_log } => run_live(cfg, flow_log, cli.stats),
        Cmd::Apps => {
            let _ = report::catalog(stdout, &Catalog::of_config(&cfg.app_id)?);
            Ok(())
        }
        Cmd::Replay {
            pcap,
            out,
            flow_log,
            out_dir,
            timeout,
            quiet,
            policy,
        } => {
            let req = Request {
                pcap,
                out,
                flow_log,
                out_dir,
                timeout: Duration::from_secs(timeout),
                quiet,
                policy,
            };
            let r = replay::run(cfg, &req)?;
            if r.generated_sample {
                println!(
                    "Generated the bundled sample capture {} (FaceTime-like calls and ordinary traffic)",
                    r.input.display()
                );
            }
            if let Some(n) = r.cut_at {
                tracing::warn!(
                    "{} ends inside packet {n}: the {} packets before it were replayed",
                    r.input.display(),
                    n - 1
                );
            }
            let _ = report::replay(stdout, &r, cli.stats);
            Ok(())
        }
    }
}

/// The policy `run` starts with: the file dataplane.yaml names (`policy:`), or, without one,
/// deny everything until a control plane installs a policy.
fn live_policy(cfg: &Config) -> Result<std::sync::Arc<PolicyStore>, Error> {
    let Some(path) = &cfg.policy else {
        tracing::warn!("no policy configured: every flow is denied until one is installed");
        return Ok(PolicyStore::new(Policy::fixed(Action::Deny)));
    };
    let catalog = Catalog::of_config(&cfg.app_id)?;
    let c = replay::load_policy(path, cfg, &catalog).map_err(|d| {
        Error::Other(
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    for w in &c.warnings {
        tracing::warn!("{w}");
    }
    Ok(PolicyStore::new(c.policy))
}

fn run_live(cfg: Config, flow_log: Option<PathBuf>, stats: bool) -> Result<(), Error> {
    let eal = port::init_eal(&cfg, &[])?;
    let ports = port::start_ports(&cfg)?;
    let term = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone())
            .map_err(|e| Error::Other(format!("cannot install signal handler: {e}")))?;
    }
    let hup = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .map_err(|e| Error::Other(format!("cannot install signal handler: {e}")))?;
    let path = match flow_log {
        Some(p) => Some(p),
        None if cfg.flow_log.enabled => Some(cfg.flow_log.path.clone()),
        None => None,
    };
    let mut log = match &path {
        Some(p) => FlowLog::open(p)?,
        None => {
            tracing::warn!("no flow log: flow-log.enabled is false");
            FlowLog::Off
        }
    };
    let opts = Options {
        capture_clock: false,
        lossless_log: false,
        lossless_handoff: false,
        stats_segment: cfg.stats.segment.clone(),
        policy: Some(live_policy(&cfg)?),
        steer_seed: None,
    };
    let mut running = runtime::start(&eal, &cfg, &ports, &opts)?;
    let store = opts.policy.clone().expect("run always has a policy store");
    let mut control = ControlServer::bind(
        &cfg.control.socket,
        store,
        cfg.ports.iter().map(|p| p.name.clone()).collect(),
        running.catalog.clone(),
    )
    .map(|c| c.with_flow_dumps(running.dumps.clone(), cfg.workers.lcores.len()))
    .map_err(|e| {
        Error::Other(format!(
            "cannot listen on the control socket {}: {e}",
            cfg.control.socket.display()
        ))
    })?;
    tracing::info!(
        "{} worker(s) forwarding on {} port(s) ({}); stats segment {}; control socket {}; flow log {}",
        cfg.workers.lcores.len(),
        ports.ports.len(),
        mode_name(&cfg),
        cfg.stats.segment.display(),
        cfg.control.socket.display(),
        path.as_ref().map_or("off".into(), |p| p.display().to_string())
    );
    // Until asked to stop, or a worker panicked (`finish` then reports it).
    while !term.load(Ordering::Relaxed) && running.check_workers().is_ok() {
        control.poll();
        if hup.swap(false, Ordering::Relaxed) {
            // Log rotation: the old file was renamed; records go to a new one at the path.
            log.flush()
                .map_err(|e| Error::Other(format!("flow log: {e}")))?;
            if let Some(p) = &path {
                log = FlowLog::open(p)?;
                tracing::info!("flow log {} reopened (SIGHUP)", p.display());
            }
        }
        running.drain_log(&mut log)?;
        running.service();
        let _ = log.flush();
        std::thread::sleep(Duration::from_millis(2));
    }
    let counters = running.finish(&eal, &mut log)?;
    log.flush()
        .map_err(|e| Error::Other(format!("flow log: {e}")))?;
    let pstats = port::stats_by_name(&ports, &cfg);
    ports.stop();
    if stats {
        let _ = report::counters(&mut std::io::stdout().lock(), &counters, &pstats);
    }
    Ok(())
}

/// Where `run` writes flow records: a file opened for appending (its directory made if
/// missing), or nowhere when the operator turned the flow log off.
enum FlowLog {
    File(BufWriter<std::fs::File>),
    Off,
}

impl FlowLog {
    fn open(p: &Path) -> Result<FlowLog, Error> {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(io("cannot make the flow log's directory", dir))?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(io("cannot open flow log", p))?;
        Ok(FlowLog::File(BufWriter::new(f)))
    }
}

impl Write for FlowLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            FlowLog::File(f) => f.write(buf),
            FlowLog::Off => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            FlowLog::File(f) => f.flush(),
            FlowLog::Off => Ok(()),
        }
    }
}

fn mode_name(cfg: &Config) -> &'static str {
    match cfg.forwarding {
        Forwarding::VirtualWire { .. } => "virtual-wire",
        Forwarding::Routed { .. } => "routed",
    }
}
