//! Removing secret values from text that came back from Elasticsearch (or a provider through it)
//! before it reaches a log line, a status message, an event or an error.
//!
//! Elasticsearch echoes settings it does not understand (`Model configuration contains settings
//! [{api_key=…}] unknown to the service`), and providers echo keys partly (`Incorrect API key
//! provided: sk-proj-abc1************wxyz`). The scrubber therefore removes, for every secret:
//! - the value itself and its encoded forms (base64, URL-safe base64, percent-encoding, JSON
//!   escaping), longest first so that a value containing another is removed whole;
//! - any run of 8 or more characters of a value (a partial echo);
//! - masked echoes whose visible start or end (4+ characters) matches the value;
//! - short values (under 8 characters) only where they stand as a whole token, so that a
//!   two-letter secret does not mangle every word that contains those letters.

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// Shortest fragment of a secret treated as an echo of it.
const MIN_FRAGMENT: usize = 8;
/// Shortest visible part of a masked echo (`sk-a****wxyz`) that is matched against a secret.
const MIN_MASKED_VISIBLE: usize = 4;

/// The secrets of one request (and the operator's own credentials), ready to scrub text.
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Values and their encodings, longest first.
    needles: Vec<SecretString>,
    /// The raw values, for fragment and masked-echo matching.
    values: Vec<SecretString>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} values)", self.values.len())
    }
}

impl Scrubber {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a SecretString>) -> Self {
        let mut s = Self::default();
        for v in secrets {
            s.add(v.expose_secret());
        }
        s
    }

    /// Add one secret value (and its encoded forms).
    pub fn add(&mut self, value: &str) {
        let value = value.trim();
        if value.is_empty() || self.values.iter().any(|v| v.expose_secret() == value) {
            return;
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let b64_url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forms = [
            value.to_string(),
            b64.encode(value),
            b64.encode(value).trim_end_matches('=').to_string(),
            b64_url.encode(value),
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
            serde_json::to_string(value)
                .map(|q| q[1..q.len() - 1].to_string())
                .unwrap_or_default(),
        ];
        for f in forms {
            if !f.is_empty() && !self.needles.iter().any(|n| n.expose_secret() == f) {
                self.needles.push(SecretString::from(f));
            }
        }
        self.needles
            .sort_by_key(|n| std::cmp::Reverse(n.expose_secret().len()));
        self.values.push(SecretString::from(value.to_string()));
    }

    /// Also scrub this other scrubber's values.
    pub fn extend(&mut self, other: &Scrubber) {
        for v in &other.values {
            self.add(v.expose_secret());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret (in any of the forms above) replaced by `<redacted>`.
    pub fn scrub(&self, text: &str) -> String {
        if self.values.is_empty() {
            return text.to_string();
        }
        let mut out = text.to_string();
        for n in &self.needles {
            let n = n.expose_secret();
            if n.chars().count() >= MIN_FRAGMENT {
                out = out.replace(n, REDACTED);
            } else {
                out = replace_bounded(&out, n);
            }
        }
        for v in &self.values {
            let v = v.expose_secret();
            if v.chars().count() >= MIN_FRAGMENT {
                out = redact_fragments(&out, v);
            }
            if v.chars().count() >= 2 * MIN_MASKED_VISIBLE {
                out = replace_tokens(&out, |t| is_masked_echo(t, v));
            }
        }
        out
    }
}

fn is_token_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '*' | '+' | '/' | '~' | '…')
}

/// Replace every occurrence of `needle` that is not part of a longer word (the characters on
/// either side are not letters or digits).
fn replace_bounded(text: &str, needle: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(needle) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + needle.len()..].chars().next();
        let bounded =
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric);
        out.push_str(&rest[..i]);
        if bounded {
            out.push_str(REDACTED);
        } else {
            out.push_str(needle);
        }
        rest = &rest[i + needle.len()..];
    }
    out.push_str(rest);
    out
}

