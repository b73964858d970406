//! Aperture's control plane: compiles `policy.yaml` against the catalog and the dataplane's
//! ports, pushes it through the dataplane's control socket, reloads it on request, and renders
//! the dataplane's shared-memory counters as Prometheus metrics.
pub mod metrics;
pub mod serve;

use aperture_dataplane::stats::{drop_reason_name, read_snapshot, Counters, StatsError, GENERAL};
use std::path::Path;

/// A consistent snapshot of every worker's counters, with names.
pub struct Snapshot {
    pub workers: Vec<Counters>,
}

impl Snapshot {
    pub fn read(segment: &Path) -> Result<Snapshot, StatsError> {
        Ok(Snapshot {
            workers: read_snapshot(segment)?,
        })
    }

    /// (name, per-worker values) for every counter; drop reasons as `drop_<reason>`.
    pub fn rows(&self) -> Vec<(String, Vec<u64>)> {
        let n = self.workers.first().map_or(0, |c| c.0.len());
        (0..n)
            .map(|i| {
                let name = GENERAL
                    .get(i)
                    .map(|s| s.to_string())
                    .or_else(|| {
                        drop_reason_name(i).map(|r| format!("drop_{}", r.replace('-', "_")))
                    })
                    .unwrap_or_else(|| format!("counter_{i}"));
                (name, self.workers.iter().map(|c| c.0[i]).collect())
            })
            .collect()
    }
}
