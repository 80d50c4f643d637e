//! PURE: what Elasticsearch accepts, as data, in one place. Which services exist since which
//! version, which task types each accepts since when, which secret settings each takes, which
//! task types and chunking strategies a version knows, and what `_update` does by version.
//! The table is in `catalog/table.rs`: every row names its source (a path in
//! `elastic/elasticsearch-specification`, or an Elasticsearch pull request) in a comment; a test
//! fails on a row without one. This file holds the checks that read it.
//!
//! The operator asks this table before anything is sent: a request the connected cluster cannot
//! accept is not sent (`UnsupportedByCluster`). What the table does not know is never refused:
//! Elasticsearch gains services every minor, so an unknown service or task type is sent as
//! written, with a warning.

mod table;

pub use table::{
    CHECKED_UP_TO, CHUNKING, Headers, PUT_TIMEOUT, SERVICES, SecretRule, Service, Since,
    TASK_TYPES, UPDATE_ADAPTIVE_ALLOCATIONS, UPDATE_CHUNKING, UPDATE_KEEPS_CHUNKING,
};
use table::{Headers as H, SecretRule as S};

use crate::{crd::InferenceEndpointSpec, model::Version};

/// The table's row for `service` (by name or alias).
pub fn service(name: &str) -> Option<&'static Service> {
    SERVICES
        .iter()
        .find(|s| s.name == name || s.aliases.contains(&name))
}

/// A request the connected cluster cannot accept, found before it is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// What the spec asks for, e.g. `task type chat_completion`.
    pub what: String,
    /// The field to change instead.
    pub field: &'static str,
    pub needs: Since,
    pub version: Version,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} needs Elasticsearch {}, and the cluster runs {}: upgrade Elasticsearch or change {}",
            self.what, self.needs, self.version, self.field
        )
    }
}

/// What the cluster at `version` makes of `spec`: `Err` when it cannot accept it; otherwise what
/// the table does not know (each sent as written), as sentences.
pub fn check_version(
    spec: &InferenceEndpointSpec,
    version: Version,
) -> Result<Vec<String>, Unsupported> {
    let task = spec.task_type;
    if let Some((_, since)) = TASK_TYPES.iter().find(|(t, _)| *t == task)
        && !since.allows(version)
    {
        return Err(Unsupported {
            what: format!("task type {task}"),
            field: "spec.taskType",
            needs: *since,
            version,
        });
    }
    let unknown = check_service(spec, version)?;
    if let Some(c) = &spec.chunking_settings
        && let Some((strategy, since)) = CHUNKING.iter().find(|(s, _)| *s == c.strategy)
        && !since.allows(version)
    {
        return Err(Unsupported {
            what: format!("chunking strategy {}", strategy.as_str()),
            field: "spec.chunkingSettings.strategy",
            needs: *since,
            version,
        });
    }
    Ok(unknown.into_iter().collect())
}

/// The service, its task type and the credentials it is given, on `version`: `Err` for what
/// came later, else a note when the table does not know the service or the pair.
fn check_service(
    spec: &InferenceEndpointSpec,
    version: Version,
) -> Result<Option<String>, Unsupported> {
    let task = spec.task_type;
    let unsupported = |what: String, field, needs| Unsupported {
        what,
        field,
        needs,
        version,
    };
    let Some(s) = service(&spec.service) else {
        return Ok(Some(format!(
            "service {:?} is not in this operator's table of Elasticsearch services{}: it is sent as written and Elasticsearch decides",
            spec.service,
            newer_note(version)
        )));
    };
    if !s.since.allows(version) {
        return Err(unsupported(
            format!("service {}", s.name),
            "spec.service",
            s.since,
        ));
    }
    if let Some((key, since)) = s
        .secrets_since
        .iter()
        .find(|(k, _)| spec.secret_settings.contains_key(*k))
        && !since.allows(version)
    {
        return Err(unsupported(
            format!("secretSettings.{key} of service {}", s.name),
            "spec.secretSettings",
            *since,
        ));
    }
    let Some(tasks) = s.tasks else {
        return Ok(None);
    };
    match tasks.iter().find(|(t, _)| *t == task) {
        Some((_, since)) if !since.allows(version) => Err(unsupported(
            format!("task type {task} of service {}", s.name),
            "spec.taskType",
            *since,
        )),
        Some(_) => Ok(None),
        None => Ok(Some(format!(
            "task type {task} of service {} is not in this operator's table (it knows {}){}: it is sent as written and Elasticsearch decides",
            s.name,
            tasks
                .iter()
                .map(|(t, _)| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            newer_note(version)
        ))),
    }
}

fn newer_note(version: Version) -> String {
    if (version.major, version.minor) > (CHECKED_UP_TO.major, CHECKED_UP_TO.minor) {
        format!(
            " (checked up to Elasticsearch {}.{}; the cluster runs {version})",
            CHECKED_UP_TO.major, CHECKED_UP_TO.minor
        )
    } else {
        String::new()
    }
}

/// `secretSettings` keys that put a header into a request: `headers.<Name>` into
/// `service_settings.headers`, `task_settings.headers.<Name>` into `task_settings.headers`.
pub const SERVICE_HEADER_PREFIX: &str = "headers.";
pub const TASK_HEADER_PREFIX: &str = "task_settings.headers.";

/// Why a spec's secret settings do not fit its service. Names keys, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretProblem {
    #[error(
        "service {service} takes {wants}; secretSettings.{key} is not one of them: remove it, or check the service name"
    )]
    NotTaken {
        service: &'static str,
        key: String,
        wants: String,
    },
    #[error("service {service} needs {wants}; {missing} is missing")]
    Missing {
        service: &'static str,
        wants: String,
        missing: String,
    },
    #[error("service {service} takes {wants}; the spec sets {given}")]
    TooMany {
        service: &'static str,
        wants: String,
        given: String,
    },
    #[error(
        "service {service} has no {place}: secretSettings.{key} cannot be sent (headers from Secrets go to the custom service's service_settings.headers, or the task_settings.headers of openai and azureopenai)"
    )]
    NoHeaders {
        service: &'static str,
        key: String,
        place: &'static str,
    },
}

