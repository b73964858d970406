//! `aperture-dataplane`: runs the packet path on the configured ports, or replays a capture
//! through the same workers via DPDK's net_pcap device.
use aperture_dataplane::config::{Config, ConfigError, Forwarding, PortConfig};
use aperture_dataplane::port::{self, PortStats};
use aperture_dataplane::replay::capture;
use aperture_dataplane::runtime::{self, Options, Running};
use aperture_dataplane::stats::{Counters, GENERAL};
use clap::{Parser, Subcommand};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Forward on the configured ports until SIGINT/SIGTERM (the default).
    Run {
        /// Flow log (JSON Lines) to append ended flows to.
        #[arg(long)]
        flow_log: Option<PathBuf>,
    },
    /// List the application catalog: each application, what it is identified on, and what it
    /// depends on (what a policy must also allow for it to work).
    Apps,
    /// Replay a capture through the workers (net_pcap, virtual-wire) and write what they send.
    Replay {
        /// Capture to replay (pcap or pcapng; Ethernet, Linux cooked, raw IP, BSD loopback).
        /// Without it, a bundled sample (FaceTime-like calls and ordinary traffic) is generated.
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Where to write the transmitted packets (default: <out-dir>/out.pcap).
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
    Capture(#[from] capture::CaptureError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("replay did not finish within {0} s (received {1} of {2} packets)")]
    Timeout(u64, u64, u64),
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
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aperture-dataplane: {e}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<(), Error> {
    let cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::embedded(),
    };
    match cli.cmd.unwrap_or(Cmd::Run { flow_log: None }) {
        Cmd::Run { flow_log } => run_live(cfg, flow_log, cli.stats),
        Cmd::Apps => {
            list_apps(&cfg.app_id.load_catalog()?);
            Ok(())
        }
        Cmd::Replay {
            pcap,
            out,
            flow_log,
            out_dir,
            timeout,
        } => replay(cfg, pcap, out, flow_log, out_dir, timeout, cli.stats),
    }
}

fn run_live(cfg: Config, flow_log: Option<PathBuf>, stats: bool) -> Result<(), Error> {
    let eal = port::init_eal(&cfg, &[])?;
    let ports = port::start_ports(&cfg)?;
    let term = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone())
            .map_err(|e| Error::Other(format!("cannot install signal handler: {e}")))?;
    }
    let mut log: Box<dyn Write> = match &flow_log {
        Some(p) => Box::new(BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(io("cannot open flow log", p))?,
        )),
        None => Box::new(std::io::sink()),
    };
    let opts = Options {
        capture_clock: false,
        lossless_log: false,
        stats_segment: cfg.stats.segment.clone(),
    };
    let mut running = runtime::start(&eal, &cfg, &ports, &opts)?;
    eprintln!(
        "aperture-dataplane: {} worker(s) forwarding on {} port(s) ({}); stats segment {}",
        cfg.workers.lcores.len(),
        ports.ports.len(),
        mode_name(&cfg),
        cfg.stats.segment.display()
    );
    while !term.load(Ordering::Relaxed) {
        running.drain_log(&mut log)?;
        let _ = log.flush();
        std::thread::sleep(Duration::from_millis(2));
    }
    let counters = running.finish(&eal, &mut log)?;
    log.flush()
        .map_err(|e| Error::Other(format!("flow log: {e}")))?;
    let pstats = ports_stats(&ports, &cfg);
    ports.stop();
    if stats {
        print_stats(&counters, &pstats);
    }
    Ok(())
}

fn list_apps(c: &aperture_dataplane::appid::catalog::Catalog) {
    let names = |v: &[aperture_dataplane::appid::catalog::AppId]| -> String {
        let n: Vec<&str> = v.iter().map(|a| c.name(*a)).collect();
        if n.is_empty() {
            "-".into()
        } else {
            n.join(", ")
        }
    };
    println!(
        "{:<26} {:<22} {:<34} description",
        "application", "identified on", "depends on"
    );
    for a in &c.apps {
        println!(
            "{:<26} {:<22} {:<34} {}",
            a.name,
            names(&a.parent),
            names(&a.depends_on),
            a.description
        );
    }
}

fn mode_name(cfg: &Config) -> &'static str {
    match cfg.forwarding {
        Forwarding::VirtualWire { .. } => "virtual-wire",
        Forwarding::Routed { .. } => "routed",
    }
}

