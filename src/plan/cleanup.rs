//! PURE: what deleting a resource does to its endpoint.

use super::record::Record;
use crate::crd::{DeletionPolicy, Ownership};

/// What to do when the resource is being deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// Remove the finalizer without calling Elasticsearch; the string says why (for the event).
    Release(String),
    /// `DELETE` the endpoint. `verify_first`: only a create was in flight, so delete only if what
    /// exists is what this resource would have created.
    Delete { force: bool, verify_first: bool },
}

/// Pure cleanup decision. It needs neither Secrets nor a valid spec beyond the policies, so a
/// missing Secret or a broken spec never blocks deletion. `policy` is the deletion policy in
/// effect; `force` whether a forced delete is asked for and allowed.
pub fn decide_cleanup(
    policy: DeletionPolicy,
    force: bool,
    record: &Record,
    inference_id: &str,
    cluster_uuid: &str,
) -> Cleanup {
    if policy == DeletionPolicy::Retain {
        return Cleanup::Release(format!(
            "deletionPolicy is Retain: inference endpoint {inference_id:?} was left in Elasticsearch"
        ));
    }
    match record.ownership_of(inference_id, cluster_uuid) {
        Some(Ownership::Created | Ownership::Adopted) => Cleanup::Delete {
            force,
            verify_first: false,
        },
        Some(Ownership::Creating) => Cleanup::Delete {
            force,
            verify_first: true,
        },
        None if record.manages_something()
            && record.inference_id.as_deref() == Some(inference_id) =>
        {
            Cleanup::Release(format!(
                "inference endpoint {inference_id:?} was created on another Elasticsearch cluster ({}); nothing was deleted on this one",
                record.cluster_uuid.as_deref().unwrap_or("unknown")
            ))
        }
        None => Cleanup::Release(format!(
            "this resource never created or adopted inference endpoint {inference_id:?}; nothing was deleted"
        )),
    }
}
