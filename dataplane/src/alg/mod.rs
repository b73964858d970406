//! Application-level gateways: the SIP ALG.
//!
//! On every flow whose application's catalog entry says `alg: sip` (sip, facetime, ...), on
//! any port, each SIP message is read (`sip::scan`, `sdp::parse`) to follow its calls and
//! registrations: the media each offer and answer describes gets pinholes (`pinhole`), open
//! to the other party's media address only, whether or not NAT applies; BYE, CANCEL and
//! failure responses close them, a re-INVITE moves them, hold closes them. Where NAT
//! translated the packet, the addresses it changed are rewritten inside the message (and
//! the media ports it maps), then Content-Length; a message NAT did not change is never
//! touched, byte for byte. A message that cannot be read is counted and left alone on an
//! untranslated flow; on a translated flow it is dropped or passed per configuration, never
//! half-rewritten.
//!
//! The ALG owns per-worker state reserved at start (pinholes, dialogs, one message buffer):
//! per message it never allocates and never panics.
pub mod edit;
pub mod find;
pub mod pinhole;
pub mod sdp;
pub mod sip;
pub mod tcp;

#[cfg(test)]
mod tests;

use crate::config::{SipAlgConfig, Unrewritable};
use crate::flow::affinity::Affinity;
use crate::flow::{Dir, Slot};
use crate::nat::NatTable;
use crate::packet::proto;
use edit::Edits;
use pinhole::{Key, Limits, Pinholes, Purpose};
use sdp::{MappedMedia, Sdp, MAX_MEDIA};
use sip::{Changed, Kind, Message, Method, ScanError, Xlate};
use std::sync::Arc;
use tcp::{Assembled, Hold, Streams};

/// The largest SIP message rewritten (a datagram's payload).
pub const MAX_MESSAGE: usize = 65_535;
const NS: u64 = 1_000_000_000;
/// A registration's pinhole outlives its Expires by this much (refreshes arrive late).
const REGISTER_GRACE_NS: u64 = 32 * NS;

/// SIP ALG counters a worker publishes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SipCounters {
    pub messages: u64,
    pub rewritten: u64,
    /// Not SIP after all, or not parseable: left alone (or dropped on a translated flow).
    pub malformed: u64,
    /// Parseable but not rewritable (too many edits, too large after rewriting).
    pub unrewritable: u64,
    /// Media NAT could not map a port for (exhausted): the call's media there fails.
    pub media_unmapped: u64,
    /// Datagrams on SIP flows that are not SIP (STUN keep-alives, relayed media): passed.
    pub not_sip: u64,
}

/// What happens to the packet whose SIP message was looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Sent as it is.
    Unchanged,
    /// Sent with its payload replaced by `SipAlg::rewritten()`.
    Rewritten,
    /// Dropped (a translated message that could not be rewritten, by configuration).
    Drop,
}

/// What happens to a TCP segment of a SIP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Sent as it is (its sequence numbers shifted where an earlier rewrite moved them).
    Unchanged,
    /// Its payload becomes `SipAlg::rewritten()`, from sequence number `seq` (already
    /// shifted), in segments of at most `segment` bytes.
    Emit { seq: u32, segment: usize },
    /// Consumed: its bytes are held until the message they begin completes.
    Held,
    /// Out of order while bytes are held: dropped (the sender sends it again).
    Reordered,
    /// A translated message that cannot be rewritten, dropped by configuration.
    Drop,
}

/// What `stream_messages` did.
struct Stream {
    done: usize,
    out: Option<usize>,
    changed: bool,
}

/// One SIP-carrying packet as the ALG needs to see it.
#[derive(Clone, Copy)]
pub struct SipPacket<'a> {
    pub payload: &'a [u8],
    /// Its direction in the signalling flow: which party sent it.
    pub dir: Dir,
    /// Its IP protocol (UDP or TCP): the protocol of a registration's pinhole.
    pub proto: u8,
    /// What NAT does to it (nothing: no rewrite).
    pub xlate: Xlate,
    /// Where NAT would send the media of another inside host the message names (a media
    /// gateway beside the signalling server): the external address, or None. Asked only
    /// when the packet's source is translated.
    pub media_nat: &'a dyn Fn([u8; 4]) -> Option<[u8; 4]>,
    /// Where it is going after translation: the other party, as its packets' source looks
    /// when they arrive.
    pub peer: [u8; 4],
    /// The signalling flow: its `flow_id`, key hash, application and originator address.
    pub flow_id: u64,
    pub flow_hash: u64,
    pub app: u16,
    pub source: u32,
    pub now: u64,
}

