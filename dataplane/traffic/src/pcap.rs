//! Writing generated frames to classic pcap files (Ethernet link type, microsecond timestamps,
//! little-endian), the format DPDK's `net_pcap` and tshark both read.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};

/// A frame and its capture time in nanoseconds since the Unix epoch.
pub type TimedFrame = (u64, Vec<u8>);

/// Snap length written in the file header; every generated frame is shorter.
pub const SNAPLEN: u32 = 65_535;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot create capture file {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write frame {index} of {total} to the capture: {source}")]
    Frame {
        index: usize,
        total: usize,
        #[source]
        source: PcapError,
    },
    #[error("cannot write the capture header: {0}")]
    Header(#[source] PcapError),
    #[error("cannot flush capture file {}: {source}", path.display())]
    Flush {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn header() -> PcapHeader {
    PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: SNAPLEN,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
    }
}

/// Writes `frames` in the order given (callers sort by time) as a pcap stream to `out`.
/// Timestamps are cut to microseconds.
pub fn write_pcap<W: Write>(out: W, frames: &[TimedFrame]) -> Result<W, WriteError> {
    let mut w = PcapWriter::with_header(out, header()).map_err(WriteError::Header)?;
    for (index, (ts_ns, data)) in frames.iter().enumerate() {
        let packet = PcapPacket::new(Duration::from_nanos(*ts_ns), data.len() as u32, data);
        w.write_packet(&packet)
            .map_err(|source| WriteError::Frame {
                index,
                total: frames.len(),
                source,
            })?;
    }
    Ok(w.into_writer())
}

/// Writes `frames` to a new pcap file at `path` (replacing any file there).
pub fn write_pcap_file(path: &Path, frames: &[TimedFrame]) -> Result<(), WriteError> {
    let file = File::create(path).map_err(|source| WriteError::Create {
        path: path.to_path_buf(),
        source,
    })?;
    let mut w = write_pcap(BufWriter::new(file), frames)?;
    w.flush().map_err(|source| WriteError::Flush {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::PcapReader;

    #[test]
    fn round_trip_keeps_bytes_and_microsecond_times() {
        let frames = vec![
            (1_700_000_000_123_456_789u64, vec![1u8; 60]),
            (1_700_000_001_000_000_000u64, vec![2u8; 1514]),
        ];
        let bytes = write_pcap(Vec::new(), &frames).unwrap();
        // Little-endian microsecond magic, version 2.4, Ethernet link type.
        assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&bytes[20..24], &[1, 0, 0, 0]);
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.timestamp, Duration::new(1_700_000_000, 123_456_000));
        assert_eq!(&p.data[..], &frames[0].1[..]);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.data.len(), 1514);
        assert!(r.next_packet().is_none());
    }
}
