//! PURE: the table of what Elasticsearch accepts, as data with a source per row: services (since
//! when, task types by version, secret rules, where headers go), task types, chunking strategies,
//! and the version rules of create and `_update`. The checks that read it are in `catalog`.

use crate::{
    crd::{ChunkingStrategy, TaskType},
    model::Version,
};

const fn v(major: u32, minor: u32) -> Version {
    Version::new(major, minor, 0)
}

/// The newest Elasticsearch minor this table was checked against. A cluster newer than this
/// may know services the table does not; they are sent with a warning.
pub const CHECKED_UP_TO: Version = v(9, 5);

/// When something became available, as the first version of each release line that has it:
/// available from the last entry on, and on an earlier entry's own `major.minor` line from that
/// entry on. `[8.19.0, 9.1.0]`: 8.19.x and 9.1+, not 9.0 (8.19 was released after 9.0, with
/// 9.1); `[9.2.6, 9.3.1]`: 9.2.6+, 9.3.1+ and 9.4+ (a fix backported to 9.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Since(pub &'static [Version]);

/// `since!(9, 1)`, `since!(8, 19; 9, 1)`, `since!(9, 2, 6; 9, 3, 1)`.
macro_rules! since {
    ($($major:literal, $minor:literal $(, $patch:literal)?);+) => {
        Since(&[$(Version::new($major, $minor, 0 $(+ $patch)?)),+])
    };
}

impl Since {
    pub fn allows(self, version: Version) -> bool {
        let Some(last) = self.0.last() else {
            return true;
        };
        version >= *last
            || self
                .0
                .iter()
                .any(|e| e.major == version.major && e.minor == version.minor && version >= *e)
    }
}

impl std::fmt::Display for Since {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.len();
        for (i, e) in self.0.iter().enumerate() {
            if i + 1 < n {
                write!(f, "{e} or a later {}.{}.x, or ", e.major, e.minor)?;
            } else {
                write!(f, "{e} or newer")?;
            }
        }
        Ok(())
    }
}

/// The secret settings a service takes (`service_settings` keys Elasticsearch never returns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretRule {
    /// No secret at all (built-in models, EIS).
    Nothing,
    /// Every one of these.
    All(&'static [&'static str]),
    /// Exactly one of these.
    ExactlyOne(&'static [&'static str]),
    /// These, each optional.
    Optional(&'static [&'static str]),
    /// A map `secret_parameters` of name → value (`secret_parameters.<name>` in secretSettings),
    /// optional.
    Parameters,
}

impl SecretRule {
    /// The secret setting keys (top level) this rule names.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            SecretRule::Nothing => &[],
            SecretRule::All(k) | SecretRule::ExactlyOne(k) | SecretRule::Optional(k) => k,
            SecretRule::Parameters => &["secret_parameters"],
        }
    }

    /// The keys an `import` stub names: the required ones, else the first alternative.
    pub fn stub_keys(self) -> &'static [&'static str] {
        match self {
            SecretRule::Nothing | SecretRule::Optional(_) | SecretRule::Parameters => &[],
            SecretRule::All(k) => k,
            SecretRule::ExactlyOne(k) => &k[..1],
        }
    }

    pub(super) fn describe(self) -> String {
        let list = |k: &[&str], sep: &str| {
            k.iter()
                .map(|k| format!("secretSettings.{k}"))
                .collect::<Vec<_>>()
                .join(sep)
        };
        match self {
            SecretRule::Nothing => "no secret settings".into(),
            SecretRule::All([one]) => list(&[one], ""),
            SecretRule::All(k) => format!("{} together", list(k, " and ")),
            SecretRule::ExactlyOne(k) => format!("exactly one of {}", list(k, ", ")),
            SecretRule::Optional(k) => format!("optionally {}", list(k, ", ")),
            SecretRule::Parameters => "secretSettings.secret_parameters.<name> entries".into(),
        }
    }
}

/// Where a service takes HTTP headers, which `secretSettings` can fill from Secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Headers {
    None,
    /// `service_settings.headers` (the custom service).
    Service,
    /// `task_settings.headers` (OpenAI and Azure OpenAI).
    Task,
}

