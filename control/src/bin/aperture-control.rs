//! `aperture-control stats`: prints the dataplane's counters from its stats segment.
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "aperture-control", version, about = "Aperture control plane")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a consistent snapshot of every worker's counters.
    Stats {
        /// The dataplane's stats segment (stats.segment in dataplane.yaml).
        #[arg(long, default_value = "/dev/shm/aperture-stats")]
        segment: PathBuf,
    },
}

fn main() -> ExitCode {
    let Cmd::Stats { segment } = Cli::parse().cmd;
    match aperture_control::Snapshot::read(&segment) {
        Ok(s) => {
            for (name, values) in s.rows() {
                let v: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                println!("{name:<32} {}", v.join(" "));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("aperture-control: {e}");
            ExitCode::FAILURE
        }
    }
}
