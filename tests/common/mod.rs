//! Shared helpers of the integration tests: where the binaries and the corpus are, running a
//! replay, reading flow logs and captures, and asking tshark.
#![allow(dead_code)]
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// tests/corpus in the checkout (a copy of the upstream corpus, unchanged).
pub fn corpus() -> PathBuf {
    let c = root().join("tests/corpus");
    assert!(c.is_dir(), "the test corpus is expected at {}", c.display());
    c
}

/// The scored captures of the nDPI corpus (tests/ndpi-scored.txt, see there), as paths.
pub fn ndpi_scored() -> Vec<PathBuf> {
    let list = root().join("tests/ndpi-scored.txt");
    let text = std::fs::read_to_string(&list)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", list.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|n| {
            let p = corpus().join("ndpi").join(n);
            assert!(
                p.is_file(),
                "{} lists {n}, which is missing",
                list.display()
            );
            p
        })
        .collect()
}

/// A binary of the workspace, built by `cargo build --workspace` (scripts/test.sh does).
pub fn bin(name: &str) -> PathBuf {
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<name>
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    // Cargo does not rebuild another package's binaries for this package's tests: make sure
    // the binary is current (a no-op when it is).
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--bins", "--workspace"])
            .current_dir(root());
        if dir.file_name().is_some_and(|d| d == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build --bins failed");
    });
    assert!(p.exists(), "{} not found", p.display());
    p
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let d =
            std::env::temp_dir().join(format!("aperture-{tag}-{}-{}", std::process::id(), nanos()));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// What a replay produced.
pub struct Replay {
    pub stdout: String,
    pub out: PathBuf,
    pub flows: Vec<Value>,
}

/// Replays `pcap` with the embedded default config (or `config`) and returns its outputs.
pub fn replay(pcap: &Path, dir: &Path, config: Option<&Path>) -> Replay {
    replay_with(pcap, dir, config, &[])
}

/// `replay` with more arguments for the replay subcommand (e.g. `--policy FILE`).
pub fn replay_with(pcap: &Path, dir: &Path, config: Option<&Path>, extra: &[&str]) -> Replay {
    let out = dir.join("out.pcap");
    let log = dir.join("flows.jsonl");
    let mut cmd = Command::new(bin("aperture-dataplane"));
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.arg("replay")
        .arg("--pcap")
        .arg(pcap)
        .arg("--out")
        .arg(&out)
        .arg("--flow-log")
        .arg(&log)
        .arg("--out-dir")
        .arg(dir)
        .arg("--timeout")
        .arg("120")
        .args(extra);
    let o = cmd.output().expect("run aperture-dataplane replay");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "replay of {} failed: {}\n{}",
        pcap.display(),
        String::from_utf8_lossy(&o.stderr),
        stdout
    );
    Replay {
        stdout,
        out,
        flows: read_flows(&log),
    }
}

pub fn read_flows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// Frames of a capture (data only), any format pcap-file reads.
pub fn frames(path: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    aperture_dataplane::replay::capture::for_each_frame(path, |f| {
        out.push(f.data.into_owned());
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    out
}

/// Runs tshark with `args` on `pcap`, returning stdout.
pub fn tshark(pcap: &Path, args: &[&str]) -> String {
    let o = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(pcap)
        .args(args)
        .output()
        .expect("tshark is installed by scripts/setup.sh");
    assert!(
        o.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A conversation as tshark's `-z conv,udp -z conv,tcp` reports it, both orderings merged.
#[derive(Debug, Default, Clone)]
pub struct Conv {
    pub frames: u64,
    /// Byte totals as printed: (value, unit) per table row ("bytes", "kB", "MB").
    pub bytes: Vec<(u64, String)>,
}

/// Key: (proto, lower endpoint, higher endpoint) with endpoints as "ip:port".
pub type ConvKey = (String, String, String);

pub fn conv_key(proto: &str, a: &str, b: &str) -> ConvKey {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    (proto.to_string(), x.to_string(), y.to_string())
}

pub fn tshark_conversations(pcap: &Path) -> std::collections::BTreeMap<ConvKey, Conv> {
    let text = tshark(pcap, &["-q", "-z", "conv,udp", "-z", "conv,tcp"]);
    let mut out = std::collections::BTreeMap::new();
    let mut proto = "";
    for line in text.lines() {
        if line.contains("TCP Conversations") {
            proto = "tcp";
        } else if line.contains("UDP Conversations") {
            proto = "udp";
        }
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 11 || t[1] != "<->" {
            continue;
        }
        // a <-> b | fr_ab bytes unit | fr_ba bytes unit | total_frames total_bytes unit | ...
        let frames: u64 = t[9].parse().expect("total frames");
        let bytes: u64 = t[10].parse().expect("total bytes");
        let e: &mut Conv = out.entry(conv_key(proto, t[0], t[2])).or_default();
        e.frames += frames;
        e.bytes.push((bytes, t[11].to_string()));
    }
    out
}

/// Whether `exact` bytes is what tshark printed as `value unit` (it rounds kB and MB).
pub fn bytes_agree(exact: u64, printed: &[(u64, String)]) -> bool {
    if printed.len() != 1 {
        // Several rows for one pair (tshark split it): only the sum of frames is comparable.
        return true;
    }
    let (v, unit) = &printed[0];
    let scale = match unit.as_str() {
        "bytes" => return exact == *v,
        "kB" => 1_000,
        "MB" => 1_000_000,
        _ => return false,
    };
    (exact as f64 / scale as f64 - *v as f64).abs() <= 1.0
}

/// A policy that hides `inside` (a prefix) behind the pool address `pool` and allows
/// everything.
pub fn source_nat_policy(inside: &str, pool: &str) -> String {
    format!(
        "version: 1
nat:
  - name: hide
    source: [{inside}]
    source-translation: {{ pool: [{pool}] }}
rules:
  - {{ name: all, action: allow }}
"
    )
}