/// One service of the table.
#[derive(Clone, Copy, Debug)]
pub struct Service {
    pub name: &'static str,
    /// Other names Elasticsearch accepts for it.
    pub aliases: &'static [&'static str],
    pub since: Since,
    /// Each task type the service accepts and since when. `None`: the task types depend on the
    /// deployment and version in ways the table does not follow (EIS); none is refused.
    pub tasks: Option<&'static [(TaskType, Since)]>,
    /// The newest rule; a key that came later is in `secrets_since`.
    pub secrets: SecretRule,
    /// Secret keys accepted only from a later version than the service.
    pub secrets_since: &'static [(&'static str, Since)],
    pub headers: Headers,
}

use Headers as H;
use SecretRule as S;
use TaskType::{
    ChatCompletion as Chat, Completion, Embedding, Rerank, SparseEmbedding as Sparse,
    TextEmbedding as Text,
};

const API_KEY: SecretRule = S::All(&["api_key"]);
const AWS: SecretRule = S::All(&["access_key", "secret_key"]);

const fn row(
    name: &'static str,
    since: Since,
    tasks: &'static [(TaskType, Since)],
    secrets: SecretRule,
) -> Service {
    Service {
        name,
        aliases: &[],
        since,
        tasks: Some(tasks),
        secrets,
        secrets_since: &[],
        headers: H::None,
    }
}

impl Service {
    const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }
    const fn headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
    const fn secret_since(mut self, s: &'static [(&'static str, Since)]) -> Self {
        self.secrets_since = s;
        self
    }
}