fn ports_stats(ports: &port::Ports, cfg: &Config) -> Vec<(String, PortStats)> {
    ports
        .ports
        .iter()
        .zip(&cfg.ports)
        .map(|(p, c)| (c.name.clone(), p.stats().unwrap_or_default()))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn replay(
    mut cfg: Config,
    pcap: Option<PathBuf>,
    out: Option<PathBuf>,
    flow_log: Option<PathBuf>,
    out_dir: PathBuf,
    timeout: u64,
    stats: bool,
) -> Result<(), Error> {
    std::fs::create_dir_all(&out_dir).map_err(io("cannot create", &out_dir))?;
    let input = match pcap {
        Some(p) => p,
        None => {
            let p = out_dir.join("sample.pcap");
            aperture_traffic::sample::write_sample(&p, 1).map_err(|e| {
                Error::Other(format!(
                    "cannot write the sample capture {}: {e}",
                    p.display()
                ))
            })?;
            println!("Generated the bundled sample capture {} (FaceTime-like calls and ordinary traffic)", p.display());
            p
        }
    };
    let out = out.unwrap_or_else(|| out_dir.join("out.pcap"));
    let flow_log = flow_log.unwrap_or_else(|| out_dir.join("flows.jsonl"));
    let workers = cfg.workers.lcores.len();
    let work = out_dir.join(format!(".replay-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(io("cannot create", &work))?;
    let split = capture::split_for_workers(&input, &work, workers)?;
    let total: u64 = split.packets.iter().sum();

    // The capture pair replaces the configured ports: worker i reads in-<i>.pcap on queue i
    // of `capture-in` and sends on queue i of `capture-out`, which writes out-<i>.pcap.
    let outs: Vec<PathBuf> = (0..workers)
        .map(|i| work.join(format!("out-{i}.pcap")))
        .collect();
    let rx: Vec<String> = split
        .files
        .iter()
        .map(|f| format!("rx_pcap={}", f.display()))
        .collect();
    let tx: Vec<String> = outs
        .iter()
        .map(|f| format!("tx_pcap={}", f.display()))
        .collect();
    let sink: Vec<String> = (0..workers)
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
        stats_segment: segment.clone(),
    };
    let mut log = BufWriter::new(
        std::fs::File::create(&flow_log).map_err(io("cannot create flow log", &flow_log))?,
    );
    let started = Instant::now();
    let mut running: Running = runtime::start(&eal, &cfg, &ports, &opts)?;
    // net_pcap signals no end of file: the capture is done when every packet has been
    // received, dropped for lack of mbufs, or counted as an error.
    let input_port = &ports.ports[0];
    loop {
        running.drain_log(&mut log)?;
        let s = input_port.stats().unwrap_or_default();
        let seen = s.ipackets + s.ierrors + s.rx_nombuf;
        if seen >= total {
            break;
        }
        if started.elapsed() > Duration::from_secs(timeout) {
            running.stop.store(true, Ordering::SeqCst);
            return Err(Error::Timeout(timeout, seen, total));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let counters = running.finish(&eal, &mut log)?;
    log.flush()
        .map_err(io("cannot write flow log", &flow_log))?;
    let elapsed = started.elapsed();
    let pstats = ports_stats(&ports, &cfg);
    ports.stop();
    // Only now are net_pcap's output files complete.
    if outs.len() == 1 {
        std::fs::rename(&outs[0], &out)
            .or_else(|_| std::fs::copy(&outs[0], &out).map(|_| ()))
            .map_err(io("cannot write", &out))?;
    } else {
        capture::merge(&outs, &out)?;
    }
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_file(&segment);
    print_summary(
        &input,
        &out,
        &flow_log,
        total,
        split.skipped,
        &counters,
        &running_proto(&running),
        running.records,
        elapsed,
    );
    print_apps(&running);
    print_top(&running.top, &running.catalog);
    if stats {
        print_stats(&counters, &pstats);
    }
    Ok(())
}

fn running_proto(r: &Running) -> Vec<(u8, u64, u64, u64)> {
    r.per_proto
        .iter()
        .enumerate()
        .filter(|(_, e)| e.0 > 0)
        .map(|(p, e)| (p as u8, e.0, e.1, e.2))
        .collect()
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "ipv6-icmp".into(),
        n => format!("ip-proto-{n}"),
    }
}

#[allow(clippy::too_many_arguments)]
fn print_summary(
    input: &Path,
    out: &Path,
    flow_log: &Path,
    total: u64,
    skipped: u64,
    workers: &[Counters],
    per_proto: &[(u8, u64, u64, u64)],
    flows: u64,
    elapsed: Duration,
) {
    let mut c = Counters::default();
    for w in workers {
        c.merge(w);
    }
    use aperture_dataplane::stats::C;
    println!();
    println!(
        "Replayed {} through DPDK net_pcap, {} worker(s), virtual-wire, in {:.2} s",
        input.display(),
        workers.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "  packets in capture   {total:>10}{}",
        if skipped > 0 {
            format!("  ({skipped} frames of unsupported families skipped)")
        } else {
            String::new()
        }
    );
    println!(
        "  packets received     {:>10}  ({} bytes)",
        c.get(C::RxPackets),
        c.get(C::RxBytes)
    );
    println!(
        "  packets transmitted  {:>10}  ({} bytes)",
        c.get(C::TxPackets),
        c.get(C::TxBytes)
    );
    println!("  packets dropped      {:>10}", c.get(C::DropPackets));
    for (reason, n) in c.drops_by_reason() {
        println!("    {reason:<28}{n:>8}");
    }
    println!("  non-IP frames passed {:>10}", c.get(C::NonIpPackets));
    println!(
        "  flows                {:>10}  (created {}, ended by timeout/close {}, evicted {})",
        flows,
        c.get(C::FlowsCreated),
        c.get(C::FlowsExpired),
        c.get(C::FlowsEvicted)
    );
    println!();
    println!(
        "  {:<10} {:>8} {:>10} {:>12}",
        "protocol", "flows", "packets", "bytes"
    );
    for (p, f, pk, b) in per_proto {
        println!("  {:<10} {:>8} {:>10} {:>12}", proto_name(*p), f, pk, b);
    }
    println!();
    println!("  output capture: {}", out.display());
    println!("  flow log:       {}", flow_log.display());
}

fn print_apps(r: &Running) {
    let mut rows: Vec<(usize, &(u64, u64, u64))> = r
        .per_app
        .iter()
        .enumerate()
        .filter(|(_, e)| e.0 > 0)
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1 .2));
    println!();
    println!(
        "  {:<26} {:>8} {:>10} {:>12}",
        "application", "flows", "packets", "bytes"
    );
    for (a, (f, p, b)) in rows {
        let name = r
            .catalog
            .name(aperture_dataplane::appid::catalog::AppId(a as u16));
        println!("  {name:<26} {f:>8} {p:>10} {b:>12}");
    }
}

fn print_top(
    top: &[aperture_dataplane::flowlog::FlowRecord],
    catalog: &aperture_dataplane::appid::catalog::Catalog,
) {
    if top.is_empty() {
        return;
    }
    println!();
    println!("  Largest flows:");
    println!(
        "  {:<10} {:<44} {:>8} {:>10}  {:<26} end",
        "protocol", "client -> server", "packets", "bytes", "application"
    );
    for f in top {
        let ep = |a: aperture_dataplane::packet::IpAddr16, p: u16| match a.to_std() {
            std::net::IpAddr::V4(v) => format!("{v}:{p}"),
            std::net::IpAddr::V6(v) => format!("[{v}]:{p}"),
        };
        let path: Vec<&str> = f.path().iter().map(|a| catalog.name(*a)).collect();
        println!(
            "  {:<10} {:<44} {:>8} {:>10}  {:<26} {}",
            proto_name(f.proto),
            format!("{} -> {}", ep(f.src, f.src_port), ep(f.dst, f.dst_port)),
            f.packets[0] + f.packets[1],
            f.bytes[0] + f.bytes[1],
            path.join(" > "),
            f.end_reason.name()
        );
    }
}

fn print_stats(workers: &[Counters], ports: &[(String, PortStats)]) {
    println!();
    println!("Worker counters:");
    print!("  {:<22}", "counter");
    for i in 0..workers.len() {
        print!(" {:>12}", format!("worker {i}"));
    }
    println!();
    for (i, name) in GENERAL.iter().enumerate() {
        print!("  {name:<22}");
        for w in workers {
            print!(" {:>12}", w.0[i]);
        }
        println!();
    }
    for (wi, w) in workers.iter().enumerate() {
        for (reason, n) in w.drops_by_reason() {
            println!("  drop {reason:<28} worker {wi}: {n}");
        }
    }
    println!("Port statistics:");
    println!(
        "  {:<14} {:>10} {:>10} {:>12} {:>12} {:>8} {:>8} {:>8} {:>10}",
        "port",
        "ipackets",
        "opackets",
        "ibytes",
        "obytes",
        "imissed",
        "ierrors",
        "oerrors",
        "rx_nombuf"
    );
    for (n, s) in ports {
        println!(
            "  {:<14} {:>10} {:>10} {:>12} {:>12} {:>8} {:>8} {:>8} {:>10}",
            n,
            s.ipackets,
            s.opackets,
            s.ibytes,
            s.obytes,
            s.imissed,
            s.ierrors,
            s.oerrors,
            s.rx_nombuf
        );
    }
}
