//! SIP (RFC 3261) messages over UDP and the SDP (RFC 4566) bodies they carry, enough for one
//! call: INVITE with an offer, 100/180/200 with an answer, ACK, BYE and its 200.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};

/// The User-Agent FaceTime's SIP stack announces.
pub const FACETIME_USER_AGENT: &str = "Viceroy 1.4";

/// A SIP request or response. `Content-Length` is never stored: [`SipMessage::encode`] writes
/// it from the body so it is always right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMessage {
    pub start_line: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl SipMessage {
    pub fn request(method: &str, uri: &str) -> Self {
        SipMessage {
            start_line: format!("{method} {uri} SIP/2.0"),
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(self, content_type: &str, body: String) -> Self {
        let mut m = self.header("Content-Type", content_type);
        m.body = body;
        m
    }

    /// The first value of header `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The method of a request, or the method in CSeq for a response.
    pub fn method(&self) -> &str {
        if self.start_line.starts_with("SIP/2.0") {
            self.get("CSeq")
                .and_then(|c| c.split_whitespace().nth(1))
                .unwrap_or("")
        } else {
            self.start_line.split(' ').next().unwrap_or("")
        }
    }

    /// A response to `req` with status `code`: Via, From, To, Call-ID and CSeq copied, and
    /// `rport` filled in with the port the request came from (RFC 3581; no NAT in between).
    pub fn response_to(req: &SipMessage, code: u16, reason: &str) -> Self {
        let mut m = SipMessage {
            start_line: format!("SIP/2.0 {code} {reason}"),
            headers: Vec::new(),
            body: String::new(),
        };
        for (name, value) in &req.headers {
            let copied = ["Via", "From", "To", "Call-ID", "CSeq"];
            if copied.iter().any(|c| c.eq_ignore_ascii_case(name)) {
                let value = if name.eq_ignore_ascii_case("Via") {
                    fill_rport(value)
                } else {
                    value.clone()
                };
                m.headers.push((name.clone(), value));
            }
        }
        m
    }

    /// Adds `;tag=` to the To header when it has none (the UAS's tag on its responses).
    pub fn to_tag(mut self, tag: &str) -> Self {
        if let Some((_, to)) = self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case("To"))
        {
            if !to.contains(";tag=") {
                to.push_str(";tag=");
                to.push_str(tag);
            }
        }
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut s = String::with_capacity(512 + self.body.len());
        s.push_str(&self.start_line);
        s.push_str("\r\n");
        for (name, value) in &self.headers {
            let _ = write!(s, "{name}: {value}\r\n");
        }
        let _ = write!(s, "Content-Length: {}\r\n\r\n", self.body.len());
        s.push_str(&self.body);
        s.into_bytes()
    }
}

fn fill_rport(via: &str) -> String {
    let sent_by_port = via
        .split_whitespace()
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|hostport| hostport.rsplit_once(':'))
        .map(|(_, port)| port.to_string());
    match sent_by_port {
        Some(port) => via
            .split(';')
            .map(|p| {
                if p == "rport" {
                    format!("rport={port}")
                } else {
                    p.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(";"),
        None => via.to_string(),
    }
}

/// One payload format of an SDP media line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpFormat {
    pub payload_type: u8,
    /// `encoding/clock-rate`, as in `a=rtpmap`.
    pub rtpmap: String,
    pub fmtp: Option<String>,
}

/// An SDP `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpMedia {
    /// "audio" or "video".
    pub kind: String,
    pub port: u16,
    pub formats: Vec<SdpFormat>,
    /// RTCP on the RTP port (`a=rtcp-mux`) instead of port + 1.
    pub rtcp_mux: bool,
}

/// A session description with one connection address for all media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub username: String,
    pub session_id: u64,
    pub version: u64,
    pub address: Ipv4Addr,
    pub media: Vec<SdpMedia>,
}

