//! The three-namespace testbed (scripts/testbed.sh) with a dataplane in the appliance
//! namespace, for the end-to-end tests that include it (`#[path] mod testbed;`). Dropping
//! it stops the dataplane and removes the namespaces, even when a test fails.
use super::common::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The testbed and the dataplane inside it; dropping it stops both.
pub struct Testbed {
    pub prefix: String,
    pub dataplane: Option<Child>,
    pub dir: TempDir,
}

impl Testbed {
    pub fn up() -> Testbed {
        assert!(
            Command::new("id")
                .arg("-u")
                .output()
                .map(|o| o.stdout == b"0\n")
                .unwrap_or(false),
            "the end-to-end tests create network namespaces and must run as root"
        );
        let prefix = format!("ap{}-", std::process::id() % 100_000);
        let t = Testbed {
            prefix,
            dataplane: None,
            dir: TempDir::new("routed"),
        };
        let o = t.testbed("up");
        assert!(
            o.status.success(),
            "testbed up failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        t
    }

    pub fn testbed(&self, verb: &str) -> std::process::Output {
        Command::new("bash")
            .arg(root().join("scripts/testbed.sh"))
            .arg(verb)
            .arg("--prefix")
            .arg(&self.prefix)
            .output()
            .expect("run scripts/testbed.sh")
    }

    pub fn ns(&self, which: &str) -> String {
        format!("{}{which}", self.prefix)
    }

    pub fn flow_log(&self) -> PathBuf {
        self.dir.path().join("flows.jsonl")
    }

    /// Starts the dataplane on one of conf/examples/ (its dataplane.yaml and policy.yaml),
    /// attached to this testbed: interface names, runtime paths and the EAL file prefix
    /// substituted, nothing else changed.
    pub fn start_example(&mut self, example: &str) {
        self.start_example_with(example, 1)
    }

    /// `start_example` with `workers` workers (two lcores may share a CPU), each polling its
    /// own queue of every port (af_packet `qpairs`: the kernel's fanout spreads flows by a
    /// symmetric hash, as RSS would).
    pub fn start_example_with(&mut self, example: &str, workers: usize) {
        let dir = root().join("conf/examples").join(example);
        let run = self.dir.path().display().to_string();
        let (eal_lcores, lcores) = worker_lcores(workers);
        let subst = |text: String| {
            let text = if workers > 1 {
                text.replace(r#""-l", "0-1""#, &format!(r#""--lcores={eal_lcores}""#))
                    .replace("lcores: [1]", &format!("lcores: [{lcores}]"))
                    .replace("qpairs=1", &format!("qpairs={workers}"))
            } else {
                text
            };
            text.replace("iface=eth1", "iface=a0")
                .replace("iface=eth2", "iface=a1")
                .replace("/run/aperture", &run)
                .replace(
                    "--file-prefix=aperture-nat-gw",
                    &format!("--file-prefix={}dp", self.prefix),
                )
        };
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        std::fs::write(self.dir.path().join("policy.yaml"), read("policy.yaml")).unwrap();
        let cfg = self.dir.path().join("routed.yaml");
        let text = subst(read("dataplane.yaml"));
        for gone in ["eth1", "eth2", "/run/aperture", "aperture-nat-gw"] {
            assert!(
                !text
                    .lines()
                    .any(|l| !l.trim_start().starts_with('#') && l.contains(gone)),
                "{gone} left in {text}"
            );
        }
        std::fs::write(&cfg, text).unwrap();
        self.launch(&cfg);
    }

    pub fn launch(&mut self, cfg: &std::path::Path) {
        let log = std::fs::File::create(self.dir.path().join("dataplane.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns("appl")])
            .arg(bin("aperture-dataplane"))
            .arg("--config")
            .arg(cfg)
            .arg("--stats")
            .arg("run")
            .arg("--flow-log")
            .arg(self.flow_log())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start aperture-dataplane");
        self.dataplane = Some(child);
        // Ready when the stats segment exists (workers are launched right after).
        let seg = self.dir.path().join("stats");
        let t = Instant::now();
        while !seg.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "dataplane did not start: {}",
                self.log()
            );
            if let Some(s) = self.dataplane.as_mut().unwrap().try_wait().unwrap() {
                panic!("dataplane exited ({s}): {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dataplane.log")).unwrap_or_default()
    }

    /// SIGTERM, then wait (bounded); returns the dataplane's output.
    pub fn stop_dataplane(&mut self) -> String {
        if let Some(mut c) = self.dataplane.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let t = Instant::now();
            loop {
                if let Some(s) = c.try_wait().unwrap() {
                    assert!(s.success(), "dataplane exited with {s}: {}", self.log());
                    break;
                }
                if t.elapsed() > Duration::from_secs(15) {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("dataplane did not stop on SIGTERM: {}", self.log());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.log()
    }

    pub fn exec(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.arg("20")
            .args(["ip", "netns", "exec", &self.ns(ns)])
            .args(args);
        c
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Some(mut c) = self.dataplane.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.testbed("down");
    }
}

/// Spawns `cmd` and waits for it to print "ready".
#[allow(dead_code)] // not every test that includes the testbed starts peers this way
pub fn spawn_ready(mut cmd: Command) -> Child {
    use std::io::BufRead;
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn peer");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "peer did not start");
    child
}

/// EAL `--lcores` (the main lcore on CPU 0, `workers` worker lcores sharing CPU 1: the machine
/// may have two) and the `workers.lcores` list, for a config with `workers` workers.
pub fn worker_lcores(workers: usize) -> (String, String) {
    let eal: Vec<String> = std::iter::once("0@0".to_string())
        .chain((1..=workers).map(|l| format!("{l}@1")))
        .collect();
    let lcores: Vec<String> = (1..=workers).map(|l| l.to_string()).collect();
    (eal.join(","), lcores.join(", "))
}
