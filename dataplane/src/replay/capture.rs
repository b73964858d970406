//! Reading captures of any supported link type and writing them as Ethernet pcap.
use crate::flow::FlowKey;
use crate::packet;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, TsResolution};
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open capture {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng capture ({reason})")]
    Format { path: String, reason: String },
    #[error("{path}: packet {index}: link type {link:?} is not supported (Ethernet, Linux cooked v1/v2, raw IP and BSD loopback are)")]
    LinkType {
        path: String,
        index: u64,
        link: DataLink,
    },
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
}

/// A packet in Ethernet form with its capture time.
pub struct Frame<'a> {
    pub ts: Duration,
    pub data: Cow<'a, [u8]>,
    /// Length on the wire (may exceed `data` for truncated captures).
    pub orig_len: u32,
}

const SYNTH_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const SYNTH_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

fn with_ethernet(ethertype: u16, src: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&SYNTH_DST);
    match src {
        Some(s) if s.len() == 6 => f.extend_from_slice(s),
        _ => f.extend_from_slice(&SYNTH_SRC),
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ip_ethertype(payload: &[u8]) -> Option<u16> {
    match payload.first()? >> 4 {
        4 => Some(0x0800),
        6 => Some(0x86dd),
        _ => None,
    }
}

/// A link type `to_ethernet` cannot convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsupportedLink(pub DataLink);

/// Converts one frame of link type `link` to Ethernet. `None`: the frame is not one we can
/// express (e.g. a loopback frame of another family); it is then skipped and counted.
pub fn to_ethernet(link: DataLink, data: &[u8]) -> Result<Option<Cow<'_, [u8]>>, UnsupportedLink> {
    Ok(match link {
        DataLink::ETHERNET => Some(Cow::Borrowed(data)),
        DataLink::LINUX_SLL => {
            // pkttype(2) hatype(2) halen(2) addr(8) protocol(2)
            if data.len() < 16 {
                return Ok(None);
            }
            let halen = u16::from_be_bytes([data[4], data[5]]) as usize;
            let proto = u16::from_be_bytes([data[14], data[15]]);
            let src = (halen == 6).then(|| &data[6..12]);
            Some(Cow::Owned(with_ethernet(proto, src, &data[16..])))
        }
        DataLink::LINUX_SLL2 => {
            // protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8)
            if data.len() < 20 {
                return Ok(None);
            }
            let proto = u16::from_be_bytes([data[0], data[1]]);
            let src = (data[11] == 6).then(|| &data[12..18]);
            Some(Cow::Owned(with_ethernet(proto, src, &data[20..])))
        }
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => {
            ip_ethertype(data).map(|t| Cow::Owned(with_ethernet(t, None, data)))
        }
        DataLink::NULL | DataLink::LOOP => {
            if data.len() < 4 {
                return Ok(None);
            }
            // The family is in host order of the capturing machine (NULL) or big-endian (LOOP);
            // the IP version nibble is the reliable answer either way.
            ip_ethertype(&data[4..]).map(|t| Cow::Owned(with_ethernet(t, None, &data[4..])))
        }
        other => return Err(UnsupportedLink(other)),
    })
}

/// Calls `f` for every packet of the capture at `path` (pcap or pcapng), in Ethernet form.
/// Returns the number of packets skipped because they could not be expressed as Ethernet.
pub fn for_each_frame(
    path: &Path,
    f: impl FnMut(Frame<'_>) -> Result<(), CaptureError>,
) -> Result<u64, CaptureError> {
    read_frames(path, f).map(|r| r.skipped)
}

/// What reading a capture found besides its frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadSummary {
    /// Frames that could not be expressed as Ethernet (skipped).
    pub skipped: u64,
    /// The capture ends inside this record (a capture cut short, as a full disk or a killed
    /// capture leaves it): the records before it were read, as tshark reads them.
    pub cut_at: Option<u64>,
}

/// The largest record a classic pcap may hold (Wireshark's own limit for Ethernet); a
/// larger length means the file is damaged there.
const MAX_RECORD: u32 = 262_144;

