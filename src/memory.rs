//! What the operator remembers about each object between passes, in memory only and never a
//! secret, forgotten when the object goes: its retry backoff and model polls, the
//! permanent-failure gate, the status it wrote for a cache that lags behind that write, the
//! resource versions its own writes produced or superseded (so that their watch events start no
//! pass), the endpoint the resync compares, the MAC of the secret values Elasticsearch holds, and
//! the objects whose cleanup is done.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use rand::Rng;

use crate::crd::InferenceEndpointStatus;

/// The endpoint an object depends on, as last seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastSeen {
    pub object: kube::runtime::reflector::ObjectRef<crate::guard::Watched>,
    pub cluster: String,
    pub inference_id: String,
    /// Hash of the endpoint's configuration, `None` when it did not exist.
    pub endpoint: Option<u64>,
    /// The Elasticsearch version the pass decided on: an upgrade triggers a pass (what the
    /// cluster accepts may have changed, e.g. `UnsupportedByCluster`).
    pub version: Option<crate::model::Version>,
    /// The inputs of the last pass were fully in sync with it.
    pub in_sync: bool,
}

/// How many released objects are remembered (a cache that lags may still show them).
const RELEASED_KEPT: usize = 4096;

/// Every object's memory.
pub struct Memory {
    /// Boxed: the table has a slot per object and grows by doubling, so each empty slot costs a
    /// pointer instead of a whole `ObjectMemory` (about 260 bytes).
    objects: Mutex<HashMap<String, Box<ObjectMemory>>>,
    /// Objects whose cleanup is done (the finalizer removed), newest last: a pass on a cache that
    /// still shows one of them does nothing (UIDs are never reused). Bounded.
    released: Mutex<(VecDeque<String>, HashSet<String>)>,
    backoff_base: Duration,
    backoff_max: Duration,
}

/// What the operator remembers about one object between passes (never secrets).
#[derive(Debug, Default)]
pub struct ObjectMemory {
    /// Transient failures in a row.
    failures: u32,
    /// Looks at a starting model deployment in a row.
    polls: u32,
    /// A write that failed permanently: not tried again with the same inputs.
    gate: Option<String>,
    /// Resource versions superseded by this operator's own writes (newest last): a pass that
    /// gets one of these from a lagging cache uses `written` instead.
    stale: VecDeque<String>,
    /// The last status this operator wrote.
    written: Option<Arc<InferenceEndpointStatus>>,
    /// The resource version this operator's last write produced: the object as its last pass
    /// left it.
    own: Option<String>,
    /// Where the object's endpoint is and what it looked like when last decided on: the
    /// periodic resync triggers the object only when that changes.
    pub watch: Option<LastSeen>,
    /// MAC (under the process key) of the secret values Elasticsearch holds.
    values_mac: Option<[u8; 16]>,
    /// A write of this operator's is on its way (see [`Memory::writing`]).
    in_flight: bool,
    /// Versions the watch showed while that write was in flight that were not yet known to be
    /// ours (the watch can deliver a write's event before the write's answer arrives): judged
    /// when the answer is recorded. At most `HELD_KEPT`; beyond that, events are triggers.
    held: Vec<String>,
}

/// How many versions one write in flight holds back.
const HELD_KEPT: usize = 8;

impl ObjectMemory {
    /// A write of this operator turned `previous` into `new`.
    fn superseded(&mut self, previous: Option<&str>, new: Option<&str>) {
        // What the pass read, and what the last write produced (a pass started from it, or
        // from what was kept for it when the cache had not seen it yet). A write that changed
        // nothing on the server (the same apply again) supersedes nothing.
        let own = self.own.take();
        for rv in [previous, own.as_deref()].into_iter().flatten() {
            if Some(rv) != new && !self.stale.iter().any(|s| s == rv) {
                self.stale.push_back(rv.to_string());
            }
        }
        while self.stale.len() > 8 {
            self.stale.pop_front();
        }
        self.own = new.map(str::to_string);
    }

