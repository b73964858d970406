//! Per-worker counters and the shared-memory stats segment.
//!
//! A worker counts into a plain `Counters` array it owns (no atomics on the packet path) and
//! publishes it to its block of the segment every `publish-ms` with a sequence counter around
//! the copy (a seqlock): readers in other processes retry until they see the same even
//! sequence before and after, so a snapshot is never torn and a worker never waits.
use crate::packet::Malformed;

/// Why the dataplane dropped a packet: one counter each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    Malformed(Malformed),
    /// TTL/hop limit would reach 0 (routed).
    TtlExceeded,
    /// No route to the destination (routed).
    NoRoute,
    /// The next hop did not answer ARP in time, or a newer packet replaced this one (routed).
    NeighbourUnresolved,
    /// Addressed to the appliance itself but not something it answers (routed).
    LocalDelivery,
    /// Neither IPv4 nor ARP on a routed port (IPv6 routing is not implemented yet).
    NotRoutable,
    /// A port with no virtual-wire peer.
    NoEgress,
    /// The tx queue refused the packet.
    TxFull,
    /// A unicast frame for another MAC address on a routed port.
    NotOurMac,
    /// A packet of a flow the policy stopped (deny, drop, reset), or of a flow no rule can
    /// allow.
    Policy,
    /// A packet of a flow a NAT rule matched but could not translate (no free port, no
    /// address on the interface, a tuple clash): never sent untranslated.
    NatFailed,
    /// A packet of a translated flow that cannot be rewritten (a later fragment, headers
    /// outside the first segment).
    NatUnrewritable,
    /// Routed: a packet for a translated flow's inside endpoint from the outside, addressed
    /// to the untranslated tuple (its replies must come to the translated address).
    NatBypass,
    /// A SIP message on a translated flow the ALG could not rewrite (malformed, too large),
    /// dropped rather than leak untranslated addresses (`alg.sip.unrewritable: drop`).
    AlgUnrewritable,
    /// A TCP segment holding the start of a SIP message that continues in the next: its
    /// bytes leave, rewritten, with the rest (not a loss; counted so every packet is).
    AlgHeld,
    /// A TCP segment out of order while the ALG holds a message's start: the sender sends
    /// it again.
    AlgReordered,
    /// A packet for another worker's flow that found that worker's handoff ring full.
    HandoffFull,
    /// An IPv4 fragment kept for reassembly: it leaves within its datagram (not a loss;
    /// counted so every packet is).
    FragHeld,
    /// A fragment overlapping an earlier one of its datagram with other bytes: the datagram
    /// is dropped.
    FragOverlap,
    /// A fragment of a datagram larger than `fragments.max-bytes` or of too many fragments.
    FragTooBig,
    /// A fragment of a datagram dropped earlier (overlap, too big).
    FragAbandoned,
    /// A fragment that cannot be reassembled (a non-last one not a multiple of 8 bytes, a
    /// frame chained over several buffers).
    FragInvalid,
    /// A reassembled datagram, or a fragment of one cut again, found no buffer.
    FragNoBuffer,
    /// The first packet of a new flow, refused: the flow table is full and every flow in it
    /// has been answered (only unanswered flows are evicted for new ones).
    FlowTableFull,
    /// The first packet of a new flow from a source at its limit (`flow-table.per-source`:
    /// flows held, or new flows per second).
    SourceLimit,
    /// The same for the zone it came in from (a policy zone's `limits`).
    ZoneLimit,
}

impl DropReason {
    /// The drop reason of a flow the flow table refused.
    pub fn refused(r: crate::flow::admit::Refusal) -> DropReason {
        use crate::flow::admit::Refusal;
        match r {
            Refusal::TableFull => DropReason::FlowTableFull,
            Refusal::Source => DropReason::SourceLimit,
            Refusal::Zone => DropReason::ZoneLimit,
        }
    }
}

const FIXED: usize = 64;

