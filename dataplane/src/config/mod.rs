//! `dataplane.yaml`: the static configuration (restart to change). Every field documents its
//! unit and default. Unknown keys are rejected; errors name the file, line and column.
//!
//! The embedded default (`Config::embedded()`) needs no NIC and no hugepages: it replays a
//! capture through DPDK's `net_pcap` virtual device in virtual-wire mode.
//!
//! Plain data at the bottom of the crate: it imports nothing of the packet path; the stages
//! build themselves from it (`Limits::of`, `Catalog::of_config`, `FlowTable::new`).
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The configuration the binary falls back to without `--config`.
pub const EMBEDDED: &str = include_str!("../../../conf/dataplane.yaml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Schema version; must be 1.
    pub version: u32,
    pub eal: Eal,
    #[serde(default)]
    pub mempool: MempoolConfig,
    pub workers: Workers,
    pub ports: Vec<PortConfig>,
    pub forwarding: Forwarding,
    #[serde(default)]
    pub flow_table: FlowTableConfig,
    #[serde(default)]
    pub stats: StatsConfig,
    #[serde(default)]
    pub app_id: AppIdConfig,
    #[serde(default)]
    pub alg: AlgConfig,
    #[serde(default)]
    pub fragments: FragmentsConfig,
    /// policy.yaml that `run` enforces from the start (without one, `run` denies every flow
    /// until a policy is installed; `replay` takes `--policy`).
    #[serde(default)]
    pub policy: Option<PathBuf>,
    #[serde(default)]
    pub control: ControlConfig,
    #[serde(default)]
    pub flow_log: FlowLogConfig,
}

/// The flow log (`flow-log`): where `run` appends its records, and interim records of long
/// flows (`run` and `replay`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct FlowLogConfig {
    /// Where `run` appends flow records (default /var/log/aperture/flows.json; its directory
    /// is made if missing). `run --flow-log FILE` overrides it; SIGHUP reopens it.
    pub path: PathBuf,
    /// false: `run` writes no flow log.
    pub enabled: bool,
    /// A flow live this many seconds gets an interim record, and again every as many (0:
    /// records only when flows end).
    pub active_timeout: u32,
}

impl Default for FlowLogConfig {
    fn default() -> Self {
        FlowLogConfig {
            path: PathBuf::from("/var/log/aperture/flows.json"),
            enabled: true,
            active_timeout: 300,
        }
    }
}

/// The control socket (`run` only): where aperture-control installs policies.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ControlConfig {
    /// Unix socket path (default /run/aperture/control.sock).
    pub socket: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from("/run/aperture/control.sock"),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct AppIdConfig {
    /// The application catalog (default: the embedded conf/apps.yaml).
    pub catalog: Option<PathBuf>,
    /// Flows each worker classifies at the same time (default 8192; about 4.5 KiB each).
    /// When all are busy, new flows are declared unknown and counted.
    pub contexts: usize,
    /// Payload packets per direction before a TCP flow is declared unknown (default 12).
    pub tcp_packets: u8,
    /// The same for UDP (default 8).
    pub udp_packets: u8,
}

impl Default for AppIdConfig {
    fn default() -> Self {
        AppIdConfig {
            catalog: None,
            contexts: 8192,
            tcp_packets: 12,
            udp_packets: 8,
        }
    }
}

/// IPv4 reassembly (`flow::defrag`): fragments are gathered into their datagram before flow
/// tracking, App-ID, NAT and the ALGs, and the datagram leaves as fragments again.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct FragmentsConfig {
    /// Datagrams each worker reassembles at once (default 256; when all are busy the oldest
    /// is given up, counted); 0 turns reassembly off: fragments pass as they come (and a
    /// translated flow's later fragments are dropped, having no ports to translate).
    pub datagrams: usize,
    /// Largest datagram payload, bytes (default and most 65000): each slot is this big.
    pub max_bytes: usize,
    /// Seconds a datagram has to complete (default 10).
    pub timeout: u32,
}

impl Default for FragmentsConfig {
    fn default() -> Self {
        FragmentsConfig {
            datagrams: 256,
            max_bytes: 65_000,
            timeout: 10,
        }
    }
}

