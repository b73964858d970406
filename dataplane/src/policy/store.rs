//! Where the dataplane keeps its policy: one atomic pointer the workers read once per burst
//! (RCU style, `arc-swap`), swapped whole by `install`, plus the recent generations so that a
//! flow record written after a reload still names the rule that decided it.
use super::Policy;
use crate::stats::RULE_SLOTS;
use arc_swap::{ArcSwap, Cache};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// Policies kept for naming rules of flows checked under an older generation.
const RECENT: usize = 16;

pub struct PolicyStore {
    current: Arc<ArcSwap<Policy>>,
    recent: Mutex<VecDeque<Arc<Policy>>>,
    last_gen: AtomicU32,
    /// The rule name of each stats slot, in order of first sight; slot 0 is the default.
    slots: Mutex<Vec<String>>,
}

/// The name of the default action's stats slot (no rule may take it: rule names are checked
/// against it at compile time).
pub const DEFAULT_SLOT_NAME: &str = "default";
/// The last slot, shared by every rule name past the others.
pub const OVERFLOW_SLOT_NAME: &str = "(other rules)";

/// Gives `p`'s rules their stats slots, naming new ones in `slots`.
fn assign_slots(p: &mut Policy, slots: &mut Vec<String>) {
    let last = RULE_SLOTS - 1;
    p.rule_slots = p
        .rule_names
        .iter()
        .map(|name| {
            let at = slots.iter().position(|s| s == name).unwrap_or_else(|| {
                if slots.len() < last {
                    slots.push(name.clone());
                    slots.len() - 1
                } else {
                    if slots.len() == last {
                        slots.push(OVERFLOW_SLOT_NAME.to_string());
                    }
                    last
                }
            });
            at as u16
        })
        .chain(std::iter::once(0))
        .collect();
}

impl PolicyStore {
    /// A store holding `initial` as generation 1.
    pub fn new(initial: Policy) -> Arc<PolicyStore> {
        let mut initial = initial;
        initial.generation = 1;
        let mut slots = vec![DEFAULT_SLOT_NAME.to_string()];
        assign_slots(&mut initial, &mut slots);
        let p = Arc::new(initial);
        Arc::new(PolicyStore {
            current: Arc::new(ArcSwap::from(Arc::clone(&p))),
            recent: Mutex::new(VecDeque::from([p])),
            last_gen: AtomicU32::new(1),
            slots: Mutex::new(slots),
        })
    }

    /// Makes `p` the policy every worker uses from its next burst; returns its generation.
    pub fn install(&self, mut p: Policy) -> u32 {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.last_gen.load(Ordering::Relaxed) + 1;
        p.generation = generation;
        assign_slots(
            &mut p,
            &mut self.slots.lock().unwrap_or_else(|e| e.into_inner()),
        );
        let p = Arc::new(p);
        self.current.store(Arc::clone(&p));
        self.last_gen.store(generation, Ordering::Relaxed);
        recent.push_back(p);
        while recent.len() > RECENT {
            recent.pop_front();
        }
        generation
    }

    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    pub fn generation(&self) -> u32 {
        self.last_gen.load(Ordering::Relaxed)
    }

    /// The policy of `generation`, if it is recent enough to be kept.
    pub fn by_generation(&self, generation: u32) -> Option<Arc<Policy>> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .iter()
            .rev()
            .find(|p| p.generation == generation)
            .cloned()
    }

    /// The recent policy whose generation a flow kept (its low 16 bits, `short_generation`).
    pub fn by_short_generation(&self, short: u16) -> Option<Arc<Policy>> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .iter()
            .rev()
            .find(|p| super::short_generation(p.generation) == short)
            .cloned()
    }

    /// The rule name of every stats slot given so far, slot order.
    pub fn slot_names(&self) -> Vec<String> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stats slots given so far (cheaper than `slot_names` for "anything new?").
    pub fn slot_count(&self) -> usize {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// A worker's reader.
    pub fn reader(&self) -> PolicyReader {
        PolicyReader {
            cache: Cache::new(Arc::clone(&self.current)),
        }
    }
}

/// A worker's view of the store: `load` costs one atomic load while the policy is unchanged
/// and touches no shared reference count.
pub struct PolicyReader {
    cache: Cache<Arc<ArcSwap<Policy>>, Arc<Policy>>,
}

impl PolicyReader {
    #[inline]
    pub fn load(&mut self) -> &Arc<Policy> {
        self.cache.load()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Action;

    #[test]
    fn install_swaps_and_names_generations() {
        let s = PolicyStore::new(Policy::fixed(Action::Deny));
        let mut r = s.reader();
        assert_eq!(r.load().generation, 1);
        assert_eq!(s.install(Policy::fixed(Action::Allow)), 2);
        assert_eq!(r.load().generation, 2);
        assert_eq!(r.load().default_action, Action::Allow);
        assert_eq!(s.by_generation(1).unwrap().default_action, Action::Deny);
        for _ in 0..RECENT + 2 {
            s.install(Policy::fixed(Action::Drop));
        }
        assert!(s.by_generation(1).is_none());
        assert_eq!(s.generation(), 2 + RECENT as u32 + 2);
    }

    fn named(names: &[&str]) -> Policy {
        let mut p = Policy::fixed(Action::Deny);
        p.rule_names = names.iter().map(|n| n.to_string()).collect();
        p
    }

    #[test]
    fn a_rule_keeps_its_stats_slot_across_reloads_and_moves() {
        let s = PolicyStore::new(named(&["a", "b"]));
        assert_eq!(s.current().rule_slots, [1, 2, 0]);
        s.install(named(&["c", "b", "a"]));
        let p = s.current();
        assert_eq!(p.rule_slots, [3, 2, 1, 0]);
        assert_eq!(p.slot_of(0), 3);
        assert_eq!(p.slot_of(crate::policy::RULE_DEFAULT), 0);
        assert_eq!(s.slot_names(), ["default", "a", "b", "c"]);
        // Past the last slot every new name shares it.
        let many: Vec<String> = (0..RULE_SLOTS + 5).map(|i| format!("r{i}")).collect();
        let refs: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
        s.install(named(&refs));
        let p = s.current();
        assert_eq!(s.slot_count(), RULE_SLOTS);
        assert_eq!(s.slot_names()[RULE_SLOTS - 1], OVERFLOW_SLOT_NAME);
        assert_eq!(*p.rule_slots.iter().max().unwrap() as usize, RULE_SLOTS - 1);
        assert_eq!(p.rule_slots[0], 4);
    }
}