impl Sdp {
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(512);
        let _ = write!(s, "v=0\r\n");
        let _ = write!(
            s,
            "o={} {} {} IN IP4 {}\r\n",
            self.username, self.session_id, self.version, self.address
        );
        let _ = write!(s, "s=-\r\n");
        let _ = write!(s, "c=IN IP4 {}\r\n", self.address);
        let _ = write!(s, "t=0 0\r\n");
        for m in &self.media {
            let pts: Vec<String> = m
                .formats
                .iter()
                .map(|f| f.payload_type.to_string())
                .collect();
            let _ = write!(s, "m={} {} RTP/AVP {}\r\n", m.kind, m.port, pts.join(" "));
            for f in &m.formats {
                let _ = write!(s, "a=rtpmap:{} {}\r\n", f.payload_type, f.rtpmap);
                if let Some(fmtp) = &f.fmtp {
                    let _ = write!(s, "a=fmtp:{} {}\r\n", f.payload_type, fmtp);
                }
            }
            if m.rtcp_mux {
                let _ = write!(s, "a=rtcp-mux\r\n");
            } else {
                let _ = write!(s, "a=rtcp:{}\r\n", u32::from(m.port) + 1);
            }
            let _ = write!(s, "a=sendrecv\r\n");
        }
        s
    }
}

/// PCMU, PCMA and telephone-event, the audio formats of the offer.
pub fn audio_formats() -> Vec<SdpFormat> {
    vec![
        SdpFormat {
            payload_type: 0,
            rtpmap: "PCMU/8000".into(),
            fmtp: None,
        },
        SdpFormat {
            payload_type: 8,
            rtpmap: "PCMA/8000".into(),
            fmtp: None,
        },
        SdpFormat {
            payload_type: 101,
            rtpmap: "telephone-event/8000".into(),
            fmtp: Some("0-15".into()),
        },
    ]
}

/// H.264 at 90 kHz, the video format of the offer.
pub fn video_formats() -> Vec<SdpFormat> {
    vec![SdpFormat {
        payload_type: 126,
        rtpmap: "H264/90000".into(),
        fmtp: Some("profile-level-id=42e01f;packetization-mode=1".into()),
    }]
}

/// One end of a dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub user: String,
    /// Where this party sends SIP from and receives it on.
    pub addr: SocketAddrV4,
    pub tag: String,
}

impl Party {
    pub fn uri(&self) -> String {
        format!("sip:{}@{}:{}", self.user, self.addr.ip(), self.addr.port())
    }

    fn name_addr(&self) -> String {
        format!("<sip:{}@{}>", self.user, self.addr.ip())
    }

    fn contact(&self) -> String {
        format!("<{}>", self.uri())
    }
}

/// A call between `caller` and `callee`: builds each message of the dialog with consistent
/// Call-ID, tags and CSeq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub call_id: String,
    pub caller: Party,
    pub callee: Party,
    pub user_agent: String,
}

impl Dialog {
    fn via(from: &Party, branch: &str) -> String {
        format!(
            "SIP/2.0/UDP {}:{};branch={branch};rport",
            from.addr.ip(),
            from.addr.port()
        )
    }

    /// The INVITE carrying `offer`.
    pub fn invite(&self, branch: &str, offer: &Sdp) -> SipMessage {
        SipMessage::request("INVITE", &self.callee.uri())
            .header("Via", Self::via(&self.caller, branch))
            .header("Max-Forwards", "70")
            .header(
                "From",
                format!("{};tag={}", self.caller.name_addr(), self.caller.tag),
            )
            .header("To", self.callee.name_addr())
            .header("Call-ID", self.call_id.clone())
            .header("CSeq", "1 INVITE")
            .header("Contact", self.caller.contact())
            .header("User-Agent", self.user_agent.clone())
            .header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")
            .body("application/sdp", offer.encode())
    }

    /// A provisional or final response of the callee to `req`. 100 Trying carries no To tag;
    /// everything else does, with the callee's Contact.
    pub fn respond(&self, req: &SipMessage, code: u16, reason: &str) -> SipMessage {
        let r = SipMessage::response_to(req, code, reason);
        if code == 100 {
            return r;
        }
        r.to_tag(&self.callee.tag)
            .header("Contact", self.callee.contact())
            .header("User-Agent", self.user_agent.clone())
    }

    /// A request inside the established dialog (ACK, BYE) from the caller or the callee.
    pub fn in_dialog(
        &self,
        method: &str,
        from_caller: bool,
        cseq: u32,
        branch: &str,
    ) -> SipMessage {
        let (from, to) = if from_caller {
            (&self.caller, &self.callee)
        } else {
            (&self.callee, &self.caller)
        };
        SipMessage::request(method, &to.uri())
            .header("Via", Self::via(from, branch))
            .header("Max-Forwards", "70")
            .header("From", format!("{};tag={}", from.name_addr(), from.tag))
            .header("To", format!("{};tag={}", to.name_addr(), to.tag))
            .header("Call-ID", self.call_id.clone())
            .header("CSeq", format!("{cseq} {method}"))
            .header("User-Agent", self.user_agent.clone())
    }
}