/// Application-level gateways.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct AlgConfig {
    pub sip: SipAlgConfig,
}

/// The SIP ALG: rewrites SIP/SDP where NAT changed addresses, and opens each call's media.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SipAlgConfig {
    /// Off: SIP passes untouched and opens nothing (default on).
    pub enabled: bool,
    /// Pinholes each worker holds at most (default 8192); more are refused and counted.
    pub pinholes: usize,
    /// Calls and registrations each worker tracks at most (default 4096).
    pub dialogs: usize,
    /// Calls and registrations one signalling source address may hold (default 256).
    pub per_source: u32,
    /// Seconds a pinhole waits for its first flow (default 180: a call may ring that long).
    pub initial_timeout: u32,
    /// Seconds a used pinhole stays after it last let a flow in (default 300).
    pub idle_timeout: u32,
    /// Longest registration honoured, seconds (default 7200; a REGISTER without Expires
    /// asks for 3600).
    pub max_register: u32,
    /// What happens to a SIP message on a translated flow that cannot be rewritten
    /// (malformed, too many edits, too large): `pass` it untouched or `drop` it (default);
    /// either way it is counted. Untranslated flows always pass.
    pub unrewritable: Unrewritable,
    /// SIP over TCP: connections per worker whose bytes the ALG holds or whose sequence
    /// numbers it shifts after a rewrite changed a length (default 4096); more are counted
    /// and their messages unrewritable.
    pub tcp_streams: usize,
    /// Buffers per worker for messages split across segments (default 256), and the
    /// largest such message, bytes (default 16384, at most 65535).
    pub tcp_buffers: usize,
    pub tcp_buffer_bytes: usize,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Unrewritable {
    Pass,
    #[default]
    Drop,
}

