//! Aperture's packet path. One folder per stage, in the order a packet meets them:
//! `port` (DPDK I/O), `packet` (parsing), `flow` (flow tables), `forward` (virtual-wire and
//! routed L3), `stats` (counters and the shared-memory segment); `worker` strings them together.
#![forbid(unsafe_code)]

pub mod alg;
pub mod appid;
pub mod clock;
pub mod config;
pub mod control;
pub mod flow;
pub mod flowdump;
pub mod flowlog;
pub mod forward;
pub mod logging;
pub mod nat;
pub mod offline;
pub mod packet;
pub mod policy;
pub mod port;
pub mod replay;
pub mod report;
pub mod runtime;
pub mod stats;
pub mod worker;
