//! One FaceTime call as a firewall next to the caller sees it, following the publicly
//! documented shape of the protocol: the push connection (TLS to 5223), the identity service
//! (TLS to 443), STUN on 3478, SIP over UDP between ports 16393-16402 with
//! `User-Agent: Viceroy 1.4`, and RTP/RTCP on exactly the ports the SDP negotiated, optionally
//! relayed through a TURN server with ChannelData framing.
//!
//! Addresses, ports, SSRCs, Call-ID, branches, tags and timings all come from the caller's
//! [`Rng`]; the same generator state always gives the same bytes.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use crate::build::{self, Mac};
use crate::pcap::TimedFrame;
use crate::rng::{Ipv4Prefix, Rng};
use crate::sip::{self, Dialog, Party, Sdp, SdpFormat, SdpMedia, SipMessage};
use crate::stun::{self, StunMessage};
use crate::tcp::{Direction, TcpSession};
use crate::{dns, rtp, tls};

/// FaceTime's UDP range for SIP and media.
pub const FACETIME_PORTS: std::ops::RangeInclusive<u16> = 16393..=16402;
/// Apple's push service port.
pub const PUSH_PORT: u16 = 5223;
pub const PUSH_SNI: &str = "courier.push.apple.com";
/// Names the identity-service connection on 443 may use.
pub const ESS_SNIS: &[&str] = &[
    "init.ess.apple.com",
    "facetime.apple.com",
    "query.ess.apple.com",
];
/// SOFTWARE attribute of the client's STUN and TURN requests (synthetic value).
pub const STUN_SOFTWARE: &str = "Viceroy 1.4";

const MS: u64 = 1_000_000;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacetimeParams {
    pub client_ip: Ipv4Addr,
    pub client_mac: Mac,
    /// MAC of the next hop (the gateway) that every frame to or from the internet carries.
    pub gateway_mac: Mac,
    /// Where Apple's push, identity, STUN and TURN servers are drawn from.
    pub apple: Ipv4Prefix,
    /// Where the remote party's public address is drawn from.
    pub peers: Ipv4Prefix,
    /// Resolver for the A lookups that precede each TLS connection; none when `None`.
    pub resolver: Option<Ipv4Addr>,
    /// Relay the media through a TURN server with ChannelData framing (and rtcp-mux).
    pub turn: bool,
    /// Add a video stream next to the audio.
    pub video: bool,
    /// How long media flows, in milliseconds.
    pub media_ms: u64,
}

impl FacetimeParams {
    /// An audio-only direct call of 4 s, servers in 17.0.0.0/8, peers in 198.51.100.0/24.
    pub fn new(client_ip: Ipv4Addr, client_mac: Mac, gateway_mac: Mac) -> Self {
        FacetimeParams {
            client_ip,
            client_mac,
            gateway_mac,
            apple: Ipv4Prefix::new(Ipv4Addr::new(17, 0, 0, 0), 8),
            peers: Ipv4Prefix::new(Ipv4Addr::new(198, 51, 100, 0), 24),
            resolver: None,
            turn: false,
            video: false,
            media_ms: 4_000,
        }
    }
}

/// A TLS-over-TCP connection of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConnection {
    pub client: SocketAddrV4,
    pub server: SocketAddrV4,
    pub sni: String,
}

/// One negotiated media stream and what was sent on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaStream {
    /// "audio" or "video".
    pub kind: String,
    /// The client's RTP port, from the offer's `m=` line.
    pub client_port: u16,
    /// The peer's RTP address, from the answer's `c=` and `m=` lines.
    pub peer: SocketAddrV4,
    /// Payload type chosen by the answer and used by every RTP packet.
    pub payload_type: u8,
    pub client_ssrc: u32,
    pub peer_ssrc: u32,
    /// RTCP shares the RTP port (always so when relayed through TURN); otherwise port + 1.
    pub rtcp_mux: bool,
    /// TURN channel carrying this stream, when relayed.
    pub channel: Option<u16>,
    /// The relayed transport address the TURN server allocated for this stream, when relayed.
    pub relayed: Option<SocketAddrV4>,
    /// RTP packets sent by the client and by the peer.
    pub client_packets: u32,
    pub peer_packets: u32,
    /// RTCP compound packets (SR + SDES) sent by the client and by the peer.
    pub client_rtcp: u32,
    pub peer_rtcp: u32,
}

/// What one generated call negotiated, for tests to check the frames against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacetimeSession {
    pub client_ip: Ipv4Addr,
    pub push: TlsConnection,
    pub ess: TlsConnection,
    /// STUN (and TURN) server on 3478, and the client address the Binding came from.
    pub stun_server: SocketAddrV4,
    pub stun_client: SocketAddrV4,
    pub stun_transaction: stun::TransactionId,
    /// SIP addresses of the caller (the client) and the callee (the peer).
    pub sip_client: SocketAddrV4,
    pub sip_peer: SocketAddrV4,
    pub call_id: String,
    pub caller_tag: String,
    pub callee_tag: String,
    pub invite_branch: String,
    pub offer: Sdp,
    pub answer: Sdp,
    pub audio: MediaStream,
    pub video: Option<MediaStream>,
    /// Set when the media went through the TURN server (the same host as `stun_server`).
    pub turn: bool,
    /// The callee hung up (BYE from the peer) rather than the caller.
    pub bye_from_peer: bool,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// Collects frames between the client and the gateway.