impl Default for SipAlgConfig {
    fn default() -> Self {
        SipAlgConfig {
            enabled: true,
            pinholes: 8192,
            dialogs: 4096,
            per_source: 256,
            initial_timeout: 180,
            idle_timeout: 300,
            max_register: 7200,
            unrewritable: Unrewritable::Drop,
            tcp_streams: 4096,
            tcp_buffers: 256,
            tcp_buffer_bytes: 16384,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Eal {
    /// EAL arguments, e.g. `["-l", "0-1", "--no-huge", "-m", "512", "--no-pci"]`. The `--vdev`
    /// arguments of the ports are appended.
    pub args: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct MempoolConfig {
    /// Mbufs in the pool (default 16383; a power of two minus one is most efficient). Without
    /// hugepages each mbuf takes a 4 KiB page of the EAL's `-m` memory.
    pub mbufs: u32,
    /// Per-lcore cache (default 256).
    pub cache: u32,
    /// Data room per mbuf in bytes, headroom excluded (default 2048).
    pub data_room: u16,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            mbufs: 16383,
            cache: 256,
            data_room: 2048,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Workers {
    /// The EAL lcores that run workers, one worker each; they must be enabled in `eal.args`
    /// and must not be the main lcore. Worker i polls queue i of every port.
    pub lcores: Vec<u32>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PortConfig {
    /// The name rules and forwarding refer to (e.g. `inside`, `outside`).
    pub name: String,
    /// DPDK device name: a PCI address (`0000:01:00.0`) or a virtual device (`net_pcap0`).
    pub device: String,
    /// Extra arguments making a virtual device, e.g. `iface=veth0` for `net_af_packet0`.
    /// When set, `--vdev=<device>,<vdev-args>` is added to the EAL arguments.
    #[serde(default)]
    pub vdev_args: Option<String>,
    /// Rx descriptors per queue (default 1024).
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    /// Tx descriptors per queue (default 1024).
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
}

fn default_desc() -> u16 {
    1024
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", tag = "mode")]
pub enum Forwarding {
    /// Bump in the wire: whatever arrives on one port of a pair leaves on the other, unchanged.
    VirtualWire { pairs: Vec<[String; 2]> },
    /// IPv4 router: interfaces with addresses, ARP, connected and static routes.
    Routed {
        interfaces: Vec<Interface>,
        #[serde(default)]
        routes: Vec<Route>,
        /// Neighbour (ARP) cache entries per worker (default 256).
        #[serde(default = "default_neighbours")]
        neighbours: usize,
        /// Seconds a resolved neighbour stays valid (default 300).
        #[serde(default = "default_neighbour_ttl")]
        neighbour_ttl: u32,
    },
}

fn default_neighbours() -> usize {
    256
}
fn default_neighbour_ttl() -> u32 {
    300
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Interface {
    /// A port name from `ports`.
    pub port: String,
    /// Address and prefix length, e.g. `192.0.2.1/24`.
    pub address: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Route {
    /// Destination prefix, e.g. `0.0.0.0/0`.
    pub prefix: String,
    /// Next-hop address; it must be inside a connected prefix.
    pub via: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct FlowTableConfig {
    /// Flows per worker (default 262144). When full, the least recently active flow not yet
    /// answered is evicted to make room; an answered flow never is (the new flow is refused
    /// instead). Evictions and refusals are counted.
    pub capacity: usize,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Limits per source address on flows held and new flows per second, over all workers
    /// (default none).
    #[serde(default)]
    pub per_source: FlowLimit,
}

impl Default for FlowTableConfig {
    fn default() -> Self {
        FlowTableConfig {
            capacity: 262_144,
            timeouts: Timeouts::default(),
            per_source: FlowLimit::default(),
        }
    }
}

/// A limit on new flows (`flow-table.per-source`, a policy zone's `limits`); 0 or absent is no
/// limit.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct FlowLimit {
    /// Flows held at once.
    pub flows: u32,
    /// New flows per second (a second's worth may come at once).
    pub new_per_second: u32,
}

impl FlowLimit {
    /// What each of `workers` enforces (flows are spread over workers by their hash).
    pub fn per_worker(&self, workers: usize) -> crate::flow::admit::Limit {
        crate::flow::admit::Limit {
            flows: self.flows,
            per_second: self.new_per_second,
        }
        .per_worker(workers)
    }
}

/// Idle timeouts in seconds.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Timeouts {
    /// TCP before the handshake completes (default 10).
    pub tcp_embryonic: u32,
    /// Established TCP (default 3600).
    pub tcp_established: u32,
    /// TCP after a FIN (default 120).
    pub tcp_closing: u32,
    /// TCP after a RST or after FINs both ways (default 10).
    pub tcp_closed: u32,
    /// UDP (default 60).
    pub udp: u32,
    /// ICMP and ICMPv6 (default 10).
    pub icmp: u32,
    /// Any other IP protocol (default 60).
    pub other: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_embryonic: 10,
            tcp_established: 3600,
            tcp_closing: 120,
            tcp_closed: 10,
            udp: 60,
            icmp: 10,
            other: 60,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct StatsConfig {
    /// File of the shared-memory stats segment (default `/dev/shm/aperture-stats`).
    pub segment: PathBuf,
    /// Milliseconds between publications of worker counters to the segment (default 100).
    pub publish_ms: u32,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            segment: PathBuf::from("/dev/shm/aperture-stats"),
            publish_ms: 100,
        }
    }
}

/// An IPv4 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Prefix {
    pub fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len)
        }
    }
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        (u32::from(a) & self.mask()) == (u32::from(self.addr) & self.mask())
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not an IPv4 prefix like 192.0.2.1/24"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("{l:?} is not a prefix length 0-32"))?;
        Ok(Prefix { addr, len })
    }
}

/// Deserialises YAML with errors that name `file`, line and column (shared by every YAML file
/// Aperture reads: dataplane.yaml, apps.yaml, and the policy next).
pub fn from_yaml<T: serde::de::DeserializeOwned>(text: &str, file: &str) -> Result<T, ConfigError> {
    serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let message = e.to_string();
        // saphyr's message repeats the location and may draw a snippet; keep its first line
        // without the repeated "error: line N column M: ".
        let first = message.lines().next().unwrap_or("");
        let first = first.strip_prefix("error: ").unwrap_or(first);
        let message = match first.split_once(": ") {
            Some((at, rest)) if at.starts_with("line ") && at.contains(" column ") => rest,
            _ => first,
        };
        // Nor the library's advice to its own callers ("set DuplicateKeyPolicy in Options").
        let message = match message.split_once(", set ") {
            Some((m, hint)) if hint.contains("Options") => m,
            _ => message,
        }
        .to_string();
        ConfigError::Syntax {
            file: file.to_string(),
            line,
            column,
            message,
        }
    })
}

