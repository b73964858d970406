//! Handoff between workers (VPP's handoff node): a packet whose flow another worker owns
//! (`nat::steer`) is staged for that worker during pass 1 and the burst's packets for each
//! worker leave in one ring operation; each worker drains its incoming rings as a second
//! source of bursts. One single-producer/single-consumer ring per (sender, receiver, ingress
//! port), so a handed packet keeps the port it came in on. A full ring drops what does not
//! fit, counted (`handoff-full`); a handed packet is never handed on again, so a policy change
//! between two workers cannot make a packet circle.
use aperture_dpdk::{handoff, Burst, HandoffRx, HandoffTx, Mbuf, PortError, TxBuffer, TxResult};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Ring slots per (sender, receiver, port): several bursts of headroom.
pub const RING_SIZE: u32 = 1024;

/// One worker's ends of the mesh.
pub struct Handoff {
    id: usize,
    workers: usize,
    ports: usize,
    /// To worker `w` for ingress port `p`: index `w * ports + p` (None for itself).
    out: Vec<Option<(HandoffTx, TxBuffer)>>,
    /// From worker `w` for ingress port `p`, same indexing.
    inbox: Vec<Option<HandoffRx>>,
    /// Workers that have stopped polling their ports (see `Worker::run`).
    stopped: Arc<AtomicUsize>,
    /// The steering hash's seed, the same in every worker.
    pub seed: u64,
    /// A full buffer keeps what its ring refuses (the worker waits for room) rather than
    /// dropping it.
    pub lossless: bool,
}

/// The ends for each of `workers` workers with `ports` ports, index order.
pub fn mesh(
    name: &str,
    workers: usize,
    ports: usize,
    seed: u64,
) -> Result<Vec<Handoff>, PortError> {
    // Ring names are process-wide: a second mesh (another replay in the same process) gets
    // its own.
    static MESHES: AtomicUsize = AtomicUsize::new(0);
    let generation = MESHES.fetch_add(1, Ordering::Relaxed);
    let stopped = Arc::new(AtomicUsize::new(0));
    let mut all: Vec<Handoff> = (0..workers)
        .map(|id| Handoff {
            id,
            workers,
            ports,
            out: (0..workers * ports).map(|_| None).collect(),
            inbox: (0..workers * ports).map(|_| None).collect(),
            stopped: stopped.clone(),
            seed,
            lossless: false,
        })
        .collect();
    for from in 0..workers {
        for to in (0..workers).filter(|&t| t != from) {
            for p in 0..ports {
                let (tx, rx) = handoff(&format!("{name}{generation}_{from}_{to}_{p}"), RING_SIZE)?;
                all[from].out[to * ports + p] = Some((tx, TxBuffer::default()));
                all[to].inbox[from * ports + p] = Some(rx);
            }
        }
    }
    Ok(all)
}

impl Handoff {
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Stages `m` (received on `port`) for worker `to`; when its buffer is full it is sent
    /// first. Returns what the ring refused then.
    #[inline]
    pub fn stage(&mut self, to: usize, port: usize, m: Mbuf) -> TxResult {
        let Some((tx, buf)) = self
            .out
            .get_mut(to * self.ports + port)
            .and_then(|o| o.as_mut())
        else {
            // Never staged for itself; counted as refused rather than lost.
            return TxResult {
                dropped: 1,
                dropped_bytes: m.pkt_len() as u64,
                ..TxResult::default()
            };
        };
        let mut r = TxResult::default();
        let m = match buf.push(m) {
            Ok(()) => return r,
            Err(m) => m,
        };
        r = if self.lossless {
            tx.send_keep(buf)
        } else {
            tx.send(buf)
        };
        if let Err(m) = buf.push(m) {
            r.dropped += 1;
            r.dropped_bytes += m.pkt_len() as u64;
        }
        r
    }

    /// Sends everything staged: one ring operation per receiver and port.
    #[inline]
    pub fn flush(&mut self) -> TxResult {
        let mut total = TxResult::default();
        for (tx, buf) in self.out.iter_mut().flatten() {
            if !buf.is_empty() {
                let r = tx.send(buf);
                total.sent += r.sent;
                total.sent_bytes += r.sent_bytes;
                total.dropped += r.dropped;
                total.dropped_bytes += r.dropped_bytes;
            }
        }
        total
    }

    /// Sends what the rings have room for and keeps the rest staged (a replay, which must
    /// lose nothing, waits for room instead of dropping). Returns what was sent and whether
    /// anything is still staged.
    pub fn flush_keep(&mut self) -> (TxResult, bool) {
        let mut total = TxResult::default();
        let mut left = false;
        for (tx, buf) in self.out.iter_mut().flatten() {
            if !buf.is_empty() {
                let r = tx.send_keep(buf);
                total.sent += r.sent;
                total.sent_bytes += r.sent_bytes;
                left |= !buf.is_empty();
            }
        }
        (total, left)
    }

    /// Takes a burst handed over for ingress port `port` from any one worker, into `burst`.
    #[inline]
    pub fn receive(&mut self, port: usize, from: usize, burst: &mut Burst) -> usize {
        match self.inbox.get_mut(from * self.ports + port) {
            Some(Some(rx)) => rx.receive(burst),
            _ => 0,
        }
    }

    /// This worker stops polling its ports (it still drains what others hand it).
    pub fn stop(&self) {
        self.stopped.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether every worker has stopped polling its ports: nothing new can be handed over.
    pub fn all_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst) >= self.workers
    }

    pub fn id(&self) -> usize {
        self.id
    }
}
