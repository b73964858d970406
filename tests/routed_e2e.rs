//! Routed mode end to end: a client namespace pings and talks UDP and TCP to a server
//! namespace through `aperture-dataplane`, attached with net_af_packet to the appliance
//! namespace's veths (scripts/testbed.sh). Needs root; tears everything down even on failure.
mod common;
#[path = "common/testbed.rs"]
mod testbed;
use common::*;
use std::process::{Command, Stdio};
use testbed::*;

impl Testbed {
    fn start_dataplane(&mut self, policy: &str) {
        self.start_dataplane_with(policy, 1)
    }

    /// `start_dataplane` with `workers` workers, each polling its own queue of both ports
    /// (af_packet `qpairs`), their lcores sharing the second CPU.
    fn start_dataplane_with(&mut self, policy: &str, workers: usize) {
        let (eal_lcores, lcores) = worker_lcores(workers);
        std::fs::write(self.dir.path().join("policy.yaml"), policy).unwrap();
        let cfg = self.dir.path().join("routed.yaml");
        std::fs::write(
            &cfg,
            format!(
                r#"version: 1
eal:
  args: ["--lcores={eal_lcores}", "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--no-telemetry",
         "--file-prefix={prefix}dp", "--log-level=lib.eal:error"]
mempool: {{ mbufs: 4095, cache: 128, data-room: 2048 }}
workers: {{ lcores: [{lcores}] }}
ports:
  - {{ name: inside, device: net_af_packet0, vdev-args: "iface=a0,qpairs={workers}" }}
  - {{ name: outside, device: net_af_packet1, vdev-args: "iface=a1,qpairs={workers}" }}
forwarding:
  mode: routed
  interfaces:
    - {{ port: inside, address: 192.0.2.1/24 }}
    - {{ port: outside, address: 198.51.100.1/24 }}
stats: {{ segment: {dir}/stats, publish-ms: 20 }}
policy: {dir}/policy.yaml
control: {{ socket: {dir}/control.sock }}
"#,
                prefix = self.prefix,
                dir = self.dir.path().display(),
            ),
        )
        .unwrap();
        self.launch(&cfg);
    }

    /// A TCP exchange: an echo server in namespace `server.0` bound to (`server.1`,
    /// `server.2`), a client in `client.0` connecting to (`client.1`, `client.2`), 100 KiB
    /// each way. Returns the client's verdict ("ok") and the peer address the server saw.
    fn tcp_exchange(
        &self,
        server: (&str, &str, u16),
        client: (&str, &str, u16),
    ) -> (String, String) {
        let listener = spawn_ready(self.exec(
            server.0,
            &["python3", "-c", &tcp_echo_peer(server.1, server.2)],
        ));
        let o = self
            .exec(
                client.0,
                &["python3", "-c", &tcp_client(client.1, client.2)],
            )
            .output()
            .unwrap();
        let heard = listener.wait_with_output().unwrap();
        (
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
            String::from_utf8_lossy(&heard.stdout)
                .lines()
                .last()
                .unwrap_or_default()
                .to_string(),
        )
    }

