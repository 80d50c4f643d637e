//! Reading the endpoint as cheaply as the situation allows: the rule (`how`, pure) and the read
//! (`read_endpoint`), which returns an `Observation` or says the resource is in sync.

use tracing::debug;

use super::pass::{Endpoints, Observation, Pass, StepInputs};
use crate::{
    cluster::Cluster,
    conditions::{READY, reason},
    crd::Ownership,
    error::Result,
    memory::LastSeen,
    plan::Record,
};

/// How a pass reads the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum How {
    /// In sync, and the shared snapshot shows the endpoint as last seen: nothing to read.
    InSync,
    /// The shared snapshot's view is good enough for the core.
    Snapshot,
    /// Read the endpoint itself.
    Get,
}

/// What the rule looks at.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Situation {
    /// A new reconcile request: the shared snapshot is never trusted.
    pub forced: bool,
    /// In sync as of the last pass, and no input changed since.
    pub quiet: bool,
    /// The snapshot lists the endpoint exactly as the last pass saw it.
    pub unchanged: bool,
    /// The last pass ended in sync.
    pub was_in_sync: bool,
    /// The snapshot lists the endpoint at all.
    pub listed: bool,
    /// No create was ever sent, and the spec does not mean to adopt: an absence in the
    /// snapshot can be trusted (a create on an id that exists after all is refused by
    /// Elasticsearch, it never overwrites).
    pub trust_absence: bool,
}

/// - A resource in sync whose inputs did not change reads the shared list snapshot (one list
///   per cluster per resync interval); if the endpoint there is exactly what it was when the
///   resource was last in sync, there is nothing to do.
/// - A resource that never sent a create looks its id up in the snapshot; one that may have
///   sent one, or that means to adopt, reads the endpoint instead.
/// - Anything else uses the snapshot's view when it is the one last seen, and otherwise reads
///   the endpoint; steps that change ownership or destroy always read it first (the driver).
pub(super) fn how(s: Situation) -> How {
    if s.forced {
        How::Get
    } else if s.quiet && s.unchanged && s.was_in_sync {
        How::InSync
    } else if s.listed && (s.unchanged || s.quiet) || !s.listed && s.trust_absence {
        How::Snapshot
    } else {
        How::Get
    }
}

/// What reading the endpoint gave.
pub(super) enum Read {
    /// In sync; what the resync keeps comparing.
    InSync(LastSeen),
    Observed(Observation),
}

/// Read the endpoint afresh.
pub(super) async fn fetch(es: &impl Endpoints, id: &str) -> Result<Observation> {
    Ok(Observation::Fresh(es.get(id).await?))
}

/// Read the endpoint for this pass (see `how`).
pub(super) async fn read_endpoint(
    pass: &Pass<'_>,
    record: &Record,
    cluster: &Cluster,
    inputs: &StepInputs<'_>,
) -> Result<Read> {
    if pass.forced {
        return Ok(Read::Observed(fetch(cluster, &pass.id).await?));
    }
    let ownership = record.ownership_of(&pass.id, &inputs.info.uuid);
    let snapshot = cluster.snapshot(pass.ctx.settings.resync).await?;
    let listed = snapshot.hash(&pass.id);
    let watch = pass
        .ctx
        .memory
        .watch_of(&pass.uid)
        .filter(|w| w.cluster == cluster.key() && w.inference_id == pass.id);
    let stored = &pass.stored;
    let situation = Situation {
        forced: false,
        quiet: stored.condition(READY).map(|c| c.reason.as_str()) == Some(reason::IN_SYNC)
            && stored.observed_generation == pass.ie.metadata.generation
            && record.secrets_applied.as_deref() == inputs.secrets.as_deref()
            && record.applied_config_hash.as_deref() == Some(inputs.desired_hash.as_str())
            && matches!(ownership, Some(Ownership::Created | Ownership::Adopted)),
        unchanged: watch
            .as_ref()
            .is_some_and(|w| w.endpoint == listed && listed.is_some()),
        was_in_sync: watch.as_ref().is_some_and(|w| w.in_sync),
        listed: listed.is_some(),
        trust_absence: ownership.is_none() && !pass.ie.spec.adopt,
    };
    Ok(match (how(situation), watch) {
        (How::InSync, Some(w)) => {
            debug!("in sync (the shared snapshot shows the endpoint as last seen)");
            // Decided on this version now: an upgrade triggers one pass, not one per resync.
            Read::InSync(LastSeen {
                version: Some(inputs.info.version),
                ..w
            })
        }
        (How::Snapshot, _) => Read::Observed(Observation::Listed(snapshot.get(&pass.id)?)),
        _ => Read::Observed(fetch(cluster, &pass.id).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_resync_on_an_unchanged_snapshot_reads_nothing() {
        let s = Situation {
            quiet: true,
            unchanged: true,
            was_in_sync: true,
            listed: true,
            ..Situation::default()
        };
        assert_eq!(how(s), How::InSync);
        // The last pass did not end in sync: the core looks at the snapshot's view.
        assert_eq!(
            how(Situation {
                was_in_sync: false,
                ..s
            }),
            How::Snapshot
        );
        // A reconcile request reads afresh whatever the snapshot says.
        assert_eq!(how(Situation { forced: true, ..s }), How::Get);
    }

    #[test]
    fn an_endpoint_that_changed_since_last_seen_is_read_unless_the_inputs_are_quiet() {
        let changed = Situation {
            listed: true,
            ..Situation::default()
        };
        assert_eq!(how(changed), How::Get);
        assert_eq!(
            how(Situation {
                quiet: true,
                ..changed
            }),
            How::Snapshot
        );
    }

    #[test]
    fn an_absence_is_trusted_only_when_no_create_was_sent_and_nothing_is_adopted() {
        let absent = Situation::default();
        assert_eq!(how(absent), How::Get);
        assert_eq!(
            how(Situation {
                trust_absence: true,
                ..absent
            }),
            How::Snapshot
        );
        // Quiet but gone from the snapshot: read it (it may have been deleted out of band, or
        // the snapshot may be older than the create).
        assert_eq!(
            how(Situation {
                quiet: true,
                unchanged: false,
                ..absent
            }),
            How::Get
        );
    }
}