struct Wire {
    client_mac: Mac,
    gateway_mac: Mac,
    frames: Vec<TimedFrame>,
}

impl Wire {
    /// A UDP datagram from the client's side to the network.
    fn up(&mut self, t: u64, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) {
        self.frames.push((
            t,
            build::udp4(self.client_mac, self.gateway_mac, src, dst, payload),
        ));
    }

    /// A UDP datagram from the network to the client.
    fn down(&mut self, t: u64, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) {
        self.frames.push((
            t,
            build::udp4(self.gateway_mac, self.client_mac, src, dst, payload),
        ));
    }
}

fn ephemeral(rng: &mut Rng) -> u16 {
    rng.range_u16(49152, 65535)
}

/// An RTP port in the FaceTime range with its RTCP port (port + 1) also in range, avoiding
/// every port in `taken` for both.
fn media_port(rng: &mut Rng, taken: &[u16]) -> u16 {
    let (lo, hi) = (*FACETIME_PORTS.start(), *FACETIME_PORTS.end());
    loop {
        let p = rng.range_u16(lo, hi - 1);
        if !taken.contains(&p) && !taken.contains(&(p + 1)) {
            return p;
        }
    }
}

fn dns_lookup(
    w: &mut Wire,
    rng: &mut Rng,
    t: u64,
    client_ip: Ipv4Addr,
    resolver: Ipv4Addr,
    name: &str,
    addr: Ipv4Addr,
) -> u64 {
    let client = SocketAddrV4::new(client_ip, ephemeral(rng));
    let server = SocketAddrV4::new(resolver, 53);
    let id = rng.next_u16();
    w.up(t, client, server, &dns::query(id, name, dns::TYPE_A));
    let t2 = t + rng.range(5 * MS, 40 * MS);
    w.down(
        t2,
        server,
        client,
        &dns::response(id, name, dns::TYPE_A, &[IpAddr::V4(addr)], 300),
    );
    t2
}

/// A TLS connection: handshake, ClientHello, server flight, client Finished, then the given
/// application-data exchanges (direction, bytes), and a FIN close when `close`.
#[allow(clippy::too_many_arguments)]
fn tls_connection(
    w: &mut Wire,
    rng: &mut Rng,
    t: u64,
    client: SocketAddrV4,
    server: SocketAddrV4,
    sni: &str,
    alpn: &[&str],
    exchanges: &[(Direction, usize)],
    close: bool,
) -> u64 {
    // Frames from the server side carry the gateway's MAC as their source.
    let mut s = TcpSession::v4(rng, t, w.client_mac, w.gateway_mac, client, server);
    s.handshake();
    let hello = tls::client_hello(rng, sni, alpn);
    s.send(Direction::ToServer, &hello);
    s.send(Direction::ToClient, &tls::server_flight(rng, &hello));
    s.send(Direction::ToServer, &tls::client_finished(rng));
    for (dir, len) in exchanges {
        s.idle(rng.range(20 * MS, 250 * MS));
        s.send(*dir, &tls::application_data(rng, *len));
    }
    if close {
        s.idle(rng.range(50 * MS, 500 * MS));
        s.close(Direction::ToServer);
    }
    let end = s.now();
    w.frames.extend(s.into_frames());
    end
}

