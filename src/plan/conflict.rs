//! PURE: which of several resources naming one inference id on one cluster owns it.

use crate::crd::{EndpointWithStatus, InferenceEndpoint};

/// The conflict rule: InferenceEndpoints that map to the same inference id on the same cluster
/// never fight. One that holds the endpoint (its own ownership record for this id on this
/// cluster) owns the id; among the rest, and between two holders, the oldest (by creation time,
/// then UID) does. For any other, this returns the owner's `namespace/name`. Holding comes first
/// so that a newcomer created in the same second as the holder (creation times have a
/// resolution of one second) can never win the tie on its UID and leave the endpoint's manager
/// reporting `Conflict` while the newcomer is refused by Elasticsearch. Peers are on the same
/// cluster when they reference it the same way (`target_key`) or their status records the same
/// `cluster_uuid`.
pub fn conflict_owner<'a, P: EndpointWithStatus + 'a>(
    me: &InferenceEndpoint,
    my_target: &str,
    my_cluster_uuid: &str,
    peers: impl IntoIterator<Item = &'a P>,
) -> Option<String> {
    let id = me.inference_id();
    // Creation times have a resolution of one second: the UID breaks ties, the same way in
    // every replica and across restarts.
    fn holds(ie: &impl EndpointWithStatus, id: &str, uuid: &str) -> bool {
        ie.status().is_some_and(|s| {
            s.ownership.is_some()
                && s.owner_uid.is_some()
                && s.owner_uid == ie.metadata().uid
                && s.inference_id.as_deref() == Some(id)
                && s.cluster_uuid.as_deref() == Some(uuid)
        })
    }
    type Order = (bool, Option<k8s_openapi::jiff::Timestamp>, String);
    fn order(ie: &impl EndpointWithStatus, id: &str, uuid: &str) -> Order {
        (
            !holds(ie, id, uuid),
            ie.metadata().creation_timestamp.as_ref().map(|t| t.0),
            ie.metadata().uid.clone().unwrap_or_default(),
        )
    }
    let name = |ie: &P| {
        format!(
            "{}/{}",
            ie.metadata().namespace.as_deref().unwrap_or_default(),
            ie.metadata().name.as_deref().unwrap_or_default()
        )
    };
    let mine = order(me, &id, my_cluster_uuid);
    peers
        .into_iter()
        .filter(|p| match (&p.metadata().uid, &me.metadata.uid) {
            (Some(a), Some(b)) => a != b,
            _ => order(*p, &id, my_cluster_uuid) != mine,
        })
        .filter(|p| p.inference_id_str() == id)
        .filter(|p| {
            crate::connection::target_key(*p) == my_target
                || p.status().and_then(|s| s.cluster_uuid.as_deref()) == Some(my_cluster_uuid)
        })
        .filter(|p| order(*p, &id, my_cluster_uuid) < mine)
        .min_by_key(|p| order(*p, &id, my_cluster_uuid))
        .map(name)
}