/// Splits an encoded SIP message into its header block and body, checking Content-Length.
/// Returns `None` when the message has no blank line or Content-Length disagrees with the body.
pub fn checked_body(msg: &[u8]) -> Option<&[u8]> {
    let text = std::str::from_utf8(msg).ok()?;
    let split = text.find("\r\n\r\n")?;
    let (head, body) = (&text[..split], &text[split + 4..]);
    let declared: usize = head
        .split("\r\n")
        .find_map(|l| {
            l.strip_prefix("Content-Length:")
                .or_else(|| l.strip_prefix("l:"))
        })?
        .trim()
        .parse()
        .ok()?;
    (declared == body.len()).then_some(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog() -> Dialog {
        Dialog {
            call_id: "abc123@10.0.0.2".into(),
            caller: Party {
                user: "u1".into(),
                addr: "10.0.0.2:16393".parse().unwrap(),
                tag: "t1".into(),
            },
            callee: Party {
                user: "u2".into(),
                addr: "198.51.100.9:16402".parse().unwrap(),
                tag: "t2".into(),
            },
            user_agent: FACETIME_USER_AGENT.into(),
        }
    }

    fn offer() -> Sdp {
        Sdp {
            username: "GKVoiceChatService".into(),
            session_id: 7,
            version: 0,
            address: Ipv4Addr::new(10, 0, 0, 2),
            media: vec![SdpMedia {
                kind: "audio".into(),
                port: 16395,
                formats: audio_formats(),
                rtcp_mux: false,
            }],
        }
    }

    #[test]
    fn invite_has_headers_sdp_and_right_content_length() {
        let d = dialog();
        let inv = d.invite("z9hG4bKa1", &offer());
        let bytes = inv.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("INVITE sip:u2@198.51.100.9:16402 SIP/2.0\r\n"));
        assert!(text.contains("\r\nUser-Agent: Viceroy 1.4\r\n"));
        assert!(text.contains("\r\nVia: SIP/2.0/UDP 10.0.0.2:16393;branch=z9hG4bKa1;rport\r\n"));
        let body = std::str::from_utf8(checked_body(&bytes).unwrap()).unwrap();
        assert!(body.starts_with("v=0\r\no=GKVoiceChatService 7 0 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"));
        assert!(body.contains("m=audio 16395 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n"));
        assert!(body.contains("a=rtcp:16396\r\n"));
        assert_eq!(inv.method(), "INVITE");
    }

    #[test]
    fn responses_copy_dialog_headers_and_tag_the_to() {
        let d = dialog();
        let inv = d.invite("z9hG4bKa1", &offer());
        let trying = d.respond(&inv, 100, "Trying");
        assert_eq!(trying.get("To"), Some("<sip:u2@198.51.100.9>"));
        assert_eq!(
            trying.get("Via"),
            Some("SIP/2.0/UDP 10.0.0.2:16393;branch=z9hG4bKa1;rport=16393")
        );
        let ok = d.respond(&inv, 200, "OK");
        assert_eq!(ok.get("To"), Some("<sip:u2@198.51.100.9>;tag=t2"));
        assert_eq!(ok.get("CSeq"), Some("1 INVITE"));
        assert_eq!(ok.get("Call-ID"), inv.get("Call-ID"));
        assert_eq!(ok.method(), "INVITE");
        let bye = d.in_dialog("BYE", false, 1, "z9hG4bKb");
        assert!(bye.start_line.starts_with("BYE sip:u1@10.0.0.2:16393 "));
        assert_eq!(bye.get("From"), Some("<sip:u2@198.51.100.9>;tag=t2"));
        assert_eq!(bye.get("To"), Some("<sip:u1@10.0.0.2>;tag=t1"));
        assert_eq!(checked_body(&bye.encode()), Some(&b""[..]));
    }

    #[test]
    fn checked_body_rejects_a_wrong_length() {
        assert!(checked_body(b"SIP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nab").is_none());
        assert!(checked_body(b"SIP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nab").is_some());
    }
}
