//! `managementPolicy: Observe`: report whether the endpoint exists and matches the spec; never
//! write to Elasticsearch, never delete, read no Secret.

use super::apply::Pass;
use crate::{
    conditions::{Outcome, reason},
    desired::{diff, validate},
    error::Result,
};

impl Pass<'_> {
    pub(super) async fn observe_only(&mut self) -> Result<Outcome> {
        let spec = &self.ie.spec;
        if let Err(problem) = validate(spec) {
            return Ok(Outcome::stalled(reason::INVALID_SPEC, problem.to_string()));
        }
        let (_, cluster, info) = match self.reach("").await? {
            Ok(reached) => reached,
            Err(outcome) => return Ok(outcome),
        };
        if self.forced {
            self.refresh(&cluster).await?;
        } else {
            let snapshot = cluster.snapshot(self.ctx.settings.resync).await?;
            self.observed = snapshot.get(&self.id)?;
            self.observed_known = true;
        }
        let id = &self.id;
        let Some(ep) = self.observed.as_ref() else {
            return Ok(Outcome::stalled(
                reason::NOT_FOUND,
                format!(
                    "Elasticsearch has no inference endpoint {id:?} (managementPolicy: Observe: it is only watched, never created)"
                ),
            ));
        };
        let mut differs: Vec<String> = Vec::new();
        if ep.service != spec.service {
            differs.push("service".into());
        }
        if ep.task_type != spec.task_type.as_str() {
            differs.push("task_type".into());
        }
        differs.extend(diff(spec, ep, info.version).into_iter().map(|d| d.field));
        differs.dedup();
        if differs.is_empty() {
            Ok(Outcome::ready(format!(
                "inference endpoint {id:?} exists and matches the spec (observed, not managed)"
            ))
            .with_reason(Some(reason::OBSERVED.into())))
        } else {
            Ok(Outcome::stalled(
                reason::DRIFT_DETECTED,
                format!(
                    "inference endpoint {id:?} differs from the spec in {} (observed, not managed: nothing is changed)",
                    differs.join(", ")
                ),
            ))
        }
    }
}
