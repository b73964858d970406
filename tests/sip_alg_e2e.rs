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
    /// What else was wrong (bad checksums, malformed SIP, an INVITE that was not split).
    problems: Vec<String>,
    /// Rounds of audio each side played (2 with a hold and resume between).
    rounds: usize,
}

impl CallResult {
    fn passes(&self) -> bool {
        let want = self.rounds * PACKETS - PACKETS / 2;
        self.signalling
            && self.to_client >= want
            && self.to_server >= want
            && self.leaks.is_empty()
            && self.problems.is_empty()
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
        r.extend(self.problems.iter().cloned());
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
        .exec(ns, &["dumpcap", "-q", "-i", dev, "-f", "udp or tcp"])
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

/// One scenario of the table.
#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    sip_port: u16,
    /// A re-INVITE hold and resume between two rounds of audio.
    hold: bool,
    /// SIP over TCP.
    tcp: bool,
    /// The INVITE (and the answer) larger than the client link's segment size: split
    /// across two TCP segments.
    split: bool,
    /// The client registers, then the server calls it at its registered contact from
    /// another port (a new flow from outside only the registration lets in).
    register: bool,
}

const CASES: [Case; 6] = [
    Case {
        name: "udp call",
        sip_port: 5060,
        hold: false,
        tcp: false,
        split: false,
        register: false,
    },
    Case {
        name: "tcp call",
        sip_port: 5060,
        hold: false,
        tcp: true,
        split: false,
        register: false,
    },
    Case {
        name: "split invite",
        sip_port: 5060,
        hold: false,
        tcp: true,
        split: true,
        register: false,
    },
    Case {
        name: "hold/resume",
        sip_port: 5060,
        hold: true,
        tcp: false,
        split: false,
        register: false,
    },
    Case {
        name: "register, called",
        sip_port: 5060,
        hold: false,
        tcp: false,
        split: false,
        register: true,
    },
    Case {
        name: "facetime port",
        sip_port: 16402,
        hold: false,
        tcp: false,
        split: false,
        register: false,
    },
];

/// The client link's MTU in the split case: TCP segments of at most 536 bytes.
const SPLIT_MTU: &str = "576";

/// The client's registration, answered by the server (the registrar).
const REGISTER_UAC: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register">
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: sipp <sip:sipp@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: sipp <sip:sipp@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:sipp@[local_ip]:[local_port]>
Expires: 300
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"#;

const REGISTER_UAS: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="registrar">
  <recv request="REGISTER"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Contact:]
Expires: 300
Content-Length: 0

]]></send>
</scenario>
"#;

/// The scenarios of `case` for the caller and the callee.
fn scenarios(case: &Case) -> (String, String) {
    let (uac, uas) = if case.hold {
        hold_resume()
    } else {
        (UAC.to_string(), UAS.to_string())
    };
    if case.split {
        // Enough header to take the INVITE and its answer past one 536-byte segment.
        let pad = format!("Subject: {}\n", "split-".repeat(60));
        return (
            uac.replacen("Max-Forwards: 70\n", &format!("Max-Forwards: 70\n{pad}"), 1),
            uas.replacen(
                "Content-Type: application/sdp\n",
                &format!("{pad}Content-Type: application/sdp\n"),
                1,
            ),
        );
    }
    (uac, uas)
}

/// The bytes of the SIP that reached the server (UDP payloads, and the TCP stream toward
/// it in capture order), as lines.
fn sip_at_server(pcap: &Path, sip_port: u16) -> Vec<String> {
    let mut lines = vec![];
    for (filter, field) in [
        ("sip && udp && ip.dst == 198.51.100.2", "udp.payload"),
        ("tcp.len > 0 && ip.dst == 198.51.100.2", "tcp.payload"),
    ] {
        let hex = tshark(
            pcap,
            &[
                "-d",
                &format!("udp.port=={sip_port},sip"),
                "-Y",
                filter,
                "-T",
                "fields",
                "-e",
                field,
            ],
        );
        let mut bytes = vec![];
        for h in hex.lines().map(str::trim) {
            bytes.extend(
                (0..h.len() / 2).map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap()),
            );
            if field == "udp.payload" {
                bytes.push(b'\n');
            }
        }
        lines.extend(String::from_utf8_lossy(&bytes).lines().map(str::to_string));
    }
    lines
}