    /// Waits (bounded) until one echo from the client to the server makes the round trip,
    /// then sends 5 that must all come back; returns ping's output.
    fn pings_through(&self) -> String {
        let warm = (0..10).any(|_| {
            self.exec("client", &["ping", "-c", "1", "-W", "1", "198.51.100.2"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        assert!(warm, "no echo reply within 10 tries: {}", self.log());
        let o = self
            .exec(
                "client",
                &["ping", "-c", "5", "-i", "0.2", "-W", "2", "198.51.100.2"],
            )
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success() && text.contains("5 received"),
            "ping: {text}\n{}",
            self.log()
        );
        text
    }
}

/// The inside may reach the outside; nothing may start from the outside.
const ROUTED_POLICY: &str = "version: 1
zones:
  - { name: inside, ports: [inside] }
  - { name: outside, ports: [outside] }
rules:
  - { name: refused, from: [inside], service: [udp/9999, tcp/8081], action: reset }
  - { name: lan-out, from: [inside], to: [outside], source: [192.0.2.0/24], action: allow }
default-action: deny
";

const UDP_ECHO: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.2", 7000)); s.settimeout(10)
print("ready", flush=True)
for _ in range(int(sys.argv[1])):
    data, peer = s.recvfrom(2048); s.sendto(data.upper(), peer)
"#;

const UDP_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.bind(("192.0.2.2", 40000))
ok = 0
for i in range(int(sys.argv[1])):
    s.sendto(b"hello %d" % i, ("198.51.100.2", 7000))
    data, _ = s.recvfrom(2048)
    ok += data == (b"HELLO %d" % i)
print(ok)
"#;

/// Listens on udp/9999 and tcp/8081 (so that a refusal can only come from the appliance)
/// and prints what reached it.
const LISTEN_BOTH: &str = r#"
import select, socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("198.51.100.2", 9999))
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("198.51.100.2", 8081)); t.listen(4)
print("ready", flush=True)
got = []
r, _, _ = select.select([u, t], [], [], 4)
got = ["udp" if s is u else "tcp" for s in r]
print(" ".join(got) or "nothing")
"#;

/// Sends a datagram to udp/9999 and connects to tcp/8081; prints how each was answered.
const TRY_BOTH: &str = r#"
import socket
r = []
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
u.connect(("198.51.100.2", 9999)); u.send(b"x")
try:
    u.recv(100); r.append("udp-answered")
except ConnectionRefusedError:
    r.append("udp-refused")
except socket.timeout:
    r.append("udp-timeout")
t = socket.socket(); t.settimeout(2)
try:
    t.connect(("198.51.100.2", 8081)); r.append("tcp-connected")
except ConnectionRefusedError:
    r.append("tcp-refused")
except socket.timeout:
    r.append("tcp-timeout")
print(" ".join(r))
"#;

#[test]
fn client_reaches_server_through_the_routed_dataplane() {
    let mut tb = Testbed::up();

    // Nothing forwards before the dataplane runs: the appliance kernel must stay silent.
    let o = tb
        .exec("client", &["ping", "-c", "1", "-W", "1", "198.51.100.2"])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "ping succeeded without the dataplane: the testbed leaks"
    );

    tb.start_dataplane(ROUTED_POLICY);

    // Warm-up: the client's kernel remembers the failed resolution above and every hop still
    // has to learn its neighbours; then every echo of a series must come back.
    let text = tb.pings_through();

    assert!(
        text.contains("ttl=63"),
        "the appliance decrements TTL: {text}"
    );