impl Config {
    /// Parses YAML text; `file` names the source in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let cfg: Config = from_yaml(text, file)?;
        cfg.validate().map_err(|message| ConfigError::Invalid {
            file: file.to_string(),
            message,
        })?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    pub fn embedded() -> Config {
        Config::parse(EMBEDDED, "conf/dataplane.yaml (embedded)")
            .expect("the embedded conf/dataplane.yaml is checked by a unit test")
    }

    /// Index of a port by name.
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }

    /// EAL arguments: the configured ones plus one `--vdev` per virtual port.
    pub fn eal_args(&self) -> Vec<String> {
        let mut args = self.eal.args.clone();
        for p in &self.ports {
            if let Some(extra) = &p.vdev_args {
                args.push(format!("--vdev={},{}", p.device, extra));
            }
        }
        args
    }

    /// The sizes against the memory they take: the mbuf pool against the EAL's `-m` (when
    /// given), the workers' tables against the machine's memory. An error says how much.
    fn check_memory(&self) -> Result<(), String> {
        let mp = &self.mempool;
        if mp.mbufs == 0 {
            return Err("mempool.mbufs: must be at least 1".into());
        }
        // DPDK's own rule (rte_mempool_create): a cache at most 512 and at most n / 1.5.
        if mp.cache > 512 || mp.cache as u64 * 3 > mp.mbufs as u64 * 2 {
            return Err(format!(
                "mempool.cache: {} is more than DPDK allows for {} mbufs (at most 512 and two thirds of mbufs)",
                mp.cache, mp.mbufs
            ));
        }
        // An mbuf: its header (two cache lines), headroom and data room, rounded to a line.
        let mut per_mbuf = (256 + 128 + mp.data_room as u64).div_ceil(64) * 64;
        if self.eal.args.iter().any(|a| a == "--no-huge") {
            // Without hugepages an mbuf does not cross a 4 KiB page: each takes whole pages.
            per_mbuf = per_mbuf.div_ceil(4096) * 4096;
        }
        let pool = mp.mbufs as u64 * per_mbuf;
        if let Some(m) = self.eal_memory_mib() {
            if pool > m << 20 {
                return Err(format!(
                    "mempool.mbufs: {} mbufs of {} bytes take {}, more than the EAL's -m {} MiB",
                    mp.mbufs,
                    per_mbuf,
                    human_bytes(pool),
                    m
                ));
            }
        }
        let workers = self.workers.lcores.len().max(1) as u64;
        let flows = self.flow_table.capacity as u64
            * (crate::flow::FlowTable::bytes_per_flow(
                self.flow_table.per_source.flows != 0
                    || self.flow_table.per_source.new_per_second != 0,
            ) + crate::appid::engine::Engine::bytes_per_flow()) as u64;
        let contexts =
            self.app_id.contexts as u64 * crate::appid::engine::Engine::bytes_per_context() as u64;
        let per_worker = flows + contexts;
        if let Some(total) = machine_memory() {
            if per_worker.saturating_mul(workers) > total {
                return Err(format!(
                    "flow-table.capacity {} and app-id.contexts {} take {} per worker ({} worker(s): {}), more than this machine's {} of memory",
                    self.flow_table.capacity,
                    self.app_id.contexts,
                    human_bytes(per_worker),
                    workers,
                    human_bytes(per_worker.saturating_mul(workers)),
                    human_bytes(total)
                ));
            }
        }
        Ok(())
    }

    /// The EAL's `-m`/`--memory` in MiB, when the arguments give it.
    fn eal_memory_mib(&self) -> Option<u64> {
        let a = &self.eal.args;
        a.iter().enumerate().find_map(|(i, s)| {
            if s == "-m" || s == "--memory" {
                a.get(i + 1)?.parse().ok()
            } else {
                s.strip_prefix("--memory=")?.parse().ok()
            }
        })
    }

    fn validate(&self) -> Result<(), String> {
        if self.version != 1 {
            return Err(format!(
                "version: {} is not supported (expected 1)",
                self.version
            ));
        }
        if self.workers.lcores.is_empty() {
            return Err("workers.lcores: at least one worker lcore is needed".into());
        }
        if self.ports.is_empty() {
            return Err("ports: at least one port is needed".into());
        }
        for (i, p) in self.ports.iter().enumerate() {
            if self.ports[..i].iter().any(|q| q.name == p.name) {
                return Err(format!("ports: the name {:?} is used twice", p.name));
            }
            if self.ports[..i].iter().any(|q| q.device == p.device) {
                return Err(format!("ports: the device {:?} is used twice", p.device));
            }
        }
        if self.flow_table.capacity < 16 {
            return Err("flow-table.capacity: must be at least 16".into());
        }
        if self.flow_table.capacity > crate::flow::FlowTable::MAX_CAPACITY {
            return Err(format!(
                "flow-table.capacity: {} is more than a table holds ({})",
                self.flow_table.capacity,
                crate::flow::FlowTable::MAX_CAPACITY
            ));
        }
        if self.app_id.contexts == 0 {
            return Err("app-id.contexts: must be at least 1".into());
        }
        self.check_memory()?;
        let sip = &self.alg.sip;
        if !(1..=65_535).contains(&sip.tcp_buffer_bytes) {
            return Err("alg.sip.tcp-buffer-bytes: must be 1 to 65535".into());
        }
        if sip.tcp_buffers.saturating_mul(sip.tcp_buffer_bytes) > 1 << 30 {
            return Err("alg.sip.tcp-buffers x tcp-buffer-bytes: at most 1 GiB per worker".into());
        }
        let frag = &self.fragments;
        if !(576..=65_000).contains(&frag.max_bytes) {
            return Err("fragments.max-bytes: must be 576 to 65000".into());
        }
        if frag.datagrams.saturating_mul(frag.max_bytes) > 1 << 30 {
            return Err("fragments.datagrams x max-bytes: at most 1 GiB per worker".into());
        }
        if frag.timeout == 0 {
            return Err("fragments.timeout: must be at least 1 second".into());
        }
        let known = |n: &str, what: &str| -> Result<usize, String> {
            self.port_index(n)
                .ok_or_else(|| format!("{what}: no port named {n:?} in ports"))
        };
        match &self.forwarding {
            Forwarding::VirtualWire { pairs } => {
                let mut used = vec![false; self.ports.len()];
                for [a, b] in pairs {
                    for n in [a, b] {
                        let i = known(n, "forwarding.pairs")?;
                        if used[i] {
                            return Err(format!("forwarding.pairs: port {n:?} is in two pairs"));
                        }
                        used[i] = true;
                    }
                }
            }
            Forwarding::Routed {
                interfaces,
                routes,
                neighbours,
                ..
            } => {
                if *neighbours == 0 {
                    return Err("forwarding.neighbours: must be at least 1".into());
                }
                let mut prefixes = Vec::new();
                for i in interfaces {
                    known(&i.port, "forwarding.interfaces")?;
                    let p: Prefix = i
                        .address
                        .parse()
                        .map_err(|e| format!("forwarding.interfaces ({}): {e}", i.port))?;
                    prefixes.push(p);
                }
                for r in routes {
                    r.prefix
                        .parse::<Prefix>()
                        .map_err(|e| format!("forwarding.routes: {e}"))?;
                    let via: Ipv4Addr = r.via.parse().map_err(|_| {
                        format!("forwarding.routes: via {:?} is not an IPv4 address", r.via)
                    })?;
                    if !prefixes.iter().any(|p| p.contains(via)) {
                        return Err(format!(
                            "forwarding.routes: next hop {via} of {} is not in any interface's prefix",
                            r.prefix
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The machine's memory (MemTotal), if /proc/meminfo tells it.
fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes as an operator reads them (KiB, MiB, GiB, TiB, one decimal).
fn human_bytes(b: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} bytes")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let c = Config::embedded();
        assert!(matches!(c.forwarding, Forwarding::VirtualWire { .. }));
        assert!(c.eal_args().iter().any(|a| a == "--no-huge"));
    }

    #[test]
    fn a_section_given_in_part_takes_the_defaults_for_the_rest() {
        let text = "version: 1
eal: { args: [\"-l\", \"0-1\", \"--no-huge\"] }
workers: { lcores: [1] }
ports: [{ name: a, device: net_null0 }, { name: b, device: net_null1 }]
forwarding: { mode: virtual-wire, pairs: [[a, b]] }
stats: { segment: /tmp/x }
flow-table: { per-source: { flows: 100 } }
mempool: { mbufs: 4095 }
";
        let c = Config::parse(text, "p.yaml").unwrap();
        assert_eq!(c.stats.publish_ms, StatsConfig::default().publish_ms);
        assert_eq!(c.flow_table.capacity, FlowTableConfig::default().capacity);
        assert_eq!(c.flow_table.per_source.flows, 100);
        assert_eq!(c.mempool.cache, MempoolConfig::default().cache);
    }

    #[test]
    fn a_duplicate_key_is_named_without_the_librarys_advice() {
        let e = Config::parse("version: 1\nversion: 1\n", "d.yaml")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "d.yaml:2:1: duplicate mapping key: version");
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let text = EMBEDDED.replace("flow-table:", "flow-table:\n  colour: blue");
        let e = Config::parse(&text, "x.yaml").unwrap_err().to_string();
        assert!(e.starts_with("x.yaml:"), "{e}");
        let line = text.lines().position(|l| l.contains("colour")).unwrap() + 1;
        assert!(
            e.contains(&format!(":{line}:")),
            "{e} should name line {line}"
        );
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn semantic_errors_are_named() {
        let text = EMBEDDED.replace("version: 1", "version: 7");
        let e = Config::parse(&text, "x.yaml").unwrap_err().to_string();
        assert!(e.contains("version: 7 is not supported"), "{e}");
    }

    #[test]
    fn sizes_are_checked_against_the_memory_they_take() {
        let e = |from: &str, to: &str| {
            let text = EMBEDDED.replace(from, to);
            assert!(text != EMBEDDED, "template changed: {from}");
            Config::parse(&text, "x.yaml").unwrap_err().to_string()
        };
        // (the line changed, what the error must say)
        let cases: [(&str, &str, &[&str]); 6] = [
            (
                "capacity: 262144",
                "capacity: 100000000000",
                &["more than a table holds"],
            ),
            (
                "capacity: 262144",
                "capacity: 2000000000",
                &["GiB per worker", "more than this machine's"],
            ),
            (
                "contexts: 8192",
                "contexts: 0",
                &["app-id.contexts: must be at least 1"],
            ),
            (
                "contexts: 8192",
                "contexts: 100000000000",
                &["per worker", "GiB"],
            ),
            (
                "mbufs: 16383",
                "mbufs: 1000000",
                &["more than the EAL's -m 512 MiB", "GiB"],
            ),
            ("cache: 256", "cache: 20000", &["mempool.cache: 20000"]),
        ];
        for (from, to, want) in cases {
            let m = e(from, to);
            assert!(want.iter().all(|w| m.contains(w)), "{to}: {m}");
        }
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(100), "100 bytes");
    }

    #[test]
    fn routed_next_hop_must_be_connected() {
        let text = r#"
version: 1
eal: { args: ["--no-pci"] }
workers: { lcores: [1] }
ports:
  - { name: a, device: net_null0, vdev-args: "" }
forwarding:
  mode: routed
  interfaces: [{ port: a, address: 192.0.2.1/24 }]
  routes: [{ prefix: 0.0.0.0/0, via: 10.0.0.1 }]
"#;
        let e = Config::parse(text, "r.yaml").unwrap_err().to_string();
        assert!(e.contains("not in any interface's prefix"), "{e}");
    }

    #[test]
    fn prefix_parsing() {
        let p: Prefix = "192.0.2.9/24".parse().unwrap();
        assert!(p.contains("192.0.2.200".parse().unwrap()));
        assert!(!p.contains("192.0.3.1".parse().unwrap()));
        assert!("192.0.2.1/33".parse::<Prefix>().is_err());
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
    }
}
