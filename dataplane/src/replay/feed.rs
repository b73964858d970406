//! The replay's own packet I/O: the main thread reads the capture, builds each frame in an
//! mbuf stamped with its capture time and hands it to its worker through a ring port; the
//! workers run exactly as live (they poll a port, they send on a port); what they send comes
//! back through rings and is written out as pcap by the same thread, in large writes.
//!
//! Nothing read is lost: a full ring or an empty pool makes the feeder wait (draining what
//! the workers sent meanwhile), never drop.
use super::ReplayError;
use crate::port::{EthConfig, Mbuf, Mempool, RxTimestamp, TxBuffer};
use aperture_dpdk::{Burst, RingPair, RxQueue, TxQueue, BURST_SIZE};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Slots of each worker's input ring; the pool must hold every worker's ring full and some.
pub const IN_RING: u32 = 1024;
/// Slots of each worker's output rings: room for what a full input ring can turn into
/// (a reassembled datagram leaves as the fragments it came in, so about one for one).
pub const OUT_RING: u32 = 4 * IN_RING;
/// The largest frame replayed (a pcap snap length's usual maximum); larger is an error.
pub const MAX_FRAME: usize = 262_144;
/// Output bytes gathered before one write.
const WRITE_CHUNK: usize = 1 << 20;

/// The rings between the feeder (ports `a`) and the workers (ports `b`): `input` carries the
/// capture in (and what the workers send back on capture-in, which goes nowhere), `output`
/// what they forward.
pub struct Wire {
    pub input: RingPair,
    pub output: RingPair,
    /// The feeder's queues (ports `a`), one pair per worker, once started.
    input_queues: Vec<(RxQueue, TxQueue)>,
    output_queues: Vec<(RxQueue, TxQueue)>,
}

impl Wire {
    /// Creates the two ring pairs with a queue per worker.
    pub fn new(workers: u16) -> Result<Wire, ReplayError> {
        let setup = |e: aperture_dpdk::PortError| ReplayError::Setup(e.into());
        let input = RingPair::with_queues("replay_in", workers, IN_RING).map_err(setup)?;
        let output = RingPair::with_queues("replay_out", workers, OUT_RING).map_err(setup)?;
        Ok(Wire {
            input,
            output,
            input_queues: Vec::new(),
            output_queues: Vec::new(),
        })
    }

    /// Starts the feeder's ends (the workers' are started with the configured ports).
    pub fn start(&mut self, workers: u16, pool: &Mempool) -> Result<(), ReplayError> {
        let setup = |e: aperture_dpdk::PortError| ReplayError::Setup(e.into());
        let ec = EthConfig {
            rx_queues: workers,
            tx_queues: workers,
            rx_desc: IN_RING as u16,
            tx_desc: IN_RING as u16,
            promiscuous: false,
        };
        self.input_queues = self.input.a.start(&ec, pool).map_err(setup)?.into_pairs();
        self.output_queues = self.output.a.start(&ec, pool).map_err(setup)?.into_pairs();
        Ok(())
    }

    /// The device names the workers' ports go by (capture-in, capture-out).
    pub fn worker_devices(&self) -> [String; 2] {
        [
            self.input.b.name().to_string(),
            self.output.b.name().to_string(),
        ]
    }
}

/// A pcap file written from mbufs, nanosecond timestamps, in large writes.
struct PcapOut {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// The last capture time written (for frames the workers made themselves).
    last_ns: u64,
}

impl PcapOut {
    fn create(path: &Path) -> Result<PcapOut, ReplayError> {
        let file = File::create(path).map_err(super::io("cannot create", path))?;
        let mut buf = Vec::with_capacity(WRITE_CHUNK + 65_536);
        // Classic pcap, nanosecond resolution, Ethernet, snap length 262144.
        buf.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
        buf.extend_from_slice(&2u16.to_le_bytes());
        buf.extend_from_slice(&4u16.to_le_bytes());
        buf.extend_from_slice(&[0; 8]);
        buf.extend_from_slice(&262_144u32.to_le_bytes());
        buf.extend_from_slice(&1u32.to_le_bytes());
        Ok(PcapOut {
            path: path.to_path_buf(),
            file,
            buf,
            last_ns: 0,
        })
    }

    fn push(&mut self, m: &Mbuf, ts: Option<&RxTimestamp>) -> Result<(), ReplayError> {
        if let Some(t) = ts.and_then(|t| m.rx_timestamp(t)) {
            self.last_ns = t;
        }
        let len = m.pkt_len();
        let secs = self.last_ns / 1_000_000_000;
        if secs > u32::MAX as u64 {
            return Err(ReplayError::LateStamp {
                path: self.path.display().to_string(),
                secs,
            });
        }
        self.buf.extend_from_slice(&(secs as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&((self.last_ns % 1_000_000_000) as u32).to_le_bytes());
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(&len.to_le_bytes());
        if m.segments() == 1 {
            self.buf.extend_from_slice(m.data());
        } else {
            m.append_to_vec(&mut self.buf);
        }
        if self.buf.len() >= WRITE_CHUNK {
            self.write()?;
        }
        Ok(())
    }

    fn write(&mut self) -> Result<(), ReplayError> {
        self.file
            .write_all(&self.buf)
            .map_err(super::io("cannot write", &self.path))?;
        self.buf.clear();
        Ok(())
    }
}

/// What became of a frame offered to `Feeder::push`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// The worker's ring or the pool is full: drain, then offer it again.
    Wait,
    /// Larger than an mbuf's data room.
    TooBig,
}

