//! Leader election on a `coordination.k8s.io` Lease, with a local fence.
//!
//! The algorithm is client-go's: the leader renews every `retry_period`; a standby takes over
//! only when it has seen no change of the Lease for `lease_duration` on its own clock (never by
//! comparing its clock with the renew time the leader wrote). On top of that, the leader keeps a
//! local deadline: `renew_deadline` after the moment it *sent* its last successful renewal. The
//! fence (`Fence::check`) closes at that deadline, whether or not the API server can be reached,
//! and every write to Elasticsearch or Kubernetes checks it just before it is sent. Because
//! `renew_deadline < lease_duration`, a deposed leader has stopped writing before any standby
//! can take over.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::coordination::v1::Lease, apimachinery::pkg::apis::meta::v1::MicroTime, jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::error::{Error, Result};

/// Whether this replica may write now.
#[derive(Clone, Default)]
pub struct Fence(Option<Arc<Mutex<Option<Instant>>>>);

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Fence(open)"),
            Some(_) => write!(f, "Fence(lease, open: {})", self.is_open()),
        }
    }
}

impl Fence {
    /// Always open: leader election is off.
    pub fn open() -> Self {
        Self(None)
    }

    /// Closed until `extend` opens it.
    pub fn closed() -> Self {
        Self(Some(Arc::new(Mutex::new(None))))
    }

    pub fn is_open(&self) -> bool {
        match &self.0 {
            None => true,
            Some(until) => until
                .lock()
                .expect("fence lock poisoned")
                .is_some_and(|t| Instant::now() < t),
        }
    }

    /// `Err(NotLeader)` unless this replica may write now.
    pub fn check(&self) -> Result<()> {
        if self.is_open() {
            Ok(())
        } else {
            Err(Error::NotLeader)
        }
    }

    /// Open (or keep open) until `until`.
    pub fn extend(&self, until: Instant) {
        if let Some(u) = &self.0 {
            let mut u = u.lock().expect("fence lock poisoned");
            if u.is_none_or(|old| old < until) {
                *u = Some(until);
            }
        }
    }

    /// Close now.
    pub fn close(&self) {
        if let Some(u) = &self.0 {
            *u.lock().expect("fence lock poisoned") = None;
        }
    }
}

/// Timing and identity of the election.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a standby waits, after it last saw the Lease change, before taking over.
    pub lease_duration: Duration,
    /// How long the leader may write after it sent its last successful renewal.
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby looks.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's proportions for a given lease duration: renew deadline 2/3, retry 2/15.
    pub fn for_duration(
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
    ) -> Self {
        // The Lease stores whole seconds.
        let lease_duration = lease_duration.max(Duration::from_secs(1));
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration,
            renew_deadline: lease_duration.mul_f64(2.0 / 3.0),
            retry_period: lease_duration.mul_f64(2.0 / 15.0),
        }
    }
}

/// Runs the election until stopped.
pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    fence: Fence,
    leading: watch::Sender<bool>,
}

impl Elector {
    /// The elector, the fence it keeps, and a channel that says whether this replica leads.
    pub fn new(client: Client, cfg: LeaseConfig) -> (Self, Fence, watch::Receiver<bool>) {
        let fence = Fence::closed();
        let (tx, rx) = watch::channel(false);
        let api = Api::namespaced(client, &cfg.namespace);
        (
            Self {
                api,
                cfg,
                fence: fence.clone(),
                leading: tx,
            },
            fence,
            rx,
        )
    }

