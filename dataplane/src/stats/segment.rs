//! The shared-memory stats segment: the dataplane writes, the control plane (and `--stats`)
//! read, each without waiting for the other.
//!
//! Layout, in u64 words:
//! - a header of `HEADER_WORDS` (magic, the sizes below, the TSC rate, how many rule slots
//!   have a name);
//! - one block per worker of `block_words`: [sequence, general counters, per-application
//!   counters, per-rule-slot counters], padded to a cache-line multiple;
//! - one block for the ports: [sequence, `PORT_COUNTERS` per port], written by the service
//!   thread;
//! - the names: applications, ports, then rule slots, `NAME_WORDS` each (a length byte and up
//!   to `NAME_BYTES` bytes of UTF-8). Application and port names are written at creation; a
//!   rule slot's name is written before the header's count of named slots covers it, and
//!   never changes after, so a reader needs no lock for names.
//!
//! Every block is a seqlock: the writer makes the sequence odd, copies, makes it even; a
//! reader retries until it sees the same even sequence before and after its copy.
use super::tables::{Tables, NAME_BYTES, PORT_COUNTERS, RULE_SLOTS};
use super::{drop_reason_name, Counters, GENERAL, N};
use aperture_dpdk::shm::ShmSegment;
use std::path::Path;
use std::sync::atomic::{fence, AtomicU64, Ordering};

const MAGIC: u64 = u64::from_be_bytes(*b"APSTATS2");
const HEADER_WORDS: usize = 16;
const NAME_WORDS: usize = (NAME_BYTES + 1) / 8;

mod h {
    pub const MAGIC: usize = 0;
    pub const N: usize = 1;
    pub const WORKERS: usize = 2;
    pub const BLOCK: usize = 3;
    pub const APPS: usize = 4;
    pub const RULE_SLOTS: usize = 5;
    pub const PORTS: usize = 6;
    pub const TSC_HZ: usize = 7;
    pub const NAMED_RULES: usize = 8;
    pub const NAMED_APPS: usize = 9;
    /// The process that created the segment, and whether it has closed it (exited).
    pub const WRITER_PID: usize = 10;
    pub const CLOSED: usize = 11;
}

/// What the segment holds besides the general counters: the names of the applications (the
/// catalog, in id order), rows reserved for applications named later (a policy's custom
/// applications), and the names of the ports.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    pub apps: Vec<String>,
    pub custom_apps: usize,
    pub ports: Vec<String>,
}

/// Word offsets of a segment's parts, from its sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geometry {
    workers: usize,
    apps: usize,
    ports: usize,
    block: usize,
    ports_base: usize,
    names_base: usize,
    total: usize,
}

impl Geometry {
    fn new(workers: usize, apps: usize, ports: usize) -> Geometry {
        let block = (1 + N + Tables::word_count(apps)).div_ceil(8) * 8;
        let ports_base = HEADER_WORDS + workers * block;
        let names_base = ports_base + (1 + ports * PORT_COUNTERS.len()).div_ceil(8) * 8;
        let total = names_base + (apps + ports + RULE_SLOTS) * NAME_WORDS;
        Geometry {
            workers,
            apps,
            ports,
            block,
            ports_base,
            names_base,
            total,
        }
    }

    fn worker_base(&self, w: usize) -> usize {
        HEADER_WORDS + w * self.block
    }

    fn app_name(&self, i: usize) -> usize {
        self.names_base + i * NAME_WORDS
    }

    fn port_name(&self, i: usize) -> usize {
        self.names_base + (self.apps + i) * NAME_WORDS
    }

    fn rule_name(&self, slot: usize) -> usize {
        self.names_base + (self.apps + self.ports + slot) * NAME_WORDS
    }
}

/// The writer side of the segment, owned by the dataplane.
pub struct StatsSegment {
    shm: ShmSegment,
    g: Geometry,
}

