//! PURE: the decisions of the ElasticsearchConnection controller. Its shell
//! (`connection_status.rs`) resolves the connection, asks the cluster, reads the Cloud Connect
//! Secret and writes status; what those answers mean is decided here.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::{
    conditions::{Outcome, condition, conditions_for},
    crd::CloudConnectStatus,
};

/// Condition type of the warning while certificate checks are off.
pub const INSECURE: &str = "InsecureSkipVerify";
/// Condition type of the warning while the connection uses `http://`.
pub const PLAINTEXT: &str = "Plaintext";
/// Condition type of Cloud Connect.
pub const CLOUD_CONNECT: &str = "CloudConnect";

/// The conditions of a connection: Ready (and Reconciling or Stalled) for `outcome`, and a
/// warning while certificate checks are off or the URL is plaintext, each keeping its
/// transition time.
pub fn connection_conditions(
    previous: &[Condition],
    outcome: &Outcome,
    generation: Option<i64>,
    insecure: bool,
    plaintext: bool,
    now: &Time,
) -> Vec<Condition> {
    let mut conditions = conditions_for(previous, outcome, generation, now);
    let warnings = [
        (
            insecure,
            INSECURE,
            "TLS certificate verification is off for this connection: anyone on the path can read the credentials and impersonate the cluster. Give tls.ca instead",
        ),
        (
            plaintext,
            PLAINTEXT,
            "this connection uses plaintext HTTP: credentials and secret settings cross the network unencrypted. Use https://",
        ),
    ];
    for (on, type_, message) in warnings {
        if on {
            conditions.push(condition(
                previous,
                type_,
                "True",
                type_,
                message.into(),
                generation,
                now,
            ));
        }
    }
    conditions
}

/// What a check does about Cloud Connect when `spec.cloudConnect` is set, once the key's Secret
/// version is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloudConnectStep {
    /// Refused before with these very inputs: send nothing until the spec or the Secret changes.
    KeepRefusal,
    /// The key Elasticsearch holds is this version's: only look whether it is still enabled
    /// (if not, `Send`).
    CheckEnabled,
    /// Send the key: to enable Cloud Connect, or to rotate the key (`rotation`).
    Send { rotation: bool },
}

/// The Cloud Connect step for the Secret version `version`, given what status remembers (`was`,
/// the previous CloudConnect condition) and whether the spec is the one last checked.
pub fn cloud_connect_step(
    was: &CloudConnectStatus,
    version: &str,
    same_generation: bool,
    previous: Option<&Condition>,
) -> CloudConnectStep {
    let same_key = was.secret_versions.as_deref() == Some(version);
    let refused = previous.is_some_and(|c| {
        c.status == "False" && matches!(c.reason.as_str(), "Forbidden" | "Rejected")
    });
    if same_key && same_generation && refused {
        return CloudConnectStep::KeepRefusal;
    }
    if same_key && was.enabled == Some(true) {
        return CloudConnectStep::CheckEnabled;
    }
    CloudConnectStep::Send {
        rotation: was.enabled == Some(true) && !same_key,
    }
}

/// Whether removing `spec.cloudConnect` disables Cloud Connect: only what this operator enabled.
pub fn cloud_connect_disable(was: &CloudConnectStatus) -> bool {
    was.enabled == Some(true)
}

/// The reason of a refusal of Cloud Connect that only a change can fix (HTTP `status`), if it
/// is one: 403 `Forbidden` (licence, not allowed here), 400 or 401 `Rejected` (the key).
pub fn cloud_connect_refusal(status: Option<u16>) -> Option<&'static str> {
    match status {
        Some(403) => Some("Forbidden"),
        Some(400 | 401) => Some("Rejected"),
        _ => None,
    }
}

/// The CloudConnect condition a check ends with.
#[derive(Clone, Debug, PartialEq)]
pub enum CloudConnectState {
    /// As the spec asks (reason `Enabled`).
    Enabled(String),
    /// Refused in a way only a change can fix (reason `Forbidden`, `Rejected` or
    /// `SecretNotFound`).
    Failed(&'static str, String),
    /// Not looked at in this check: the previous condition stands.
    Kept(Condition),
}

impl CloudConnectState {
    pub fn condition(
        self,
        previous: &[Condition],
        generation: Option<i64>,
        now: &Time,
    ) -> Condition {
        let (status, reason, message) = match self {
            CloudConnectState::Kept(c) => return c,
            CloudConnectState::Enabled(m) => ("True", "Enabled", m),
            CloudConnectState::Failed(r, m) => ("False", r, m),
        };
        condition(
            previous,
            CLOUD_CONNECT,
            status,
            reason,
            message,
            generation,
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(s).expect("time"))
    }

