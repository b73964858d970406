//! `aperture-control`: the control plane. `serve` keeps the dataplane on policy.yaml and
//! serves /metrics; `stats` prints the dataplane's counters once.
use aperture_dataplane::config::Config;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "aperture-control", version, about = "Aperture control plane")]
struct Cli {
    /// Diagnostics level of `serve` (error, warn, info, debug, trace; or a `tracing`
    /// filter). Default: APERTURE_LOG, else info.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compile policy.yaml, install it in the dataplane, reload it on SIGHUP or
    /// POST /-/reload, and serve Prometheus metrics on /metrics.
    Serve {
        /// The dataplane's dataplane.yaml (its ports, catalog, stats segment and control
        /// socket); without it the embedded default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The policy to enforce.
        #[arg(long, default_value = "/etc/aperture/policy.yaml")]
        policy: PathBuf,
        /// Address for /metrics and the reload API (loopback by default).
        #[arg(long, default_value = "127.0.0.1:9750")]
        listen: SocketAddr,
    },
    /// Print a consistent snapshot of every worker's counters.
    Stats {
        /// The dataplane's stats segment (stats.segment in dataplane.yaml).
        #[arg(long, default_value = "/dev/shm/aperture-stats")]
        segment: PathBuf,
    },
}

fn main() -> ExitCode {
    aperture_dataplane::port::ensure_cpu_supported();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve {
            config,
            policy,
            listen,
        } => {
            if let Err(e) =
                aperture_dataplane::logging::init("aperture-control", cli.log_level.as_deref())
            {
                eprintln!("aperture-control: {e}");
                return ExitCode::FAILURE;
            }
            let dataplane = match &config {
                Some(p) => Config::load(p),
                None => Ok(Config::embedded()),
            };
            let dataplane = match dataplane {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("aperture-control: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let settings = aperture_control::serve::Settings {
                dataplane,
                policy,
                listen,
            };
            match aperture_control::serve::run(settings) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("aperture-control: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Stats { segment } => match aperture_control::Snapshot::read(&segment) {
            Ok(s) => {
                let mut out = std::io::stdout().lock();
                for (name, values) in s.rows() {
                    let v: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                    // A closed pipe (`| head`) ends the listing quietly.
                    if writeln!(out, "{name:<32} {}", v.join(" ")).is_err() {
                        break;
                    }
                }
                if s.live() {
                    ExitCode::SUCCESS
                } else {
                    // The last counters of a dataplane that is gone: shown, but never as live.
                    eprintln!(
                        "aperture-control: the dataplane (pid {}) is not running: these are its counters when it stopped",
                        s.writer_pid
                    );
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("aperture-control: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