impl Drop for StatsSegment {
    fn drop(&mut self) {
        self.close();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("stats segment {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("stats segment {path} is not an Aperture segment of this version")]
    Layout { path: String },
    #[error("stats segment {path}: worker {worker} did not publish a consistent snapshot")]
    Busy { path: String, worker: usize },
}

/// Stores `name` (cut to `NAME_BYTES` at a character boundary) in `NAME_WORDS` words.
fn write_name(words: &[AtomicU64], name: &str) {
    let mut cut = name.len().min(NAME_BYTES);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut bytes = [0u8; NAME_WORDS * 8];
    bytes[0] = cut as u8;
    bytes[1..=cut].copy_from_slice(&name.as_bytes()[..cut]);
    for (w, chunk) in words.iter().zip(bytes.chunks_exact(8)) {
        w.store(
            u64::from_le_bytes(chunk.try_into().unwrap_or_default()),
            Ordering::Relaxed,
        );
    }
}

fn read_name(shm: &ShmSegment, at: usize) -> String {
    let mut bytes = [0u8; NAME_WORDS * 8];
    for (i, chunk) in bytes.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&shm.load(at + i, Ordering::Relaxed).to_le_bytes());
    }
    let len = (bytes[0] as usize).min(NAME_BYTES);
    String::from_utf8_lossy(&bytes[1..=len]).into_owned()
}

impl StatsSegment {
    pub fn create(
        path: &Path,
        workers: usize,
        layout: &Layout,
    ) -> Result<StatsSegment, StatsError> {
        let io = |source| StatsError::Io {
            path: path.display().to_string(),
            source,
        };
        let g = Geometry::new(
            workers,
            layout.apps.len() + layout.custom_apps,
            layout.ports.len(),
        );
        let shm = ShmSegment::create(path, g.total).map_err(io)?;
        let w = shm.words().expect("created read-write");
        for (i, name) in layout.apps.iter().enumerate() {
            write_name(&w[g.app_name(i)..], name);
        }
        for (i, name) in layout.ports.iter().enumerate() {
            write_name(&w[g.port_name(i)..], name);
        }
        w[h::N].store(N as u64, Ordering::Relaxed);
        w[h::WORKERS].store(workers as u64, Ordering::Relaxed);
        w[h::BLOCK].store(g.block as u64, Ordering::Relaxed);
        w[h::APPS].store(g.apps as u64, Ordering::Relaxed);
        w[h::RULE_SLOTS].store(RULE_SLOTS as u64, Ordering::Relaxed);
        w[h::PORTS].store(g.ports as u64, Ordering::Relaxed);
        w[h::TSC_HZ].store(aperture_dpdk::tsc_hz(), Ordering::Relaxed);
        w[h::NAMED_APPS].store(layout.apps.len() as u64, Ordering::Relaxed);
        w[h::WRITER_PID].store(std::process::id() as u64, Ordering::Relaxed);
        w[h::CLOSED].store(0, Ordering::Relaxed);
        w[h::MAGIC].store(MAGIC, Ordering::Release);
        Ok(StatsSegment { shm, g })
    }

    pub fn workers(&self) -> usize {
        self.g.workers
    }

    /// Marks the counters final: the dataplane is exiting (readers then say they are not
    /// live). Done on drop too.
    pub fn close(&self) {
        self.words()[h::CLOSED].store(1, Ordering::Release);
    }

    fn words(&self) -> &[AtomicU64] {
        self.shm.words().expect("created read-write")
    }

    /// Publishes worker `w`'s counters (seqlock write side; never blocks).
    pub fn publish(&self, w: usize, c: &Counters, t: &Tables) {
        let base = self.g.worker_base(w);
        let Some(block) = self.words().get(base..base + self.g.block) else {
            return;
        };
        let values = c.0.iter().copied().chain(t.words());
        seq_write(block, values);
    }

    /// Publishes the ports' counters, `PORT_COUNTERS` per port in port order.
    pub fn publish_ports(&self, ports: &[[u64; PORT_COUNTERS.len()]]) {
        let g = &self.g;
        let Some(block) = self
            .words()
            .get(g.ports_base..g.ports_base + 1 + g.ports * PORT_COUNTERS.len())
        else {
            return;
        };
        seq_write(block, ports.iter().flat_map(|p| p.iter().copied()));
    }

    /// Rule slots that have a name.
    pub fn named_rules(&self) -> usize {
        self.shm.load(h::NAMED_RULES, Ordering::Acquire) as usize
    }

    /// Names the rule slots past those already named, from the store's list of slot names
    /// (slot order); names once given never change.
    pub fn name_rules(&self, names: &[String]) {
        let w = self.words();
        let named = self.named_rules();
        let upto = names.len().min(RULE_SLOTS);
        if upto <= named {
            return;
        }
        for (slot, name) in names.iter().enumerate().take(upto).skip(named) {
            write_name(&w[self.g.rule_name(slot)..], name);
        }
        w[h::NAMED_RULES].store(upto as u64, Ordering::Release);
    }