// Sources. S: elastic/elasticsearch-specification, `specification/inference/put_<svc>/
// Put<Svc>Request.ts` (`@availability stack since=`) and the `<Svc>TaskType` enums of
// `specification/inference/_types/CommonTypes.ts` on the branches 8.18 … 9.5. B: elastic/
// elasticsearch `docs/release-notes/changelog-bundles/<version>.yml` (the 9.x changelog), with the
// pull request it lists. RN: elastic/elasticsearch `docs/reference/release-notes/<version>.asciidoc`
// (8.x). #N: a pull request of elastic/elasticsearch ("[8.19]" names a backport). Secret rules:
// the service's `*SecretSettings.java` under `x-pack/plugin/inference/src/main/java/org/
// elasticsearch/xpack/inference/services/` (`settings/DefaultSecretSettings.java` for `api_key`).
// Versions before 8.17 (the oldest supported) were not all checked; where the specification and
// the release notes disagree, the release notes win. Where an 8.19 backport is probable but not
// proven, the row allows 8.19: a request the table lets through costs one refusal by
// Elasticsearch, one it refuses wrongly cannot be sent at all. One row per line, each with its
// source.
#[rustfmt::skip]
pub const SERVICES: &[Service] = &[
    row("ai21", since!(9, 2), &[(Completion, since!(9, 2)), (Chat, since!(9, 2))], API_KEY), // S put_ai21 since=9.2.0; B 9.2.0 #131238
    row("alibabacloud-ai-search", since!(8, 16), &[(Completion, since!(8, 16)), (Rerank, since!(8, 16)), (Sparse, since!(8, 16)), (Text, since!(8, 16))], API_KEY), // S put_alibabacloud since=8.16.0; AlibabaCloudTaskType
    row("amazonbedrock", since!(8, 15), &[(Completion, since!(8, 15)), (Text, since!(8, 15)), (Chat, since!(9, 4))], AWS), // RN 8.15.0 #110248; chat_completion: B 9.4.0 #139411; AmazonBedrockSecretSettings (both keys)
    row("amazon_sagemaker", since!(8, 19; 9, 1), &[(Text, since!(8, 19; 9, 1)), (Completion, since!(8, 19; 9, 1)), (Chat, since!(8, 19; 9, 1)), (Sparse, since!(8, 19; 9, 1)), (Rerank, since!(8, 19; 9, 1))], AWS).aliases(&["sagemaker", "amazonsagemaker"]), // B 9.1.0 #126856, #127767, #129413; [8.19] #127610; S@8.19 put_amazonsagemaker since=8.19.0; aliases #128584; AwsSecretSettings
    row("anthropic", since!(8, 15), &[(Completion, since!(8, 15)), (Chat, since!(9, 5))], API_KEY), // RN 8.15.0 #109893; chat_completion: B 9.5.0 #148539
    row("azureaistudio", since!(8, 14), &[(Completion, since!(8, 14)), (Text, since!(8, 14)), (Rerank, since!(9, 2))], API_KEY), // S put_azureaistudio since=8.14.0; rerank: B 9.2.0 #129848
    row("azureopenai", since!(8, 14), &[(Completion, since!(8, 14)), (Text, since!(8, 14)), (Chat, since!(9, 3))], S::ExactlyOne(&["api_key", "entra_id", "client_secret"])).secret_since(&[("client_secret", since!(9, 4))]).headers(H::Task), // S put_azureopenai since=8.14.0; chat_completion: B 9.3.0 #138726; AzureOpenAiSecretSettings; client_secret (OAuth2): #143896, S@9.4
    row("cohere", since!(8, 13), &[(Completion, since!(8, 13)), (Rerank, since!(8, 13)), (Text, since!(8, 13))], API_KEY), // S put_cohere since=8.13.0; CohereTaskType (rerank, completion before 8.17: not checked)
    row("contextualai", since!(9, 2), &[(Rerank, since!(9, 2))], API_KEY), // S put_contextualai since=9.2.0; B 9.2.0 #134933
    row("custom", since!(8, 19; 9, 1), &[(Text, since!(8, 19; 9, 1)), (Sparse, since!(8, 19; 9, 1)), (Rerank, since!(8, 19; 9, 1)), (Completion, since!(8, 19; 9, 1))], S::Parameters).headers(H::Service), // B 9.1.0 #127939; [8.19] #128644; CustomSecretSettings (secret_parameters, optional)
    row("deepseek", since!(8, 19; 9, 1), &[(Completion, since!(8, 19; 9, 1)), (Chat, since!(8, 19; 9, 1))], API_KEY), // B 9.1.0 #122218 (not in B 9.0.0); backport #124796; S@8.19 put_deepseek since=8.19.0
    row("elasticsearch", since!(8, 13), &[(Rerank, since!(8, 15)), (Sparse, since!(8, 13)), (Text, since!(8, 13))], S::Nothing), // S put_elasticsearch since=8.13.0; rerank: RN 8.15.0 #108452
    row("elser", since!(8, 11), &[(Sparse, since!(8, 11))], S::Nothing), // S put_elser since=8.11.0
    row("fireworksai", since!(9, 4), &[(Chat, since!(9, 4)), (Completion, since!(9, 4)), (Text, since!(9, 4))], API_KEY), // S put_fireworksai since=9.4.0; B 9.4.0 #137130; S@9.4 FireworksAITaskType
    row("googleaistudio", since!(8, 15), &[(Completion, since!(8, 15)), (Text, since!(8, 15))], API_KEY), // S put_googleaistudio since=8.15.0
    row("googlevertexai", since!(8, 15), &[(Rerank, since!(8, 15)), (Text, since!(8, 15)), (Completion, since!(8, 19; 9, 1)), (Chat, since!(8, 19; 9, 1))], S::All(&["service_account_json"])), // S put_googlevertexai since=8.15.0; chat_completion: B 9.1.0 #128105, [8.19] #128632; completion: B 9.1.0 #128694, [8.19] #129151; GoogleVertexAiSecretSettings
    row("groq", since!(9, 3), &[(Chat, since!(9, 3))], API_KEY), // S put_groq since=9.3.0; B 9.3.0 #138251
    row("hugging_face", since!(8, 12), &[(Text, since!(8, 12)), (Chat, since!(8, 19; 9, 1)), (Completion, since!(8, 19; 9, 1)), (Rerank, since!(8, 19; 9, 1))], API_KEY), // S put_hugging_face since=8.12.0; chat, completion: B 9.1.0 #127254, [8.19] #128152; rerank: B 9.1.0 #127966 (8.19: S@8.19 enum)
    row("hugging_face_elser", since!(8, 11), &[(Sparse, since!(8, 11))], API_KEY), // InferencePlugin.getInferenceServiceFactories (HuggingFaceElserService); not in S
    row("jinaai", since!(8, 18), &[(Text, since!(8, 18)), (Rerank, since!(8, 18)), (Embedding, since!(9, 4))], API_KEY), // RN 8.18.0 #118652; embedding: B 9.4.0 #140323
    row("llama", since!(9, 2), &[(Text, since!(9, 2)), (Completion, since!(9, 2)), (Chat, since!(9, 2))], S::Optional(&["api_key"])), // B 9.2.0 #130092; S put_llama since=9.2.0; llama/LlamaModel.java retrieveSecretSettings (optional)
    row("mistral", since!(8, 15), &[(Text, since!(8, 15)), (Completion, since!(8, 19; 9, 1)), (Chat, since!(8, 19; 9, 1))], API_KEY), // RN 8.15.0 #109194; completion, chat: B 9.1.0 #128538 (8.19: S@8.19 enum)
    row("nvidia", since!(9, 3), &[(Chat, since!(9, 3)), (Completion, since!(9, 3)), (Rerank, since!(9, 3)), (Text, since!(9, 3))], API_KEY), // S put_nvidia since=9.3.0; B 9.3.0 #132388
    row("openai", since!(8, 12), &[(Text, since!(8, 12)), (Completion, since!(8, 12)), (Chat, since!(8, 18)), (Embedding, since!(9, 5))], S::ExactlyOne(&["api_key", "client_secret"])).secret_since(&[("client_secret", since!(9, 5))]).headers(H::Task), // S put_openai since=8.12.0; chat_completion: RN 8.18.0 #117589; embedding: B 9.5.0 #145833; client_secret (OAuth2): B 9.5.0 #150132, openai/secrets/OpenAiSecretSettings.java
    row("openshift_ai", since!(9, 3), &[(Text, since!(9, 3)), (Completion, since!(9, 3)), (Chat, since!(9, 3)), (Rerank, since!(9, 3))], API_KEY), // S put_openshift_ai since=9.3.0; B 9.3.0
    row("voyageai", since!(8, 19; 9, 1), &[(Text, since!(8, 19; 9, 1)), (Rerank, since!(8, 19; 9, 1))], API_KEY), // B 9.1.0 #122134 (not in B 9.0.0); S put_voyageai since=8.19.0
    row("watsonxai", since!(8, 16), &[(Text, since!(8, 16)), (Rerank, since!(8, 18)), (Chat, since!(9, 2)), (Completion, since!(9, 2))], API_KEY), // S put_watsonx since=8.16.0; rerank: RN 8.18.0 #117176 (listing fix #140331); chat, completion: B 9.2.0 #129146
    Service { name: "elastic", aliases: &[], since: since!(8, 16), tasks: None, secrets: S::Nothing, secrets_since: &[], headers: H::None }, // EIS: B 9.0.0 #120842 (feature flag removed); its task types depend on the deployment: not checked
];