    // A `reset` rule: the client is refused at once (ICMP port unreachable, TCP RST) by the
    // appliance, although the server listens on both ports and sees nothing.
    let listener = spawn_ready(tb.exec("server", &["python3", "-c", LISTEN_BOTH]));
    let o = tb
        .exec("client", &["python3", "-c", TRY_BOTH])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "udp-refused tcp-refused",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let heard = listener.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&heard.stdout).trim(), "nothing");

    // The policy: a ping started from the outside is denied (the neighbours are known by
    // now, so only the policy stops it).
    let o = tb
        .exec(
            "server",
            &["ping", "-c", "2", "-i", "0.2", "-W", "1", "192.0.2.2"],
        )
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "a ping from the outside passed the default deny: {}",
        String::from_utf8_lossy(&o.stdout)
    );

    let server = spawn_ready({
        let mut c = tb.exec("server", &["python3", "-c", UDP_ECHO, "10"]);
        c.stderr(Stdio::inherit());
        c
    });
    let o = tb
        .exec("client", &["python3", "-c", UDP_CLIENT, "10"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "10",
        "UDP echoes: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(server.wait_with_output().unwrap().status.success());

    let (result, _) = tb.tcp_exchange(
        ("server", "198.51.100.2", 8080),
        ("client", "198.51.100.2", 8080),
    );
    assert_eq!(result, "ok", "TCP echo: {}", tb.log());

    // The control plane reads the live counters from the shared-memory stats segment.
    let o = control_stats(&tb);
    let stats = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "aperture-control stats: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rx: u64 = stats
        .lines()
        .find(|l| l.starts_with("rx_packets "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rx_packets in {stats}"));
    assert!(
        rx >= 40,
        "at least the pings, UDP and TCP packets were counted live: {stats}"
    );

    let out = tb.stop_dataplane();
    // Once the dataplane has exited its last counters are still shown, but not as live.
    let o = control_stats(&tb);
    assert!(!o.status.success(), "stale counters reported as live");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is not running"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("rx_packets"));
    let flows = read_flows(&tb.flow_log());
    let find = |proto: &str, dport: u64| {
        flows
            .iter()
            .find(|f| {
                f["proto"] == proto
                    && f["dest_port"] == dport
                    && f["src_ip"] == "192.0.2.2"
                    && f["dest_ip"] == "198.51.100.2"
            })
            .unwrap_or_else(|| panic!("no {proto} flow to port {dport} in {flows:?}"))
    };
    let udp = find("UDP", 7000);
    assert_eq!(
        (
            udp["flow"]["pkts_toserver"].as_u64(),
            udp["flow"]["pkts_toclient"].as_u64()
        ),
        (Some(10), Some(10))
    );
    let tcp = find("TCP", 8080);
    assert_eq!(tcp["flow"]["end_reason"], "tcp-fin", "{tcp}");
    assert!(
        tcp["flow"]["bytes_toserver"].as_u64().unwrap() > 102_400,
        "{tcp}"
    );
    let icmp: u64 = flows
        .iter()
        .filter(|f| f["proto"] == "ICMP")
        .map(common::packets)
        .sum();
    assert!(icmp >= 10, "pings in the flow log: {flows:?}");
    assert_eq!(udp["action"], "allow", "{udp}");
    assert_eq!(udp["rule"], "lan-out", "{udp}");
    let denied = flows
        .iter()
        .find(|f| f["proto"] == "ICMP" && f["src_ip"] == "198.51.100.2")
        .unwrap_or_else(|| panic!("no record of the ping from the outside: {flows:?}"));
    assert_eq!(
        (denied["action"].as_str(), denied["rule"].as_str()),
        (Some("deny"), Some("default")),
        "{denied}"
    );
    assert_eq!(denied["flow"]["pkts_toclient"], 0, "{denied}");
    assert!(out.contains("flows_denied"), "{out}");
    let refused = flows
        .iter()
        .filter(|f| f["action"] == "reset" && f["rule"] == "refused")
        .count();
    assert_eq!(refused, 2, "{flows:?}");
    let resets: u64 = out
        .lines()
        .find(|l| l.trim_start().starts_with("resets_sent"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no resets_sent in {out}"));
    assert!(resets >= 2, "{out}");
    assert!(
        out.contains("arp_replies_sent"),
        "--stats printed at exit: {out}"
    );
}

/// A UDP echo server that also says which peers it saw.
const UDP_ECHO_PEERS: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.2", 7000)); s.settimeout(10)
print("ready", flush=True)
peers = set()
for _ in range(int(sys.argv[1])):
    data, peer = s.recvfrom(2048); s.sendto(data.upper(), peer); peers.add(peer[0])
print(" ".join(sorted(peers)))
"#;

/// A connected UDP socket to a closed port: "refused" when the port unreachable reaches it
/// (the kernel matches the packet the error quotes to the socket).
const UDP_TO_CLOSED: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.connect(("198.51.100.2", 7999))
for _ in range(3):
    try:
        s.send(b"anyone?"); s.recv(100); print("answered"); break
    except ConnectionRefusedError:
        print("refused"); break
    except socket.timeout:
        continue
else:
    print("no answer")
"#;

/// A TCP echo server (reversing) that prints the peer address of each connection.
fn tcp_echo_peer(bind: &str, port: u16) -> String {
    format!(
        r#"
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{bind}", {port})); s.listen(1); s.settimeout(10)
print("ready", flush=True)
c, peer = s.accept(); c.settimeout(5)
buf = b""
while True:
    d = c.recv(65536)
    if not d: break
    buf += d
c.sendall(buf[::-1]); c.close()
print(peer[0])
"#
    )
}

fn tcp_client(host: &str, port: u16) -> String {
    format!(
        r#"
import socket
c = socket.create_connection(("{host}", {port}), timeout=5)
payload = bytes(range(256)) * 400
c.sendall(payload); c.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = c.recv(65536)
    if not d: break
    got += d
print("ok" if got == payload[::-1] else "bad %d" % len(got))
"#
    )
}

/// conf/examples/nat-gateway across namespaces: source NAT to the outside interface's
/// address and a port forward. The
/// server sees only the appliance's address (ping, UDP, TCP all make the round trip), a
/// connection from the outside to the forwarded port reaches the inside host, and the flow
/// log says what each flow was translated to.
#[test]
fn a_nat_gateway_hides_the_inside_and_forwards_a_port() {
    nat_gateway(1);
}

/// The same with two workers: the kernel spreads flows over both queues by a symmetric
/// hash, so the return traffic of a translated flow (a different tuple) often lands on the
/// worker that did not translate it, and is handed to the owner of its port.
#[test]
fn a_nat_gateway_with_two_workers_hands_return_traffic_to_its_owner() {
    let out = nat_gateway(2);
    let sum = |name: &str| total(&out, name);
    assert!(out.contains("2 worker(s)"), "two workers ran: {out}");
    assert!(sum("handoff_sent") > 0, "nothing was handed over: {out}");
    assert_eq!(sum("handoff_sent"), sum("handoff_received"), "{out}");
}

/// `aperture-control stats` on the testbed's stats segment.
fn control_stats(tb: &Testbed) -> std::process::Output {
    Command::new(bin("aperture-control"))
        .arg("stats")
        .arg("--segment")
        .arg(tb.dir.path().join("stats"))
        .output()
        .unwrap()
}

/// Counter `name` of the `--stats` table summed over the workers' columns.
fn total(out: &str, name: &str) -> u64 {
    worker_counter(out, name).unwrap_or_else(|| panic!("no {name} in {out}"))
}

/// conf/examples/nat-gateway with `workers` workers; returns the dataplane's output.
fn nat_gateway(workers: usize) -> String {
    let mut tb = Testbed::up();
    if workers == 1 {
        tb.start_example("nat-gateway");
    } else {
        tb.start_example_with("nat-gateway", workers);
    }
    tb.pings_through();

    // UDP: the server sees the appliance's address, and every echo comes back.
    let server = spawn_ready(tb.exec("server", &["python3", "-c", UDP_ECHO_PEERS, "10"]));
    let o = tb
        .exec("client", &["python3", "-c", UDP_CLIENT, "10"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "10",
        "UDP echoes through NAT: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        tb.log()
    );
    let peers = server.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&peers.stdout).lines().last(),
        Some("198.51.100.1")
    );

    // An ICMP error about a translated flow comes back translated, the packet it quotes
    // too: the server's port unreachable reaches the inside socket.
    let o = tb
        .exec("client", &["python3", "-c", UDP_TO_CLOSED])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "refused",
        "port unreachable through NAT: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        tb.log()
    );

    // TCP, 100 KiB each way.
    let (result, peer) = tb.tcp_exchange(
        ("server", "198.51.100.2", 8080),
        ("client", "198.51.100.2", 8080),
    );
    assert_eq!(result, "ok", "TCP through NAT: {}", tb.log());
    assert_eq!(peer, "198.51.100.1");

    // The port forward: the server connects to the appliance's address, the inside host
    // answers and sees the real outside peer.
    let (result, peer) = tb.tcp_exchange(
        ("client", "192.0.2.2", 8080),
        ("server", "198.51.100.1", 2080),
    );
    assert_eq!(result, "ok", "port forward: {}", tb.log());
    assert_eq!(peer, "198.51.100.2");

    // Nothing else from the outside gets in: a ping to the appliance's address and a
    // connection to another port are not forwarded.
    let o = tb
        .exec(
            "server",
            &["python3", "-c", &tcp_client("198.51.100.1", 2081)],
        )
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&o.stdout).trim(), "ok");

    let out = tb.stop_dataplane();
    let flows = read_flows(&tb.flow_log());
    let udp = flows
        .iter()
        .find(|f| f["proto"] == "UDP" && f["dest_port"] == 7000)
        .unwrap_or_else(|| panic!("no UDP flow: {flows:?}"));
    assert_eq!(
        udp["src_ip"], "192.0.2.2",
        "the flow log keys flows as first seen"
    );
    assert_eq!(udp["nat_src_ip"], "198.51.100.1", "{udp}");
    assert_eq!(
        (
            udp["flow"]["pkts_toserver"].as_u64(),
            udp["flow"]["pkts_toclient"].as_u64()
        ),
        (Some(10), Some(10))
    );
    let fwd = flows
        .iter()
        .find(|f| f["proto"] == "TCP" && f["dest_port"] == 2080)
        .unwrap_or_else(|| panic!("no forwarded flow: {flows:?}"));
    assert_eq!(
        (fwd["nat_dst_ip"].as_str(), fwd["nat_dst_port"].as_u64()),
        (Some("192.0.2.2"), Some(8080)),
        "{fwd}"
    );
    assert_eq!(fwd["action"], "allow", "{fwd}");
    assert!(
        fwd["flow"]["bytes_toclient"].as_u64().unwrap() > 100_000,
        "{fwd}"
    );
    let stat = |name: &str| total(&out, name);
    assert!(stat("nat_mappings_created") >= 3, "{out}");
    assert!(stat("nat_bindings_created") >= 4, "{out}");
    assert!(stat("icmp_errors_related") >= 1, "{out}");
    out
}

/// 48 UDP flows (three datagrams echoed each) and 12 TCP connections from their own ports.
const MANY_FLOWS: &str = r#"
import socket, sys
ok = 0
socks = []
for i in range(48):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    s.bind(("192.0.2.2", 41000 + i)); socks.append(s)
for n in range(3):
    for i, s in enumerate(socks):
        s.sendto(b"flow %d %d" % (i, n), ("198.51.100.2", 7000))
        try:
            ok += s.recvfrom(2048)[0] == (b"FLOW %d %d" % (i, n))
        except socket.timeout:
            pass
for i in range(12):
    t = socket.create_connection(("198.51.100.2", 8080), timeout=5)
    t.sendall(b"x" * 2000); got = b""
    while len(got) < 2000:
        d = t.recv(4096)
        if not d: break
        got += d
    ok += got == b"X" * 2000
    t.close()
print(ok)
"#;

/// Echoes 144 datagrams on udp/7000 (upper-cased) and 12 TCP connections on tcp/8080.
const MANY_ECHO: &str = r#"
import socket, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("198.51.100.2", 7000)); u.settimeout(20)
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("198.51.100.2", 8080)); t.listen(16); t.settimeout(20)
def tcp():
    for _ in range(12):
        c, _ = t.accept(); c.settimeout(5); got = b""
        while len(got) < 2000:
            d = c.recv(4096)
            if not d: break
            got += d
        c.sendall(got.upper()); c.close()