/// One worker's SIP ALG.
pub struct SipAlg {
    pub pinholes: Pinholes,
    pub counters: SipCounters,
    config: SipAlgConfig,
    rewriter: Rewriter,
    /// SIP over TCP: held bytes and sequence corrections per connection.
    pub streams: Streams,
    out: Box<[u8]>,
    out_len: usize,
    /// The message being read (reused: its header table is not built per message).
    scratch: Option<Box<Message>>,
    /// The SDP body of the message being followed, reused.
    sdp_scratch: Option<Box<Sdp>>,
    /// Per flow slot: the `flow_id` of the signalling flow whose pinhole admitted it (0:
    /// not predicted), that flow's application, and the endpoint claim it holds (0: none).
    predicted: Vec<(u64, u16, u64)>,
}

impl SipAlg {
    pub fn new(config: &SipAlgConfig, flows: usize, seeds: [u64; 2]) -> SipAlg {
        let limits = Limits {
            pinholes: config.pinholes,
            dialogs: config.dialogs,
            per_source: config.per_source,
            initial_ns: config.initial_timeout as u64 * NS,
            idle_ns: config.idle_timeout as u64 * NS,
        };
        SipAlg {
            pinholes: Pinholes::new(limits, seeds),
            counters: SipCounters::default(),
            config: config.clone(),
            rewriter: Rewriter::default(),
            streams: Streams::new(
                flows,
                config.tcp_streams,
                config.tcp_buffers,
                config.tcp_buffer_bytes,
            ),
            out: vec![0u8; MAX_MESSAGE].into_boxed_slice(),
            out_len: 0,
            scratch: Some(Box::default()),
            sdp_scratch: Some(Box::default()),
            predicted: vec![(0, 0, 0); flows],
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    pub fn config(&self) -> &SipAlgConfig {
        &self.config
    }

    /// The payload `Outcome::Rewritten` refers to.
    pub fn rewritten(&self) -> &[u8] {
        &self.out[..self.out_len]
    }

    /// Flow `slot` was let in by a pinhole of signalling flow `parent`, of application
    /// `app`.
    pub fn set_predicted(&mut self, slot: Slot, parent: u64, app: u16, claim: u64) {
        let old = std::mem::replace(&mut self.predicted[slot as usize], (parent, app, 0)).2;
        if let Some(c) = self.pinholes.claims.as_mut() {
            if old != 0 {
                c.release(old);
            }
            if claim != 0 && c.hold(claim) {
                self.predicted[slot as usize].2 = claim;
            }
        }
    }

    /// With several workers: this worker claims the endpoints its pinholes admit (and its
    /// predicted flows use) in `shared`, as worker `me`.
    pub fn share_claims(&mut self, shared: Arc<Affinity>, me: usize) {
        let room = self.pinholes.limits().pinholes * 2;
        self.pinholes.claims = Some(pinhole::Claims::new(shared, me, room));
    }

    /// The application of the call that predicted flow `slot` (valid for a flow marked
    /// predicted).
    #[inline]
    pub fn call_app(&self, slot: Slot) -> u16 {
        self.predicted[slot as usize].1
    }

    /// Flow `slot`, media App-ID just named and no pinhole let in, runs between `ends`: if
    /// one of them is a live call's media endpoint (a call relayed through TURN: its media goes
    /// from the described endpoint to the relay), the call's application, with the flow
    /// recorded as that call's (`predicted_by`).
    pub fn relayed_media(
        &mut self,
        slot: Slot,
        proto: u8,
        ends: [([u8; 4], u16); 2],
    ) -> Option<u16> {
        if self.pinholes.is_empty() {
            return None;
        }
        let (app, parent) = ends
            .iter()
            .find_map(|&(addr, port)| self.pinholes.call_at(pinhole::Key { proto, addr, port }))?;
        self.set_predicted(slot, parent, app, 0);
        Some(app)
    }

    /// The signalling flow that predicted flow `slot`, if one did.
    pub fn predicted_by(&self, slot: Slot) -> Option<u64> {
        let p = self.predicted[slot as usize].0;
        (p != 0).then_some(p)
    }

    /// Flow `slot` ended: the signalling flow that predicted it, if one did.
    pub fn ended(&mut self, slot: Slot) -> Option<u64> {
        self.streams.ended(slot);
        let (p, _, claim) = std::mem::take(&mut self.predicted[slot as usize]);
        if let (Some(c), true) = (self.pinholes.claims.as_mut(), claim != 0) {
            c.release(claim);
        }
        (p != 0).then_some(p)
    }

    /// Closes expired pinholes and dialogs (a bounded pass), releasing their NAT mappings.
    pub fn expire(&mut self, now: u64, budget: usize, nat: Option<&mut NatTable>) {
        if self.pinholes.counters.dialogs == 0 {
            return;
        }
        let mut nat = nat;
        self.pinholes
            .expire(now, budget, &mut |m| give_back(&mut nat, m));
    }

    /// One datagram on a SIP flow: a SIP message, or one inside TURN ChannelData framing
    /// (FaceTime relays its signalling so), or something else the flow also carries (STUN
    /// keep-alives, RFC 5626; relayed media), which passes untouched.
    pub fn on_datagram(&mut self, p: &SipPacket, nat: Option<&mut NatTable>) -> Outcome {
        let Some((channel, inner, padded)) = channel_data(p.payload) else {
            return self.on_message(p, nat);
        };
        let q = SipPacket {
            payload: inner,
            ..*p
        };
        match self.on_message(&q, nat) {
            Outcome::Rewritten => {
                let n = self.out_len;
                let pad = if padded { (4 - n % 4) % 4 } else { 0 };
                if n > u16::MAX as usize || 4 + n + pad > self.out.len() {
                    self.counters.unrewritable += 1;
                    return self.unrewritable(p);
                }
                self.out.copy_within(0..n, 4);
                self.out[..2].copy_from_slice(&channel.to_be_bytes());
                self.out[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                self.out[4 + n..4 + n + pad].fill(0);
                self.out_len = 4 + n + pad;
                Outcome::Rewritten
            }
            o => o,
        }
    }

    /// One datagram's SIP message: follows its call, and rewrites it where NAT changed an
    /// address it carries. A datagram that does not begin like SIP is not SIP (a STUN
    /// keep-alive): counted and left alone.
    pub fn on_message(&mut self, p: &SipPacket, nat: Option<&mut NatTable>) -> Outcome {
        let skip = sip::leading_blank(p.payload);
        if skip == p.payload.len() {
            return Outcome::Unchanged;
        }
        let b = &p.payload[skip..];
        if !sip::starts_like_sip(b) {
            self.counters.not_sip += 1;
            return Outcome::Unchanged;
        }
        self.counters.messages += 1;
        let mut msg = self.scratch.take().unwrap_or_default();
        let outcome = match sip::scan_into(b, p.proto == proto::UDP, &mut msg) {
            Err(_) => {
                self.counters.malformed += 1;
                self.unrewritable(p)
            }
            Ok(()) => {
                self.out[..skip].copy_from_slice(&p.payload[..skip]);
                match self.message(b, &msg, p, nat, skip) {
                    Ok(None) => Outcome::Unchanged,
                    Ok(Some(n)) => {
                        self.out_len = skip + n;
                        Outcome::Rewritten
                    }
                    Err(()) => self.unrewritable(p),
                }
            }
        };
        self.scratch = Some(msg);
        outcome
    }

    /// One TCP segment of a SIP connection (flow `slot`, original sequence number `seq`):
    /// the whole messages it completes are followed and, on a translated connection,
    /// rewritten; an unfinished one is held (`tcp`).
    pub fn on_segment(
        &mut self,
        p: &SipPacket,
        slot: Slot,
        seq: u32,
        nat: Option<&mut NatTable>,
    ) -> Segment {
        let translated = !p.xlate.is_none();
        let (joined, base) = match self.streams.assemble(slot, p.dir, seq, p.payload) {
            Assembled::Alone => (None, seq),
            Assembled::Joined {
                buf,
                seq,
                len,
                consumed,
            } => (Some((buf, len, consumed)), seq),
            Assembled::Duplicate => return Segment::Held,
            Assembled::Resend { buf, seq, len } => {
                let b = self.streams.take_buffer(buf);
                self.out[..len].copy_from_slice(&b[..len]);
                self.streams.put_back(buf, b);
                self.out_len = len;
                let segment = self.streams.segment_size(slot, p.dir, p.payload.len());
                let (seq, _) = self.streams.shift(slot, p.dir, seq, 0);
                return Segment::Emit { seq, segment };
            }
            Assembled::Reordered { consumed: true } => return Segment::Reordered,
            Assembled::Reordered { consumed: false } => return Segment::Unchanged,
        };
        // The held bytes went on unchanged (untranslated when held): nothing to rewrite.
        let rewrite = translated && joined.is_none_or(|(_, _, consumed)| consumed);
        let taken = joined.map(|(b, ..)| self.streams.take_buffer(b));
        let data: &[u8] = match (&taken, joined) {
            (Some(t), Some((_, len, _))) => &t[..len],
            _ => p.payload,
        };
        let r = self.stream_messages(data, p, rewrite, nat);
        let tail_len = data.len() - r.done;
        let total = data.len();
        if let (Some(t), Some((b, ..))) = (taken, joined) {
            self.streams.put_back(b, t);
        }
        let Some(out) = r.out else {
            self.streams.release(slot, p.dir);
            return if self.config.unrewritable == Unrewritable::Pass {
                Segment::Unchanged
            } else {
                Segment::Drop
            };
        };
        let mut out = out;
        let mut done = r.done;
        if tail_len == 0 {
            if !(rewrite && joined.is_some()) {
                self.streams.release(slot, p.dir);
            }
        } else {
            // A tail after held bytes is in their buffer (`assemble` checked it fits).
            let t = match joined {
                Some(_) => Hold::InBuffer {
                    from: done,
                    len: tail_len,
                },
                None => Hold::Bytes(&p.payload[done..]),
            };
            if !self.streams.hold(
                slot,
                p.dir,
                base.wrapping_add(done as u32),
                t,
                rewrite,
                p.now,
            ) && rewrite
            {
                // It cannot be held (so it is this segment's own tail): unrewritable, never
                // sent half-translated.
                self.counters.unrewritable += 1;
                self.streams.release(slot, p.dir);
                if self.config.unrewritable == Unrewritable::Drop {
                    return Segment::Drop;
                }
                let Some(t) = self.out.get_mut(out..out + tail_len) else {
                    return Segment::Drop;
                };
                t.copy_from_slice(&p.payload[p.payload.len() - tail_len..]);
                out += tail_len;
                done += tail_len;
            }
        }
        if !rewrite {
            return Segment::Unchanged;
        }
        // Noted once a hold made the stream: the size later segments keep to.
        let segment = self.streams.segment_size(slot, p.dir, p.payload.len());
        if done == 0 {
            return Segment::Held;
        }
        if joined.is_none() && !r.changed && done == total {
            return Segment::Unchanged;
        }
        let (seq_out, _) = self.streams.shift(slot, p.dir, base, 0);
        if !self.streams.record(slot, p.dir, base, done, out) {
            self.counters.unrewritable += 1;
            return Segment::Drop;
        }
        self.out_len = out;
        if joined.is_some() && tail_len == 0 {
            // A split message, kept rewritten for the sender's retransmissions.
            self.streams.sent(slot, p.dir, base, done, &self.out[..out]);
        }
        Segment::Emit {
            seq: seq_out,
            segment,
        }
    }

    /// The whole messages at the start of `data`, followed, and rewritten into `self.out`
    /// when `rewrite`. `done`: bytes of `data` they (and keep-alives) take; `out`: the
    /// length written (None: one was unrewritable and the configuration drops it).
    fn stream_messages(
        &mut self,
        data: &[u8],
        p: &SipPacket,
        rewrite: bool,
        nat: Option<&mut NatTable>,
    ) -> Stream {
        let mut msg = self.scratch.take().unwrap_or_default();
        let r = self.stream_messages_with(&mut msg, data, p, rewrite, nat);
        self.scratch = Some(msg);
        r
    }

    /// `stream_messages`, scanning into `msg`.
    fn stream_messages_with(
        &mut self,
        msg: &mut Message,
        data: &[u8],
        p: &SipPacket,
        rewrite: bool,
        mut nat: Option<&mut NatTable>,
    ) -> Stream {
        let (mut at, mut out, mut changed) = (0, 0, false);
        let drop_bad = rewrite && self.config.unrewritable == Unrewritable::Drop;
        let fail = Stream {
            done: 0,
            out: None,
            changed: false,
        };
        while at < data.len() {
            let rest = &data[at..];
            let skip = sip::leading_blank(rest);
            let b = &rest[skip..];
            let (len, written) = if b.is_empty() {
                (0, None)
            } else {
                match sip::scan_into(b, false, msg) {
                    Ok(()) => {
                        self.counters.messages += 1;
                        let one = &b[..msg.len];
                        let w = match self.message(one, msg, p, nat.as_deref_mut(), out + skip) {
                            Ok(w) => w,
                            Err(()) if drop_bad => return fail,
                            Err(()) => None,
                        };
                        (msg.len, w)
                    }
                    Err(ScanError::Incomplete) => break,
                    Err(ScanError::Malformed) => {
                        // Not SIP from here on: left as it is (or dropped when translated).
                        self.counters.malformed += 1;
                        if drop_bad {
                            return fail;
                        }
                        (b.len(), None)
                    }
                }
            };
            if rewrite {
                let Some(o) = self.out.get_mut(out..out + skip) else {
                    return fail;
                };
                o.copy_from_slice(&rest[..skip]);
                match written {
                    Some(n) => {
                        out += skip + n;
                        changed = true;
                    }
                    None => {
                        let Some(o) = self.out.get_mut(out + skip..out + skip + len) else {
                            return fail;
                        };
                        o.copy_from_slice(&b[..len]);
                        out += skip + len;
                    }
                }
            }
            at += skip + len;
        }
        Stream {
            done: at,
            out: Some(out),
            changed,
        }
    }

    /// Follows one whole message `b` (scanned as `msg`) and, where NAT changed an address it
    /// carries, writes it rewritten at `self.out[at..]`: its length, or None when it needs
    /// no change; Err when it cannot be rewritten (counted).
    fn message(
        &mut self,
        b: &[u8],
        msg: &Message,
        p: &SipPacket,
        nat: Option<&mut NatTable>,
        at: usize,
    ) -> Result<Option<usize>, ()> {
        let mut sdp = self.sdp_scratch.take().unwrap_or_default();
        let parsed = msg.sdp && !msg.body.is_empty() && sdp::parse_into(b, msg, &mut sdp);
        let r = self.message_with(b, msg, parsed.then_some(&*sdp), p, nat, at);
        self.sdp_scratch = Some(sdp);
        r
    }

    /// `message` with its SDP body parsed.
    fn message_with(
        &mut self,
        b: &[u8],
        msg: &Message,
        sdp: Option<&Sdp>,
        p: &SipPacket,
        nat: Option<&mut NatTable>,
        at: usize,
    ) -> Result<Option<usize>, ()> {
        let mut mapped = [None; MAX_MEDIA];
        self.follow(b, msg, sdp, p, nat, &mut mapped);
        if p.xlate.is_none() {
            return Ok(None);
        }
        let out = self.out.get_mut(at..).ok_or(())?;
        match rewrite(
            b,
            msg,
            sdp,
            &p.xlate,
            p.media_nat,
            &mapped,
            &mut self.rewriter,
            out,
        ) {
            Ok(Some(n)) => {
                self.counters.rewritten += 1;
                Ok(Some(n))
            }
            Ok(None) => Ok(None),
            Err(RewriteFailed) => {
                self.counters.unrewritable += 1;
                Err(())
            }
        }
    }

    fn unrewritable(&self, p: &SipPacket) -> Outcome {
        if p.xlate.is_none() || self.config.unrewritable == Unrewritable::Pass {
            Outcome::Unchanged
        } else {
            Outcome::Drop
        }
    }

    /// The call and registration state a message changes: pinholes opened, moved, closed.
    fn follow(
        &mut self,
        b: &[u8],
        msg: &Message,
        sdp: Option<&Sdp>,
        p: &SipPacket,
        mut nat: Option<&mut NatTable>,
        mapped: &mut [Option<MappedMedia>; MAX_MEDIA],
    ) {
        let id = pinhole::dialog_id(msg.call_id.of(b), p.flow_hash);
        let method = msg.method();
        let mut release = |m: u32| give_back(&mut nat, m);
        match msg.kind {
            Kind::Request(Method::Bye | Method::Cancel) => {
                if let Some(d) = self.pinholes.find_dialog(id) {
                    self.pinholes.close_dialog(d, &mut release);
                }
                return;
            }
            Kind::Request(Method::Register) => {
                return self.register(b, msg, p, nat);
            }
            Kind::Response(code) if method == Method::Invite => {
                if let Some(d) = self.pinholes.find_dialog(id) {
                    if (200..300).contains(&code) {
                        self.pinholes.dialog_mut(d).confirmed = true;
                    } else if code >= 300 && !self.pinholes.dialog(d).confirmed {
                        self.pinholes.close_dialog(d, &mut release);
                        return;
                    }
                }
            }
            _ => {}
        }
        let Some(sdp) = sdp else {
            return;
        };
        let carries_sdp = match msg.kind {
            Kind::Request(m) => matches!(
                m,
                Method::Invite | Method::Update | Method::Prack | Method::Ack
            ),
            Kind::Response(c) => {
                (180..300).contains(&c)
                    && matches!(method, Method::Invite | Method::Update | Method::Prack)
            }
        };
        if !carries_sdp {
            return;
        }
        let Some(d) = self
            .pinholes
            .dialog_for(id, p.flow_id, p.app, p.source, p.now)
        else {
            return;
        };
        self.describe(d, sdp, p, nat, mapped);
    }

    /// Party `p.dir` described its media in `sdp`: map its ports when NAT translates it,
    /// and give it the pinholes it now needs (replacing those of its last description).
    fn describe(
        &mut self,
        d: u32,
        sdp: &Sdp,
        p: &SipPacket,
        mut nat: Option<&mut NatTable>,
        mapped: &mut [Option<MappedMedia>; MAX_MEDIA],
    ) {
        let party = p.dir as usize;
        // The pinholes each receiving media line needs.
        let mut wanted: [Option<Wanted>; MAX_MEDIA] = [None; MAX_MEDIA];
        let mut first_addr = None;
        for (i, m) in sdp.media().iter().enumerate() {
            let Some(addr) = sdp.address_of(m) else {
                continue;
            };
            if first_addr.is_none() && addr != [0; 4] {
                first_addr = Some(addr);
            }
            if !m.udp || m.port == 0 || addr == [0; 4] {
                continue;
            }
            let rtcp = Sdp::rtcp_port(m);
            let translated = p.xlate.src.and_then(|c| {
                if c.from.addr == addr {
                    Some(c.to.addr)
                } else {
                    (p.media_nat)(addr)
                }
            });
            let mut w = Wanted {
                addr,
                ports: [m.port, rtcp],
                inside: None,
                inside_ports: [m.port, rtcp],
                maps: [pinhole::NONE; 2],
            };
            if let (Some(to), Some(n)) = (translated, nat.as_deref_mut()) {
                let (inside, ext) = (u32::from_be_bytes(addr), u32::from_be_bytes(to));
                let Some((m1, rtp)) = n.hold(proto::UDP, inside, m.port, ext) else {
                    self.counters.media_unmapped += 1;
                    continue;
                };
                let Some((m2, rtcp_ext)) = n.hold(proto::UDP, inside, rtcp, ext) else {
                    n.release(m1);
                    self.counters.media_unmapped += 1;
                    continue;
                };
                mapped[i] = Some(MappedMedia {
                    rtp,
                    rtcp: rtcp_ext,
                });
                w = Wanted {
                    addr: to,
                    ports: [rtp, rtcp_ext],
                    inside: Some(inside),
                    inside_ports: [m.port, rtcp],
                    maps: [m1, m2],
                };
                // A pinhole is only for media this party receives; the mapping stays for
                // the rewrite either way, held by the pinhole or let go below.
            }
            if sdp.direction_of(m).receives() {
                wanted[i] = Some(w);
            } else {
                for x in w.maps.into_iter().filter(|&x| x != pinhole::NONE) {
                    give_back(&mut nat, x);
                }
            }
        }
        let mut release = |m: u32| give_back(&mut nat, m);
        // The new description replaces the last one's pinholes (mappings were taken first,
        // so a port that stays keeps its mapping).
        self.pinholes
            .close_party(d, party, Purpose::Media, &mut release);
        let dl = *self.pinholes.dialog(d);
        let peer = match dl.media_addr[1 - party] {
            [0, 0, 0, 0] => p.peer,
            a => a,
        };
        let deadline = p.now + self.pinholes.limits().initial_ns;
        for w in wanted.iter().flatten() {
            for (k, port) in w.ports.into_iter().enumerate() {
                let key = Key {
                    proto: proto::UDP,
                    addr: w.addr,
                    port,
                };
                let inside = w.inside.map(|a| (a, w.inside_ports[k]));
                let opened = self.pinholes.open(
                    d,
                    party,
                    key,
                    peer,
                    Purpose::Media,
                    inside,
                    w.maps[k],
                    deadline,
                );
                if opened.is_none() && w.maps[k] != pinhole::NONE {
                    release(w.maps[k]);
                }
                // Translated: the party's own address too, from the same peer only (traffic
                // that reaches it untranslated: a hairpin, a path around the NAT, a replay
                // of a capture taken inside).
                if let Some(a) = w.inside {
                    let key = Key {
                        proto: proto::UDP,
                        addr: a.to_be_bytes(),
                        port: w.inside_ports[k],
                    };
                    let none = pinhole::NONE;
                    let purpose = Purpose::Media;
                    self.pinholes
                        .open(d, party, key, peer, purpose, None, none, deadline);
                }
            }
        }
        // This party's media comes from here: the other party's pinholes admit only it.
        if let Some(a) = first_addr {
            self.pinholes.dialog_mut(d).media_addr[party] = a;
            self.pinholes.set_peer(d, 1 - party, a);
        }
    }

    /// A REGISTER: a pinhole to the registered contact (as the registrar reaches it) from
    /// the registrar, for its Expires; Expires 0 removes it.
    fn register(&mut self, b: &[u8], msg: &Message, p: &SipPacket, mut nat: Option<&mut NatTable>) {
        let Some((contact, expires)) = sip::register_contact(b, msg, 3600) else {
            return;
        };
        let id = pinhole::dialog_id(msg.call_id.of(b), p.flow_hash);
        let party = p.dir as usize;
        let mut release = |m: u32| give_back(&mut nat, m);
        if expires == 0 {
            if let Some(d) = self.pinholes.find_dialog(id) {
                self.pinholes.close_dialog(d, &mut release);
            }
            return;
        }
        let Some(d) = self
            .pinholes
            .dialog_for(id, p.flow_id, p.app, p.source, p.now)
        else {
            return;
        };
        let expires = expires.min(self.config.max_register) as u64;
        let deadline = p.now + expires * NS + REGISTER_GRACE_NS;
        let translated = p
            .xlate
            .src
            .filter(|c| c.from.addr == contact.addr && c.from.port == contact.port);
        let mut key = Key {
            proto: p.proto,
            addr: contact.addr,
            port: contact.port,
        };
        let (mut inside, mut mapping) = (None, pinhole::NONE);
        if let (Some(c), Some(n)) = (translated, nat.as_deref_mut()) {
            let a = u32::from_be_bytes(contact.addr);
            let Some((m, ext_port)) =
                n.hold(p.proto, a, contact.port, u32::from_be_bytes(c.to.addr))
            else {
                self.counters.media_unmapped += 1;
                return;
            };
            key.addr = c.to.addr;
            key.port = ext_port;
            inside = Some((a, contact.port));
            mapping = m;
        }
        let mut release = |m: u32| give_back(&mut nat, m);
        self.pinholes
            .close_party(d, party, Purpose::Register, &mut release);
        let opened = self.pinholes.open(
            d,
            party,
            key,
            p.peer,
            Purpose::Register,
            inside,
            mapping,
            deadline,
        );
        if opened.is_none() && mapping != pinhole::NONE {
            release(mapping);
        }
    }
}

/// Lets go of NAT mapping `m` an ALG held (nothing to do without NAT).
fn give_back(nat: &mut Option<&mut NatTable>, m: u32) {
    if let Some(n) = nat {
        n.release(m);
    }
}

/// A media line's pinholes as `describe` works them out.
#[derive(Clone, Copy, Debug)]
struct Wanted {
    /// The address and ports its media arrives at (after translation, when NAT applies).
    addr: [u8; 4],
    /// RTP and RTCP ports there.
    ports: [u16; 2],
    /// The inside address when translated, and the ports there.
    inside: Option<u32>,
    inside_ports: [u16; 2],
    /// The NAT mappings held for them (`pinhole::NONE`: none).
    maps: [u32; 2],
}

/// A TURN ChannelData message filling datagram `b` (RFC 8656 section 12: channel
/// 0x4000-0x7FFF, a length, up to 3 bytes of padding): its channel, its data, and whether
/// The edits of a message could not be applied (too many, overlapping, or the result does
/// not fit the output): the message is unrewritable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RewriteFailed;

/// What `rewrite` keeps between messages: the table of a message's edits, and the texts of
/// the last translation (the same for every message of a flow, so written once).
#[derive(Default)]
pub struct Rewriter {
    edits: Edits,
    texts: Option<Changed>,
}

/// Writes message `b` (scanned as `msg`, its SDP `sdp`) into `out` with what translation
/// `x` changed rewritten: the headers' addresses, and when the sender is translated the
/// SDP's addresses (its own, and another inside host's through `media_nat`) and the media
/// ports `mapped` gives; then Content-Length. Ok(None) when nothing needs to change, Err
/// when the edits cannot be applied (too many, overlapping, not fitting `out`). Pure: the
/// whole rewrite, apart from following the call.
#[allow(clippy::too_many_arguments)]
pub fn rewrite(
    b: &[u8],
    msg: &Message,
    sdp: Option<&Sdp>,
    x: &Xlate,
    media_nat: &dyn Fn([u8; 4]) -> Option<[u8; 4]>,
    mapped: &[Option<MappedMedia>; MAX_MEDIA],
    rw: &mut Rewriter,
    out: &mut [u8],
) -> Result<Option<usize>, RewriteFailed> {
    if rw.texts.as_ref().is_some_and(|t| t.xlate() != x) {
        rw.texts = None;
    }
    let texts = rw.texts.get_or_insert_with(|| Changed::new(x));
    let edits = &mut rw.edits;
    edits.clear();
    sip::header_edits(b, msg, texts, edits);
    // Every edit after the headers' is in the body.
    let headers_delta = edits.delta();
    if let (Some(sdp), Some(c)) = (sdp, x.src) {
        let to_of = |a: [u8; 4]| {
            if a == c.from.addr {
                Some(c.to.addr)
            } else {
                media_nat(a)
            }
        };
        sdp::edits(b, sdp, to_of, mapped, texts.source_to(), edits);
    }
    if edits.is_empty() {
        return Ok(None);
    }
    let body = msg.body;
    let delta = edits.delta() - headers_delta;
    if delta != 0 {
        if let Some(cl) = msg.content_length {
            let n = (body.end - body.start) as isize + delta;
            edits.replace_number(b, cl.start as usize, cl.end as usize, n.max(0) as u64);
        }
    }
    edits.apply(b, out).map(Some).ok_or(RewriteFailed)
}

/// it was padded to 4 bytes.
fn channel_data(b: &[u8]) -> Option<(u16, &[u8], bool)> {
    let channel = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
    if !(0x4000..=0x7fff).contains(&channel) {
        return None;
    }
    let len = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize;
    let data = b.get(4..4 + len)?;
    let rest = b.len() - 4 - len;
    (rest < 4).then_some((channel, data, rest > 0))
}

/// Puts `payload` after the `proto` header of the IPv4 packet `frame` (already sized to end
/// with it; the L4 header at least `l4_min` bytes), then the IP total length and header
/// checksum. Returns (L3 offset, L4 offset, end, IP length).
fn put_payload(
    frame: &mut [u8],
    h: &crate::packet::Headers,
    payload: &[u8],
    proto_: u8,
    l4_min: usize,
) -> Option<(usize, usize, usize, u16)> {
    use crate::packet::checksum;
    let (l3, l4, at) = (
        h.l3_offset as usize,
        h.l4_offset as usize,
        h.payload_offset as usize,
    );
    let ihl = (l4.checked_sub(l3)?).max(20);
    let end = at + payload.len();
    if h.proto != proto_ || at < l4 + l4_min || frame.len() < end || end - l3 > u16::MAX as usize {
        return None;
    }
    frame[at..end].copy_from_slice(payload);
    let ip_len = (end - l3) as u16;
    frame[l3 + 2..l3 + 4].copy_from_slice(&ip_len.to_be_bytes());
    frame[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(frame.get(l3..l3 + ihl)?);
    frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    Some((l3, l4, end, ip_len))
}

/// The TCP or UDP checksum of `frame[l4..end]` with its IPv4 pseudo-header (the checksum
/// field zeroed by the caller), before the UDP rule that 0 is sent as 0xffff.
fn l4_checksum(frame: &[u8], l3: usize, l4: usize, end: usize, proto_: u8) -> u16 {
    use crate::packet::checksum;
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&frame[l3 + 12..l3 + 20]);
    pseudo[9] = proto_;
    pseudo[10..].copy_from_slice(&((end - l4) as u16).to_be_bytes());
    !(checksum::sum(&frame[l4..end], checksum::sum(&pseudo, 0)) as u16)
}

/// Puts `payload` in place of the UDP payload of the IPv4 packet `frame` (already sized to
/// end with it): IP total length and header checksum, UDP length and checksum (left 0 when
/// the sender sent none) follow. Returns the headers with the new lengths.
pub fn write_udp_payload(
    frame: &mut [u8],
    h: &crate::packet::Headers,
    payload: &[u8],
) -> Option<crate::packet::Headers> {
    if h.l4_offset as usize + 8 != h.payload_offset as usize {
        return None;
    }
    let (l3, l4, end, ip_len) = put_payload(frame, h, payload, proto::UDP, 8)?;
    frame[l4 + 4..l4 + 6].copy_from_slice(&((end - l4) as u16).to_be_bytes());
    if frame[l4 + 6..l4 + 8] != [0, 0] {
        frame[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
        let c = match l4_checksum(frame, l3, l4, end, proto::UDP) {
            0 => 0xffff,
            c => c,
        };
        frame[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    }
    let mut out = *h;
    out.payload_len = payload.len() as u16;
    out.ip_len = ip_len;
    Some(out)
}

/// Puts `payload` in place of the TCP payload of the IPv4 packet `frame` (already sized to
/// end with it), with sequence number `seq`, FIN kept only when `fin` (a message cut into
/// several segments carries the sender's FIN on its last): IP total length and header
/// checksum, TCP checksum follow. Returns the headers with the new lengths.
pub fn write_tcp_payload(
    frame: &mut [u8],
    h: &crate::packet::Headers,
    payload: &[u8],
    seq: u32,
    fin: bool,
) -> Option<crate::packet::Headers> {
    let (l3, l4, end, ip_len) = put_payload(frame, h, payload, proto::TCP, 20)?;
    frame[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
    if !fin {
        frame[l4 + 13] &= !0x01;
    }
    frame[l4 + 16..l4 + 18].copy_from_slice(&[0, 0]);
    let c = l4_checksum(frame, l3, l4, end, proto::TCP);
    frame[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    let mut out = *h;
    out.payload_len = payload.len() as u16;
    out.ip_len = ip_len;
    out.tcp_seq = seq;
    if !fin {
        out.tcp_flags &= !0x01;
    }
    Some(out)
}

/// Shifts the TCP header of `frame`: sequence number to `seq`, acknowledgement through
/// `unmap` (when ACK is set), and the edges of SACK blocks through `unmap`, each with an
/// incremental checksum update (RFC 1624), so a packet that arrived damaged stays damaged.
pub fn shift_tcp(
    frame: &mut [u8],
    h: &crate::packet::Headers,
    seq: u32,
    unmap: &dyn Fn(u32) -> u32,
) {
    use crate::packet::checksum::update16;
    let l4 = h.l4_offset as usize;
    let Some(t) = frame.get_mut(l4..h.payload_offset as usize) else {
        return;
    };
    if t.len() < 20 {
        return;
    }
    let mut csum = u16::from_be_bytes([t[16], t[17]]);
    let mut put = |t: &mut [u8], at: usize, v: u32| {
        let old = u32::from_be_bytes([t[at], t[at + 1], t[at + 2], t[at + 3]]);
        if old != v {
            csum = update16(csum, (old >> 16) as u16, (v >> 16) as u16);
            csum = update16(csum, old as u16, v as u16);
            t[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
    };
    put(t, 4, seq);
    if t[13] & 0x10 != 0 {
        let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
        put(t, 8, unmap(ack));
    }
    // Options: SACK (kind 5) blocks.
    let mut i = 20;
    while i < t.len() {
        match t[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = t.get(i + 1) else { break };
                let len = len as usize;
                if len < 2 || i + len > t.len() {
                    break;
                }
                if kind == 5 {
                    let mut e = i + 2;
                    while e + 4 <= i + len {
                        let v = u32::from_be_bytes([t[e], t[e + 1], t[e + 2], t[e + 3]]);
                        put(t, e, unmap(v));
                        e += 4;
                    }
                }
                i += len;
            }
        }
    }
    t[16..18].copy_from_slice(&csum.to_be_bytes());
}