/// The per-service rules on `secretSettings` (both Bedrock keys, exactly one Azure OpenAI
/// credential, …). Services the table does not know are not checked.
pub fn check_secrets(spec: &InferenceEndpointSpec) -> Result<(), SecretProblem> {
    let Some(s) = service(&spec.service) else {
        return Ok(());
    };
    let wants = s.secrets.describe();
    let mut given = Vec::new();
    for key in spec.secret_settings.keys() {
        if key.starts_with(TASK_HEADER_PREFIX) || key.starts_with(SERVICE_HEADER_PREFIX) {
            let (place, ok) = if key.starts_with(TASK_HEADER_PREFIX) {
                ("task_settings.headers", s.headers == H::Task)
            } else {
                ("service_settings.headers", s.headers == H::Service)
            };
            if !ok {
                return Err(SecretProblem::NoHeaders {
                    service: s.name,
                    key: key.clone(),
                    place,
                });
            }
            continue;
        }
        let top = key.split('.').next().unwrap_or(key);
        // A credential key of another service is a mistake; any other key is sent as written
        // (a setting the table does not know: Elasticsearch decides).
        let credential = crate::crd::SECRET_SETTING_KEYS.contains(&top);
        if credential && !s.secrets.keys().contains(&top) {
            return Err(SecretProblem::NotTaken {
                service: s.name,
                key: key.clone(),
                wants,
            });
        }
        if credential {
            given.push(top);
        }
    }
    match s.secrets {
        S::All(keys) => {
            let missing: Vec<String> = keys
                .iter()
                .filter(|k| !given.contains(k))
                .map(|k| format!("secretSettings.{k}"))
                .collect();
            if spec.management_policy == crate::crd::ManagementPolicy::Manage && !missing.is_empty()
            {
                return Err(SecretProblem::Missing {
                    service: s.name,
                    wants,
                    missing: missing.join(" and "),
                });
            }
        }
        S::ExactlyOne(keys) => {
            if given.len() > 1 {
                return Err(SecretProblem::TooMany {
                    service: s.name,
                    wants,
                    given: given
                        .iter()
                        .map(|k| format!("secretSettings.{k}"))
                        .collect::<Vec<_>>()
                        .join(" and "),
                });
            }
            if given.is_empty() && spec.management_policy == crate::crd::ManagementPolicy::Manage {
                return Err(SecretProblem::Missing {
                    service: s.name,
                    wants,
                    missing: format!("secretSettings.{}", keys[0]),
                });
            }
        }
        S::Nothing | S::Optional(_) | S::Parameters => {}
    }
    Ok(())
}

/// A value the custom service fills from `secret_parameters` (`${name}`): not a credential.
/// Source: `x-pack/plugin/inference/.../common/ValidatingSubstitutor.java` (placeholders
/// `${…}` in `headers`, `url`, `query_parameters` and `request`).
pub fn is_placeholder(value: &str) -> bool {
    value
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .is_some_and(|inner| !inner.is_empty() && !inner.contains(['{', '}', '$']))
}