    fn cc(enabled: Option<bool>, versions: Option<&str>) -> CloudConnectStatus {
        CloudConnectStatus {
            enabled,
            secret_versions: versions.map(str::to_string),
        }
    }

    fn cc_condition(status: &str, reason: &str) -> Condition {
        Condition {
            type_: CLOUD_CONNECT.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: t(1),
        }
    }

    /// What, status, Secret version, same generation, previous condition, expected step.
    type Case<'a> = (
        &'a str,
        CloudConnectStatus,
        &'a str,
        bool,
        Option<&'a Condition>,
        CloudConnectStep,
    );

    #[test]
    fn cloud_connect_steps() {
        use CloudConnectStep::*;
        let refused = cc_condition("False", "Forbidden");
        let enabled = cc_condition("True", "Enabled");
        let cases: &[Case] = &[
            (
                "first time: enable",
                cc(None, None),
                "s@1",
                true,
                None,
                Send { rotation: false },
            ),
            (
                "on with this key: only look",
                cc(Some(true), Some("s@1")),
                "s@1",
                true,
                Some(&enabled),
                CheckEnabled,
            ),
            (
                "a new key version: rotate",
                cc(Some(true), Some("s@1")),
                "s@2",
                true,
                Some(&enabled),
                Send { rotation: true },
            ),
            (
                "refused with the same inputs: wait",
                cc(Some(false), Some("s@1")),
                "s@1",
                true,
                Some(&refused),
                KeepRefusal,
            ),
            (
                "refused, then the Secret changed: try again",
                cc(Some(false), Some("s@1")),
                "s@2",
                true,
                Some(&refused),
                Send { rotation: false },
            ),
            (
                "refused, then the spec changed: try again",
                cc(Some(false), Some("s@1")),
                "s@1",
                false,
                Some(&refused),
                Send { rotation: false },
            ),
            (
                "off with this key (disabled outside): enable",
                cc(Some(false), Some("s@1")),
                "s@1",
                true,
                None,
                Send { rotation: false },
            ),
        ];
        for (what, was, version, same_gen, prev, want) in cases {
            assert_eq!(
                &cloud_connect_step(was, version, *same_gen, *prev),
                want,
                "{what}"
            );
        }
        assert!(cloud_connect_disable(&cc(Some(true), Some("s@1"))));
        assert!(
            !cloud_connect_disable(&cc(Some(false), Some("s@1"))),
            "not ours to undo"
        );
        assert!(!cloud_connect_disable(&cc(None, None)));
        assert_eq!(cloud_connect_refusal(Some(403)), Some("Forbidden"));
        assert_eq!(cloud_connect_refusal(Some(401)), Some("Rejected"));
        assert_eq!(cloud_connect_refusal(Some(503)), None, "transient: retried");
        assert_eq!(cloud_connect_refusal(None), None);
    }

    #[test]
    fn connection_conditions_warn_and_keep_transition_times() {
        let ready = Outcome::ready("connected").with_reason(Some("Connected".into()));
        let first = connection_conditions(&[], &ready, Some(1), true, true, &t(10));
        let types: Vec<&str> = first.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", INSECURE, PLAINTEXT]);
        let again = connection_conditions(&first, &ready, Some(1), true, false, &t(20));
        assert_eq!(again.len(), 2, "the plaintext warning is gone with http://");
        assert!(
            again.iter().all(|c| c.last_transition_time == t(10)),
            "nothing moved"
        );
        let down = Outcome::progressing("ConnectionFailed", "refused");
        let later = connection_conditions(&again, &down, Some(1), false, false, &t(30));
        assert_eq!(later[0].last_transition_time, t(30), "Ready turned False");
        let state = CloudConnectState::Enabled("on".into());
        let c = state.condition(&[cc_condition("True", "Enabled")], Some(2), &t(40));
        assert_eq!(
            (c.status.as_str(), c.last_transition_time.clone()),
            ("True", t(1))
        );
        let failed = CloudConnectState::Failed("Rejected", "bad key".into());
        let c = failed.condition(&[cc_condition("True", "Enabled")], Some(2), &t(40));
        assert_eq!(
            (c.reason.as_str(), c.last_transition_time.clone()),
            ("Rejected", t(40))
        );
    }
}
