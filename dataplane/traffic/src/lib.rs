//! Deterministic synthetic traffic for Aperture's tests, the bundled demo capture and the
//! benchmarks: whole Ethernet frames with correct lengths and checksums, TCP conversations,
//! application payloads (TLS, STUN/TURN, SIP/SDP, RTP/RTCP, DNS, NTP), FaceTime calls and the
//! demo capture.
//!
//! Everything is a pure function of a seed ([`rng::Rng`]): the same seed gives the same bytes
//! on every machine. Nothing here touches the network or DPDK.

#![forbid(unsafe_code)]

pub mod build;
pub mod dns;
pub mod facetime;
pub mod ntp;
pub mod pcap;
pub mod rng;
pub mod rtp;
pub mod sample;
pub mod sip;
pub mod stun;
pub mod tcp;
pub mod tls;

#[cfg(test)]
mod wire;

pub use build::Mac;
pub use facetime::{facetime_session, FacetimeParams, FacetimeSession};
pub use pcap::{write_pcap, write_pcap_file, TimedFrame, WriteError};
pub use rng::{Ipv4Prefix, Ipv6Prefix, Rng};
pub use sample::{sample, sample_capture, write_sample, Sample};
pub use tcp::{Direction, TcpSession};
