//! PURE: which of several resources naming one inference id on one cluster owns it.

use crate::crd::InferenceEndpoint;

/// The conflict rule: InferenceEndpoints that map to the same inference id on the same cluster
/// never fight. One that holds the endpoint (its own ownership record for this id on this
/// cluster) owns the id; among the rest, and between two holders, the oldest (by creation time,
/// then UID) does. For any other, this returns the owner's `namespace/name`. Holding comes first
/// so that a newcomer created in the same second as the holder (creation times have a
/// resolution of one second) can never win the tie on its UID and leave the endpoint's manager
/// reporting `Conflict` while the newcomer is refused by Elasticsearch. Peers are on the same
/// cluster when they reference it the same way (`target_key`) or their status records the same
/// `cluster_uuid`.
pub fn conflict_owner<'a>(
    me: &InferenceEndpoint,
    my_target: &str,
    my_cluster_uuid: &str,
    peers: impl IntoIterator<Item = &'a InferenceEndpoint>,
) -> Option<String> {
    let id = me.inference_id();
    // Creation times have a resolution of one second: the UID breaks ties, the same way in
    // every replica and across restarts.
    let holds = |ie: &InferenceEndpoint| {
        ie.status.as_ref().is_some_and(|s| {
            s.ownership.is_some()
                && s.owner_uid.is_some()
                && s.owner_uid == ie.metadata.uid
                && s.inference_id.as_deref() == Some(id.as_str())
                && s.cluster_uuid.as_deref() == Some(my_cluster_uuid)
        })
    };
    let order = |ie: &InferenceEndpoint| {
        (
            !holds(ie),
            ie.metadata.creation_timestamp.as_ref().map(|t| t.0),
            ie.metadata.uid.clone().unwrap_or_default(),
        )
    };
    let name = |ie: &InferenceEndpoint| {
        format!(
            "{}/{}",
            ie.metadata.namespace.as_deref().unwrap_or_default(),
            ie.metadata.name.as_deref().unwrap_or_default()
        )
    };
    let mine = order(me);
    peers
        .into_iter()
        .filter(|p| match (&p.metadata.uid, &me.metadata.uid) {
            (Some(a), Some(b)) => a != b,
            _ => order(p) != mine,
        })
        .filter(|p| p.inference_id_str() == id)
        .filter(|p| {
            crate::connection::target_key(p) == my_target
                || p.status.as_ref().and_then(|s| s.cluster_uuid.as_deref())
                    == Some(my_cluster_uuid)
        })
        .filter(|p| order(p) < mine)
        .min_by_key(|p| order(p))
        .map(name)
}