    /// The write in flight ended, having produced `new` (`None`: it failed, or never got its
    /// answer): whether what was held while it was in flight may be someone else's change, so
    /// the object needs a pass. Held versions are judged in the order the watch showed them.
    fn settle(&mut self, new: Option<&str>) -> bool {
        self.in_flight = false;
        let held = std::mem::take(&mut self.held);
        match new {
            None => !held.is_empty(),
            Some(_) => {
                // Every one is looked at: an own version also tells that the cache caught up.
                let mut others = false;
                for rv in &held {
                    others |= !self.own_write(rv);
                }
                others
            }
        }
    }

    /// See [`Memory::is_own_write`].
    fn own_write(&mut self, rv: &str) -> bool {
        if self.own.as_deref() == Some(rv) {
            self.written = None;
            self.stale = VecDeque::new();
            true
        } else {
            self.stale.iter().any(|s| s == rv)
        }
    }
}

impl Memory {
    /// Retries back off from `backoff_base` to `backoff_max`.
    pub fn new(backoff_base: Duration, backoff_max: Duration) -> Self {
        Self {
            objects: Mutex::default(),
            released: Mutex::default(),
            backoff_base,
            backoff_max,
        }
    }

    /// Forget the objects `known` does not hold (deleted without a finalizer, or while another
    /// replica led). Returns how many were forgotten.
    pub fn retain(&self, known: &HashSet<String>) -> usize {
        let mut objects = self.objects.lock().expect("memory lock poisoned");
        let before = objects.len();
        objects.retain(|uid, _| known.contains(uid));
        // A map keeps its capacity when entries go: give it back after a mass delete.
        objects.shrink_to_fit();
        before - objects.len()
    }

    pub fn values_mac_of(&self, uid: &str) -> Option<[u8; 16]> {
        self.peek_memory(uid, |m| m.values_mac).flatten()
    }

    pub fn set_values_mac(&self, uid: &str, mac: Option<[u8; 16]>) {
        if mac.is_some() {
            self.with_memory(uid, |m| m.values_mac = mac);
        }
    }

    fn with_memory<T>(&self, uid: &str, f: impl FnOnce(&mut ObjectMemory) -> T) -> T {
        let mut memory = self.objects.lock().expect("memory lock poisoned");
        f(memory.entry(uid.to_string()).or_default())
    }

    fn peek_memory<T>(&self, uid: &str, f: impl FnOnce(&ObjectMemory) -> T) -> Option<T> {
        self.objects
            .lock()
            .expect("memory lock poisoned")
            .get(uid)
            .map(|m| f(m))
    }

    /// A recorder holding nothing between Events (see `reporter`).
    fn peek_memory_mut<T>(&self, uid: &str, f: impl FnOnce(&mut ObjectMemory) -> T) -> Option<T> {
        self.objects
            .lock()
            .expect("memory lock poisoned")
            .get_mut(uid)
            .map(|m| f(m))
    }

    /// Forget everything about an object (it is gone).
    pub fn forget(&self, uid: &str) {
        self.objects
            .lock()
            .expect("memory lock poisoned")
            .remove(uid);
    }

    /// The object's cleanup is done and its finalizer removed: forget it, and remember only that.
    pub fn released(&self, uid: &str) {
        self.forget(uid);
        let mut r = self.released.lock().expect("released lock poisoned");
        if r.1.insert(uid.to_string()) {
            r.0.push_back(uid.to_string());
            while r.0.len() > RELEASED_KEPT {
                if let Some(old) = r.0.pop_front() {
                    r.1.remove(&old);
                }
            }
        }
    }

    /// Whether the object's cleanup is already done (a cache that lags still shows it).
    pub fn is_released(&self, uid: &str) -> bool {
        self.released
            .lock()
            .expect("released lock poisoned")
            .1
            .contains(uid)
    }

    /// How many objects the operator remembers (for tests and the memory sweep).
    pub fn remembered(&self) -> usize {
        self.objects.lock().expect("memory lock poisoned").len()
    }

    // ----- the status this operator wrote, for caches that lag behind it -----