/// The README's table of services, generated from [`SERVICES`] (a test keeps the README equal).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| service | since | task types (since) | secret settings | headers from Secrets |\n| --- | --- | --- | --- | --- |\n",
    );
    let mut rows: Vec<&Service> = SERVICES.iter().collect();
    rows.sort_by_key(|s| s.name);
    for s in rows {
        let tasks = match s.tasks {
            None => "depends on the deployment (not checked)".to_string(),
            Some(t) => t
                .iter()
                .map(|(t, since)| {
                    if *since == s.since {
                        t.as_str().to_string()
                    } else {
                        format!("{t} ({})", short(*since))
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        let secrets = match s.secrets {
            S::Nothing => "none".to_string(),
            S::All(k) => k
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(" + "),
            S::ExactlyOne(k) => format!(
                "one of {}",
                k.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            S::Optional(k) => k
                .iter()
                .map(|k| format!("`{k}` (optional)"))
                .collect::<Vec<_>>()
                .join(", "),
            S::Parameters => "`secret_parameters.<name>`".to_string(),
        };
        let headers = match s.headers {
            H::None => "",
            H::Service => "`headers.<Name>`",
            H::Task => "`task_settings.headers.<Name>`",
        };
        let name = if s.aliases.is_empty() {
            format!("`{}`", s.name)
        } else {
            format!("`{}` (also {})", s.name, s.aliases.join(", "))
        };
        let secrets = s.secrets_since.iter().fold(secrets, |acc, (k, since)| {
            acc.replace(&format!("`{k}`"), &format!("`{k}` ({})", short(*since)))
        });
        out.push_str(&format!(
            "| {name} | {} | {tasks} | {secrets} | {headers} |\n",
            short(s.since)
        ));
    }
    out
}

/// `9.1`, `8.19 / 9.1`, `9.2.6 / 9.3.1`: a `Since` in a table cell.
fn short(s: Since) -> String {
    s.0.iter()
        .map(|v| {
            if v.patch == 0 {
                format!("{}.{}", v.major, v.minor)
            } else {
                v.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::InferenceEndpointSpec;

    fn spec(yaml: &str) -> InferenceEndpointSpec {
        serde_saphyr::from_str(yaml).expect("spec")
    }

    fn ver(s: &str) -> Version {
        Version::parse(s).expect("version")
    }

    #[test]
    fn what_a_version_cannot_accept_is_refused_with_what_it_needs() {
        let openai = |task: &str| {
            spec(&format!(
                "taskType: {task}\nservice: openai\nserviceSettings: {{model_id: m}}\nsecretSettings: {{api_key: {{secretKeyRef: {{name: s, key: k}}}}}}\n"
            ))
        };
        let e = check_version(&openai("chat_completion"), ver("8.17.0")).expect_err("8.17");
        assert_eq!(e.what, "task type chat_completion");
        assert!(
            e.to_string()
                .contains("needs Elasticsearch 8.18.0 or newer"),
            "{e}"
        );
        assert!(e.to_string().contains("the cluster runs 8.17.0"), "{e}");
        assert_eq!(
            check_version(&openai("chat_completion"), ver("8.18.0")),
            Ok(vec![])
        );
        // The pair, not only the service: openai embedding arrived in 9.5.
        let e = check_version(&openai("embedding"), ver("9.4.0")).expect_err("9.4");
        assert_eq!(e.what, "task type embedding of service openai");
        assert!(check_version(&openai("embedding"), ver("9.5.0")).is_ok());
        let custom = spec("taskType: rerank\nservice: custom\nserviceSettings: {url: u}\n");
        assert!(check_version(&custom, ver("8.19.1")).is_ok());
        assert_eq!(
            check_version(&custom, ver("9.0.3")).expect_err("9.0").what,
            "service custom"
        );
        let chunked = |strategy: &str| {
            spec(&format!(
                "taskType: text_embedding\nservice: elasticsearch\nserviceSettings: {{model_id: m}}\nchunkingSettings: {{strategy: {strategy}, maxChunkSize: 100}}\n"
            ))
        };
        let e = check_version(&chunked("recursive"), ver("9.0.0")).expect_err("9.0");
        assert_eq!(e.field, "spec.chunkingSettings.strategy");
        assert!(check_version(&chunked("recursive"), ver("9.1.0")).is_ok());
        let azure_oauth = spec(
            "taskType: completion\nservice: azureopenai\nserviceSettings: {resource_name: r}\nsecretSettings: {client_secret: {secretKeyRef: {name: s, key: k}}}\n",
        );
        let e = check_version(&azure_oauth, ver("9.3.0")).expect_err("9.3");
        assert_eq!(
            e.what,
            "secretSettings.client_secret of service azureopenai"
        );
        assert!(check_version(&azure_oauth, ver("9.4.0")).is_ok());
    }

    #[test]
    fn what_the_table_does_not_know_is_sent_with_a_note() {
        let unknown = spec("taskType: rerank\nservice: mixedbread\n");
        let notes = check_version(&unknown, ver("9.1.0")).expect("not refused");
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("service \"mixedbread\" is not in this operator's table"));
        let newer = check_version(&unknown, ver("9.7.0")).expect("not refused");
        assert!(
            newer[0].contains("checked up to Elasticsearch 9.5"),
            "{newer:?}"
        );
        let pair = spec("taskType: text_embedding\nservice: anthropic\n");
        let notes = check_version(&pair, ver("9.1.0")).expect("not refused");
        assert!(
            notes[0].contains("task type text_embedding of service anthropic"),
            "{notes:?}"
        );
        // EIS is known and never gated by task type.
        let eis = spec("taskType: embedding\nservice: elastic\nserviceSettings: {model_id: m}\n");
        assert_eq!(check_version(&eis, ver("9.4.0")), Ok(vec![]));
    }

    #[test]
    fn secret_rules_per_service() {
        let bedrock = spec(
            "taskType: completion\nservice: amazonbedrock\nsecretSettings: {access_key: {secretKeyRef: {name: s, key: a}}}\n",
        );
        let e = check_secrets(&bedrock).expect_err("one key");
        assert!(
            e.to_string()
                .contains("secretSettings.secret_key is missing"),
            "{e}"
        );
        let observe =
            spec("taskType: completion\nservice: amazonbedrock\nmanagementPolicy: Observe\n");
        assert_eq!(check_secrets(&observe), Ok(()), "Observe sends nothing");
        let azure_two = spec(
            "taskType: completion\nservice: azureopenai\nsecretSettings:\n  api_key: {secretKeyRef: {name: s, key: a}}\n  entra_id: {secretKeyRef: {name: s, key: e}}\n",
        );
        let e = check_secrets(&azure_two).expect_err("two");
        assert!(e.to_string().contains("exactly one of"), "{e}");
        let azure_none = spec("taskType: completion\nservice: azureopenai\n");
        assert!(check_secrets(&azure_none).is_err());
        let wrong_key = spec(
            "taskType: completion\nservice: anthropic\nsecretSettings: {access_key: {secretKeyRef: {name: s, key: a}}}\n",
        );
        let e = check_secrets(&wrong_key).expect_err("not taken");
        assert!(
            e.to_string()
                .contains("anthropic takes secretSettings.api_key"),
            "{e}"
        );
        let llama = spec("taskType: completion\nservice: llama\n");
        assert_eq!(check_secrets(&llama), Ok(()), "llama's key is optional");
        let custom = spec(
            "taskType: rerank\nservice: custom\nsecretSettings:\n  secret_parameters.token: {secretKeyRef: {name: s, key: t}}\n  headers.X-Api-Key: {secretKeyRef: {name: s, key: h}}\n",
        );
        assert_eq!(check_secrets(&custom), Ok(()));
        let task_headers_on_custom = spec(
            "taskType: rerank\nservice: custom\nsecretSettings:\n  task_settings.headers.X-Api-Key: {secretKeyRef: {name: s, key: h}}\n",
        );
        assert!(check_secrets(&task_headers_on_custom).is_err());
        let other = spec(
            "taskType: completion\nservice: anthropic\nsecretSettings:\n  api_key: {secretKeyRef: {name: s, key: a}}\n  organization_key: {secretKeyRef: {name: s, key: o}}\n",
        );
        assert_eq!(
            check_secrets(&other),
            Ok(()),
            "a key the table does not know is sent"
        );
        let unknown = spec(
            "taskType: rerank\nservice: mixedbread\nsecretSettings: {whatever: {secretKeyRef: {name: s, key: h}}}\n",
        );
        assert_eq!(
            check_secrets(&unknown),
            Ok(()),
            "unknown services are not checked"
        );
    }

    #[test]
    fn placeholders() {
        assert!(is_placeholder("${token}"));
        assert!(!is_placeholder("Bearer ${token}"));
        assert!(!is_placeholder("${}"));
        assert!(!is_placeholder("${a}${b}"));
    }

    #[test]
    fn the_markdown_table_lists_every_service() {
        let table = markdown_table();
        for s in SERVICES {
            assert!(table.contains(&format!("| `{}`", s.name)), "{}", s.name);
        }
        assert!(table.contains("chat_completion (9.4)"), "{table}");
        assert!(table.contains("`client_secret` (9.5)"), "{table}");
    }
}