    /// Application rows that have a name.
    pub fn named_apps(&self) -> usize {
        self.shm.load(h::NAMED_APPS, Ordering::Acquire) as usize
    }

    /// Names the application rows past those already named, from the catalog's names in id
    /// order (a policy's custom applications; a name once given never changes).
    pub fn name_apps(&self, names: &[&str]) {
        let w = self.words();
        let named = self.named_apps();
        let upto = names.len().min(self.g.apps);
        if upto <= named {
            return;
        }
        for (i, name) in names.iter().enumerate().take(upto).skip(named) {
            write_name(&w[self.g.app_name(i)..], name);
        }
        w[h::NAMED_APPS].store(upto as u64, Ordering::Release);
    }

    pub fn path(&self) -> &Path {
        self.shm.path()
    }
}

fn seq_write(block: &[AtomicU64], values: impl Iterator<Item = u64>) {
    let seq = block[0].load(Ordering::Relaxed);
    block[0].store(seq | 1, Ordering::Relaxed);
    fence(Ordering::Release);
    for (d, s) in block[1..].iter().zip(values) {
        d.store(s, Ordering::Relaxed);
    }
    block[0].store((seq | 1) + 1, Ordering::Release);
}

/// Copies `len` words after the sequence word at `base` into `out`, retrying until the copy is
/// consistent. A writer preempted mid-publication holds the sequence odd until it runs again:
/// keep trying (yielding the CPU to it) for up to a second. False: never consistent.
fn seq_read(shm: &ShmSegment, base: usize, out: &mut [u64]) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    for attempt in 0u64.. {
        if attempt % 64 == 63 {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::yield_now();
        }
        let s1 = shm.load(base, Ordering::Acquire);
        if s1 & 1 == 1 {
            std::hint::spin_loop();
            continue;
        }
        for (i, v) in out.iter_mut().enumerate() {
            *v = shm.load(base + 1 + i, Ordering::Relaxed);
        }
        fence(Ordering::Acquire);
        if shm.load(base, Ordering::Relaxed) == s1 {
            return true;
        }
    }
    false
}

/// Everything a segment holds, read consistently block by block.
#[derive(Clone, Debug, Default)]
pub struct SegmentSnapshot {
    pub workers: Vec<Counters>,
    /// Per worker, its application and rule tables.
    pub tables: Vec<Tables>,
    /// Names of the applications named so far, by id; the tables may have rows past them
    /// (reserved for applications not named yet, not counted until named) and one more
    /// entry, "undecided".
    pub apps: Vec<String>,
    /// (name, counters) of each port, `PORT_COUNTERS` order.
    pub ports: Vec<(String, [u64; PORT_COUNTERS.len()])>,
    /// Names of the rule slots named so far (slot order).
    pub rules: Vec<String>,
    /// TSC cycles per second (for the loop cycle counters).
    pub tsc_hz: u64,
    /// The dataplane process that wrote the segment, and whether it closed it on exit.
    pub writer_pid: u32,
    pub closed: bool,
}

impl SegmentSnapshot {
    /// Whether the dataplane that writes these counters is still running: it has not closed
    /// the segment, and its process exists (seen from this PID namespace). Counters read
    /// otherwise are its last ones, not live.
    pub fn live(&self) -> bool {
        !self.closed
            && self.writer_pid != 0
            && Path::new(&format!("/proc/{}", self.writer_pid)).exists()
    }
}

impl SegmentSnapshot {
    /// Reads the whole segment; see [`read_full`].
    pub fn read(path: &Path) -> Result<SegmentSnapshot, StatsError> {
        read_full(path)
    }

    /// Every worker's tables summed.
    pub fn tables_total(&self) -> Tables {
        let rows = self
            .tables
            .first()
            .map_or(self.apps.len(), |t| t.apps() - 1);
        let mut t = Tables::new(rows);
        for w in &self.tables {
            t.merge(w);
        }
        t
    }

    /// (name, per-worker values) for every counter; drop reasons as `drop_<reason>`.
    pub fn rows(&self) -> Vec<(String, Vec<u64>)> {
        let n = self.workers.first().map_or(0, |c| c.0.len());
        (0..n)
            .map(|i| {
                let name = GENERAL
                    .get(i)
                    .map(|s| s.to_string())
                    .or_else(|| {
                        drop_reason_name(i).map(|r| format!("drop_{}", r.replace('-', "_")))
                    })
                    .unwrap_or_else(|| format!("counter_{i}"));
                (name, self.workers.iter().map(|c| c.0[i]).collect())
            })
            .collect()
    }
}