/// The main thread's side of a replay.
pub struct Feeder<'a> {
    wire: &'a mut Wire,
    pool: &'a Mempool,
    ts: RxTimestamp,
    queued: Vec<TxBuffer>,
    /// One output capture per worker (None: no output asked for; what is sent is freed).
    outs: Option<Vec<PcapOut>>,
    burst: Burst,
    /// Frames handed to the workers.
    pub fed: u64,
    /// Frames the workers sent out.
    pub written: u64,
}

impl<'a> Feeder<'a> {
    /// Feeds `workers` workers; `outs`: one output file per worker, or none.
    pub fn new(
        wire: &'a mut Wire,
        pool: &'a Mempool,
        ts: RxTimestamp,
        workers: usize,
        outs: Option<&[PathBuf]>,
    ) -> Result<Feeder<'a>, ReplayError> {
        let outs = match outs {
            Some(paths) => Some(
                paths
                    .iter()
                    .map(|p| PcapOut::create(p))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        Ok(Feeder {
            wire,
            pool,
            ts,
            queued: (0..workers.max(1)).map(|_| TxBuffer::default()).collect(),
            outs,
            burst: Burst::default(),
            fed: 0,
            written: 0,
        })
    }

    /// Builds `frame` (captured at `ts_ns`) in an mbuf for worker `w`.
    pub fn push(&mut self, w: usize, frame: &[u8], ts_ns: u64) -> Push {
        if self.queued[w].len() >= BURST_SIZE && !self.send(w) {
            return Push::Wait;
        }
        if frame.len() > MAX_FRAME {
            return Push::TooBig;
        }
        let m = if frame.len() <= self.pool.data_room() {
            Mbuf::from_bytes(self.pool, frame)
        } else {
            Mbuf::from_bytes_chained(self.pool, frame)
        };
        let Some(mut m) = m else {
            return Push::Wait;
        };
        m.set_rx_timestamp(&self.ts, ts_ns);
        // Below a burst (sent above), so it is taken.
        let _ = self.queued[w].push(m);
        self.fed += 1;
        if self.queued[w].len() == BURST_SIZE {
            // Whole bursts only (the rest at the end): the worker then receives the same
            // bursts whatever the timing (its ring holds a multiple of them: room for a
            // whole burst or none), and a replay gives the same results every time.
            self.send(w);
        }
        Push::Queued
    }

    /// Hands worker `w`'s queued frames to its ring; true when none are left queued.
    pub fn send(&mut self, w: usize) -> bool {
        let q = &mut self.queued[w];
        if !q.is_empty() {
            self.wire.input_queues[w].1.keep(q);
        }
        q.is_empty()
    }

    /// Hands every worker its queued frames, whole bursts or not (at the end, or when the
    /// pool is too small to fill one); true when none are left queued.
    pub fn send_all(&mut self) -> bool {
        let mut all = true;
        for w in 0..self.queued.len() {
            all &= self.send(w);
        }
        all
    }

    /// Takes what the workers sent: forwarded frames to the outputs, frames sent back on
    /// capture-in freed. Returns how many were taken.
    pub fn drain(&mut self) -> Result<usize, ReplayError> {
        let mut n = 0;
        for w in 0..self.queued.len() {
            loop {
                let got = self.wire.output_queues[w].0.burst(&mut self.burst);
                if got == 0 {
                    break;
                }
                n += got;
                self.written += got as u64;
                if let Some(outs) = self.outs.as_mut() {
                    let out = &mut outs[w];
                    for i in 0..got {
                        if let Some(m) = self.burst.get(i) {
                            out.push(m, Some(&self.ts))?;
                        }
                    }
                }
                self.burst.clear();
            }
            while self.wire.input_queues[w].0.burst(&mut self.burst) > 0 {
                self.burst.clear();
            }
        }
        Ok(n)
    }

    /// Writes what the outputs still hold.
    pub fn finish(&mut self) -> Result<(), ReplayError> {
        self.drain()?;
        if let Some(outs) = self.outs.as_mut() {
            for o in outs {
                o.write()?;
            }
        }
        Ok(())
    }
}

/// Nanoseconds since the epoch of a capture timestamp.
pub fn ns(ts: std::time::Duration) -> u64 {
    ts.as_nanos().min(u64::MAX as u128) as u64
}
