//! The control plane live: `aperture-dataplane run` forwarding a capture in a loop
//! (net_pcap `infinite_rx`), `aperture-control serve` installing and reloading the policy and
//! serving /metrics (checked with promtool), aperturectl reloading it; the policy reloaded
//! 100 times under traffic (two valid policies and an invalid one, alternating); the control
//! plane killed and restarted while the dataplane keeps forwarding.
mod common;

use common::{bin, TempDir};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ALLOW_ALL: &str = "version: 1\nrules:\n  - { name: everything, action: allow }\n";
const NO_DNS: &str = "version: 1
rules:
  - { name: no-dns, application: [dns], action: drop }
  - { name: everything, action: allow }
";
const INVALID: &str = "version: 1\nrules:\n  - { name: x, action: allow, colour: red }\n";

/// Kills the child on drop (a failing test leaves no process behind).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http(addr: &str, method: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut r = String::new();
    s.read_to_string(&mut r).ok()?;
    let code = r.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, r.split("\r\n\r\n").nth(1).unwrap_or("").to_string()))
}

/// The value of a sample line `name{labels} value` (summed over label sets).
fn metric(text: &str, name: &str) -> Option<f64> {
    let v: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

/// The value of the sample `name{...}` whose labels include `label` (e.g. `app="dns"`).
fn labeled(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| l.split('}').next().is_some_and(|ls| ls.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Bed {
    dir: TempDir,
    cfg: PathBuf,
    policy: PathBuf,
    addr: String,
}

impl Bed {
    fn new() -> Bed {
        let dir = TempDir::new("control");
        let sample = dir.path().join("sample.pcap");
        aperture_traffic::sample::write_sample(&sample, 1).unwrap();
        let d = dir.path().display();
        let cfg = dir.path().join("dataplane.yaml");
        std::fs::write(
            &cfg,
            format!(
                r#"version: 1
eal:
  args: ["-l", "0-1", "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--no-telemetry",
         "--file-prefix=apctl{pid}", "--log-level=lib.eal:error", "--log-level=pmd.net.pcap:error"]
mempool: {{ mbufs: 8191, cache: 128, data-room: 2048 }}
workers: {{ lcores: [1] }}
ports:
  - {{ name: inside, device: net_pcap0, vdev-args: "rx_pcap={d}/sample.pcap,infinite_rx=1,tx_pcap=/dev/null" }}
  - {{ name: outside, device: net_pcap1, vdev-args: "tx_pcap=/dev/null" }}
forwarding:
  mode: virtual-wire
  pairs: [[inside, outside]]
stats: {{ segment: {d}/stats, publish-ms: 20 }}
control: {{ socket: {d}/control.sock }}
flow-log: {{ path: {d}/log/flows.json, active-timeout: 1 }}
"#,
                pid = std::process::id()
            ),
        )
        .unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, ALLOW_ALL).unwrap();
        Bed {
            addr: format!("127.0.0.1:{}", free_port()),
            dir,
            cfg,
            policy,
        }
    }

    fn dataplane(&self) -> Proc {
        let log = std::fs::File::create(self.dir.path().join("dataplane.log")).unwrap();
        let c = Command::new(bin("aperture-dataplane"))
            .arg("--config")
            .arg(&self.cfg)
            .arg("--stats")
            .arg("run")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        Proc(c)
    }

    fn control(&self) -> Proc {
        let log = std::fs::File::create(self.dir.path().join("control.log")).unwrap();
        let c = Command::new(bin("aperture-control"))
            .args(["serve", "--config"])
            .arg(&self.cfg)
            .arg("--policy")
            .arg(&self.policy)
            .arg("--listen")
            .arg(&self.addr)
            .stderr(log)
            .spawn()
            .unwrap();
        Proc(c)
    }

    fn scrape(&self) -> Option<String> {
        match http(&self.addr, "GET", "/metrics")? {
            (200, body) => Some(body),
            _ => None,
        }
    }

    fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "dataplane:\n{}\ncontrol:\n{}",
            read("dataplane.log"),
            read("control.log")
        )
    }

    fn rx(&self) -> f64 {
        self.scrape()
            .and_then(|m| metric(&m, "aperture_rx_packets_total"))
            .unwrap_or(0.0)
    }
}