    /// The status to start from: what the object carries, or what this operator wrote if the
    /// object comes from a cache that has not seen that write yet.
    pub fn effective_status(
        &self,
        uid: &str,
        resource_version: Option<&str>,
        carried: Option<&InferenceEndpointStatus>,
    ) -> InferenceEndpointStatus {
        let from_memory = self.peek_memory_mut(uid, |m| {
            let stale = resource_version.is_some_and(|rv| m.stale.iter().any(|s| s == rv));
            if !stale && resource_version.is_some() {
                // The cache has caught up with this operator's writes (watches never go
                // back): what was kept for a lagging cache is not needed any more.
                m.written = None;
                m.stale = VecDeque::new();
            }
            stale.then(|| m.written.clone()).flatten()
        });
        match from_memory.flatten() {
            Some(written) => (*written).clone(),
            None => carried.cloned().unwrap_or_default(),
        }
    }

    /// Remember a status write that replaced `previous_rv` with `new_rv`.
    pub fn wrote_status(
        &self,
        uid: &str,
        previous_rv: Option<&str>,
        new_rv: Option<&str>,
        written: InferenceEndpointStatus,
    ) -> bool {
        self.with_memory(uid, |m| {
            m.superseded(previous_rv, new_rv);
            m.written = Some(Arc::new(written));
            m.settle(new_rv)
        })
    }

    /// Remember that an object write (e.g. the finalizer) replaced `previous_rv` with `new_rv`.
    pub fn wrote_object(&self, uid: &str, previous_rv: Option<&str>, new_rv: Option<&str>) -> bool {
        self.with_memory(uid, |m| {
            m.superseded(previous_rv, new_rv);
            m.settle(new_rv)
        })
    }

    /// A write of this operator's to the object is about to be sent. Until its answer is
    /// recorded (`wrote_status`, `wrote_object`) or it fails (`write_failed`), watch events of
    /// the object that are not known to be ours are held instead of triggering a pass: the watch
    /// may show the write before its answer arrives. Those calls say whether anything held
    /// needs a pass after all (someone else's change), which the caller then triggers.
    pub fn writing(&self, uid: &str) {
        self.with_memory(uid, |m| m.in_flight = true);
    }

    /// The write announced by `writing` failed or was abandoned: whether anything held needs a
    /// pass (its answer never came, so nothing held can be told to be ours).
    pub fn write_failed(&self, uid: &str) -> bool {
        self.peek_memory_mut(uid, |m| m.settle(None))
            .unwrap_or(false)
    }

    /// Whether an event of the object's own watch shows only what this operator's passes
    /// already saw or wrote: a version one of its writes superseded, or the version its last
    /// write produced. Such an event needs no pass (the pass that wrote it decided on it), so it
    /// is not a trigger; the store still takes it. Seeing the last write also means the cache
    /// has caught up: what was kept for a lagging cache is dropped. While a write is in flight,
    /// an event not known to be ours is held, not a trigger, until the write's answer says whose
    /// it is (see `writing`).
    pub fn is_own_write(&self, uid: Option<&str>, resource_version: Option<&str>) -> bool {
        let (Some(uid), Some(rv)) = (uid, resource_version) else {
            return false;
        };
        self.peek_memory_mut(uid, |m| {
            if m.own_write(rv) {
                return true;
            }
            // Perhaps the event of the write in flight: held, and judged by its answer.
            let hold = m.in_flight && m.held.len() < HELD_KEPT;
            if hold {
                m.held.push(rv.to_string());
            }
            hold
        })
        .unwrap_or(false)
    }

    /// Whether `resource_version` is one this operator's writes superseded.
    pub fn is_stale(&self, uid: &str, resource_version: Option<&str>) -> bool {
        resource_version.is_some_and(|rv| {
            self.peek_memory(uid, |m| m.stale.iter().any(|s| s == rv))
                .unwrap_or(false)
        })
    }

    // ----- the endpoint as last seen, for the resync -----

    pub fn set_watch(&self, uid: &str, watch: Option<LastSeen>) {
        self.with_memory(uid, |m| m.watch = watch);
    }

    pub fn watch_of(&self, uid: &str) -> Option<LastSeen> {
        self.peek_memory(uid, |m| m.watch.clone()).flatten()
    }

