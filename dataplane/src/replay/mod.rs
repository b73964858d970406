//! Capture replay: the same workers, fed by DPDK's `net_pcap` virtual device.
//!
//! net_pcap passes frames through as they are stored, so captures are first normalised to
//! Ethernet pcap files (`capture`): Linux cooked (v1/v2), raw IP and BSD loopback frames get a
//! synthetic Ethernet header, pcapng is flattened, and with several workers the packets are
//! split into one file per worker by a symmetric flow hash (net_pcap has no RSS). The workers'
//! clock is the capture time, so results do not depend on the machine's speed.
pub mod capture;
