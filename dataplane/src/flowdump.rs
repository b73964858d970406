//! `aperturectl show flows`: the live flows of the running workers, on request.
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
use crate::flow::{EndReason, FlowTable};
use crate::flowlog::FlowRecord;
use crate::packet::IpAddr16;
use arc_swap::ArcSwapOption;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

/// Most rows one worker returns for one query.
pub const MAX_ROWS: usize = 100_000;

/// One worker's answer: its id, its rows, and whether it stopped at the limit.
pub type Answer = (usize, Vec<FlowRecord>, bool);

/// What to list. Filters left out match every flow.
pub struct FlowQuery {
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
            EndReason::Exit,
            &info,
        ));
        true
    });
    let _ = q.reply.try_send((worker, rows, truncated));
}
