//! Leader election against the Kubernetes fake: a standby takes over only after it saw no change
//! for a whole lease on its own clock, and a leader that cannot reach the API server stops
//! writing (its fence closes) before any standby can take over.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use es_inference_operator::lease::{Elector, Fence, LeaseConfig};
use serde_json::json;
use support::{
    fake_kube::{FakeKube, ResourceDef},
    harness::wait_for,
};
use tokio::sync::watch;

const NS: &str = "operator";
const LEASE: Duration = Duration::from_secs(1);

fn fake() -> FakeKube {
    let kube = FakeKube::new();
    kube.register(ResourceDef::builtin(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
    ));
    kube
}

struct Replica {
    fence: Fence,
    leading: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start(client: kube::Client, identity: &str) -> Replica {
    let cfg = LeaseConfig::for_duration(NS, "op", identity, LEASE);
    let (elector, fence, leading) = Elector::new(client, cfg);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(elector.run(stop_rx));
    Replica {
        fence,
        leading,
        stop,
        task,
    }
}

fn holder(kube: &FakeKube) -> Option<String> {
    kube.get("coordination.k8s.io/v1", "Lease", NS, "op")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

#[tokio::test]
async fn one_leader_and_a_standby_that_takes_over_only_after_a_whole_lease() {
    let kube = fake();
    let a = start(kube.client(), "a");
    wait_for("a to lead", Duration::from_secs(5), || *a.leading.borrow()).await;
    assert!(a.fence.is_open());
    let b = start(kube.client(), "b");
    // While a renews, b never leads (several leases long).
    let until = Instant::now() + LEASE * 3;
    while Instant::now() < until {
        assert!(!*b.leading.borrow(), "two leaders");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(holder(&kube).as_deref(), Some("a"));
    // a stops without releasing (killed): b takes over after a lease of silence, counted
    // from the last renewal it saw (which may precede the kill by up to one retry period).
    let last_renew = Instant::now();
    a.task.abort();
    let retry = LeaseConfig::for_duration(NS, "op", "b", LEASE).retry_period;
    let mut fence_open_while_b_led = false;
    wait_for("b to lead", Duration::from_secs(10), || {
        let leads = *b.leading.borrow();
        fence_open_while_b_led |= leads && a.fence.is_open();
        leads
    })
    .await;
    assert!(
        last_renew.elapsed() + retry >= LEASE,
        "took over {:?} after the kill",
        last_renew.elapsed()
    );
    assert!(
        !fence_open_while_b_led && !a.fence.is_open(),
        "the old leader's fence closed at its renew deadline, before b led"
    );
    assert_eq!(holder(&kube).as_deref(), Some("b"));
    let _ = b.stop.send(true);
    let _ = b.task.await;
    assert_eq!(holder(&kube).as_deref(), Some(""), "released on stop");
}

#[tokio::test]
async fn expiry_is_judged_on_the_standbys_clock_not_the_leaders() {
    let kube = fake();
    // A holder whose clock is far ahead wrote a renew time in the future, then died.
    kube.insert(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "op", "namespace": NS},
        "spec": {"holderIdentity": "gone", "leaseDurationSeconds": 1,
                 "renewTime": "2100-01-01T00:00:00.000000Z"}
    }));
    let b = start(kube.client(), "b");
    let started = Instant::now();
    wait_for("b to lead", Duration::from_secs(10), || *b.leading.borrow()).await;
    assert!(started.elapsed() >= LEASE);
    assert_eq!(holder(&kube).as_deref(), Some("b"));
    let _ = b.stop.send(true);
    let _ = b.task.await;
}

#[tokio::test]
async fn a_leader_cut_off_from_the_api_server_stops_writing_before_a_standby_leads() {
    let kube = fake();
    let cut = Arc::new(AtomicBool::new(false));
    let a = start(kube.client_with_switch(cut.clone()), "a");
    wait_for("a to lead", Duration::from_secs(5), || *a.leading.borrow()).await;
    let b = start(kube.client(), "b");
    cut.store(true, Ordering::SeqCst);
    let cut_at = Instant::now();
    // No renewal can succeed: the fence closes at the renew deadline by a's own clock.
    wait_for("a's fence to close", Duration::from_secs(5), || {
        !a.fence.is_open()
    })
    .await;
    let fence_closed = Instant::now();
    assert!(
        fence_closed - cut_at <= LEASE,
        "closed {:?} after the cut",
        fence_closed - cut_at
    );
    assert!(
        !*b.leading.borrow(),
        "b waits a whole lease after the last renewal it saw"
    );
    wait_for("b to lead", Duration::from_secs(10), || *b.leading.borrow()).await;
    assert!(
        Instant::now() > fence_closed,
        "the old leader stopped writing before the new one started"
    );
    assert!(!*a.leading.borrow(), "a reports the loss");
    let _ = b.stop.send(true);
    let _ = b.task.await;
    let _ = a.stop.send(true);
    let _ = a.task.await;
}
