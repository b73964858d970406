//! SIP calls through a NAT gateway, end to end: sipp user agents in the client (inside) and
//! server (outside) namespaces of scripts/testbed.sh place a call with SDP, and each side
//! plays G.711 RTP to the address and port the other side's SDP gave (sipp's
//! play_pcap_audio), so media reaches a party only if the gateway translated the SDP and
//! let the media in. Captures on the client's and the server's veth count the RTP that
//! arrived each way and look for the inside address in what reached the outside.
//!
//! The same script runs through Aperture (conf/examples/nat-gateway), through Aperture with
//! the SIP ALG switched off by the rule (media must fail: the test can fail), and through
//! Linux's own SIP ALG (nf_conntrack_sip and nf_nat_sip with nftables masquerade, in the same
//! namespace) as the reference; it prints a table of case x gateway. Needs root.
mod common;
#[path = "common/testbed.rs"]
mod testbed;

use aperture_traffic::build::udp4;
use aperture_traffic::rtp::RtpSource;
use aperture_traffic::write_pcap_file;
use common::*;
use std::net::SocketAddrV4;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testbed::*;

const CLIENT: &str = "192.0.2.2";
const SERVER: &str = "198.51.100.2";
const CLIENT_RTP: u16 = 7000;
const SERVER_RTP: u16 = 6000;
/// RTP packets each side plays (20 ms apart).
const PACKETS: usize = 100;

/// The caller: INVITE with SDP, ACK, plays its audio, hangs up.
const UAC: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="uac with media">
  <send retrans="500"><![CDATA[
INVITE sip:service@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: service <sip:service@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:service@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: service <sip:service@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <nop><action><exec play_pcap_audio="AUDIO"/></action></nop>
  <pause milliseconds="3000"/>
  <send retrans="500"><![CDATA[
BYE sip:service@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: service <sip:service@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"#;

/// The callee: answers with SDP, plays its audio, takes the BYE.
const UAS: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="uas with media">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
]]></send>
  <recv request="ACK" rtd="true" crlf="true"/>
  <nop><action><exec play_pcap_audio="AUDIO"/></action></nop>
  <recv request="BYE" timeout="15000"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <pause milliseconds="500"/>
</scenario>
"#;

/// A re-INVITE from the caller with its SDP's direction `dir` (hold: sendonly, resume:
/// sendrecv), answered, acknowledged.
fn reinvite(cseq: u32, dir: &str) -> String {
    format!(
        r#"  <send retrans="500"><![CDATA[
INVITE sip:service@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: service <sip:service@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 {cseq} IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
a={dir}
]]></send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send><![CDATA[
ACK sip:service@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: service <sip:service@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} ACK
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
"#
    )
}

/// The callee's side of one re-INVITE: its answer (with `dir`), then the ACK.
fn answer_reinvite(dir: &str) -> String {
    format!(
        r#"  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687638 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
a={dir}
]]></send>
  <recv request="ACK" crlf="true"/>
"#
    )
}

/// The scenarios of a call put on hold by the caller after its first audio, resumed, and
/// given a second round of audio each way.
fn hold_resume() -> (String, String) {
    let play = "  <nop><action><exec play_pcap_audio=\"AUDIO\"/></action></nop>\n";
    let uac_split = UAC.find("  <pause milliseconds=\"3000\"/>").unwrap();
    let uac = format!(
        "{}  <pause milliseconds=\"2500\"/>\n{}  <pause milliseconds=\"1000\"/>\n{}{}{}",
        &UAC[..uac_split],
        reinvite(2, "sendonly"),
        reinvite(3, "sendrecv"),
        play,
        &UAC[uac_split..].replace("CSeq: 2 BYE", "CSeq: 4 BYE"),
    );
    let uas_split = UAS.find("  <recv request=\"BYE\"").unwrap();
    let uas = format!(
        "{}{}{}{}{}",
        &UAS[..uas_split],
        answer_reinvite("recvonly"),
        answer_reinvite("sendrecv"),
        play,
        &UAS[uas_split..],
    );
    (uac, uas)
}

/// What one call through one gateway showed.
#[derive(Debug)]
struct CallResult {
    /// sipp's caller completed the call.
    signalling: bool,
    /// RTP packets that reached the client from the server, and the server from the client.
    to_client: usize,
    to_server: usize,
    /// SIP lines that reached the outside naming the client's inside address.
    leaks: Vec<String>,
    /// Rounds of audio each side played (2 with a hold and resume between).
    rounds: usize,
}

impl CallResult {
    fn passes(&self) -> bool {
        let want = self.rounds * PACKETS - PACKETS / 2;
        self.signalling && self.to_client >= want && self.to_server >= want && self.leaks.is_empty()
    }

