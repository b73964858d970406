//! The offline driver: frames from memory through the workers' own parser and flow stage
//! (`worker::insert_flow`, `worker::account_and_classify`), without DPDK. For benchmarks that
//! must not be limited by an I/O device, for tests, and for tools.
use crate::appid::catalog::Catalog;
use crate::appid::engine::{AppEvent, Engine, Limits};
use crate::config::Timeouts;
use crate::flow::FlowTable;
use crate::flow::{EndReason, Flow, Slot};
use crate::flowlog::FlowRecord;
use crate::packet::{self, Headers};
use crate::worker::{account_and_classify, inner_flow, insert_flow, Inner};
use std::sync::Arc;

pub struct Offline {
    flows: FlowTable,
    engine: Engine,
    h: Headers,
    /// Ended flows, in the order they ended.
    pub records: Vec<FlowRecord>,
    /// Frames that did not parse.
    pub malformed: u64,
    /// Flows made so far (each ends once: in `records`, or at `finish`).
    pub created: u64,
}

impl Offline {
    pub fn new(
        catalog: Arc<Catalog>,
        capacity: usize,
        timeouts: &Timeouts,
        limits: Limits,
    ) -> Offline {
        let flows = FlowTable::new(
            capacity,
            timeouts,
            [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
        );
        let mut flows = flows;
        flows.set_app_timeouts(catalog.app_timeouts());
        let engine = Engine::new(catalog, flows.capacity(), limits);
        Offline {
            flows,
            engine,
            h: Headers::empty(),
            records: Vec::new(),
            malformed: 0,
            created: 0,
        }
    }

    /// One Ethernet frame captured at `ts_ns`; returns what App-ID decided on it.
    #[inline]
    pub fn packet(&mut self, ts_ns: u64, frame: &[u8], wire_len: usize) -> AppEvent {
        if packet::parse_into(frame, wire_len, &mut self.h).is_err() {
            self.malformed += 1;
            return AppEvent::None;
        }
        if !self.h.is_ip() {
            return AppEvent::None;
        }
        let mut r = self.flows.flow_ref(&self.h);
        self.flows.lookup(&self.h, &mut r);
        let records = &mut self.records;
        let mut ended = |e: &mut Engine, s, f: &_, reason| records.push(record(e, s, f, reason));
        if r.missed() {
            // Offline App-ID sets no limits: a flow is refused only by a table full of
            // answered flows, and then its packets are classified as no flow's.
            match insert_flow(
                &mut self.flows,
                &mut self.engine,
                &self.h,
                &mut r,
                ts_ns,
                0,
                &mut ended,
            ) {
                Ok(created) => self.created += created as u64,
                Err(_) => return AppEvent::None,
            }
        }
        let (t, ev) = account_and_classify(
            &mut self.flows,
            &mut self.engine,
            &self.h,
            &r,
            wire_len as u32,
            ts_ns,
            frame,
            &mut ended,
        );
        self.created += t.created as u64;
        if packet::tunnel::candidate(&self.h) {
            let inner = inner_flow(
                &mut self.flows,
                &mut self.engine,
                frame,
                &self.h,
                ts_ns,
                0,
                &mut ended,
            );
            if let Inner::Tracked(t, _, _, _) = inner {
                self.created += t.first as u64;
            }
        }
        let records = &mut self.records;
        let engine = &mut self.engine;
        self.flows.expire(ts_ns, 64, &mut |s, f, reason| {
            records.push(record(engine, s, f, reason))
        });
        ev
    }

    /// Ends every live flow and returns all records.
    pub fn finish(mut self) -> Vec<FlowRecord> {
        let records = &mut self.records;
        let engine = &mut self.engine;
        self.flows
            .drain(&mut |s, f, reason| records.push(record(engine, s, f, reason)));
        self.records
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }
}

/// The record of flow `f` in `slot`, ended for `reason`.
fn record(e: &mut Engine, slot: Slot, f: &Flow, reason: EndReason) -> FlowRecord {
    let ev = e.evidence(slot);
    let tunnel = e.tunnel(slot, f);
    let mut r = FlowRecord::new(0, slot, f, Some(reason), &e.ended(slot, f), ev);
    r.tunnel = tunnel;
    r
}
