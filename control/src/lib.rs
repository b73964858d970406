//! Aperture's control plane: compiles `policy.yaml` against the catalog and the dataplane's
//! ports, pushes it through the dataplane's control socket, reloads it on request, and renders
//! the dataplane's shared-memory counters as Prometheus metrics.
pub mod metrics;
pub mod serve;

/// A consistent snapshot of the stats segment (each worker's block read consistently), with
/// names: the dataplane's own reader.
pub use aperture_dataplane::stats::SegmentSnapshot as Snapshot;