    fn reason(&self) -> String {
        if self.passes() {
            return "pass".into();
        }
        let mut r = vec![];
        if !self.signalling {
            r.push("call failed".to_string());
        }
        let want = self.rounds * PACKETS - PACKETS / 2;
        if self.to_client < want || self.to_server < want {
            r.push(format!(
                "media {} to client, {} to server",
                self.to_client, self.to_server
            ));
        }
        if let Some(l) = self.leaks.first() {
            r.push(format!("inside address leaked: {l}"));
        }
        format!("FAIL: {}", r.join("; "))
    }
}

/// A G.711 RTP stream for play_pcap_audio (sipp sends its UDP payloads, keeping the timing).
fn write_audio(path: &Path) {
    let mut src = RtpSource::new(8, 0x1234_5678, 1, 0, 160, "e2e".into());
    let (a, b) = (
        "10.1.1.1:1000".parse::<SocketAddrV4>().unwrap(),
        "10.1.1.2:1000".parse::<SocketAddrV4>().unwrap(),
    );
    let frames: Vec<_> = (0..PACKETS)
        .map(|i| {
            let rtp = src.packet(&[0xd5; 160]);
            let t = 1_700_000_000_000_000_000 + i as u64 * 20_000_000;
            (t, udp4([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], a, b, &rtp))
        })
        .collect();
    write_pcap_file(path, &frames).unwrap();
}

/// Seconds each capture runs: longer than a call (ringing, 3 s of media, hang-up).
const CAPTURE_S: u64 = 16;