/// Places one call of `case` through whatever gateway runs now.
/// One call of `case` through whatever gateway is up; the media ports are the defaults
/// plus `media` (a new media tuple per call).
fn call(tb: &Testbed, dir: &Path, tag: &str, case: &Case, media: u16) -> CallResult {
    let (client_rtp_port, server_rtp_port) = (CLIENT_RTP + media, SERVER_RTP + media);
    let (sip_port, hold) = (case.sip_port, case.hold);
    let audio = dir.join("audio.pcap");
    write_audio(&audio);
    let scenario = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text.replace("AUDIO", audio.to_str().unwrap())).unwrap();
        p
    };
    let (uac_text, uas_text) = scenarios(case);
    let (uac, uas) = (
        scenario("uac.xml", &uac_text),
        scenario("uas.xml", &uas_text),
    );
    let (cpcap, spcap) = (
        dir.join(format!("{tag}-client.pcap")),
        dir.join(format!("{tag}-server.pcap")),
    );
    let mtu = |v: &str| {
        let ok = tb
            .exec("client", &["ip", "link", "set", "c0", "mtu", v])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mtu {v} on c0");
    };
    if case.split {
        mtu(SPLIT_MTU);
    }
    let cc = capture(tb, "client", "c0", &cpcap);
    let sc = capture(tb, "server", "s0", &spcap);
    let transport: &[&str] = if case.tcp {
        &["-t", "t1"]
    } else {
        &["-t", "u1"]
    };
    let sipp = |ns: &str, args: &[&str]| -> Command {
        let mut c = tb.exec(ns, &["sipp"]);
        c.args(args)
            .args(transport)
            .args(["-m", "1", "-nostdin", "-timeout", "18s", "-timeout_error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let (port, rtp_port) = (sip_port.to_string(), server_rtp_port.to_string());
    let mut callee_args = vec!["-sf", uas.to_str().unwrap(), "-i", SERVER, "-p", &port];
    callee_args.extend(["-mi", SERVER, "-mp", &rtp_port]);
    let mut signalling = true;
    let mut problems = vec![];
    let mut caller_ns = "client";
    let mut caller_ip = CLIENT;
    let mut caller_rtp = client_rtp_port;
    let mut target = format!("{SERVER}:{sip_port}");
    if case.register {
        // The client registers with the server; then the server calls the contact it
        // registered (as it arrived: the gateway's address and mapped port), from another
        // port, and the client answers on the port it registered from.
        let (ru, rs) = (
            scenario("reg-uac.xml", REGISTER_UAC),
            scenario("reg-uas.xml", REGISTER_UAS),
        );
        let regpcap = dir.join(format!("{tag}-register.pcap"));
        let mut regcap = tb
            .exec(
                "server",
                &[
                    "dumpcap",
                    "-q",
                    "-i",
                    "s0",
                    "-f",
                    "udp dst port 5060",
                    "-c",
                    "1",
                ],
            )
            .args(["-a", "duration:8", "-w"])
            .arg(&regpcap)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while !regpcap.exists() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        let mut registrar = sipp(
            "server",
            &["-sf", rs.to_str().unwrap(), "-i", SERVER, "-p", &port],
        )
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(700));
        let reg = sipp(
            "client",
            &[
                &target,
                "-sf",
                ru.to_str().unwrap(),
                "-i",
                CLIENT,
                "-p",
                &port,
            ],
        )
        .status()
        .unwrap();
        signalling &= reg.success();
        let _ = registrar.kill();
        let _ = registrar.wait();
        let _ = regcap.wait();
        std::thread::sleep(Duration::from_millis(300));
        // The server is the caller now, the client the callee.
        caller_ns = "server";
        caller_ip = SERVER;
        caller_rtp = server_rtp_port;
        callee_args = vec!["-sf", uas.to_str().unwrap(), "-i", CLIENT, "-p", &port];
        callee_args.extend(["-mi", CLIENT]);
        target = registered_contact(&sip_at_server(&regpcap, 5060)).unwrap_or_default();
        eprintln!("{tag}: registration {reg:?}, contact as registered: {target:?}");
        if tb.dataplane.is_some() {
            // Aperture: the registration's pinhole and mapping, as the operator sees them.
            problems.extend(registration_state(tb, &target));
        }
    }
    let client_rtp = client_rtp_port.to_string();
    if case.register {
        callee_args.extend(["-mp", &client_rtp]);
    }
    let callee_ns = if case.register { "client" } else { "server" };
    let mut callee = sipp(callee_ns, &callee_args).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let caller_port = if case.register {
        "5070".to_string()
    } else {
        port.clone()
    };
    let status = if target.is_empty() {
        None
    } else {
        Some(
            sipp(
                caller_ns,
                &[
                    &target,
                    "-sf",
                    uac.to_str().unwrap(),
                    "-i",
                    caller_ip,
                    "-p",
                    &caller_port,
                    "-mi",
                    caller_ip,
                    "-mp",
                    &caller_rtp.to_string(),
                    "-recv_timeout",
                    "10s",
                ],
            )
            .status()
            .unwrap(),
        )
    };
    signalling &= status.is_some_and(|s| s.success());
    let t = Instant::now();
    while callee.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = callee.kill();
    let _ = callee.wait();
    std::thread::sleep(Duration::from_millis(500));
    // Each capture ends by itself (and `exec` bounds it with timeout(1)).
    for mut c in [cc, sc] {
        let _ = c.wait();
    }
    if case.split {
        mtu("1500");
    }
    let rtp = |dst: &str, port: u16| {
        format!("ip.dst == {dst} && udp.dstport == {port} && udp.length == 180")
    };
    let to_client = count(&cpcap, &rtp(CLIENT, client_rtp_port));
    let to_server = count(&spcap, &rtp(SERVER, server_rtp_port));
    let mut leaks = vec![];
    for line in sip_at_server(&spcap, sip_port) {
        // Call-ID is an opaque word sipp builds from its address, not where to send.
        if line.contains(CLIENT) && !line.to_ascii_lowercase().starts_with("call-id") {
            leaks.push(line);
        }
    }
    if case.tcp {
        // What arrived is well-formed: TCP checksums right, SIP dissected without error.
        let checks = ["-o", "tcp.check_checksum:TRUE", "-Y"];
        for (pcap, side) in [(&spcap, "server"), (&cpcap, "client")] {
            let bad = tshark(
                pcap,
                &[
                    &checks[..],
                    &["tcp.checksum.status == 0 || _ws.malformed || _ws.expert.severity == error"],
                ]
                .concat(),
            );
            if !bad.trim().is_empty() {
                problems.push(format!("at the {side}: {}", bad.lines().next().unwrap()));
            }
        }
        if case.split {
            // The client really sent its INVITE in more than one segment.
            let segs = tshark(
                &cpcap,
                &[
                    "-Y",
                    "sip.Method == \"INVITE\"",
                    "-T",
                    "fields",
                    "-e",
                    "tcp.segment.count",
                ],
            );
            if !segs
                .lines()
                .any(|l| l.trim().parse::<u32>().is_ok_and(|n| n >= 2))
            {
                problems.push(format!("the INVITE was not split: {segs:?}"));
            }
        }
    }
    CallResult {
        signalling,
        to_client,
        to_server,
        leaks,
        problems,
        rounds: if hold { 2 } else { 1 },
    }
}

/// What `aperturectl show pinholes` and `show nat` say about the client's registration at
/// `contact` (as the registrar got it): a register pinhole there for the registrar only,
/// leading to the client's own address and port, and the mapping behind it. The problems
/// found.
fn registration_state(tb: &Testbed, contact: &str) -> Vec<String> {
    let ctl = |args: &[&str]| -> serde_json::Value {
        let o = Command::new(bin("aperturectl"))
            .arg("--config")
            .arg(tb.dir.path().join("routed.yaml"))
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "aperturectl {args:?}: {e}: {text}{}",
                String::from_utf8_lossy(&o.stderr)
            )
        })
    };
    let mut problems = vec![];
    let holes = ctl(&["show", "pinholes", "--address", CLIENT]);
    let want = holes["pinholes"].as_array().into_iter().flatten().any(|p| {
        format!("{}:{}", p["address"].as_str().unwrap_or(""), p["port"]) == contact
            && p["purpose"] == "register"
            && p["peer"] == SERVER
            && p["inside_ip"] == CLIENT
            && p["inside_port"] == 5060
            && p["app"] == "sip"
    });
    if !want {
        problems.push(format!(
            "no register pinhole at {contact} in show pinholes: {holes}"
        ));
    }
    let nat = ctl(&["show", "nat", "--address", CLIENT]);
    let mapped = nat["mappings"].as_array().into_iter().flatten().any(|m| {
        format!(
            "{}:{}",
            m["external_ip"].as_str().unwrap_or(""),
            m["external_port"]
        ) == contact
            && m["inside_ip"] == CLIENT
            && m["proto"] == "UDP"
    });
    if !mapped {
        problems.push(format!("no mapping to {contact} in show nat: {nat}"));
    }
    problems
}