/// Counter names, index order. The first `FIXED` are general; drop reasons follow.
pub const GENERAL: [&str; FIXED] = [
    "rx_packets",
    "rx_bytes",
    "tx_packets",
    "tx_bytes",
    "drop_packets",
    "drop_bytes",
    "flows_created",
    "flows_expired",
    "flows_evicted",
    "flows_active",
    "flow_log_lost",
    "arp_replies_sent",
    "arp_requests_sent",
    "non_ip_packets",
    "fragments",
    "bursts",
    "local_packets",
    "flows_denied",
    "resets_sent",
    "loop_cycles",
    "busy_cycles",
    "nat_mappings_created",
    "nat_mappings_active",
    "nat_bindings_created",
    "nat_port_exhausted",
    "nat_inbound_filtered",
    "sip_messages",
    "sip_rewritten",
    "sip_malformed",
    "sip_unrewritable",
    "sip_media_unmapped",
    "sip_not_sip",
    "sip_tcp_held",
    "sip_tcp_reordered",
    "sip_tcp_unbuffered",
    "sip_tcp_abandoned",
    "sip_tcp_adjusted",
    "sip_tcp_streams_active",
    "sip_segments_sent",
    "sip_segments_lost",
    "pinholes_opened",
    "pinholes_used",
    "pinholes_expired",
    "pinholes_closed",
    "pinholes_refused",
    "pinholes_active",
    "sip_dialogs_active",
    "icmp_errors_related",
    "handoff_sent",
    "handoff_received",
    "fragments_held",
    "fragments_reassembled",
    "fragments_sent",
    "fragments_timed_out",
    "fragments_evicted",
    "pinhole_claims_refused",
    "clock_outliers",
    "appid_contexts_reclaimed",
    "appid_no_context",
    "flow_log_interim",
    "tunnel_packets",
    "tunnel_inner_malformed",
    "tunnel_inner_untracked",
    "appid_evidence_lost",
];