th = threading.Thread(target=tcp, daemon=True); th.start()
print("ready", flush=True)
for _ in range(144):
    data, peer = u.recvfrom(2048); u.sendto(data.upper(), peer)
th.join(30)
"#;

/// Two workers, each polling its own queue of both ports (af_packet qpairs=2: the kernel's
/// fanout hash, symmetric, as RSS with a symmetric key would be): both directions of every
/// flow reach the same worker. A flow split across workers would show as two records of
/// one tuple, or as a record answered one way only.
#[test]
fn two_workers_see_both_directions_of_every_flow() {
    let mut tb = Testbed::up();
    tb.start_dataplane_with(ROUTED_POLICY, 2);
    tb.pings_through();
    let server = spawn_ready(tb.exec("server", &["python3", "-c", MANY_ECHO]));
    let o = tb
        .exec("client", &["python3", "-c", MANY_FLOWS])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        (48 * 3 + 12).to_string(),
        "every echo came back: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        tb.log()
    );
    let _ = server.wait_with_output();
    let out = tb.stop_dataplane();
    assert!(
        tb.log()
            .contains("spread by the kernel's symmetric fanout hash"),
        "{}",
        tb.log()
    );
    let flows = final_records(&read_flows(&tb.flow_log()));
    let ours: Vec<&serde_json::Value> = flows
        .iter()
        .filter(|f| {
            f["src_ip"] == "192.0.2.2" && matches!(f["dest_port"].as_u64(), Some(7000 | 8080))
        })
        .collect();
    let mut tuples = std::collections::BTreeMap::new();
    for f in &ours {
        let k = format!("{} {} {}", f["proto"], f["src_port"], f["dest_port"]);
        *tuples.entry(k).or_insert(0) += 1;
        assert!(
            f["flow"]["pkts_toserver"].as_u64() > Some(0)
                && f["flow"]["pkts_toclient"].as_u64() > Some(0),
            "a flow seen one way only (split across workers): {f}"
        );
    }
    assert_eq!(tuples.len(), 60, "{tuples:?}");
    assert!(tuples.values().all(|&n| n == 1), "split flows: {tuples:?}");
    let workers: std::collections::BTreeSet<u64> =
        ours.iter().filter_map(|f| f["worker"].as_u64()).collect();
    assert_eq!(
        workers.len(),
        2,
        "the flows were spread over both workers: {out}"
    );
}
