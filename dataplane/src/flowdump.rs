//! `aperturectl show flows` (and `show pinholes`, `show nat`): the live flows, SIP ALG
//! pinholes and NAT mappings of the running workers, on request.
//!
//! Workers own their flow tables and nothing else may read them, so the service thread asks
//! and each worker answers between two bursts: the service thread publishes a [`FlowQuery`]
//! and bumps a sequence number; a worker compares the sequence with the last it answered
//! (one relaxed load per poll pass, nothing else on the packet path), walks its table up to
//! the query's limit and sends its rows back through the query's bounded channel, without
//! waiting (a reply that finds the channel full or closed is dropped: the asker gave up).
//! Rows are flow records (what the flow log would say if the flow ended now).
use crate::appid::catalog::AppId;
use crate::appid::engine::Engine;
use crate::flow::FlowTable;
use crate::flowlog::FlowRecord;
use crate::packet::IpAddr16;
use arc_swap::ArcSwapOption;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

/// Most rows one worker returns for one query.
pub const MAX_ROWS: usize = 100_000;

/// One worker's answer: its id, its rows, and whether it stopped at the limit.
pub type Answer = (usize, Rows, bool);

/// A worker's rows: flow records, or JSON objects (pinholes, NAT mappings).
pub enum Rows {
    Flows(Vec<FlowRecord>),
    Json(Vec<serde_json::Value>),
}

/// What a query lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Listing {
    #[default]
    Flows,
    /// The SIP ALG's open pinholes.
    Pinholes,
    /// The source-NAT mappings.
    Nat,
}

/// What to list. Filters left out match every flow.
pub struct FlowQuery {
    pub what: Listing,
    /// The flow's application or any on its path (`ssl` finds facetime over TLS too).
    pub app: Option<AppId>,
    /// Either endpoint.
    pub addr: Option<IpAddr16>,
    /// Rows per worker (at most `MAX_ROWS`).
    pub limit: usize,
    pub reply: SyncSender<Answer>,
}

/// The mailbox the service thread and the workers share.
#[derive(Default)]
pub struct FlowDumps {
    seq: AtomicU64,
    query: ArcSwapOption<FlowQuery>,
}

impl FlowDumps {
    pub fn new() -> Arc<FlowDumps> {
        Arc::new(FlowDumps::default())
    }

    /// Publishes `q`: every worker answers it once, at its next poll pass.
    pub fn ask(&self, q: FlowQuery) {
        self.query.store(Some(Arc::new(q)));
        self.seq.fetch_add(1, Ordering::Release);
    }

    /// Withdraws the query (the asker has what it waited for).
    pub fn clear(&self) {
        self.query.store(None);
    }

    /// The worker side: the query to answer, if one came since `seen`.
    #[inline]
    pub fn pending(&self, seen: &mut u64) -> Option<Arc<FlowQuery>> {
        let s = self.seq.load(Ordering::Acquire);
        if s == *seen {
            return None;
        }
        *seen = s;
        self.query.load_full()
    }
}

/// A worker's answer to `q` from its table (off the packet path: it allocates the rows).
pub fn answer(worker: usize, q: &FlowQuery, flows: &FlowTable, appid: &Engine) {
    let limit = q.limit.min(MAX_ROWS);
    let mut rows = Vec::new();
    let mut truncated = false;
    flows.visit(&mut |slot, f| {
        let info = appid.info(slot);
        if let Some(a) = q.app {
            if f.app != a.0 && info.app != a && !info.path().contains(&a) {
                return true;
            }
        }
        if let Some(addr) = q.addr {
            if f.key.lo_addr != addr && f.key.hi_addr != addr {
                return true;
            }
        }
        if rows.len() == limit {
            truncated = true;
            return false;
        }
        let mut info = *info;
        if f.app != u16::MAX {
            info.app = AppId(f.app);
        }
        rows.push(FlowRecord::new(
            worker as u16,
            slot,
            f,
            None,
            &info,
            appid.evidence(slot),
        ));
        true
    });
    let _ = q.reply.try_send((worker, Rows::Flows(rows), truncated));
}

/// A worker's answer to a `Listing::Pinholes` query: each open pinhole with the call or
/// registration it belongs to. `now`: the worker's clock (for the seconds left).
pub fn answer_pinholes(
    worker: usize,
    q: &FlowQuery,
    alg: &crate::alg::SipAlg,
    catalog: &crate::appid::catalog::Catalog,
    now: u64,
) {
    use crate::alg::pinhole::Purpose;
    let limit = q.limit.min(MAX_ROWS);
    let mut rows = Vec::new();
    let mut truncated = false;
    let v4 = |a: [u8; 4]| std::net::Ipv4Addr::from(a).to_string();
    alg.pinholes.visit(&mut |h, d| {
        if let Some(addr) = q.addr {
            let mine = [Some(h.key.addr), Some(h.peer), h.inside.map(|i| i.0.to_be_bytes())];
            if !mine.iter().flatten().any(|a| IpAddr16::from_v4(*a) == addr) {
                return true;
            }
        }
        if let Some(a) = q.app {
            if d.app != a.0 {
                return true;
            }
        }
        if rows.len() == limit {
            truncated = true;
            return false;
        }
        rows.push(serde_json::json!({
            "worker": worker,
            "proto": crate::flowlog::proto_name(h.key.proto),
            "address": v4(h.key.addr),
            "port": h.key.port,
            "peer": v4(h.peer),
            "inside_ip": h.inside.map(|i| v4(i.0.to_be_bytes())),
            "inside_port": h.inside.map(|i| i.1),
            "purpose": match h.purpose { Purpose::Media => "media", Purpose::Register => "register" },
            "app": catalog.name(AppId(d.app)),
            "signalling_flow_id": d.parent,
            "flows_admitted": h.used,
            "expires_in_s": h.deadline.saturating_sub(now) / 1_000_000_000,
        }));
        true
    });
    let _ = q.reply.try_send((worker, Rows::Json(rows), truncated));
}

/// A worker's answer to a `Listing::Nat` query: each source-NAT mapping.
pub fn answer_nat(worker: usize, q: &FlowQuery, nat: Option<&crate::nat::NatTable>) {
    let limit = q.limit.min(MAX_ROWS);
    let mut rows = Vec::new();
    let mut truncated = false;
    let v4 = |a: u32| std::net::Ipv4Addr::from(a).to_string();
    if let Some(n) = nat {
        n.visit_mappings(&mut |m| {
            if let Some(addr) = q.addr {
                let mine = [m.inside, m.ext].map(|a| IpAddr16::from_v4(a.to_be_bytes()));
                if !mine.contains(&addr) && !m.remotes.iter().any(|r| IpAddr16::from_v4(r.to_be_bytes()) == addr) {
                    return true;
                }
            }
            if rows.len() == limit {
                truncated = true;
                return false;
            }
            rows.push(serde_json::json!({
                "worker": worker,
                "proto": crate::flowlog::proto_name(m.proto),
                "inside_ip": v4(m.inside),
                "inside_port": m.inside_port,
                "external_ip": v4(m.ext),
                "external_port": m.ext_port,
                "users": m.refs,
                "remotes": m.remotes.iter().filter(|&&r| r != 0).map(|&r| v4(r)).collect::<Vec<_>>(),
            }));
            true
        });
    }
    let _ = q.reply.try_send((worker, Rows::Json(rows), truncated));
}