/// Index of each general counter.
#[derive(Clone, Copy, Debug)]
#[repr(usize)]
pub enum C {
    RxPackets,
    RxBytes,
    TxPackets,
    TxBytes,
    DropPackets,
    DropBytes,
    FlowsCreated,
    FlowsExpired,
    FlowsEvicted,
    FlowsActive,
    FlowLogLost,
    ArpRepliesSent,
    ArpRequestsSent,
    NonIpPackets,
    Fragments,
    Bursts,
    /// Packets the appliance consumed itself (ARP for its addresses).
    LocalPackets,
    /// Flows the policy stopped (deny, drop or reset), once each.
    FlowsDenied,
    /// TCP resets and ICMP unreachables sent for `reset` rules.
    ResetsSent,
    /// TSC cycles the worker spent in its poll loop, and in the passes that received
    /// packets (utilisation = busy / loop).
    LoopCycles,
    BusyCycles,
    /// Source-NAT mappings (inside endpoint -> external address and port) made.
    NatMappingsCreated,
    /// Mappings live now (a gauge).
    NatMappingsActive,
    /// Flows translated.
    NatBindingsCreated,
    /// Translations refused for want of a free external port.
    NatPortExhausted,
    /// New flows from outside to a mapping refused by address-dependent filtering.
    NatInboundFiltered,
    /// SIP messages the ALG read.
    SipMessages,
    /// Messages it rewrote (NAT changed an address they carry).
    SipRewritten,
    /// Messages that were not parseable SIP (left alone, or dropped when translated).
    SipMalformed,
    /// Parseable messages it could not rewrite (too many edits, too large).
    SipUnrewritable,
    /// Media lines NAT could not map a port for.
    SipMediaUnmapped,
    /// Datagrams on SIP flows that were not SIP (STUN keep-alives, relayed media): passed.
    SipNotSip,
    /// SIP over TCP (`alg::tcp`): segments held, out of order while holding, messages that
    /// could not be held or tracked, holds given up, connections with shifted sequence
    /// numbers, and streams in use (a gauge).
    SipTcpHeld,
    SipTcpReordered,
    SipTcpUnbuffered,
    SipTcpAbandoned,
    SipTcpAdjusted,
    SipTcpStreamsActive,
    /// Extra segments sent for rewritten messages that outgrew one, and those lost for
    /// want of an mbuf (the sender's retransmission repairs them).
    AlgSegmentsSent,
    AlgSegmentsLost,
    /// Pinholes opened, used by a new flow, expired, closed by their call, refused (a
    /// limit), and open now (a gauge).
    PinholesOpened,
    PinholesUsed,
    PinholesExpired,
    PinholesClosed,
    PinholesRefused,
    PinholesActive,
    /// Calls and registrations tracked now (a gauge).
    SipDialogsActive,
    /// ICMP errors that quote a packet of a known flow: passed as part of that flow (its
    /// policy), translated back when the flow is translated.
    IcmpErrorsRelated,
    /// Packets handed to the worker that owns their flow (NAT return traffic to another
    /// worker's ports, a translated inside host another worker serves), and received so.
    HandoffSent,
    HandoffReceived,
    /// IPv4 reassembly (`flow::defrag`): fragments kept, datagrams completed, fragments sent
    /// for the datagrams cut again on the way out, datagrams given up (not complete in time,
    /// the oldest when every slot was busy).
    FragmentsHeld,
    FragmentsReassembled,
    FragmentsSent,
    FragmentsTimedOut,
    FragmentsEvicted,
    /// With several workers: pinhole endpoints the shared claims table had no room for
    /// (their flows are admitted only where their packets arrive).
    PinholeClaimsRefused,
    /// Replay: packets whose capture time was set aside as far from the packets around
    /// them (`clock::CaptureTime`).
    ClockOutliers,
    /// App-ID contexts taken from the least recently active undecided flow (one not yet
    /// answered first) for a new flow when every context was in use; the flow it was taken
    /// from keeps its best answer so far.
    AppidContextsReclaimed,
    /// Flows left unclassified because no context could be had (never, unless
    /// `app-id.contexts` is smaller than the flows classifying in one burst).
    AppidNoContext,
    /// Interim records of long flows handed to the flow log (`flow-log.active-timeout`).
    FlowLogInterim,
    /// Tunnel packets whose inner packet was tracked as a flow of its own (`packet::tunnel`);
    /// well-formed tunnels whose inner IP packet was malformed (the outer packet passed);
    /// inner packets left without a flow (the flow table refused one).
    TunnelPackets,
    TunnelInnerMalformed,
    TunnelInnerUntracked,
    /// Flows whose record went out without their App-ID evidence (the ring it was kept in
    /// reused the entry first: `app-id.contexts` sizes it).
    AppidEvidenceLost,
}

const OTHER_DROPS: [(DropReason, &str); 25] = [
    (DropReason::TtlExceeded, "ttl-exceeded"),
    (DropReason::NoRoute, "no-route"),
    (DropReason::NeighbourUnresolved, "neighbour-unresolved"),
    (DropReason::LocalDelivery, "local-delivery"),
    (DropReason::NotRoutable, "not-routable"),
    (DropReason::NoEgress, "no-egress"),
    (DropReason::TxFull, "tx-full"),
    (DropReason::NotOurMac, "not-our-mac"),
    (DropReason::Policy, "policy"),
    (DropReason::NatFailed, "nat-failed"),
    (DropReason::NatUnrewritable, "nat-unrewritable"),
    (DropReason::NatBypass, "nat-bypass"),
    (DropReason::AlgUnrewritable, "alg-unrewritable"),
    (DropReason::AlgHeld, "alg-held"),
    (DropReason::AlgReordered, "alg-reordered"),
    (DropReason::HandoffFull, "handoff-full"),
    (DropReason::FragHeld, "frag-held"),
    (DropReason::FragOverlap, "frag-overlap"),
    (DropReason::FragTooBig, "frag-too-big"),
    (DropReason::FragAbandoned, "frag-abandoned"),
    (DropReason::FragInvalid, "frag-invalid"),
    (DropReason::FragNoBuffer, "frag-no-buffer"),
    (DropReason::FlowTableFull, "flow-table-full"),
    (DropReason::SourceLimit, "source-limit"),
    (DropReason::ZoneLimit, "zone-limit"),
];