    /// Take part in the election until `stop` turns true; then, if leading, close the fence
    /// and release the Lease so that a standby takes over at once.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut observed: Option<(String, Instant)> = None;
        let mut first = true;
        loop {
            if !first {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = tokio::time::sleep(self.cfg.retry_period) => {}
                }
            }
            first = false;
            if *stop.borrow() {
                break;
            }
            if *self.leading.borrow() {
                self.renew().await;
            } else {
                self.try_acquire(&mut observed).await;
            }
        }
        if *self.leading.borrow() {
            self.release().await;
        }
    }

    fn now() -> serde_json::Value {
        serde_json::to_value(MicroTime(Timestamp::now())).unwrap_or_default()
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.cfg.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    fn became_leader(&self, sent: Instant) {
        self.fence.extend(sent + self.cfg.renew_deadline);
        info!(identity = %self.cfg.identity, lease = %self.cfg.name, "became the leader");
        let _ = self.leading.send(true);
    }

    fn lost(&self, why: &str) {
        self.fence.close();
        error!(identity = %self.cfg.identity, "lost the leader Lease: {why}");
        let _ = self.leading.send(false);
    }

    async fn renew(&self) {
        let sent = Instant::now();
        // Guarded by the holder: if another replica took the Lease, the test fails.
        let patch = json!([
            {"op": "test", "path": "/spec/holderIdentity", "value": self.cfg.identity},
            {"op": "replace", "path": "/spec/renewTime", "value": Self::now()},
        ]);
        let patch: json_patch::Patch = match serde_json::from_value(patch) {
            Ok(p) => p,
            Err(_) => return,
        };
        match self
            .api
            .patch(
                &self.cfg.name,
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await
        {
            Ok(_) => self.fence.extend(sent + self.cfg.renew_deadline),
            Err(kube::Error::Api(s)) if s.code == 422 || s.code == 404 || s.code == 409 => {
                self.lost("another replica holds it now");
                return;
            }
            Err(e) => warn!(error = %e, "could not renew the leader Lease"),
        }
        if !self.fence.is_open() {
            self.lost("not renewed within the renew deadline");
        }
    }

    async fn try_acquire(&self, observed: &mut Option<(String, Instant)>) {
        let sent = Instant::now();
        let lease = match self.api.get_opt(&self.cfg.name).await {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "could not read the leader Lease");
                return;
            }
        };
        let Some(lease) = lease else {
            if self.create().await {
                self.became_leader(sent);
            }
            return;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        let free = holder.is_empty() || holder == self.cfg.identity;
        if !free {
            // Expiry is judged on this replica's clock: how long since the Lease last changed.
            let their_duration = spec
                .lease_duration_seconds
                .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
                .unwrap_or(self.cfg.lease_duration);
            match observed {
                Some((seen, at)) if *seen == rv => {
                    if at.elapsed() < their_duration.max(self.cfg.lease_duration) {
                        return;
                    }
                }
                _ => {
                    *observed = Some((rv, Instant::now()));
                    return;
                }
            }
        }
        let transitions =
            spec.lease_transitions.unwrap_or(0) + i32::from(holder != self.cfg.identity);
        let patch = json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "replace", "path": "/spec", "value": {
                "holderIdentity": self.cfg.identity,
                "leaseDurationSeconds": self.lease_seconds(),
                "acquireTime": Self::now(), "renewTime": Self::now(),
                "leaseTransitions": transitions,
            }},
        ]);
        let Ok(patch) = serde_json::from_value::<json_patch::Patch>(patch) else {
            return;
        };
        if self
            .api
            .patch(
                &self.cfg.name,
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await
            .is_ok()
        {
            *observed = None;
            self.became_leader(sent);
        }
    }

    /// Create the Lease with this replica as holder; false when another replica was faster.
    async fn create(&self) -> bool {
        let new = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.cfg.name, "namespace": self.cfg.namespace},
            "spec": {
                "holderIdentity": self.cfg.identity,
                "leaseDurationSeconds": self.lease_seconds(),
                "acquireTime": Self::now(), "renewTime": Self::now(),
                "leaseTransitions": 0,
            },
        });
        match serde_json::from_value::<Lease>(new) {
            Ok(lease) => self
                .api
                .create(&PostParams::default(), &lease)
                .await
                .is_ok(),
            Err(_) => false,
        }
    }

    async fn release(&self) {
        self.fence.close();
        let _ = self.leading.send(false);
        let patch = json!([
            {"op": "test", "path": "/spec/holderIdentity", "value": self.cfg.identity},
            {"op": "replace", "path": "/spec/holderIdentity", "value": ""},
            {"op": "replace", "path": "/spec/leaseDurationSeconds", "value": 1},
        ]);
        let Ok(patch) = serde_json::from_value::<json_patch::Patch>(patch) else {
            return;
        };
        match self
            .api
            .patch(
                &self.cfg.name,
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await
        {
            Ok(_) => info!("released the leader Lease"),
            Err(e) => {
                warn!(error = %e, "could not release the leader Lease; a standby takes over when it expires")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_opens_until_a_deadline_and_closes() {
        assert!(Fence::open().is_open());
        let f = Fence::closed();
        assert!(f.check().is_err());
        f.extend(Instant::now() + Duration::from_secs(60));
        assert!(f.check().is_ok());
        // An older deadline does not shorten a newer one.
        f.extend(Instant::now());
        assert!(f.is_open());
        f.close();
        assert!(matches!(f.check(), Err(Error::NotLeader)));
        f.extend(Instant::now() - Duration::from_millis(1));
        assert!(!f.is_open(), "a deadline in the past is closed");
    }

    #[test]
    fn renew_deadline_is_inside_the_lease() {
        let c = LeaseConfig::for_duration("ns", "l", "me", Duration::from_secs(15));
        assert_eq!(c.renew_deadline, Duration::from_secs(10));
        assert_eq!(c.retry_period, Duration::from_secs(2));
        assert!(c.renew_deadline < c.lease_duration);
    }
}