/// Fills `buf` from `r` as far as the bytes go; returns how many were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// `for_each_frame` for a caller with errors of its own, with what else the reading
/// found. Ethernet frames are passed as they lie in the reader's buffer (no copy).
pub fn read_frames<E: From<CaptureError>>(
    path: &Path,
    mut f: impl FnMut(Frame<'_>) -> Result<(), E>,
) -> Result<ReadSummary, E> {
    let p = path.display().to_string();
    let open = |source| CaptureError::Open {
        path: p.clone(),
        source,
    };
    let mut file = BufReader::with_capacity(1 << 18, File::open(path).map_err(open)?);
    let mut magic = [0u8; 4];
    if read_full(&mut file, &mut magic).map_err(open)? < 4 {
        return Err(CaptureError::Format {
            path: p,
            reason: "shorter than any capture header".into(),
        }
        .into());
    }
    if magic != [0x0a, 0x0d, 0x0d, 0x0a] {
        return classic(file, magic, &p, &mut f);
    }
    let file = BufReader::with_capacity(1 << 18, File::open(path).map_err(open)?);
    let fmt = |e: pcap_file::PcapError| CaptureError::Format {
        path: p.clone(),
        reason: e.to_string(),
    };
    let mut summary = ReadSummary::default();
    let mut index = 0u64;
    let mut r = PcapNgReader::new(file).map_err(fmt)?;
    let mut links: Vec<DataLink> = Vec::new();
    while let Some(block) = r.next_block() {
        let block = block.map_err(fmt)?;
        let (iface, ts, data, orig_len) = match block {
            Block::SectionHeader(_) => {
                links.clear();
                continue;
            }
            Block::InterfaceDescription(d) => {
                links.push(d.linktype);
                continue;
            }
            Block::EnhancedPacket(e) => {
                (e.interface_id as usize, e.timestamp, e.data, e.original_len)
            }
            Block::SimplePacket(s) => (0, Duration::ZERO, s.data, s.original_len),
            _ => continue,
        };
        index += 1;
        let link = *links.get(iface).ok_or_else(|| CaptureError::Format {
            path: p.clone(),
            reason: format!("packet {index} names interface {iface}, which is not described"),
        })?;
        deliver(link, ts, &data, orig_len, index, &p, &mut summary, &mut f)?;
    }
    Ok(summary)
}

/// One record's frame to `f` in Ethernet form (or counted as skipped).
#[allow(clippy::too_many_arguments)]
fn deliver<E: From<CaptureError>>(
    link: DataLink,
    ts: Duration,
    data: &[u8],
    orig_len: u32,
    index: u64,
    path: &str,
    summary: &mut ReadSummary,
    f: &mut impl FnMut(Frame<'_>) -> Result<(), E>,
) -> Result<(), E> {
    match to_ethernet(link, data) {
        Ok(Some(d)) => {
            let extra = d.len() as i64 - data.len() as i64;
            // A record longer than its packet claims (a writer's slip): the record holds.
            let orig = (orig_len as i64 + extra).max(d.len() as i64) as u32;
            f(Frame {
                ts,
                data: d,
                orig_len: orig,
            })
        }
        Ok(None) => {
            summary.skipped += 1;
            Ok(())
        }
        Err(_) => Err(CaptureError::LinkType {
            path: path.to_string(),
            index,
            link,
        }
        .into()),
    }
}

/// A classic pcap's byte order and time resolution, from its magic number.
#[derive(Clone, Copy)]
struct PcapOrder {
    le: bool,
    nanos: bool,
}

impl PcapOrder {
    fn of(magic: [u8; 4]) -> Option<PcapOrder> {
        let (le, nanos) = match u32::from_le_bytes(magic) {
            0xa1b2_c3d4 => (true, false),
            0xa1b2_3c4d => (true, true),
            0xd4c3_b2a1 => (false, false),
            0x4d3c_b2a1 => (false, true),
            _ => return None,
        };
        Some(PcapOrder { le, nanos })
    }

    /// The 32-bit field at the start of `b`, in the file's byte order.
    fn word(self, b: &[u8]) -> u32 {
        let w = [b[0], b[1], b[2], b[3]];
        if self.le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    }
}

/// A classic pcap read as tshark reads it: either byte order, micro- or nanosecond
/// timestamps, records cut at a snap length below their packets' length, and a last record
/// cut short (reported in the summary, not an error).
fn classic<E: From<CaptureError>>(
    mut r: impl Read,
    magic: [u8; 4],
    path: &str,
    f: &mut impl FnMut(Frame<'_>) -> Result<(), E>,
) -> Result<ReadSummary, E> {
    let format = |reason: String| CaptureError::Format {
        path: path.to_string(),
        reason,
    };
    let io = |e: std::io::Error| format(e.to_string());
    let Some(order) = PcapOrder::of(magic) else {
        let m = u32::from_le_bytes(magic);
        return Err(format(format!("unknown magic number {m:#010x}")).into());
    };
    let (nanos, word) = (order.nanos, |b: &[u8]| order.word(b));
    let mut head = [0u8; 20];
    if read_full(&mut r, &mut head).map_err(io)? < head.len() {
        return Err(format("shorter than a pcap header".into()).into());
    }
    // The link type's low 16 bits (the upper ones may carry FCS information).
    let link = DataLink::from(word(&head[16..]) & 0xffff);
    let mut summary = ReadSummary::default();
    let mut rec = [0u8; 16];
    let mut buf = vec![0u8; 65_536];
    let mut index = 0u64;
    loop {
        let got = read_full(&mut r, &mut rec).map_err(io)?;
        if got == 0 {
            break;
        }
        index += 1;
        if got < rec.len() {
            summary.cut_at = Some(index);
            break;
        }
        let (secs, frac, incl, orig) = (
            word(&rec),
            word(&rec[4..]),
            word(&rec[8..]),
            word(&rec[12..]),
        );
        if incl > MAX_RECORD {
            return Err(format(format!(
                "packet {index}: a record of {incl} bytes (more than {MAX_RECORD}): the file is damaged there"
            ))
            .into());
        }
        let incl = incl as usize;
        if buf.len() < incl {
            buf.resize(incl, 0);
        }
        if read_full(&mut r, &mut buf[..incl]).map_err(io)? < incl {
            summary.cut_at = Some(index);
            break;
        }
        let nanos = if nanos {
            frac
        } else {
            frac.saturating_mul(1000)
        };
        // Duration::new carries nanoseconds past a second into the seconds.
        let ts = Duration::new(secs as u64, nanos);
        deliver(link, ts, &buf[..incl], orig, index, path, &mut summary, f)?;
    }
    Ok(summary)
}

/// The records of a classic pcap file, counted from their headers alone (a walk over the
/// file, no packet read). None for pcapng or a file that is not a whole classic pcap.
pub fn pcap_records(path: &Path) -> Option<u64> {
    let file = File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    let mut r = BufReader::with_capacity(1 << 16, file);
    let mut head = [0u8; 24];
    r.read_exact(&mut head).ok()?;
    let order = PcapOrder::of([head[0], head[1], head[2], head[3]])?;
    let (mut at, mut n) = (24u64, 0u64);
    let mut rec = [0u8; 16];
    while at < size {
        r.read_exact(&mut rec).ok()?;
        let caplen = order.word(&rec[8..]) as u64;
        if at + 16 + caplen > size {
            return None;
        }
        r.seek_relative(caplen as i64).ok()?;
        at += 16 + caplen;
        n += 1;
    }
    Some(n)
}

/// Which of `n` workers owns a frame: a symmetric hash of its flow key (non-IP: worker 0).
/// Fragments hash by their addresses alone, as NICs' RSS does, so every fragment of a
/// datagram meets the others on one worker.
pub fn worker_of(frame: &[u8], n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    match packet::parse(frame, frame.len()) {
        Ok(h) if h.is_ip() => {
            let (k, _) = FlowKey::from_headers(&h);
            // A fixed, symmetric mix: the key is already canonical, so both directions agree.
            let mut x = 0xcbf2_9ce4_8422_2325u64;
            for b in k.lo_addr.0.iter().chain(k.hi_addr.0.iter()) {
                x = (x ^ *b as u64).wrapping_mul(0x100_0000_01b3);
            }
            if h.fragment == packet::Fragment::No {
                x ^= ((k.lo_port() as u64) << 24) ^ ((k.hi_port() as u64) << 8);
            }
            x ^= k.proto() as u64;
            x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            ((x >> 32) % n as u64) as usize
        }
        _ => 0,
    }
}

/// Merges the per-worker output captures into one, ordered by their (send-time) timestamps.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<u64, CaptureError> {
    let werr = |e: &dyn std::fmt::Display| CaptureError::Write {
        path: out.display().to_string(),
        reason: e.to_string(),
    };
    let mut all: Vec<(Duration, u32, Vec<u8>)> = Vec::new();
    for i in inputs {
        for_each_frame(i, |fr| {
            all.push((fr.ts, fr.orig_len, fr.data.into_owned()));
            Ok(())
        })?;
    }
    all.sort_by_key(|(ts, _, _)| *ts);
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::NanoSecond,
        snaplen: 262_144,
        ..Default::default()
    };
    let file = File::create(out).map_err(|e| werr(&e))?;
    let mut w = PcapWriter::with_header(BufWriter::new(file), header).map_err(|e| werr(&e))?;
    for (ts, orig, data) in &all {
        w.write_packet(&PcapPacket::new(*ts, (*orig).max(data.len() as u32), data))
            .map_err(|e| werr(&e))?;
    }
    Ok(all.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooked_and_raw_frames_become_ethernet() {
        let ip = [
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let raw = to_ethernet(DataLink::RAW, &ip).unwrap().unwrap();
        assert_eq!(&raw[12..14], &[0x08, 0x00]);
        assert_eq!(&raw[14..], &ip);
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        let e = to_ethernet(DataLink::LINUX_SLL, &sll).unwrap().unwrap();
        assert_eq!(&e[6..12], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(&e[14..], &ip);
        let mut null = vec![2, 0, 0, 0];
        null.extend_from_slice(&ip);
        assert_eq!(
            &to_ethernet(DataLink::NULL, &null).unwrap().unwrap()[14..],
            &ip
        );
        assert!(to_ethernet(DataLink::IEEE802_11, &ip).is_err());
    }

    /// A classic pcap in the byte order and resolution asked for: snap length 64, each
    /// record (seconds, fraction, captured bytes, length on the wire).
    fn classic_pcap(be: bool, nanos: bool, records: &[(u32, u32, Vec<u8>, u32)]) -> Vec<u8> {
        let w = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let h = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut f = Vec::new();
        f.extend_from_slice(&w(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
        f.extend_from_slice(&h(2));
        f.extend_from_slice(&h(4));
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&w(64));
        f.extend_from_slice(&w(1));
        for (s, frac, data, orig) in records {
            for v in [*s, *frac, data.len() as u32, *orig] {
                f.extend_from_slice(&w(v));
            }
            f.extend_from_slice(data);
        }
        f
    }

    /// A frame as read: capture time, bytes, original length.
    type Read = (Duration, Vec<u8>, u32);

    fn read(bytes: &[u8]) -> (Result<ReadSummary, CaptureError>, Vec<Read>) {
        let path = std::env::temp_dir().join(format!(
            "aperture-capture-test-{}-{:?}.pcap",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, bytes).unwrap();
        let mut got = Vec::new();
        let r = read_frames(&path, |fr| {
            got.push((fr.ts, fr.data.into_owned(), fr.orig_len));
            Ok::<(), CaptureError>(())
        });
        let _ = std::fs::remove_file(&path);
        (r, got)
    }

    #[test]
    fn classic_pcaps_read_in_either_order_and_resolution_with_short_snaps() {
        let frame = |k: u8| vec![k; 60];
        for (be, nanos) in [(false, false), (true, false), (false, true), (true, true)] {
            let frac = if nanos { 123_456_789 } else { 123_456 };
            // Cut at the snap length: 60 captured bytes of 1514 on the wire.
            let recs = vec![
                (1_700_000_000, frac, frame(1), 1514),
                (1_700_000_001, 0, frame(2), 60),
            ];
            let (r, got) = read(&classic_pcap(be, nanos, &recs));
            assert_eq!(r.unwrap(), ReadSummary::default());
            assert_eq!(got.len(), 2);
            let want_ns = if nanos { 123_456_789 } else { 123_456_000 };
            assert_eq!(got[0].0, Duration::new(1_700_000_000, want_ns));
            assert_eq!((got[0].1.as_slice(), got[0].2), (frame(1).as_slice(), 1514));
            assert_eq!(got[1].0, Duration::from_secs(1_700_000_001));
        }
    }

    #[test]
    fn a_capture_cut_inside_its_last_record_gives_the_records_before_it() {
        let recs: Vec<_> = (0..3).map(|k| (k, 0, vec![k as u8; 60], 60)).collect();
        let whole = classic_pcap(false, false, &recs);
        // Cut inside the third record's data, then inside its header.
        for cut in [whole.len() - 10, whole.len() - 60 - 8] {
            let (r, got) = read(&whole[..cut]);
            assert_eq!(r.unwrap().cut_at, Some(3), "cut at {cut}");
            assert_eq!(got.len(), 2);
        }
        let (r, got) = read(&whole);
        assert_eq!((r.unwrap().cut_at, got.len()), (None, 3));
    }

    #[test]
    fn a_damaged_record_length_names_the_packet() {
        let mut bytes = classic_pcap(false, false, &[(0, 0, vec![0; 60], 60)]);
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        let err = read(&bytes).0.unwrap_err().to_string();
        assert!(err.contains("packet 2") && err.contains("damaged"), "{err}");
        let err = read(b"not a capture").0.unwrap_err().to_string();
        assert!(err.contains("magic"), "{err}");
    }
}