/// Task types and the version Elasticsearch first accepts each in.
#[rustfmt::skip]
pub const TASK_TYPES: &[(TaskType, Since)] = &[
    (Text, since!(8, 11)), // S _types/TaskType.ts
    (Sparse, since!(8, 11)), // S _types/TaskType.ts
    (Completion, since!(8, 12)), // S _types/TaskType.ts (openai completion)
    (Rerank, since!(8, 13)), // S _types/TaskType.ts (cohere rerank)
    (Chat, since!(8, 18)), // S@8.18 _types/TaskType.ts `chat_completion`; RN 8.18.0 #117589
    (Embedding, since!(9, 4)), // S@9.4 _types/TaskType.ts `embedding` (the enum exists from 9.3, B 9.3.0 #138198; no service takes it before 9.4)
];

/// Chunking strategies and when each became available.
#[rustfmt::skip]
pub const CHUNKING: &[(ChunkingStrategy, Since)] = &[
    (ChunkingStrategy::Sentence, since!(8, 16)), // chunking_settings in 8.16: #113897, specification PR #3781
    (ChunkingStrategy::Word, since!(8, 16)), // chunking_settings in 8.16: #113897
    (ChunkingStrategy::None, since!(8, 19; 9, 1)), // B 9.1.0 #129150; [8.19] #129324
    (ChunkingStrategy::Recursive, since!(9, 1)), // B 9.1.0 #126866 (no [8.19] backport; ChunkingStrategy.java of 8.19 has no RECURSIVE)
];

