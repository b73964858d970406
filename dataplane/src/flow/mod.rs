//! Flows: the key both directions share, per-worker tables with idle timers and eviction, and
//! the TCP state that decides which timer applies.
//!
//! A table belongs to one worker and is never shared: no locks, no atomics. Its memory is
//! allocated once at start; creating, touching, expiring and evicting flows never allocates.

pub mod admit;
pub mod affinity;
pub mod defrag;
pub mod handoff;
pub mod key;
pub mod table;
pub mod tcp;

pub use key::{Dir, FlowKey};
pub use table::{EndReason, Flow, FlowRef, FlowTable, Slot, TimeoutClass, Tracked, APP_CLASSES};
