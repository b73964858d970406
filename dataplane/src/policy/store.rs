//! Where the dataplane keeps its policy: one atomic pointer the workers read once per burst
//! (RCU style, `arc-swap`), swapped whole by `install`, plus the recent generations so that a
//! flow record written after a reload still names the rule that decided it.
use super::Policy;
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
}

impl PolicyStore {
    /// A store holding `initial` as generation 1.
    pub fn new(initial: Policy) -> Arc<PolicyStore> {
        let mut initial = initial;
        initial.generation = 1;
        let p = Arc::new(initial);
        Arc::new(PolicyStore {
            current: Arc::new(ArcSwap::from(Arc::clone(&p))),
            recent: Mutex::new(VecDeque::from([p])),
            last_gen: AtomicU32::new(1),
        })
    }

    /// Makes `p` the policy every worker uses from its next burst; returns its generation.
    pub fn install(&self, mut p: Policy) -> u32 {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.last_gen.load(Ordering::Relaxed) + 1;
        p.generation = generation;
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
}
