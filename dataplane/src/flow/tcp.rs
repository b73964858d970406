//! TCP connection state, as much as timeouts and end reasons need (not a full conntrack: no
//! sequence-window checks yet).
use super::Dir;
use crate::packet::tcp::{ACK, FIN, RST, SYN};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum TcpState {
    /// SYN seen from the originator.
    #[default]
    SynSent,
    /// SYN+ACK seen from the responder.
    SynReceived,
    /// Picked up mid-stream (the first packet was not a bare SYN: the firewall or the capture
    /// started after the handshake, or an ACK flood), and nothing seen the other way yet.
    Midstream,
    /// Handshake done, or a mid-stream pickup answered from the other side.
    Established,
    /// A FIN from one side (`fin_from` says which).
    Closing,
    /// FINs from both sides.
    Closed,
    /// RST seen.
    Reset,
}

/// Per-flow TCP tracking: state plus which sides sent FIN/RST. Two bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpTrack {
    pub state: TcpState,
    /// Bit 0: FIN from originator, bit 1: FIN from responder; bit 2/3: RST from orig/reply.
    pub marks: u8,
}

impl TcpTrack {
    /// State of a new flow whose first packet carried `flags`. Anything but a bare SYN is a
    /// mid-stream pickup, established once the other side answers.
    pub fn first(flags: u8) -> TcpTrack {
        let mut t = TcpTrack {
            state: if flags & (SYN | ACK | RST | FIN) == SYN {
                TcpState::SynSent
            } else {
                TcpState::Midstream
            },
            marks: 0,
        };
        if flags & (RST | FIN) != 0 {
            t.update(Dir::Orig, flags);
        }
        t
    }

    /// Advances on a packet in direction `dir` with `flags`.
    pub fn update(&mut self, dir: Dir, flags: u8) {
        let side = dir as u8;
        if self.state == TcpState::Reset && flags & (SYN | ACK | RST) == SYN {
            // A connection attempt retried after a RST re-opens the same flow, as Linux
            // conntrack does (CLOSE -> SYN_SENT); only a FIN-closed tuple starts a new one.
            *self = TcpTrack::first(flags);
            return;
        }
        if flags & RST != 0 {
            self.marks |= 4 << side;
            self.state = TcpState::Reset;
            return;
        }
        if flags & FIN != 0 {
            self.marks |= 1 << side;
        }
        self.state = match self.state {
            TcpState::SynSent if dir == Dir::Reply && flags & (SYN | ACK) == SYN | ACK => {
                TcpState::SynReceived
            }
            TcpState::SynReceived if dir == Dir::Orig && flags & ACK != 0 && flags & SYN == 0 => {
                TcpState::Established
            }
            TcpState::Midstream if dir == Dir::Reply && flags & FIN == 0 => TcpState::Established,
            // More from the same side is no answer (a FIN is remembered in `marks`).
            TcpState::Midstream if dir == Dir::Orig => TcpState::Midstream,
            s @ (TcpState::Reset | TcpState::Closed) => s,
            s => {
                if self.marks & 3 == 3 {
                    TcpState::Closed
                } else if self.marks & 3 != 0 {
                    TcpState::Closing
                } else {
                    s
                }
            }
        };
    }

    /// Whether a bare SYN now starts a new connection on the same tuple (port reuse after a
    /// FIN close, like TIME_WAIT reuse).
    pub fn reusable(&self) -> bool {
        self.state == TcpState::Closed
    }

    /// Whether the connection is answered and open: a handshake completed, or a mid-stream
    /// pickup heard from both sides, and not closed. Only such a flow is safe from eviction
    /// by new ones (a SYN or ACK flood's, a spoofed source's).
    pub fn answered(&self) -> bool {
        matches!(self.state, TcpState::Established | TcpState::Closing)
    }

    pub fn reset_from_orig(&self) -> bool {
        self.marks & 4 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_data_and_fin_close() {
        let mut t = TcpTrack::first(SYN);
        assert_eq!(t.state, TcpState::SynSent);
        t.update(Dir::Reply, SYN | ACK);
        assert_eq!(t.state, TcpState::SynReceived);
        t.update(Dir::Orig, ACK);
        assert_eq!(t.state, TcpState::Established);
        t.update(Dir::Orig, FIN | ACK);
        assert_eq!(t.state, TcpState::Closing);
        t.update(Dir::Reply, FIN | ACK);
        assert_eq!(t.state, TcpState::Closed);
        assert!(t.reusable());
    }

    #[test]
    fn mid_stream_pickup_is_established_once_answered() {
        let mut t = TcpTrack::first(ACK | 0x08);
        assert_eq!(t.state, TcpState::Midstream);
        assert!(!t.answered());
        t.update(Dir::Orig, ACK);
        assert_eq!(
            t.state,
            TcpState::Midstream,
            "the same side again is no answer"
        );
        t.update(Dir::Reply, ACK);
        assert_eq!(t.state, TcpState::Established);
        assert!(t.answered());
    }

    #[test]
    fn a_handshake_is_answered_only_when_complete() {
        let mut t = TcpTrack::first(SYN);
        t.update(Dir::Reply, SYN | ACK);
        assert!(
            !t.answered(),
            "a SYN+ACK to a spoofed source completes nothing"
        );
        t.update(Dir::Orig, ACK);
        assert!(t.answered());
    }

    #[test]
    fn rst_closes_and_remembers_side() {
        let mut t = TcpTrack::first(SYN);
        t.update(Dir::Reply, RST | ACK);
        assert_eq!(t.state, TcpState::Reset);
        assert!(!t.reset_from_orig());
        assert!(!t.reusable());
    }

    #[test]
    fn syn_retried_after_rst_reopens_the_flow() {
        let mut t = TcpTrack::first(SYN);
        t.update(Dir::Reply, RST | ACK);
        t.update(Dir::Orig, SYN);
        assert_eq!(t, TcpTrack::first(SYN));
        t.update(Dir::Reply, SYN | ACK);
        assert_eq!(t.state, TcpState::SynReceived);
    }

    #[test]
    fn syn_ack_from_the_originator_does_not_advance() {
        let mut t = TcpTrack::first(SYN);
        t.update(Dir::Orig, SYN | ACK);
        assert_eq!(t.state, TcpState::SynSent);
    }
}
