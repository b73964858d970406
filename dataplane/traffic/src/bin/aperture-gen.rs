//! `aperture-gen`: writes Aperture's synthetic captures to pcap files.

use std::path::PathBuf;
use std::process::ExitCode;

use aperture_traffic::facetime::facetime_capture;
use aperture_traffic::{write_pcap_file, write_sample};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "aperture-gen",
    version,
    about = "Deterministic synthetic traffic for Aperture"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The bundled demo capture: FaceTime calls among ordinary traffic.
    Sample {
        /// Pcap file to write (replaced if it exists).
        #[arg(long)]
        out: PathBuf,
        /// Seed; the same seed always gives the same file.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// FaceTime calls only, one LAN client per call.
    Facetime {
        /// Number of calls.
        #[arg(long, default_value_t = 1)]
        sessions: usize,
        /// Pcap file to write (replaced if it exists).
        #[arg(long)]
        out: PathBuf,
        /// Seed; the same seed always gives the same file.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Relay the media through a TURN server (ChannelData on UDP 3478).
        #[arg(long)]
        turn: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Sample { out, seed } => write_sample(out, *seed).map(|()| out),
        Command::Facetime {
            sessions,
            out,
            seed,
            turn,
        } => {
            let (_, frames) = facetime_capture(*seed, *sessions, *turn);
            write_pcap_file(out, &frames).map(|()| out)
        }
    };
    match result {
        Ok(out) => {
            eprintln!("wrote {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("aperture-gen: {e}");
            ExitCode::FAILURE
        }
    }
}