/// `timeout` on create: 8.19 and 9.1 (9.0 rejects unknown query parameters).
pub const PUT_TIMEOUT: Since = since!(8, 19; 9, 1); // B 9.1.0 #126805; transport version INFERENCE_ADD_TIMEOUT_PUT_ENDPOINT_8_19
/// `_update` accepts `chunking_settings` (full replacement).
pub const UPDATE_CHUNKING: Since = since!(9, 5); // #149723 (merged 2026-05, after the 9.4 branch)
/// `_update` changes `adaptive_allocations` of built-in models.
pub const UPDATE_ADAPTIVE_ALLOCATIONS: Since = since!(9, 4); // CONTRACT §9 table (9.4 column); B 9.4.0 #140003 (update parsers)
/// `_update` keeps stored chunking settings; before, every `_update` reset them to word/250/100
/// (issue #139574).
pub const UPDATE_KEEPS_CHUNKING: Since = since!(9, 2, 6; 9, 3, 1); // [9.2] #141687 (9.2.6), [9.3] #141682 (9.3.1), main #140003 (9.4.0)

impl Version {
    /// `timeout` on create.
    pub fn put_accepts_timeout(self) -> bool {
        PUT_TIMEOUT.allows(self)
    }
    /// `_update` accepts `chunking_settings`.
    pub fn update_accepts_chunking(self) -> bool {
        UPDATE_CHUNKING.allows(self)
    }
    /// `adaptive_allocations` can be changed with `_update`.
    pub fn update_accepts_adaptive_allocations(self) -> bool {
        UPDATE_ADAPTIVE_ALLOCATIONS.allows(self)
    }
    /// `_update` resets stored chunking settings on this version.
    pub fn update_resets_chunking(self) -> bool {
        !UPDATE_KEEPS_CHUNKING.allows(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ver(s: &str) -> Version {
        Version::parse(s).expect("version")
    }

    #[test]
    fn every_row_names_its_source() {
        let text = include_str!("table.rs");
        let start = text.find("pub const SERVICES").expect("table starts");
        let table = &text[start..text.find("impl Version {").expect("table ends")];
        let rows: Vec<&str> = table
            .lines()
            .map(str::trim)
            .filter(|l| {
                l.starts_with("row(")
                    || l.starts_with("Service {")
                    || l.starts_with("(Text,")
                    || l.starts_with("(ChunkingStrategy::")
                    || l.starts_with('(') && l.contains("since!")
                    || (l.starts_with("pub const") && l.contains("since!"))
            })
            .collect();
        assert!(rows.len() >= SERVICES.len() + TASK_TYPES.len() + CHUNKING.len());
        for row in rows {
            let source = row.rsplit_once("// ").map(|(_, s)| s.trim());
            assert!(
                source.is_some_and(|s| s.len() > 10),
                "a row without its source: {row}"
            );
        }
    }

    #[test]
    fn names_are_unique_and_every_task_type_is_dated() {
        let mut names: Vec<&str> = SERVICES
            .iter()
            .flat_map(|s| std::iter::once(s.name).chain(s.aliases.iter().copied()))
            .collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a name or alias is listed twice");
        for t in [Text, Sparse, Rerank, Completion, Chat, Embedding] {
            assert!(TASK_TYPES.iter().any(|(x, _)| *x == t), "{t} undated");
        }
        for s in SERVICES {
            for (t, since) in s.tasks.unwrap_or_default() {
                // A pair is never older than its service.
                assert!(
                    since.0.iter().all(|v| s.since.allows(*v)),
                    "{} {t} is dated before the service",
                    s.name
                );
            }
        }
    }

    #[test]
    fn since_follows_release_lines() {
        const EITHER: Since = since!(8, 19; 9, 1);
        let either = EITHER;
        assert!(either.allows(ver("8.19.3")));
        assert!(!either.allows(ver("8.18.9")));
        assert!(!either.allows(ver("9.0.5")), "8.19 came after 9.0");
        assert!(either.allows(ver("9.1.0")) && either.allows(ver("10.0.0")));
        assert_eq!(
            either.to_string(),
            "8.19.0 or a later 8.19.x, or 9.1.0 or newer"
        );
        for (v, resets) in [
            ("8.17.0", true),
            ("9.1.4", true),
            ("9.2.5", true),
            ("9.2.6", false),
            ("9.3.0", true),
            ("9.3.1", false),
            ("9.4.0", false),
        ] {
            assert_eq!(ver(v).update_resets_chunking(), resets, "{v}");
        }
        assert!(ver("8.19.0").put_accepts_timeout());
        assert!(!ver("9.0.4").put_accepts_timeout());
        assert!(ver("9.1.0").put_accepts_timeout());
        assert!(!ver("8.18.2").put_accepts_timeout());
    }
}