/// The `host:port` of the Contact in the REGISTER that reached the server.
fn registered_contact(lines: &[String]) -> Option<String> {
    let mut in_register = false;
    for l in lines {
        if l.starts_with("REGISTER ") {
            in_register = true;
        } else if in_register && l.to_ascii_lowercase().starts_with("contact:") {
            let at = l.find('@')? + 1;
            let end = at + l[at..].find(['>', ';'])?;
            return Some(l[at..end].to_string());
        }
    }
    None
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
    ct helper sip-tcp { type \"sip\" protocol tcp; l3proto ip; }
    chain sip_helper { type filter hook prerouting priority filter;
        udp dport 5060 ct helper set \"sip-udp\"; tcp dport 5060 ct helper set \"sip-tcp\"; }
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

    // APERTURE_E2E_CASES=split,register: only those, through Aperture only, captures kept
    // in /tmp/aperture-sip-e2e (a developer's loop).
    let only = std::env::var("APERTURE_E2E_CASES").unwrap_or_default();
    let run_all = |tb: &Testbed, gw: &str, table: &mut Vec<(String, String, CallResult)>| {
        for case in CASES
            .iter()
            .filter(|c| only.is_empty() || only.split(',').any(|o| c.name.contains(o)))
        {
            let tag = format!("{gw}-{}", case.name).replace([' ', ',', '/'], "_");
            let r = call(tb, dir.path(), &tag, case, 0);
            table.push((case.name.to_string(), gw.to_string(), r));
        }
    };

    // Aperture as the README's NAT gateway.
    tb.start_example("nat-gateway");
    run_all(&tb, "aperture", &mut table);
    let log = tb.stop_dataplane();
    if !only.is_empty() {
        let keep = Path::new("/tmp/aperture-sip-e2e");
        let _ = std::fs::create_dir_all(keep);
        for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let _ = std::fs::copy(e.path(), keep.join(e.file_name()));
        }
        for (case, gw, r) in &table {
            println!("{case:<17} {gw:<20} {}  {r:?}", r.reason());
        }
        println!("{log}");
        return;
    }

    // The same gateway with the ALG switched off on the rule that allows the calls.
    let policy = std::fs::read_to_string(tb.dir.path().join("policy.yaml")).unwrap();
    let off = policy.replace("action: allow }", "action: allow, alg: false }");
    assert_ne!(off, policy, "the example's lan-out rule changed shape");
    std::fs::write(tb.dir.path().join("policy.yaml"), &off).unwrap();
    tb.launch(&tb.dir.path().join("routed.yaml"));
    let r = call(&tb, dir.path(), "alg-off", &CASES[0], 0);
    tb.stop_dataplane();
    table.push(("udp call".into(), "aperture, alg off".into(), r));

    // Linux's SIP ALG in the same place.
    linux_gateway(&tb);
    run_all(&tb, "linux nf_nat_sip", &mut table);

    println!("\n{:<17} {:<20} result", "case", "gateway");
    for (case, gw, r) in &table {
        println!("{case:<17} {gw:<20} {}  {r:?}", r.reason());
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

/// Two workers, no NAT, and a policy that lets the inside call out with SIP and nothing
/// else: a call's media passes only through the pinholes its SDP opened. The kernel's fanout
/// spreads flows over both workers' queues by their tuples, so a call's media often reaches
/// the worker that did not read its SDP; that worker hands it to the one whose call claimed
/// its endpoint (`flow::affinity`). Every call has two-way media, and in the flow log every
/// media flow is predicted by its call's signalling flow, on that flow's worker.
#[test]
fn two_workers_admit_each_calls_media_on_the_worker_that_holds_its_pinholes() {
    let mut tb = Testbed::up();
    let dir = TempDir::new("sip-e2e-two");
    tb.start_example_with("nat-gateway", 2);
    tb.stop_dataplane();
    let policy = "version: 1
zones:
  - { name: inside, ports: [inside] }
  - { name: outside, ports: [outside] }
rules:
  - name: calls
    from: [inside]
    to: [outside]
    source: [192.0.2.0/24]
    application: [sip]
    service: any
    action: allow
default-action: deny
";
    std::fs::write(tb.dir.path().join("policy.yaml"), policy).unwrap();
    tb.launch(&tb.dir.path().join("routed.yaml"));
    // Each call its own media tuple, so the calls' media spread over both workers.
    let mut results = vec![];
    for (k, case) in CASES
        .iter()
        .filter(|c| !c.tcp && !c.register)
        .cycle()
        .take(5)
        .enumerate()
    {
        let tag = format!("two-{k}-{}", case.name).replace([' ', ',', '/'], "_");
        results.push((case.name, call(&tb, dir.path(), &tag, case, 10 * k as u16)));
    }
    let log = tb.stop_dataplane();
    let flows = read_flows(&tb.flow_log());
    let by_id: std::collections::BTreeMap<u64, &serde_json::Value> = flows
        .iter()
        .filter_map(|f| Some((f["flow_id"].as_u64()?, f)))
        .collect();
    let handed = worker_counter(&log, "handoff_sent").unwrap_or(0);
    println!("packets handed between the workers: {handed}");
    for (name, r) in &results {
        println!("{name:<17} {r:?}");
        let want = r.rounds * PACKETS - PACKETS / 2;
        assert!(
            r.signalling && r.to_client >= want && r.to_server >= want && r.problems.is_empty(),
            "{name}: {r:?}\n{log}"
        );
    }
    let rtp: Vec<&serde_json::Value> = flows
        .iter()
        .filter(|f| f["app_path"][0] == "rtp" || f["app_path"][0] == "rtcp")
        .collect();
    assert_eq!(
        rtp.len(),
        results.len(),
        "a media flow per call: {flows:#?}"
    );
    for f in rtp {
        let parent = f["predicted_by"]
            .as_u64()
            .and_then(|p| by_id.get(&p))
            .unwrap_or_else(|| panic!("media flow not predicted by a logged call: {f}"));
        assert_eq!(f["worker"], parent["worker"], "{f}\n{parent}");
        assert_eq!(f["action"], "allow", "{f}");
    }
}