    /// Every object's watch on `cluster`.
    pub fn watches_on(&self, cluster: &str) -> Vec<LastSeen> {
        self.objects
            .lock()
            .expect("memory lock poisoned")
            .values()
            .filter_map(|m| m.watch.clone())
            .filter(|w| w.cluster == cluster)
            .collect()
    }

    // ----- the permanent-failure gate -----

    pub fn gate_closed(&self, uid: &str, attempt: &str) -> bool {
        self.peek_memory(uid, |m| m.gate.as_deref() == Some(attempt))
            .unwrap_or(false)
    }

    pub fn close_gate(&self, uid: &str, attempt: String) {
        self.with_memory(uid, |m| m.gate = Some(attempt));
    }

    pub fn open_gate(&self, uid: &str) {
        self.with_memory(uid, |m| m.gate = None);
    }

    // ----- retries -----

    /// The retry delay after one more transient failure: exponential from `backoff_base`,
    /// capped at `backoff_max`, jittered, and at least `at_least` (a capped `Retry-After`).
    pub fn next_backoff(&self, uid: &str, at_least: Option<Duration>) -> Duration {
        let n = self.with_memory(uid, |m| {
            m.failures = m.failures.saturating_add(1);
            m.failures
        });
        backoff(self.backoff_base, self.backoff_max, n, at_least)
    }

    pub fn reset_backoff(&self, uid: &str) {
        if self.peek_memory(uid, |m| m.failures > 0).unwrap_or(false) {
            self.with_memory(uid, |m| m.failures = 0);
        }
    }

    /// The delay before looking at a starting model deployment again: 5 s doubling to 60 s.
    pub fn next_poll(&self, uid: &str) -> Duration {
        let n = self.with_memory(uid, |m| {
            m.polls = m.polls.saturating_add(1);
            m.polls
        });
        Duration::from_secs(5)
            .saturating_mul(1u32 << (n - 1).min(8))
            .min(Duration::from_secs(60))
    }

    pub fn reset_poll(&self, uid: &str) {
        if self.peek_memory(uid, |m| m.polls > 0).unwrap_or(false) {
            self.with_memory(uid, |m| m.polls = 0);
        }
    }
}