/// A capture of UDP on `dev` in namespace `ns` that stops by itself after `CAPTURE_S`.
fn capture(tb: &Testbed, ns: &str, dev: &str, out: &Path) -> Child {
    let child = tb
        .exec(ns, &["dumpcap", "-q", "-i", dev, "-f", "udp"])
        .args(["-a", &format!("duration:{CAPTURE_S}"), "-w"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dumpcap is installed with tshark");
    let t = Instant::now();
    while !out.exists() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    child
}

fn count(pcap: &Path, filter: &str) -> usize {
    tshark(pcap, &["-Y", filter]).lines().count()
}

/// Places one call from the client to the server through whatever gateway runs now.
fn call(tb: &Testbed, dir: &Path, tag: &str, sip_port: u16, hold: bool) -> CallResult {
    let audio = dir.join("audio.pcap");
    write_audio(&audio);
    let scenario = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text.replace("AUDIO", audio.to_str().unwrap())).unwrap();
        p
    };
    let (uac_text, uas_text) = if hold {
        hold_resume()
    } else {
        (UAC.to_string(), UAS.to_string())
    };
    let (uac, uas) = (
        scenario("uac.xml", &uac_text),
        scenario("uas.xml", &uas_text),
    );
    let (cpcap, spcap) = (
        dir.join(format!("{tag}-client.pcap")),
        dir.join(format!("{tag}-server.pcap")),
    );
    let cc = capture(tb, "client", "c0", &cpcap);
    let sc = capture(tb, "server", "s0", &spcap);
    let sipp = |ns: &str, args: &[&str]| -> Command {
        let mut c = tb.exec(ns, &["sipp"]);
        c.args(args)
            .args(["-m", "1", "-nostdin", "-timeout", "25s", "-timeout_error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let mut server = sipp(
        "server",
        &[
            "-sf",
            uas.to_str().unwrap(),
            "-i",
            SERVER,
            "-p",
            &sip_port.to_string(),
            "-mi",
            SERVER,
            "-mp",
            &SERVER_RTP.to_string(),
        ],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let client = sipp(
        "client",
        &[
            &format!("{SERVER}:{sip_port}"),
            "-sf",
            uac.to_str().unwrap(),
            "-i",
            CLIENT,
            "-p",
            &sip_port.to_string(),
            "-mi",
            CLIENT,
            "-mp",
            &CLIENT_RTP.to_string(),
            "-recv_timeout",
            "10s",
        ],
    )
    .status()
    .unwrap();
    let t = Instant::now();
    while server.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
    std::thread::sleep(Duration::from_millis(500));
    // Each capture ends by itself (and `exec` bounds it with timeout(1)).
    for mut c in [cc, sc] {
        let _ = c.wait();
    }
    let rtp = |dst: &str, port: u16| {
        format!("ip.dst == {dst} && udp.dstport == {port} && udp.length == 180")
    };
    let to_client = count(&cpcap, &rtp(CLIENT, CLIENT_RTP));
    let to_server = count(&spcap, &rtp(SERVER, SERVER_RTP));
    let sip = tshark(
        &spcap,
        &[
            "-d",
            &format!("udp.port=={sip_port},sip"),
            "-Y",
            "sip && ip.dst == 198.51.100.2",
            "-T",
            "fields",
            "-e",
            "udp.payload",
        ],
    );
    let mut leaks = vec![];
    for hex in sip.lines() {
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let text = String::from_utf8_lossy(&bytes).to_string();
        for line in text.lines().filter(|l| l.contains(CLIENT)) {
            // Call-ID is an opaque word sipp builds from its address, not where to send.
            if !line.to_ascii_lowercase().starts_with("call-id") {
                leaks.push(line.to_string());
            }
        }
    }
    CallResult {
        signalling: client.success(),
        to_client,
        to_server,
        leaks,
        rounds: if hold { 2 } else { 1 },
    }
}

/// Turns the appliance namespace into a Linux router with its own SIP ALG: addresses on the
/// veths, forwarding, conntrack's SIP helper on udp/5060, masquerade out of a1, and a
/// forward filter that lets in only what conntrack relates to the inside's flows.
fn linux_gateway(tb: &Testbed) {
    let appl = tb.ns("appl");
    let run = |args: &[&str]| {
        let o = Command::new("ip")
            .args(["netns", "exec", &appl])
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["nft", "delete", "table", "netdev", "aperture"]);
    run(&["ip", "addr", "add", "192.0.2.1/24", "dev", "a0"]);
    run(&["ip", "addr", "add", "198.51.100.1/24", "dev", "a1"]);
    run(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    let rules = "table ip linuxgw {
    ct helper sip-udp { type \"sip\" protocol udp; l3proto ip; }
    chain sip_helper { type filter hook prerouting priority filter; udp dport 5060 ct helper set \"sip-udp\"; }
    chain forward_filter { type filter hook forward priority filter; policy drop;
        ct state established,related accept; iifname \"a0\" accept; }
    chain masq { type nat hook postrouting priority srcnat; oifname \"a1\" masquerade; }
}
";
    let mut nft = Command::new("ip")
        .args(["netns", "exec", &appl, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    nft.stdin
        .as_mut()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    assert!(
        nft.wait().unwrap().success(),
        "nft rules for the Linux gateway"
    );
}

#[test]
fn sip_calls_through_the_nat_gateway_have_two_way_media_and_no_inside_address_outside() {
    let mut tb = Testbed::up();
    let dir = TempDir::new("sip-e2e");
    let mut table: Vec<(String, String, CallResult)> = vec![];

    // The cases: a call on the SIP port, and a FaceTime-style call with SIP on a port of
    // FaceTime's media range (port-based ALGs never look there).
    let cases: [(&str, u16, bool); 3] = [
        ("udp call", 5060, false),
        ("hold/resume", 5060, true),
        ("facetime port", 16402, false),
    ];
    let run_all = |tb: &Testbed, gw: &str, table: &mut Vec<(String, String, CallResult)>| {
        for (case, port, hold) in cases {
            let tag = format!("{gw}-{port}-{hold}").replace([' ', ','], "_");
            let r = call(tb, dir.path(), &tag, port, hold);
            table.push((case.to_string(), gw.to_string(), r));
        }
    };

    // Aperture as the README's NAT gateway.
    tb.start_example("nat-gateway");
    run_all(&tb, "aperture", &mut table);
    let log = tb.stop_dataplane();

    // The same gateway with the ALG switched off on the rule that allows the calls.
    let policy = std::fs::read_to_string(tb.dir.path().join("policy.yaml")).unwrap();
    let off = policy.replace("action: allow }", "action: allow, alg: false }");
    assert_ne!(off, policy, "the example's lan-out rule changed shape");
    std::fs::write(tb.dir.path().join("policy.yaml"), &off).unwrap();
    tb.launch(&tb.dir.path().join("routed.yaml"));
    let r = call(&tb, dir.path(), "alg-off", 5060, false);
    tb.stop_dataplane();
    table.push(("udp call".into(), "aperture, alg off".into(), r));

    // Linux's SIP ALG in the same place.
    linux_gateway(&tb);
    run_all(&tb, "linux nf_nat_sip", &mut table);

    println!("\n{:<12} {:<20} result", "case", "gateway");
    for (case, gw, r) in &table {
        println!("{case:<12} {gw:<20} {}  {r:?}", r.reason());
    }
    let get = |gw: &str| &table.iter().find(|(_, g, _)| g == gw).unwrap().2;
    for (case, gw, r) in table.iter().filter(|(_, g, _)| g == "aperture") {
        assert!(r.passes(), "{case} through {gw}: {}\n{log}", r.reason());
    }
    let off = get("aperture, alg off");
    assert!(
        !off.passes() && off.to_client < PACKETS / 2,
        "with the ALG off the callee's media must not reach the caller: {off:?}"
    );
    // Aperture passes every case Linux passes.
    for (case, gw, _) in table
        .iter()
        .filter(|(_, g, r)| g == "linux nf_nat_sip" && r.passes())
    {
        let ours = &table
            .iter()
            .find(|(c, g, _)| c == case && g == "aperture")
            .unwrap()
            .2;
        assert!(
            ours.passes(),
            "{case}: {gw} passes, Aperture does not: {}",
            ours.reason()
        );
    }
}