fn promtool_check(text: &str) {
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed by scripts/setup.sh");
    p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = p.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn policy_reloads_under_traffic_and_metrics_survive_a_killed_control_plane() {
    let bed = Bed::new();
    let mut dp = bed.dataplane();
    let mut control = bed.control();
    let limit = Duration::from_secs(30);
    wait_for("the first policy installed", limit, || {
        bed.scrape()
            .and_then(|m| metric(&m, "aperture_policy_generation"))
            == Some(2.0)
    });
    wait_for("traffic", limit, || bed.rx() > 10_000.0);
    let m = bed.scrape().unwrap();
    promtool_check(&m);
    assert_eq!(
        metric(&m, "aperture_config_last_reload_successful"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "aperture_dataplane_up"), Some(1.0));
    assert!(
        m.contains("aperture_dropped_packets_total{worker=\"0\",reason=\"policy\"}"),
        "{m}"
    );

    // The dashboard shipped in conf/grafana plots only metrics that exist.
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("conf/grafana/aperture.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dash["uid"], "aperture-overview");
    let mut plotted = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{expr}");
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("aperture_"))
            {
                assert!(
                    m.lines().any(|l| l.split(['{', ' ']).next() == Some(name)),
                    "the dashboard plots {name}, which /metrics does not have"
                );
                plotted += 1;
            }
        }
    }
    assert!(plotted >= 10);
    let o = Command::new("promtool")
        .args(["check", "config"])
        .arg(common::root().join("conf/prometheus/prometheus.yml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));

    // 100 reloads: allow-all, no-dns, invalid, ... through the API and aperturectl.
    let mut generation = 2;
    for i in 0..100 {
        let (text, valid) = match i % 3 {
            0 => (NO_DNS, true),
            1 => (INVALID, false),
            _ => (ALLOW_ALL, true),
        };
        std::fs::write(&bed.policy, text).unwrap();
        let (code, body) = if i % 2 == 0 {
            http(&bed.addr, "POST", "/-/reload").expect("reload answered")
        } else {
            let o = Command::new(bin("aperturectl"))
                .args(["--json", "reload", "--control", &bed.addr])
                .output()
                .unwrap();
            let code = if o.status.success() { 200 } else { 400 };
            (code, String::from_utf8_lossy(&o.stdout).into_owned())
        };
        let v: serde_json::Value =
            serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
        if valid {
            generation += 1;
            assert_eq!(
                (code, v["generation"].as_u64()),
                (200, Some(generation)),
                "reload {i}: {v}"
            );
        } else {
            assert_eq!(code, 400, "reload {i}: {v}");
            let e = v["errors"][0].as_str().unwrap();
            assert!(
                e.starts_with(&format!(
                    "{}:3:31: error: unknown field `colour`",
                    bed.policy.display()
                )),
                "reload {i}: {e}"
            );
        }
    }
    let m = bed.scrape().unwrap();
    assert_eq!(
        metric(&m, "aperture_policy_generation"),
        Some(generation as f64)
    );
    // Per application, rule and port, from one consistent snapshot of the worker: the DNS
    // flows were counted under dns, stopped by no-dns while it was installed, and every
    // packet the workers saw was counted under a port.
    let v = |name: &str, label: &str| labeled(&m, name, label).unwrap_or(0.0);
    assert!(v("aperture_app_packets_total", "app=\"dns\"") > 0.0, "{m}");
    assert!(
        v("aperture_app_flows_denied_total", "app=\"dns\"") > 0.0,
        "{m}"
    );
    assert!(
        v("aperture_rule_hits_total", "rule=\"no-dns\"") > 0.0,
        "{m}"
    );
    assert!(
        v("aperture_rule_hits_total", "rule=\"everything\"") > 0.0,
        "{m}"
    );
    assert!(
        v("aperture_rule_packets_total", "rule=\"everything\"") > 0.0,
        "{m}"
    );
    let app_packets = metric(&m, "aperture_app_packets_total").unwrap();
    let rule_packets = metric(&m, "aperture_rule_packets_total").unwrap();
    let rx = metric(&m, "aperture_rx_packets_total").unwrap();
    assert!(rule_packets <= app_packets && app_packets <= rx, "{m}");
    assert!(app_packets > 0.9 * rx, "the sample is IP: {m}");
    // The ports' counters are published by the service thread, the workers' by the workers,
    // each on its own period: a later snapshot's port count covers an earlier one's workers.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let later = bed.scrape().unwrap();
    assert!(
        labeled(&later, "aperture_port_rx_packets_total", "port=\"inside\"").unwrap_or(0.0) >= rx,
        "{m}\nlater:\n{later}"
    );
    // What a port lost before any worker saw it is published live too, per port: frames the
    // driver missed (full receive queues) and receive failures for want of an mbuf.
    for counter in [
        "aperture_port_rx_missed_total",
        "aperture_port_rx_nombuf_total",
    ] {
        let v = labeled(&later, counter, "port=\"inside\"");
        assert!(v.is_some_and(|v| v >= 0.0), "no {counter}: {later}");
    }
    let (busy, looped) = (
        metric(&m, "aperture_worker_busy_seconds_total").unwrap(),
        metric(&m, "aperture_worker_loop_seconds_total").unwrap(),
    );
    assert!(busy > 0.0 && busy <= looped, "{m}");
    assert_eq!(
        metric(&m, "aperture_config_reloads_total"),
        Some(101.0),
        "{m}"
    );
    promtool_check(&m);

    // aperturectl show rules / show flows, from the live dataplane (no-dns is installed).
    let ctl = |args: &[&str]| -> serde_json::Value {
        let o = Command::new(bin("aperturectl"))
            .arg("--config")
            .arg(&bed.cfg)
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "aperturectl {args:?}: {text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    let r = ctl(&["show", "rules"]);
    let rules = r["rules"].as_array().unwrap();
    let names: Vec<&str> = rules.iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["no-dns", "everything", "default"], "{r}");
    assert_eq!(r["generation"].as_u64(), Some(generation), "{r}");
    assert_eq!(rules[0]["action"], "drop");
    assert!(rules[0]["hits"].as_u64().unwrap() > 0, "{r}");
    assert!(rules[1]["packets"].as_u64().unwrap() > 0, "{r}");
    let f = ctl(&["show", "flows", "--app", "dns"]);
    let flows = f["flows"].as_array().unwrap();
    assert_eq!(f["answered"], f["workers"], "{f}");
    assert!(!flows.is_empty(), "{f}");
    for x in flows {
        let on_path = x["app_path"].as_array().unwrap().iter().any(|a| a == "dns");
        assert!(x["app"] == "dns" || on_path, "{x}");
    }
    assert!(
        flows
            .iter()
            .any(|x| x["rule"] == "no-dns" && x["action"] == "drop"),
        "{f}"
    );
    let all = ctl(&["show", "flows", "--limit", "1000"]);
    let all = all["flows"].as_array().unwrap().clone();
    assert!(all.len() > flows.len(), "more flows than DNS ones");
    let ip = all[0]["src_ip"].as_str().unwrap().to_string();
    let by_ip = ctl(&["show", "flows", "--address", &ip]);
    let by_ip = by_ip["flows"].as_array().unwrap();
    assert!(!by_ip.is_empty());
    assert!(by_ip
        .iter()
        .all(|x| x["src_ip"] == ip || x["dest_ip"] == ip));
    assert!(by_ip.len() <= all.len());
    let some = ctl(&["show", "flows", "--rule", "everything", "--limit", "3"]);
    let some_flows = some["flows"].as_array().unwrap();
    assert_eq!(some_flows.len(), 3, "{some}");
    assert_eq!(some["truncated"], true, "{some}");
    assert!(some_flows.iter().all(|x| x["rule"] == "everything"));
    let o = Command::new(bin("aperturectl"))
        .arg("--config")
        .arg(&bed.cfg)
        .args(["show", "flows", "--app", "no-such-app"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown application \"no-such-app\""));
    let o = Command::new(bin("aperturectl"))
        .arg("--config")
        .arg(&bed.cfg)
        .args(["show", "rules"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.contains("no-dns") && l.contains("drop")),
        "{table}"
    );

    // The control plane dies: the dataplane keeps forwarding on its last policy.
    let _ = control.0.kill();
    let _ = control.0.wait();
    let seg = bed.dir.path().join("stats");
    let rx_of = || {
        aperture_control::Snapshot::read(&seg)
            .map(|s| s.workers.iter().map(|c| c.0[0]).sum::<u64>())
            .unwrap_or(0)
    };
    let before = rx_of();
    wait_for("forwarding without the control plane", limit, || {
        rx_of() > before + 10_000
    });
    // A new control plane reconnects, installs the file's policy, serves metrics again.
    std::fs::write(&bed.policy, ALLOW_ALL).unwrap();
    control = bed.control();
    wait_for("the restarted control plane", limit, || {
        bed.scrape()
            .and_then(|m| metric(&m, "aperture_policy_generation"))
            == Some(generation as f64 + 1.0)
    });
    drop(control);

    // Stop the dataplane: nothing it received went unaccounted for.
    sigint(&dp.0);
    let mut out = String::new();
    dp.0.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = dp.0.wait().unwrap();
    assert!(status.success(), "{out}\n{}", bed.logs());
    let counter = |name: &str| -> u64 {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    let (rx, tx, dropped) = (
        counter("rx_packets"),
        counter("tx_packets"),
        counter("drop_packets"),
    );
    assert!(rx > 50_000, "{out}");
    assert_eq!(
        rx,
        tx + dropped,
        "every received packet is sent or a counted drop: {out}"
    );
    // Drop reasons print as `drop REASON  worker 0: N` when not zero.
    let drops = |reason: &str| -> u64 {
        out.lines()
            .filter(|l| l.split_whitespace().take(2).eq(["drop", reason]))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(drops("tx-full"), 0, "{out}");
    assert!(drops("policy") > 0, "no-dns dropped the DNS flows: {out}");
}

/// SIGINT to the dataplane (its clean stop: flows ended, counters printed).
fn sigint(c: &Child) {
    let _ = Command::new("kill")
        .args(["-INT", &c.id().to_string()])
        .status();
}

/// Reads the JSON Lines file at `p` (lines that do not parse fail the test).
fn records(p: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `run` without `--flow-log` writes where dataplane.yaml's `flow-log.path` says (its
/// directory made), interim records of long flows arrive while they last, and SIGHUP
/// reopens the file after a rotation (logrotate's rename-then-signal).
#[test]
fn the_flow_log_has_interim_records_and_reopens_on_sighup() {
    let bed = Bed::new();
    let dp = bed.dataplane();
    let log = bed.dir.path().join("log/flows.json");
    let limit = Duration::from_secs(30);
    // The sample's flows repeat forever: none ends, each reports every second.
    let interim = |r: &serde_json::Value| r["flow"]["interim"] == true;
    wait_for("interim records", limit, || {
        records(&log).iter().filter(|r| interim(r)).count() >= 5
    });
    let first = records(&log);
    for r in &first {
        assert_eq!(r["event_type"], "flow", "{r}");
        assert!(r["community_id"].as_str().unwrap().starts_with("1:"), "{r}");
        // Interim records have no end; final ones say why the flow ended.
        assert_eq!(interim(r), r["flow"].get("end_reason").is_none(), "{r}");
    }
    // A flow's later interim records carry its totals so far: they never go down.
    let id = &first.iter().find(|r| interim(r)).unwrap()["flow_id"];
    let rotated = bed.dir.path().join("log/flows.json.1");
    std::fs::rename(&log, &rotated).unwrap();
    let o = Command::new("kill")
        .args(["-HUP", &dp.0.id().to_string()])
        .status()
        .unwrap();
    assert!(o.success());
    wait_for("records in the reopened flow log", limit, || {
        records(&log).iter().any(|r| &r["flow_id"] == id)
    });
    let before = records(&rotated);
    let after = records(&log);
    let pkts = |r: &serde_json::Value| r["flow"]["pkts_toserver"].as_u64().unwrap();
    let last_before = before
        .iter()
        .filter(|r| &r["flow_id"] == id)
        .map(pkts)
        .max();
    let first_after = after.iter().filter(|r| &r["flow_id"] == id).map(pkts).min();
    assert!(
        first_after >= last_before,
        "{last_before:?} {first_after:?}"
    );
    assert!(bed.logs().contains("reopened (SIGHUP)"), "{}", bed.logs());
}