/// Generates one call starting at `base_ts_ns`. Returns what was negotiated and the frames,
/// sorted by time.
pub fn facetime_session(
    rng: &mut Rng,
    base_ts_ns: u64,
    p: &FacetimeParams,
) -> (FacetimeSession, Vec<TimedFrame>) {
    let mut w = Wire {
        client_mac: p.client_mac,
        gateway_mac: p.gateway_mac,
        frames: Vec::new(),
    };
    let ip = p.client_ip;
    let mut t = base_ts_ns;

    // (a) Push connection to 5223, kept open: the incoming-call notification arrives on it.
    let push_server = SocketAddrV4::new(rng.ipv4_in(p.apple), PUSH_PORT);
    if let Some(resolver) = p.resolver {
        t = dns_lookup(&mut w, rng, t, ip, resolver, PUSH_SNI, *push_server.ip())
            + rng.range(MS, 5 * MS);
    }
    let push = TlsConnection {
        client: SocketAddrV4::new(ip, ephemeral(rng)),
        server: push_server,
        sni: PUSH_SNI.into(),
    };
    let exchanges = [
        (Direction::ToServer, rng.range(180, 420) as usize),
        (Direction::ToClient, rng.range(90, 300) as usize),
        (Direction::ToClient, rng.range(500, 1100) as usize),
        (Direction::ToServer, rng.range(60, 120) as usize),
    ];
    t = tls_connection(
        &mut w,
        rng,
        t,
        push.client,
        push.server,
        PUSH_SNI,
        &["apns-security-v3"],
        &exchanges,
        false,
    );

    // (b) Identity service on 443, closed once the lookup is done.
    t += rng.range(50 * MS, 300 * MS);
    let ess_sni = *rng.pick(ESS_SNIS);
    let ess_server = SocketAddrV4::new(rng.ipv4_in(p.apple), 443);
    if let Some(resolver) = p.resolver {
        t = dns_lookup(&mut w, rng, t, ip, resolver, ess_sni, *ess_server.ip())
            + rng.range(MS, 5 * MS);
    }
    let ess = TlsConnection {
        client: SocketAddrV4::new(ip, ephemeral(rng)),
        server: ess_server,
        sni: ess_sni.into(),
    };
    let exchanges = [
        (Direction::ToServer, rng.range(400, 900) as usize),
        (Direction::ToClient, rng.range(1500, 4000) as usize),
    ];
    tls_connection(
        &mut w,
        rng,
        t,
        ess.client,
        ess.server,
        ess_sni,
        &["h2", "http/1.1"],
        &exchanges,
        true,
    );

    // Ports: SIP, audio RTP/RTCP and video RTP/RTCP, all distinct, on both sides.
    let sip_port = rng.range_u16(*FACETIME_PORTS.start(), *FACETIME_PORTS.end());
    let audio_port = media_port(rng, &[sip_port]);
    let video_port = media_port(rng, &[sip_port, audio_port, audio_port + 1]);
    let peer_ip = rng.ipv4_in(p.peers);
    let peer_sip_port = rng.range_u16(*FACETIME_PORTS.start(), *FACETIME_PORTS.end());
    let peer_audio_port = media_port(rng, &[peer_sip_port]);
    let peer_video_port = media_port(rng, &[peer_sip_port, peer_audio_port, peer_audio_port + 1]);

    // (c) STUN Binding from the audio port to Apple's STUN server.
    t += rng.range(100 * MS, 400 * MS);
    let stun_server = SocketAddrV4::new(rng.ipv4_in(p.apple), stun::STUN_PORT);
    let stun_client = SocketAddrV4::new(ip, audio_port);
    let stun_rtt = rng.range(15 * MS, 60 * MS);
    let binding = StunMessage::request(rng, stun::BINDING_REQUEST).software(STUN_SOFTWARE);
    w.up(t, stun_client, stun_server, &binding.encode(true));
    t += stun_rtt;
    let mapped = stun::success_to(&binding)
        .xor_address(stun::ATTR_XOR_MAPPED_ADDRESS, stun_client)
        .software("Apple STUN")
        .encode(true);
    w.down(t, stun_server, stun_client, &mapped);

    // TURN allocations and channel bindings, one per stream, before the call is set up.
    let mut streams = vec![(
        "audio",
        audio_port,
        SocketAddrV4::new(peer_ip, peer_audio_port),
    )];
    if p.video {
        streams.push((
            "video",
            video_port,
            SocketAddrV4::new(peer_ip, peer_video_port),
        ));
    }
    let mut relays: Vec<Option<(u16, SocketAddrV4)>> = vec![None; streams.len()];
    if p.turn {
        let mut used_channels = Vec::new();
        for (i, (_, local_port, peer)) in streams.iter().enumerate() {
            let local = SocketAddrV4::new(ip, *local_port);
            t += rng.range(2 * MS, 10 * MS);
            let alloc = StunMessage::request(rng, stun::ALLOCATE_REQUEST)
                .attribute(
                    stun::ATTR_REQUESTED_TRANSPORT,
                    &[build::IPPROTO_UDP, 0, 0, 0],
                )
                .software(STUN_SOFTWARE);
            w.up(t, local, stun_server, &alloc.encode(true));
            t += stun_rtt;
            let relayed = SocketAddrV4::new(*stun_server.ip(), ephemeral(rng));
            let ok = stun::success_to(&alloc)
                .xor_address(stun::ATTR_XOR_RELAYED_ADDRESS, relayed)
                .attribute(stun::ATTR_LIFETIME, &600u32.to_be_bytes())
                .xor_address(stun::ATTR_XOR_MAPPED_ADDRESS, local)
                .encode(true);
            w.down(t, stun_server, local, &ok);
            let channel = loop {
                let c = rng.range_u16(0x4000, 0x7fff);
                if !used_channels.contains(&c) {
                    used_channels.push(c);
                    break c;
                }
            };
            t += rng.range(MS, 5 * MS);
            let mut number = channel.to_be_bytes().to_vec();
            number.extend_from_slice(&[0, 0]);
            let bind = StunMessage::request(rng, stun::CHANNEL_BIND_REQUEST)
                .attribute(stun::ATTR_CHANNEL_NUMBER, &number)
                .xor_address(stun::ATTR_XOR_PEER_ADDRESS, *peer)
                .software(STUN_SOFTWARE);
            w.up(t, local, stun_server, &bind.encode(true));
            t += stun_rtt;
            w.down(t, stun_server, local, &stun::success_to(&bind).encode(true));
            relays[i] = Some((channel, relayed));
        }
    }

    // (d) SIP: INVITE with the offer, 100, 180, 200 with the answer, ACK.
    let sip_client = SocketAddrV4::new(ip, sip_port);
    let sip_peer = SocketAddrV4::new(peer_ip, peer_sip_port);
    let dialog = Dialog {
        call_id: format!("{}-{}-{}@{}", rng.hex(8), rng.hex(4), rng.hex(12), ip),
        caller: Party {
            user: rng.hex(10),
            addr: sip_client,
            tag: rng.hex(10),
        },
        callee: Party {
            user: rng.hex(10),
            addr: sip_peer,
            tag: rng.hex(10),
        },
        user_agent: sip::FACETIME_USER_AGENT.into(),
    };
    let sdp_media = |ports: &[u16], audio: Vec<SdpFormat>| -> Vec<SdpMedia> {
        let mut m = vec![SdpMedia {
            kind: "audio".into(),
            port: ports[0],
            formats: audio,
            rtcp_mux: p.turn,
        }];
        if p.video {
            m.push(SdpMedia {
                kind: "video".into(),
                port: ports[1],
                formats: sip::video_formats(),
                rtcp_mux: p.turn,
            });
        }
        m
    };
    let offer = Sdp {
        username: "GKVoiceChatService".into(),
        session_id: u64::from(rng.next_u32()),
        version: 0,
        address: ip,
        media: sdp_media(&[audio_port, video_port], sip::audio_formats()),
    };
    let audio_pt = *rng.pick(&[0u8, 8]);
    let answer_audio: Vec<SdpFormat> = sip::audio_formats()
        .into_iter()
        .filter(|f| f.payload_type == audio_pt || f.payload_type == 101)
        .collect();
    let answer = Sdp {
        username: "GKVoiceChatService".into(),
        session_id: u64::from(rng.next_u32()),
        version: 0,
        address: peer_ip,
        media: sdp_media(&[peer_audio_port, peer_video_port], answer_audio),
    };
    let sip_rtt = rng.range(30 * MS, 120 * MS);
    let invite_branch = format!("z9hG4bK{}", rng.hex(16));
    t += rng.range(20 * MS, 200 * MS);
    let invite = dialog.invite(&invite_branch, &offer);
    w.up(t, sip_client, sip_peer, &invite.encode());
    t += sip_rtt;
    w.down(
        t,
        sip_peer,
        sip_client,
        &dialog.respond(&invite, 100, "Trying").encode(),
    );
    t += rng.range(20 * MS, 150 * MS);
    w.down(
        t,
        sip_peer,
        sip_client,
        &dialog.respond(&invite, 180, "Ringing").encode(),
    );
    t += rng.range(1_000 * MS, 4_000 * MS);
    let ok = dialog
        .respond(&invite, 200, "OK")
        .body("application/sdp", answer.encode());
    w.down(t, sip_peer, sip_client, &ok.encode());
    t += rng.range(MS, 3 * MS);
    let ack = dialog.in_dialog("ACK", true, 1, &format!("z9hG4bK{}", rng.hex(16)));
    w.up(t, sip_client, sip_peer, &ack.encode());

    // (e) RTP and RTCP on the negotiated ports, both directions.
    let media_start = t + rng.range(10 * MS, 40 * MS);
    let media_end = media_start + p.media_ms * MS;
    let cname = format!("{}@{}", dialog.caller.user, ip);
    let peer_cname = format!("{}@{}", dialog.callee.user, peer_ip);
    let mut made = Vec::new();
    for (i, (kind, local_port, peer)) in streams.iter().enumerate() {
        let video = *kind == "video";
        let pt = if video { 126 } else { audio_pt };
        let (interval, step) = if video {
            (66 * MS, 5_940)
        } else {
            (20 * MS, 160)
        };
        let mut client_src = rtp::RtpSource::new(
            pt,
            rng.next_u32(),
            rng.next_u16(),
            rng.next_u32(),
            step,
            cname.clone(),
        );
        let mut peer_src = rtp::RtpSource::new(
            pt,
            rng.next_u32(),
            rng.next_u16(),
            rng.next_u32(),
            step,
            peer_cname.clone(),
        );
        let local = SocketAddrV4::new(ip, *local_port);
        let local_rtcp = SocketAddrV4::new(ip, local_port + 1);
        let peer_rtcp = SocketAddrV4::new(*peer.ip(), peer.port() + 1);
        let relay = relays[i];
        let mut rtcp_count = [0u32; 2];
        for from_client in [true, false] {
            let src = if from_client {
                &mut client_src
            } else {
                &mut peer_src
            };
            let mut nominal = media_start
                + if from_client {
                    0
                } else {
                    rng.range(0, 10 * MS)
                };
            let mut next_rtcp = nominal + rng.range(500 * MS, 1_500 * MS);
            while nominal < media_end {
                let jitter = if from_client {
                    rng.range(0, 100_000)
                } else {
                    rng.range(0, 3 * MS)
                };
                let at = nominal + jitter;
                let payload = if video {
                    // One H.264 NAL unit per packet (RFC 6184 single NAL unit mode): an IDR
                    // slice every 30 frames, non-IDR slices otherwise.
                    let nal = if src.packets_sent % 30 == 0 {
                        0x65
                    } else {
                        0x41
                    };
                    let mut v = vec![nal];
                    let len = rng.range(400, 1100) as usize;
                    v.extend_from_slice(&rng.bytes(len));
                    v
                } else {
                    rng.bytes(160)
                };
                let packet = src.packet(&payload);
                let sr = (at >= next_rtcp).then(|| src.sender_report(at + 5 * MS));
                if sr.is_some() {
                    next_rtcp += 5_000 * MS;
                    rtcp_count[usize::from(!from_client)] += 1;
                }
                match (relay, from_client) {
                    (Some((channel, _)), true) => {
                        w.up(
                            at,
                            local,
                            stun_server,
                            &stun::channel_data(channel, &packet),
                        );
                        if let Some(sr) = sr {
                            w.up(
                                at + 5 * MS,
                                local,
                                stun_server,
                                &stun::channel_data(channel, &sr),
                            );
                        }
                    }
                    (Some((channel, _)), false) => {
                        w.down(
                            at,
                            stun_server,
                            local,
                            &stun::channel_data(channel, &packet),
                        );
                        if let Some(sr) = sr {
                            w.down(
                                at + 5 * MS,
                                stun_server,
                                local,
                                &stun::channel_data(channel, &sr),
                            );
                        }
                    }
                    (None, true) => {
                        w.up(at, local, *peer, &packet);
                        if let Some(sr) = sr {
                            w.up(at + 5 * MS, local_rtcp, peer_rtcp, &sr);
                        }
                    }
                    (None, false) => {
                        w.down(at, *peer, local, &packet);
                        if let Some(sr) = sr {
                            w.down(at + 5 * MS, peer_rtcp, local_rtcp, &sr);
                        }
                    }
                }
                nominal += interval;
            }
        }
        made.push(MediaStream {
            kind: (*kind).into(),
            client_port: *local_port,
            peer: *peer,
            payload_type: pt,
            client_ssrc: client_src.ssrc,
            peer_ssrc: peer_src.ssrc,
            rtcp_mux: p.turn,
            channel: relay.map(|r| r.0),
            relayed: relay.map(|r| r.1),
            client_packets: client_src.packets_sent,
            peer_packets: peer_src.packets_sent,
            client_rtcp: rtcp_count[0],
            peer_rtcp: rtcp_count[1],
        });
    }

    // BYE from either side, and its 200 OK.
    let bye_from_peer = rng.chance(1, 2);
    let mut t = media_end + rng.range(5 * MS, 30 * MS);
    let bye = dialog.in_dialog(
        "BYE",
        !bye_from_peer,
        if bye_from_peer { 1 } else { 2 },
        &format!("z9hG4bK{}", rng.hex(16)),
    );
    let bye_ok =
        SipMessage::response_to(&bye, 200, "OK").header("User-Agent", dialog.user_agent.clone());
    if bye_from_peer {
        w.down(t, sip_peer, sip_client, &bye.encode());
        t += rng.range(MS, 3 * MS);
        w.up(t, sip_client, sip_peer, &bye_ok.encode());
    } else {
        w.up(t, sip_client, sip_peer, &bye.encode());
        t += sip_rtt;
        w.down(t, sip_peer, sip_client, &bye_ok.encode());
    }

    let mut frames = w.frames;
    frames.sort_by_key(|f| f.0);
    let end_ns = frames.last().map_or(base_ts_ns, |f| f.0);
    let mut made = made.into_iter();
    let audio = made.next().expect("the audio stream is always generated");
    let session = FacetimeSession {
        client_ip: ip,
        push,
        ess,
        stun_server,
        stun_client,
        stun_transaction: binding.transaction_id,
        sip_client,
        sip_peer,
        call_id: dialog.call_id.clone(),
        caller_tag: dialog.caller.tag.clone(),
        callee_tag: dialog.callee.tag.clone(),
        invite_branch,
        offer,
        answer,
        audio,
        video: made.next(),
        turn: p.turn,
        bye_from_peer,
        start_ns: base_ts_ns,
        end_ns,
    };
    (session, frames)
}