/// Replace every maximal token (run of `is_token_char`) for which `matches` holds.
fn replace_tokens(text: &str, matches: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if !token.is_empty() {
            if matches(token) {
                out.push_str(REDACTED);
            } else {
                out.push_str(token);
            }
            token.clear();
        }
    };
    for c in text.chars() {
        if is_token_char(c) {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// A token like `sk-abcd****wxyz` or `abcd...wxyz` whose visible start or end is a start or end
/// of `secret`.
fn is_masked_echo(token: &str, secret: &str) -> bool {
    let masked = token.contains('*') || token.contains("...") || token.contains('…');
    if !masked {
        return false;
    }
    let is_mask = |c: char| c == '*' || c == '.' || c == '…';
    let start: String = token.chars().take_while(|c| !is_mask(*c)).collect();
    let end: String = {
        let rev: String = token.chars().rev().take_while(|c| !is_mask(*c)).collect();
        rev.chars().rev().collect()
    };
    (start.chars().count() >= MIN_MASKED_VISIBLE && secret.starts_with(&start))
        || (end.chars().count() >= MIN_MASKED_VISIBLE && secret.ends_with(&end))
}

/// Replace every run of at least `MIN_FRAGMENT` characters of `text` that also occurs in
/// `secret`.
fn redact_fragments(text: &str, secret: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let mut best = 0;
        if i + MIN_FRAGMENT <= chars.len() {
            let mut j = i + MIN_FRAGMENT;
            let window: String = chars[i..j].iter().collect();
            if secret.contains(&window) {
                best = j;
                while j < chars.len() {
                    j += 1;
                    let longer: String = chars[i..j].iter().collect();
                    if secret.contains(&longer) {
                        best = j;
                    } else {
                        break;
                    }
                }
            }
        }
        if best > 0 {
            out.push_str(REDACTED);
            i = best;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrub(secrets: &[&str], text: &str) -> String {
        let values: Vec<SecretString> = secrets.iter().map(|s| SecretString::from(*s)).collect();
        Scrubber::new(&values).scrub(text)
    }

    #[test]
    fn exact_values_are_removed() {
        let out = scrub(
            &["sk-very-secret-value"],
            "Model configuration contains settings [{api_key=sk-very-secret-value}] unknown",
        );
        assert_eq!(
            out,
            "Model configuration contains settings [{api_key=<redacted>}] unknown"
        );
    }

    #[test]
    fn longest_first_so_a_value_inside_another_goes_whole() {
        let out = scrub(
            &["abcdefgh12", "abcdefgh12-and-more-suffix"],
            "key abcdefgh12-and-more-suffix here",
        );
        assert_eq!(out, "key <redacted> here");
    }

    #[test]
    fn encoded_forms_are_removed() {
        let secret = "p@ss w/ord:zz-long-enough";
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let url = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        let json = "json \\\"q\\\" x";
        for text in [
            format!("header Basic {b64} refused"),
            format!("token={url}&x=1"),
        ] {
            let out = scrub(&[secret], &text);
            assert!(!out.contains(&b64) && !out.contains(&url), "{out}");
            assert!(out.contains(REDACTED), "{out}");
        }
        let quoted = scrub(
            &["json \"q\" x-longer"],
            &format!("body {{\"k\":\"{json}-longer\"}}"),
        );
        assert!(!quoted.contains("x-longer"), "{quoted}");
    }

    #[test]
    fn partial_and_masked_echoes_are_removed() {
        let secret = "sk-proj-abc123DEF456ghi789JKLwxyz";
        // A provider quoting a long piece of the key.
        let out = scrub(&[secret], "invalid key: abc123DEF456ghi (check it)");
        assert!(!out.contains("abc123DEF456"), "{out}");
        // Masked echoes keep the start and the end visible.
        let out = scrub(
            &[secret],
            "Incorrect API key provided: sk-proj-********************wxyz.",
        );
        assert!(!out.contains("sk-proj-*"), "{out}");
        assert!(out.contains(REDACTED), "{out}");
        let out = scrub(&[secret], "key ...JKLwxyz rejected");
        assert!(!out.contains("JKLwxyz"), "{out}");
        // Unrelated masked tokens stay.
        assert_eq!(scrub(&[secret], "id ab**cd"), "id ab**cd");
    }

    #[test]
    fn short_secrets_are_removed_as_whole_tokens_only() {
        let out = scrub(&["ab"], "settings [{api_key=ab}] unknown; about tabs");
        assert_eq!(out, "settings [{api_key=<redacted>}] unknown; about tabs");
        let out = scrub(&["x1y"], "key x1y refused");
        assert_eq!(out, "key <redacted> refused");
    }

    #[test]
    fn nothing_to_scrub_is_identity() {
        assert_eq!(scrub(&[], "text"), "text");
        assert_eq!(scrub(&["zzzzzzzzzz"], "plain text"), "plain text");
    }
}