/// `base · 2^(n-1)`, capped, with jitter in [d/2, d], and at least `at_least`.
pub fn backoff(base: Duration, max: Duration, n: u32, at_least: Option<Duration>) -> Duration {
    let exp = base
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(max);
    let jittered = exp.mul_f64(rand::rng().random_range(0.5..=1.0));
    jittered.max(at_least.unwrap_or_default().min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_short_doubles_and_is_capped() {
        let base = Duration::from_millis(500);
        let max = Duration::from_secs(60);
        for n in 1..20 {
            let d = backoff(base, max, n, None);
            let exp = base.saturating_mul(1 << (n - 1).min(16)).min(max);
            assert!(
                d >= exp / 2 && d <= exp,
                "n={n}: {d:?} not in [{:?}, {exp:?}]",
                exp / 2
            );
        }
        // Five failures in a row wait at most 0.5+1+2+4+8 s together.
        let total: Duration = (1..=5).map(|n| backoff(base, max, n, None)).sum();
        assert!(total <= Duration::from_millis(15_500), "{total:?}");
        // Retry-After is honoured, but never beyond the cap.
        assert_eq!(backoff(base, max, 1, Some(Duration::from_secs(3600))), max);
        assert!(backoff(base, max, 1, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
    }

    #[test]
    fn own_writes_are_not_triggers_and_everyone_elses_are() {
        let mut m = ObjectMemory::default();
        // Nothing written yet: every version is someone else's.
        assert!(!m.own_write("1"));
        // A pass on version 1 adds the finalizer (2); a user edits the spec (3) before the
        // pass marks (4, on top of the edit) and writes its status (5).
        m.superseded(Some("1"), Some("2"));
        m.superseded(Some("2"), Some("4"));
        m.written = Some(Arc::default());
        m.superseded(Some("4"), Some("5"));
        // The user's edit between two of the pass's writes is a trigger, and so is a later one...
        assert!(!m.own_write("3"));
        assert!(!m.own_write("6"));
        // ...what the pass read and wrote is not.
        for rv in ["1", "2", "4"] {
            assert!(m.own_write(rv), "{rv}");
        }
        assert!(
            m.written.is_some(),
            "kept until the cache has the last write"
        );
        assert!(m.own_write("5"));
        assert!(
            m.written.is_none() && m.stale.is_empty(),
            "the cache caught up"
        );
    }

    #[test]
    fn a_last_write_not_yet_seen_is_superseded_by_the_next_one() {
        let mut m = ObjectMemory::default();
        m.superseded(Some("1"), Some("4"));
        // A pass started from a cache still at 3 (with the status kept for it) writes again:
        // version 4, when it arrives, is a state that pass already had.
        m.superseded(Some("3"), Some("6"));
        assert!(m.own_write("4"));
        assert!(m.own_write("3"));
        assert!(!m.own_write("5"));
        // An apply that changed nothing on the server supersedes nothing.
        let mut same = ObjectMemory::default();
        same.superseded(Some("7"), Some("7"));
        assert!(same.stale.is_empty());
        assert!(same.own_write("7"));
    }

    fn memory() -> Memory {
        Memory::new(Duration::from_millis(500), Duration::from_secs(60))
    }

    fn status(reason: &str) -> InferenceEndpointStatus {
        InferenceEndpointStatus {
            inference_id: Some(reason.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_lagging_cache_gets_the_status_this_operator_wrote() {
        let m = memory();
        let carried = status("carried");
        // Nothing written: the object's own status.
        assert_eq!(m.effective_status("u", Some("1"), Some(&carried)), carried);
        m.wrote_status("u", Some("1"), Some("2"), status("written"));
        // A cache still at 1 (superseded by the write) gets what was written...
        assert_eq!(
            m.effective_status("u", Some("1"), Some(&carried))
                .inference_id
                .as_deref(),
            Some("written")
        );
        assert!(m.is_stale("u", Some("1")));
        // ...a cache at 2 or later has caught up: its status wins, and what was kept goes.
        assert_eq!(m.effective_status("u", Some("2"), Some(&carried)), carried);
        assert!(
            !m.is_stale("u", Some("1")),
            "dropped once the cache caught up"
        );
        assert_eq!(m.effective_status("u", Some("1"), Some(&carried)), carried);
    }

    #[test]
    fn the_gate_closes_for_one_attempt_until_opened() {
        let m = memory();
        assert!(!m.gate_closed("u", "create/h/s/-"));
        m.close_gate("u", "create/h/s/-".into());
        assert!(m.gate_closed("u", "create/h/s/-"));
        assert!(
            !m.gate_closed("u", "create/h2/s/-"),
            "other inputs are another attempt"
        );
        assert!(!m.gate_closed("v", "create/h/s/-"), "per object");
        m.open_gate("u");
        assert!(!m.gate_closed("u", "create/h/s/-"));
    }

    #[test]
    fn retries_and_polls_grow_per_object_and_reset() {
        let m = memory();
        let first = m.next_backoff("u", None);
        let _ = m.next_backoff("u", None);
        let third = m.next_backoff("u", None);
        assert!(first <= Duration::from_millis(500) && third >= Duration::from_secs(1));
        assert!(
            m.next_backoff("v", None) <= Duration::from_millis(500),
            "per object"
        );
        m.reset_backoff("u");
        assert!(m.next_backoff("u", None) <= Duration::from_millis(500));
        let polls: Vec<u64> = (0..6).map(|_| m.next_poll("u").as_secs()).collect();
        assert_eq!(polls, [5, 10, 20, 40, 60, 60]);
        m.reset_poll("u");
        assert_eq!(m.next_poll("u"), Duration::from_secs(5));
    }

    #[test]
    fn released_objects_are_remembered_boundedly_and_forgotten_otherwise() {
        let m = memory();
        m.set_values_mac("u", Some([1; 16]));
        assert_eq!(m.values_mac_of("u"), Some([1; 16]));
        m.set_values_mac("u", None);
        assert_eq!(
            m.values_mac_of("u"),
            Some([1; 16]),
            "None never erases a MAC"
        );
        m.released("u");
        assert!(m.is_released("u"));
        assert_eq!(m.remembered(), 0, "its memory is gone");
        for i in 0..RELEASED_KEPT {
            m.released(&format!("x{i}"));
        }
        assert!(!m.is_released("u"), "the oldest goes first");
        assert!(m.is_released("x0"));
    }

    #[test]
    fn retain_forgets_what_no_cache_knows_and_watches_are_per_cluster() {
        let m = memory();
        let watch = |cluster: &str| LastSeen {
            object: kube::runtime::reflector::ObjectRef::new("a").within("ns"),
            cluster: cluster.into(),
            inference_id: "a".into(),
            endpoint: None,
            version: None,
            in_sync: true,
        };
        m.set_watch("u", Some(watch("c1")));
        m.set_watch("v", Some(watch("c2")));
        assert_eq!(m.watches_on("c1").len(), 1);
        assert_eq!(m.watch_of("v").map(|w| w.cluster), Some("c2".into()));
        let known: HashSet<String> = ["u".to_string()].into();
        assert_eq!(m.retain(&known), 1);
        assert_eq!(m.remembered(), 1);
        assert!(m.watches_on("c2").is_empty());
    }

    #[test]
    fn an_own_write_the_watch_shows_before_its_answer_is_not_a_trigger() {
        let m = memory();
        // The finalizer write (1 → 2) is in flight when the watch shows 2.
        m.writing("u");
        assert!(m.is_own_write(Some("u"), Some("2")), "held, not a trigger");
        assert!(
            !m.wrote_object("u", Some("1"), Some("2")),
            "the answer says 2 was ours: no pass"
        );
        // Nothing in flight: someone else's version is a trigger at once again.
        assert!(!m.is_own_write(Some("u"), Some("3")));
        // The same for a status write, which also tells that the cache caught up.
        m.writing("u");
        assert!(m.is_own_write(Some("u"), Some("5")));
        assert!(!m.wrote_status("u", Some("3"), Some("5"), status("written")));
        assert_eq!(
            m.effective_status("u", Some("3"), None).inference_id,
            None,
            "the held event of the last write was the cache catching up: nothing kept for it"
        );
    }

    #[test]
    fn someone_elses_change_the_watch_shows_during_a_write_asks_for_a_pass() {
        let m = memory();
        m.writing("u");
        // A user edits the spec (3) while the status write (2 → 4) is on its way.
        assert!(
            m.is_own_write(Some("u"), Some("3")),
            "held until the answer"
        );
        assert!(
            m.is_own_write(Some("u"), Some("4")),
            "held until the answer"
        );
        assert!(
            m.wrote_status(
                "u",
                Some("2"),
                Some("4"),
                InferenceEndpointStatus::default()
            ),
            "3 was nobody's write of ours: the object needs a pass"
        );
    }

    #[test]
    fn a_write_that_fails_or_is_abandoned_lets_go_of_what_it_held() {
        let m = memory();
        m.writing("u");
        assert!(!m.write_failed("u"), "nothing held, nothing to do");
        m.writing("u");
        assert!(m.is_own_write(Some("u"), Some("3")));
        assert!(
            m.write_failed("u"),
            "without an answer, what was held may be anyone's"
        );
        // Never stuck in flight: later events are triggers again.
        assert!(!m.is_own_write(Some("u"), Some("4")));
        assert!(!m.write_failed("u"));
    }

    #[test]
    fn a_write_in_flight_holds_a_bounded_number_of_events() {
        let m = memory();
        m.writing("u");
        for rv in 0..HELD_KEPT {
            assert!(m.is_own_write(Some("u"), Some(&format!("h{rv}"))));
        }
        assert!(
            !m.is_own_write(Some("u"), Some("more")),
            "beyond the bound, an event is a trigger at once"
        );
        assert!(m.wrote_object("u", Some("1"), Some("2")));
        // An object never written holds nothing.
        assert!(!m.is_own_write(Some("other"), Some("1")));
    }
}