/// `sessions` calls from distinct clients in 10.0.0.0/24 behind gateway 10.0.0.1, starting
/// 0.5-3 s apart, all relayed through TURN when `turn`. Frames sorted by time.
pub fn facetime_capture(
    seed: u64,
    sessions: usize,
    turn: bool,
) -> (Vec<FacetimeSession>, Vec<TimedFrame>) {
    let mut rng = Rng::new(seed);
    let gateway_mac = rng.mac();
    let lan = Ipv4Prefix::new(Ipv4Addr::new(10, 0, 0, 0), 24);
    let mut used = vec![Ipv4Addr::new(10, 0, 0, 1)];
    let mut t = crate::sample::SAMPLE_EPOCH_S * 1_000_000_000;
    let mut all = Vec::new();
    let mut frames = Vec::new();
    for _ in 0..sessions {
        // More calls than the /24 holds reuse addresses rather than loop forever.
        let mut ip = rng.ipv4_in(lan);
        for _ in 0..64 {
            if !used.contains(&ip) {
                break;
            }
            ip = rng.ipv4_in(lan);
        }
        used.push(ip);
        let mut p = FacetimeParams::new(ip, rng.mac(), gateway_mac);
        p.turn = turn;
        p.media_ms = rng.range(3_000, 6_000);
        let mut call_rng = rng.fork();
        let (s, f) = facetime_session(&mut call_rng, t, &p);
        all.push(s);
        frames.extend(f);
        t += rng.range(500 * MS, 3_000 * MS);
    }
    frames.sort_by_key(|f: &TimedFrame| f.0);
    (all, frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse, Parsed};
    use std::collections::{BTreeMap, BTreeSet};
    use std::net::SocketAddr;

    fn params(turn: bool, video: bool) -> FacetimeParams {
        let mut p = FacetimeParams::new(
            Ipv4Addr::new(10, 0, 0, 20),
            [2, 0, 0, 0, 0, 20],
            [2, 0, 0, 0, 0, 1],
        );
        p.turn = turn;
        p.video = video;
        p.resolver = Some(Ipv4Addr::new(192, 0, 2, 53));
        p.media_ms = 2_000;
        p
    }

    fn generate(seed: u64, turn: bool, video: bool) -> (FacetimeSession, Vec<TimedFrame>) {
        facetime_session(
            &mut Rng::new(seed),
            1_700_000_000_000_000_000,
            &params(turn, video),
        )
    }

    fn udp(p: &Parsed<'_>) -> Option<(SocketAddr, SocketAddr)> {
        (p.proto == 17).then(|| {
            (
                SocketAddr::new(p.src, p.sport),
                SocketAddr::new(p.dst, p.dport),
            )
        })
    }

    fn v4(a: SocketAddrV4) -> SocketAddr {
        SocketAddr::V4(a)
    }

    /// The SIP messages on the wire between the two SIP addresses, as text, in order.
    fn sip_messages(s: &FacetimeSession, frames: &[TimedFrame]) -> Vec<String> {
        let ends = [v4(s.sip_client), v4(s.sip_peer)];
        frames
            .iter()
            .filter_map(|(_, f)| parse(f))
            .filter(|p| udp(p).is_some_and(|(a, b)| ends.contains(&a) && ends.contains(&b)))
            .map(|p| {
                let body = sip::checked_body(p.payload).expect("Content-Length matches the body");
                assert!(body.is_empty() || body.starts_with(b"v=0\r\n"));
                String::from_utf8(p.payload.to_vec()).unwrap()
            })
            .collect()
    }

    /// (connection address, [(media kind, port)]) read from an SDP body on the wire.
    fn sdp_of(msg: &str) -> (Ipv4Addr, Vec<(String, u16)>) {
        let body = &msg[msg.find("\r\n\r\n").unwrap() + 4..];
        let mut addr = None;
        let mut media = Vec::new();
        for line in body.split("\r\n") {
            if let Some(a) = line.strip_prefix("c=IN IP4 ") {
                addr = Some(a.parse().unwrap());
            }
            if let Some(m) = line.strip_prefix("m=") {
                let f: Vec<&str> = m.split(' ').collect();
                assert_eq!(f[2], "RTP/AVP");
                media.push((f[0].to_string(), f[1].parse().unwrap()));
            }
        }
        (addr.unwrap(), media)
    }

    fn header<'a>(msg: &'a str, name: &str) -> &'a str {
        msg.split("\r\n")
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(": ")))
            .unwrap()
    }

    #[test]
    fn sip_dialog_is_complete_with_right_lengths_and_facetime_ports() {
        let (s, frames) = generate(11, false, true);
        let msgs = sip_messages(&s, &frames);
        let firsts: Vec<&str> = msgs
            .iter()
            .map(|m| m.split("\r\n").next().unwrap())
            .collect();
        assert!(firsts[0].starts_with("INVITE sip:"));
        assert_eq!(
            &firsts[1..4],
            &[
                "SIP/2.0 100 Trying",
                "SIP/2.0 180 Ringing",
                "SIP/2.0 200 OK"
            ]
        );
        assert!(firsts[4].starts_with("ACK sip:"));
        assert!(firsts[5].starts_with("BYE sip:"));
        assert_eq!(firsts[6], "SIP/2.0 200 OK");
        assert_eq!(msgs.len(), 7);
        assert_eq!(header(&msgs[0], "User-Agent"), "Viceroy 1.4");
        assert_eq!(header(&msgs[0], "Content-Type"), "application/sdp");
        for m in &msgs {
            assert_eq!(header(m, "Call-ID"), s.call_id);
            assert!(header(m, "Via").contains(";branch=z9hG4bK"));
        }
        assert_eq!(header(&msgs[3], "CSeq"), "1 INVITE");
        assert!(header(&msgs[3], "To").ends_with(&format!(";tag={}", s.callee_tag)));
        assert!(header(&msgs[0], "From").ends_with(&format!(";tag={}", s.caller_tag)));
        assert!(header(&msgs[0], "Via").contains(&s.invite_branch));
        assert_eq!(header(&msgs[5], "CSeq").split(' ').nth(1), Some("BYE"));
        for port in [
            s.sip_client.port(),
            s.sip_peer.port(),
            s.audio.client_port,
            s.audio.peer.port(),
        ] {
            assert!(FACETIME_PORTS.contains(&port), "{port}");
        }
        assert!(FACETIME_PORTS.contains(&(s.audio.client_port + 1)));
    }

    #[test]
    fn sdp_ports_are_exactly_where_rtp_and_rtcp_flow() {
        for seed in 0..8 {
            let (s, frames) = generate(seed, false, seed % 2 == 0);
            let msgs = sip_messages(&s, &frames);
            let (offer_addr, offer_media) = sdp_of(&msgs[0]);
            let (answer_addr, answer_media) = sdp_of(&msgs[3]);
            assert_eq!(offer_addr, s.client_ip);
            assert_eq!(offer_media.len(), if seed % 2 == 0 { 2 } else { 1 });
            assert_eq!(offer_media.len(), answer_media.len());

            // Every UDP datagram that is not DNS, STUN or SIP must belong to a negotiated
            // stream: RTP on the m= ports, RTCP on the m= ports + 1.
            let mut expected = BTreeSet::new();
            for ((_, cp), (_, pp)) in offer_media.iter().zip(&answer_media) {
                for d in [0, 1] {
                    let c = SocketAddr::new(offer_addr.into(), cp + d);
                    let p = SocketAddr::new(answer_addr.into(), pp + d);
                    expected.insert((c, p));
                    expected.insert((p, c));
                }
            }
            let sip_ends = [v4(s.sip_client), v4(s.sip_peer)];
            let mut seen = BTreeSet::new();
            let mut rtp: BTreeMap<(SocketAddr, SocketAddr), Vec<TimedFrame>> = BTreeMap::new();
            for (t, f) in &frames {
                let Some(p) = parse(f) else {
                    panic!("unparsable frame")
                };
                let Some((a, b)) = udp(&p) else { continue };
                if a.port() == 53 || b.port() == 53 || a.port() == 3478 || b.port() == 3478 {
                    continue;
                }
                if sip_ends.contains(&a) && sip_ends.contains(&b) {
                    continue;
                }
                seen.insert((a, b));
                rtp.entry((a, b))
                    .or_default()
                    .push((*t, p.payload.to_vec()));
            }
            assert_eq!(seen, expected, "seed {seed}");

            // RTP on the audio ports: version 2, the answered payload type, consecutive seq,
            // timestamps in steps of 160, one SSRC, 160-byte payloads every 20 ms.
            let c = SocketAddr::new(offer_addr.into(), offer_media[0].1);
            let p = SocketAddr::new(answer_addr.into(), answer_media[0].1);
            for (key, ssrc) in [((c, p), s.audio.client_ssrc), ((p, c), s.audio.peer_ssrc)] {
                let pkts = &rtp[&key];
                assert!(pkts.len() >= 90, "{} packets", pkts.len());
                for w in pkts.windows(2) {
                    let (a, b) = (&w[0].1, &w[1].1);
                    assert_eq!(b[0] >> 6, 2);
                    assert_eq!(b[1] & 0x7f, s.audio.payload_type);
                    assert_eq!(
                        u16::from_be_bytes([b[2], b[3]]),
                        u16::from_be_bytes([a[2], a[3]]).wrapping_add(1)
                    );
                    let ts = |x: &[u8]| u32::from_be_bytes(x[4..8].try_into().unwrap());
                    assert_eq!(ts(b), ts(a).wrapping_add(160));
                    assert_eq!(u32::from_be_bytes(b[8..12].try_into().unwrap()), ssrc);
                    assert_eq!(b.len(), 12 + 160);
                    let gap = w[1].0 - w[0].0;
                    assert!((17 * MS..=23 * MS).contains(&gap), "gap {gap}");
                }
                assert!(header(&msgs[3], "Content-Type") == "application/sdp");
            }
            assert!(msgs[3].contains(&format!(
                "m=audio {} RTP/AVP {} 101\r\n",
                answer_media[0].1, s.audio.payload_type
            )));
            assert_ne!(s.audio.client_ssrc, s.audio.peer_ssrc);
            // RTCP sender reports on port + 1 in both directions.
            let rc = SocketAddr::new(c.ip(), c.port() + 1);
            let rp = SocketAddr::new(p.ip(), p.port() + 1);
            for key in [(rc, rp), (rp, rc)] {
                assert!(rtp[&key].iter().all(|(_, r)| r[0] >> 6 == 2 && r[1] == 200));
            }
            assert_eq!(s.audio.client_rtcp as usize, rtp[&(rc, rp)].len());
        }
    }

    #[test]
    fn turn_relays_media_in_channel_data_to_the_bound_peer() {
        let (s, frames) = generate(5, true, true);
        assert!(s.turn);
        let msgs = sip_messages(&s, &frames);
        let (answer_addr, answer_media) = sdp_of(&msgs[3]);
        assert!(msgs[0].contains("a=rtcp-mux\r\n"));
        let turn = v4(s.stun_server);
        let mut bound = BTreeMap::new();
        let mut relayed = BTreeMap::<u16, Vec<Vec<u8>>>::new();
        for (_, f) in &frames {
            let p = parse(f).unwrap();
            let Some((a, b)) = udp(&p) else { continue };
            if p.src == IpAddr::V4(s.client_ip) && b.ip() == answer_addr {
                assert_eq!(b, v4(s.sip_peer), "only SIP goes to the peer directly");
            }
            if a != turn && b != turn {
                continue;
            }
            let m = p.payload;
            if m[0] & 0xc0 == 0x40 {
                // ChannelData: channel, length, data padded to four bytes.
                let len = usize::from(u16::from_be_bytes([m[2], m[3]]));
                assert_eq!(m.len(), (4 + len).next_multiple_of(4));
                relayed
                    .entry(u16::from_be_bytes([m[0], m[1]]))
                    .or_default()
                    .push(m[4..4 + len].to_vec());
                continue;
            }
            assert_eq!(&m[4..8], &stun::MAGIC_COOKIE.to_be_bytes());
            if u16::from_be_bytes([m[0], m[1]]) == stun::CHANNEL_BIND_REQUEST {
                // Walk the attributes for CHANNEL-NUMBER and XOR-PEER-ADDRESS.
                let (mut at, mut channel, mut peer) = (20, 0, None);
                while at + 4 <= m.len() {
                    let kind = u16::from_be_bytes([m[at], m[at + 1]]);
                    let len = usize::from(u16::from_be_bytes([m[at + 2], m[at + 3]]));
                    let v = &m[at + 4..at + 4 + len];
                    if kind == stun::ATTR_CHANNEL_NUMBER {
                        channel = u16::from_be_bytes([v[0], v[1]]);
                    }
                    if kind == stun::ATTR_XOR_PEER_ADDRESS {
                        let port = u16::from_be_bytes([v[2], v[3]]) ^ 0x2112;
                        let ip =
                            u32::from_be_bytes(v[4..8].try_into().unwrap()) ^ stun::MAGIC_COOKIE;
                        peer = Some(SocketAddrV4::new(Ipv4Addr::from(ip), port));
                    }
                    at += 4 + len.next_multiple_of(4);
                }
                assert!((0x4000..=0x7fff).contains(&channel));
                bound.insert(channel, peer.unwrap());
            }
        }
        // One channel per stream, bound to the address the answer gave for that stream.
        let wanted: BTreeSet<SocketAddrV4> = answer_media
            .iter()
            .map(|(_, port)| SocketAddrV4::new(answer_addr, *port))
            .collect();
        assert_eq!(bound.values().copied().collect::<BTreeSet<_>>(), wanted);
        assert_eq!(
            Some(s.audio.peer),
            bound.get(&s.audio.channel.unwrap()).copied()
        );
        let audio = &relayed[&s.audio.channel.unwrap()];
        let rtp: Vec<&Vec<u8>> = audio
            .iter()
            .filter(|d| d[1] & 0x7f == s.audio.payload_type)
            .collect();
        assert_eq!(
            rtp.len() as u32,
            s.audio.client_packets + s.audio.peer_packets
        );
        let ssrcs: BTreeSet<u32> = rtp
            .iter()
            .map(|d| u32::from_be_bytes(d[8..12].try_into().unwrap()))
            .collect();
        assert_eq!(
            ssrcs,
            BTreeSet::from([s.audio.client_ssrc, s.audio.peer_ssrc])
        );
        // RTCP is multiplexed into the same channel.
        assert!(audio.iter().any(|d| d[1] == 200));
        assert!(relayed[&s.video.as_ref().unwrap().channel.unwrap()]
            .iter()
            .any(|d| d[1] & 0x7f == 126));
    }

    #[test]
    fn tls_and_stun_carry_the_expected_names_and_mapped_address() {
        let (s, frames) = generate(3, false, false);
        let mut snis = Vec::new();
        let mut mapped = None;
        for (_, f) in &frames {
            let p = parse(f).unwrap();
            if p.proto == 6 && p.payload.len() > 5 && p.payload[0] == 22 && p.payload[5] == 1 {
                let name = s.push.sni.as_bytes();
                let ess = s.ess.sni.as_bytes();
                if p.payload.windows(name.len()).any(|w| w == name) {
                    snis.push((p.dport, s.push.sni.clone()));
                } else if p.payload.windows(ess.len()).any(|w| w == ess) {
                    snis.push((p.dport, s.ess.sni.clone()));
                }
            }
            if p.proto == 17 && p.sport == 3478 {
                let m = p.payload;
                assert_eq!(u16::from_be_bytes([m[0], m[1]]), stun::BINDING_SUCCESS);
                assert_eq!(&m[8..20], &s.stun_transaction);
                assert_eq!(&m[20..22], &stun::ATTR_XOR_MAPPED_ADDRESS.to_be_bytes());
                let port = u16::from_be_bytes([m[26], m[27]]) ^ 0x2112;
                let ip = u32::from_be_bytes(m[28..32].try_into().unwrap()) ^ stun::MAGIC_COOKIE;
                mapped = Some(SocketAddrV4::new(Ipv4Addr::from(ip), port));
            }
        }
        assert_eq!(
            snis,
            vec![(5223, PUSH_SNI.to_string()), (443, s.ess.sni.clone())]
        );
        assert!(ESS_SNIS.contains(&s.ess.sni.as_str()));
        assert_eq!(mapped, Some(s.stun_client));
        assert_eq!(s.push.server.ip().octets()[0], 17);
        assert_eq!(s.stun_server.ip().octets()[0], 17);
    }

    #[test]
    fn same_seed_same_call_and_frames_sorted() {
        let (a, fa) = generate(99, true, false);
        let (b, fb) = generate(99, true, false);
        assert_eq!(a, b);
        assert_eq!(fa, fb);
        let (c, fc) = generate(100, true, false);
        assert_ne!(a.call_id, c.call_id);
        assert_ne!(fa, fc);
        assert!(fa.windows(2).all(|w| w[0].0 <= w[1].0));
        let (all, frames) = facetime_capture(4, 3, false);
        assert_eq!(all.len(), 3);
        assert_eq!(
            all.iter()
                .map(|s| s.client_ip)
                .collect::<BTreeSet<_>>()
                .len(),
            3
        );
        assert!(frames.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