/// Reads a consistent snapshot of every worker's counters from a segment file.
pub fn read_snapshot(path: &Path) -> Result<Vec<Counters>, StatsError> {
    Ok(read_full(path)?.workers)
}

/// Reads the whole segment (the reader side: the control plane, `--stats`).
pub fn read_full(path: &Path) -> Result<SegmentSnapshot, StatsError> {
    let shm = ShmSegment::open(path).map_err(|source| StatsError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let bad = || StatsError::Layout {
        path: path.display().to_string(),
    };
    let word = |i| shm.load(i, Ordering::Relaxed) as usize;
    if shm.load(h::MAGIC, Ordering::Acquire) != MAGIC
        || word(h::N) != N
        || word(h::RULE_SLOTS) != RULE_SLOTS
    {
        return Err(bad());
    }
    // Sizes from a foreign or damaged file must not make the reader allocate without bound.
    let (workers, apps, ports) = (word(h::WORKERS), word(h::APPS), word(h::PORTS));
    if workers > 1024 || apps > u16::MAX as usize || ports > 1024 {
        return Err(bad());
    }
    let g = Geometry::new(workers, apps, ports);
    if word(h::BLOCK) != g.block || shm.len() < g.total {
        return Err(bad());
    }
    let mut snap = SegmentSnapshot {
        tsc_hz: shm.load(h::TSC_HZ, Ordering::Relaxed),
        writer_pid: shm.load(h::WRITER_PID, Ordering::Relaxed) as u32,
        closed: shm.load(h::CLOSED, Ordering::Acquire) != 0,
        ..SegmentSnapshot::default()
    };
    let mut buf = vec![0u64; g.block - 1];
    for w in 0..workers {
        if !seq_read(&shm, g.worker_base(w), &mut buf) {
            return Err(StatsError::Busy {
                path: path.display().to_string(),
                worker: w,
            });
        }
        let mut c = Counters::default();
        c.0.copy_from_slice(&buf[..N]);
        let mut t = Tables::new(apps);
        t.set_words(buf[N..].iter().copied());
        snap.workers.push(c);
        snap.tables.push(t);
    }
    let mut pbuf = vec![0u64; ports * PORT_COUNTERS.len()];
    if !seq_read(&shm, g.ports_base, &mut pbuf) {
        pbuf.fill(0);
    }
    let named = (shm.load(h::NAMED_APPS, Ordering::Acquire) as usize).min(apps);
    snap.apps = (0..named).map(|i| read_name(&shm, g.app_name(i))).collect();
    for (i, chunk) in pbuf.chunks_exact(PORT_COUNTERS.len()).enumerate() {
        let mut v = [0u64; PORT_COUNTERS.len()];
        v.copy_from_slice(chunk);
        snap.ports.push((read_name(&shm, g.port_name(i)), v));
    }
    let named = (shm.load(h::NAMED_RULES, Ordering::Acquire) as usize).min(RULE_SLOTS);
    snap.rules = (0..named)
        .map(|s| read_name(&shm, g.rule_name(s)))
        .collect();
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use super::super::{DropReason, C};
    use super::*;

    fn layout() -> Layout {
        Layout {
            apps: vec!["dns".into(), "ssl".into()],
            custom_apps: 0,
            ports: vec!["capture-in".into(), "capture-out".into()],
        }
    }

    #[test]
    fn snapshot_roundtrip_and_consistency_under_concurrent_publishing() {
        let path = std::env::temp_dir().join(format!("aperture-stats-test-{}", std::process::id()));
        let seg = std::sync::Arc::new(StatsSegment::create(&path, 2, &layout()).unwrap());
        let w = seg.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let writer = std::thread::spawn(move || {
            let mut c = Counters::default();
            let mut t = Tables::new(2);
            let mut i = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                i += 1;
                // All counters equal within one publication: a torn read would show a mix.
                c.0 = [i; N];
                t.set_words(std::iter::repeat(i));
                w.publish(1, &c, &t);
                // Publish every few microseconds: 10^4 times more often than the dataplane does.
                let t0 = std::time::Instant::now();
                while t0.elapsed() < std::time::Duration::from_micros(5) {
                    std::hint::spin_loop();
                }
            }
        });
        for _ in 0..2000 {
            let snap = read_full(&path).unwrap();
            assert_eq!(snap.workers.len(), 2);
            let v = snap.workers[1].0[0];
            assert!(snap.workers[1].0.iter().all(|x| *x == v), "torn snapshot");
            assert!(snap.tables[1].words().all(|x| x == v), "torn tables");
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        let mut c = Counters::default();
        c.drop(DropReason::NoRoute, 60);
        c.add(C::BusyCycles, 5);
        let mut t = Tables::new(2);
        t.app_packet(1, 99);
        t.rule_hit(3);
        seg.publish(0, &c, &t);
        seg.publish_ports(&[[1, 2, 3, 4, 5, 6, 7, 8], [9; 8]]);
        seg.name_rules(&["default".into(), "allow-dns".into()]);
        // Names come only once: a shorter list later changes nothing.
        seg.name_rules(&["default".into()]);
        let snap = read_full(&path).unwrap();
        assert_eq!(snap.workers[0].drops(DropReason::NoRoute), 1);
        assert_eq!(snap.workers[0].get(C::BusyCycles), 5);
        assert_eq!(snap.workers[0].drops_by_reason(), vec![("no-route", 1)]);
        assert_eq!(snap.tables[0].app(1), [0, 1, 99, 0]);
        assert_eq!(snap.tables[0].rule(3), [1, 0, 0]);
        assert_eq!(snap.apps, ["dns", "ssl"]);
        assert_eq!(
            snap.ports[0],
            ("capture-in".into(), [1, 2, 3, 4, 5, 6, 7, 8])
        );
        assert_eq!(snap.ports[1].1, [9; 8]);
        assert_eq!(snap.rules, ["default", "allow-dns"]);
        assert_eq!(snap.tsc_hz, aperture_dpdk::tsc_hz());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn reserved_application_rows_are_named_later_and_once() {
        let path = std::env::temp_dir().join(format!("aperture-stats-apps-{}", std::process::id()));
        let l = Layout {
            apps: vec!["dns".into(), "ssl".into()],
            custom_apps: 3,
            ports: vec![],
        };
        let seg = StatsSegment::create(&path, 1, &l).unwrap();
        let mut t = Tables::new(5);
        t.app_packet(2, 10); // the first custom row, counted before it has a name
        seg.publish(0, &Counters::default(), &t);
        let snap = read_full(&path).unwrap();
        assert_eq!(snap.apps, ["dns", "ssl"]);
        assert_eq!(snap.tables_total().apps(), 6, "5 rows and undecided");
        assert_eq!(snap.tables_total().app(2)[1], 1);
        seg.name_apps(&["dns", "ssl", "corp-portal"]);
        seg.name_apps(&["dns", "ssl", "renamed"]);
        assert_eq!(
            read_full(&path).unwrap().apps,
            ["dns", "ssl", "corp-portal"]
        );
        // Never past the reserved rows.
        seg.name_apps(&["dns", "ssl", "corp-portal", "a", "b", "c", "d"]);
        assert_eq!(read_full(&path).unwrap().apps.len(), 5);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn long_and_multibyte_names_are_cut_at_a_character() {
        let path =
            std::env::temp_dir().join(format!("aperture-stats-names-{}", std::process::id()));
        let long = "é".repeat(40); // 80 bytes
        let l = Layout {
            apps: vec![long.clone()],
            custom_apps: 0,
            ports: vec![],
        };
        let _seg = StatsSegment::create(&path, 1, &l).unwrap();
        let snap = read_full(&path).unwrap();
        assert_eq!(snap.apps[0], "é".repeat(31));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn counters_are_live_while_their_writer_runs_and_final_once_it_closed() {
        let path = std::env::temp_dir().join(format!("aperture-stats-live-{}", std::process::id()));
        let seg = StatsSegment::create(&path, 1, &layout()).unwrap();
        let snap = read_full(&path).unwrap();
        assert_eq!(snap.writer_pid, std::process::id());
        assert!(snap.live());
        drop(seg);
        let snap = read_full(&path).unwrap();
        assert!(
            snap.closed && !snap.live(),
            "read as live after its writer closed it"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_foreign_file_is_refused() {
        let path =
            std::env::temp_dir().join(format!("aperture-stats-foreign-{}", std::process::id()));
        std::fs::write(&path, [7u8; 4096]).unwrap();
        assert!(matches!(read_full(&path), Err(StatsError::Layout { .. })));
        std::fs::remove_file(&path).unwrap();
    }
}
