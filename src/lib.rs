//! Aperture: root package holding the cross-crate integration tests and benchmarks.
