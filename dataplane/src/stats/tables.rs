//! Per-application and per-rule counters of one worker: plain arrays it owns, sized once at
//! start (no allocation on the packet path), published with the general counters.
//!
//! Applications are indexed by their catalog id, with one more entry at the end for packets
//! of flows still undecided. Rules are counted by *slot*, not by their index in one policy:
//! the policy store gives every rule name a slot the first time it sees it and keeps it across
//! reloads, so a rule that moves in the file keeps its counters and a Prometheus counter never
//! jumps back. Slot 0 is the default action.

/// Counters per application, index order.
pub const APP_COUNTERS: usize = 4;

#[derive(Clone, Copy, Debug)]
#[repr(usize)]
pub enum AppCounter {
    /// Flows that ended with this application (what the flow log says of them).
    Flows,
    /// Packets and bytes of flows while they had this application (an undecided flow's
    /// early packets count under "undecided", a shifted flow's under each in turn).
    Packets,
    Bytes,
    /// Flows the policy stopped while they had this application.
    Denied,
}

/// Counters per rule slot, index order.
pub const RULE_COUNTERS: usize = 3;

#[derive(Clone, Copy, Debug)]
#[repr(usize)]
pub enum RuleCounter {
    /// Flows whose verdict settled under the rule (once per flow, again only if a later
    /// decision of the same policy moved it to another rule).
    Hits,
    /// Packets and bytes the rule decided (passed or stopped), settled or not.
    Packets,
    Bytes,
}

/// Rule slots in the stats segment: the default action, the named rules a process has seen
/// (in order of first sight), and a last slot shared by any beyond.
pub const RULE_SLOTS: usize = 1024;

/// Port counters, index order (from the driver's `rte_eth_stats`).
pub const PORT_COUNTERS: [&str; 8] = [
    "rx_packets",
    "tx_packets",
    "rx_bytes",
    "tx_bytes",
    "rx_missed",
    "rx_errors",
    "tx_errors",
    "rx_nombuf",
];

/// Longest name (application, rule, port) the segment stores; a policy refuses longer rule
/// names, as commercial firewalls do (63 characters).
pub const NAME_BYTES: usize = 63;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    apps: Box<[[u64; APP_COUNTERS]]>,
    rules: Box<[[u64; RULE_COUNTERS]]>,
}

impl Default for Tables {
    fn default() -> Self {
        Tables::new(0)
    }
}

impl Tables {
    /// Tables for a catalog of `apps` applications (one more entry is added for "undecided").
    pub fn new(apps: usize) -> Tables {
        Tables {
            apps: vec![[0; APP_COUNTERS]; apps + 1].into_boxed_slice(),
            rules: vec![[0; RULE_COUNTERS]; RULE_SLOTS].into_boxed_slice(),
        }
    }

    /// Applications counted, "undecided" included.
    pub fn apps(&self) -> usize {
        self.apps.len()
    }

    /// The entry of application id `app` (`u16::MAX`, undecided, and anything past the
    /// catalog count as the last).
    #[inline(always)]
    fn app_mut(&mut self, app: u16) -> &mut [u64; APP_COUNTERS] {
        let last = self.apps.len() - 1;
        &mut self.apps[(app as usize).min(last)]
    }

    #[inline(always)]
    fn rule_mut(&mut self, slot: u16) -> &mut [u64; RULE_COUNTERS] {
        &mut self.rules[(slot as usize).min(RULE_SLOTS - 1)]
    }

    /// One packet of `len` bytes of a flow whose application is `app`.
    #[inline(always)]
    pub fn app_packet(&mut self, app: u16, len: u32) {
        let e = self.app_mut(app);
        e[AppCounter::Packets as usize] += 1;
        e[AppCounter::Bytes as usize] += len as u64;
    }

    #[inline]
    pub fn app_add(&mut self, app: u16, c: AppCounter, v: u64) {
        self.app_mut(app)[c as usize] += v;
    }

    /// One packet of `len` bytes decided by the rule in `slot`.
    #[inline(always)]
    pub fn rule_packet(&mut self, slot: u16, len: u32) {
        let e = self.rule_mut(slot);
        e[RuleCounter::Packets as usize] += 1;
        e[RuleCounter::Bytes as usize] += len as u64;
    }

    #[inline]
    pub fn rule_hit(&mut self, slot: u16) {
        self.rule_mut(slot)[RuleCounter::Hits as usize] += 1;
    }

    /// The counters of application index `i` (the last index is "undecided").
    pub fn app(&self, i: usize) -> [u64; APP_COUNTERS] {
        self.apps.get(i).copied().unwrap_or_default()
    }

    pub fn rule(&self, slot: usize) -> [u64; RULE_COUNTERS] {
        self.rules.get(slot).copied().unwrap_or_default()
    }

    /// Every counter in segment order: applications, then rule slots.
    pub fn words(&self) -> impl Iterator<Item = u64> + '_ {
        self.apps
            .iter()
            .flat_map(|e| e.iter().copied())
            .chain(self.rules.iter().flat_map(|e| e.iter().copied()))
    }

    /// Number of words `words` yields.
    pub fn word_count(apps: usize) -> usize {
        (apps + 1) * APP_COUNTERS + RULE_SLOTS * RULE_COUNTERS
    }

    /// Sets the counters from segment words (the reader side).
    pub(crate) fn set_words(&mut self, words: impl Iterator<Item = u64>) {
        let slots = self
            .apps
            .iter_mut()
            .flat_map(|e| e.iter_mut())
            .chain(self.rules.iter_mut().flat_map(|e| e.iter_mut()));
        for (d, s) in slots.zip(words) {
            *d = s;
        }
    }

    pub fn merge(&mut self, o: &Tables) {
        for (a, b) in self.apps.iter_mut().zip(o.apps.iter()) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        for (a, b) in self.rules.iter_mut().zip(o.rules.iter()) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_ids_land_in_the_last_entries_and_words_round_trip() {
        let mut t = Tables::new(3);
        t.app_packet(1, 100);
        t.app_packet(u16::MAX, 60);
        t.app_packet(7, 40); // past the catalog: "undecided"
        t.app_add(1, AppCounter::Flows, 1);
        t.rule_packet(0, 10);
        t.rule_hit(2);
        t.rule_hit(u16::MAX);
        assert_eq!(t.app(1), [1, 1, 100, 0]);
        assert_eq!(t.app(3), [0, 2, 100, 0]);
        assert_eq!(t.rule(0), [0, 1, 10]);
        assert_eq!(t.rule(RULE_SLOTS - 1), [1, 0, 0]);
        let words: Vec<u64> = t.words().collect();
        assert_eq!(words.len(), Tables::word_count(3));
        let mut back = Tables::new(3);
        back.set_words(words.into_iter());
        assert_eq!(back, t);
        back.merge(&t);
        assert_eq!(back.app(1), [2, 2, 200, 0]);
    }
}