/// Number of counters per worker.
pub const N: usize = FIXED + Malformed::ALL.len() + OTHER_DROPS.len();

impl DropReason {
    /// Counter index of this reason.
    pub fn index(self) -> usize {
        match self {
            DropReason::Malformed(m) => FIXED + m as usize,
            other => {
                let pos = OTHER_DROPS
                    .iter()
                    .position(|(r, _)| *r == other)
                    .unwrap_or(0);
                FIXED + Malformed::ALL.len() + pos
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed(m) => m.name(),
            other => OTHER_DROPS
                .iter()
                .find(|(r, _)| *r == other)
                .map_or("unknown", |(_, n)| n),
        }
    }
}

/// Drop reason of counter index `i`, if it is one.
pub fn drop_reason_name(i: usize) -> Option<&'static str> {
    if i < FIXED {
        return None;
    }
    let j = i - FIXED;
    Malformed::ALL.get(j).map(|m| m.name()).or_else(|| {
        OTHER_DROPS
            .get(j - Malformed::ALL.len().min(j))
            .map(|(_, n)| *n)
            .filter(|_| j >= Malformed::ALL.len())
    })
}

/// A worker's counters, owned by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters(pub [u64; N]);

impl Default for Counters {
    fn default() -> Self {
        Counters([0; N])
    }
}

impl Counters {
    #[inline]
    pub fn add(&mut self, c: C, v: u64) {
        self.0[c as usize] += v;
    }
    #[inline]
    pub fn get(&self, c: C) -> u64 {
        self.0[c as usize]
    }
    #[inline]
    pub fn set(&mut self, c: C, v: u64) {
        self.0[c as usize] = v;
    }
    #[inline]
    pub fn drop(&mut self, r: DropReason, bytes: u32) {
        self.0[C::DropPackets as usize] += 1;
        self.0[C::DropBytes as usize] += bytes as u64;
        self.0[r.index()] += 1;
    }
    pub fn drops(&self, r: DropReason) -> u64 {
        self.0[r.index()]
    }
    /// (name, count) of every drop reason with a non-zero count.
    pub fn drops_by_reason(&self) -> Vec<(&'static str, u64)> {
        (FIXED..N)
            .filter(|&i| self.0[i] > 0)
            .filter_map(|i| drop_reason_name(i).map(|n| (n, self.0[i])))
            .collect()
    }
    pub fn merge(&mut self, o: &Counters) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a += b;
        }
    }
}

mod segment;
mod tables;
pub use segment::{read_full, read_snapshot, Layout, SegmentSnapshot, StatsError, StatsSegment};
pub use tables::{
    AppCounter, RuleCounter, Tables, APP_COUNTERS, NAME_BYTES, PORT_COUNTERS, RULE_COUNTERS,
    RULE_SLOTS,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_a_distinct_name() {
        let mut names: Vec<&str> = GENERAL.to_vec();
        for i in FIXED..N {
            names.push(drop_reason_name(i).expect("every index past FIXED is a drop reason"));
        }
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), N);
        for (r, n) in OTHER_DROPS {
            assert_eq!(drop_reason_name(r.index()), Some(n));
        }
        for m in Malformed::ALL {
            assert_eq!(
                drop_reason_name(DropReason::Malformed(m).index()),
                Some(m.name())
            );
        }
    }
}
