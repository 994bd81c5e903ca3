//! Secrets never leave the process: every text gradient prints, logs or records (errors,
//! warnings, the backend's output, the manifest and the reports) passes through [`redact`].
//!
//! Two things are hidden:
//! - the credentials of any URL in the text (`https://user:***@host`, or `https://***@host`
//!   when a token stands alone before the `@`), as pip shows index URLs;
//! - the value of every environment variable whose name says it holds a secret (`*TOKEN*`,
//!   `*SECRET*`, `*PASSWORD*`, `*KEY*`, `*AUTH*`, `*CREDENTIAL*`, ...), and the password of
//!   every URL found in the environment, wherever such a value appears: a tool that echoes
//!   its environment must not carry a CI token into a release's manifest.
//!
//! Commands are shown as a program and its arguments only ([`show_command`]); an environment
//! is never rendered.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::sync::{OnceLock, RwLock};

/// What replaces a secret.
pub const MASK: &str = "***";

/// Words that mark a variable's value as a secret when the name ends with one
/// (`PGPASSWORD`, `NPM_TOKEN`) or holds one between underscores (`AWS_SECRET_ACCESS_KEY`).
/// Whole words, so that `XDG_SESSION_TYPE` or `KEYBOARD` keep their values visible.
const SECRET_WORDS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASS",
    "KEY",
    "APIKEY",
    "AUTH",
    "CREDENTIAL",
    "CREDENTIALS",
    "COOKIE",
    "PAT",
];

/// Values shorter than this are not masked by value (they would mask ordinary words).
const MIN_SECRET_LEN: usize = 8;

/// Whether a variable named `name` holds a secret (see [`SECRET_WORDS`]).
fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS
        .iter()
        .any(|word| upper.ends_with(word) || upper.split('_').any(|part| part == *word))
}

/// Secrets found while running, not in the environment: a password from a configuration
/// file or a credential helper, its `Authorization` form, a token a server handed out.
static FOUND_SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Values shorter than this are not registered by [`add_secret`].
const MIN_FOUND_SECRET_LEN: usize = 4;

/// Mask `secret` in every text [`redact`] sees from now on, as an environment secret is.
pub fn add_secret(secret: &str) {
    if secret.len() < MIN_FOUND_SECRET_LEN {
        return;
    }
    let mut found = FOUND_SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !found.iter().any(|s| s == secret) {
        found.push(secret.to_string());
        found.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }
}

/// `text` with every secret masked. Cheap when there is nothing to hide.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = redact_url_credentials(text);
    let found = FOUND_SECRETS.read().unwrap_or_else(|e| e.into_inner());
    for secret in found.iter().chain(environment_secrets()) {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

/// A command as a user can read it: the program and its arguments, quoted where needed,
/// with secrets masked. Never the environment, whatever the command was given.
pub fn show_command(program: &OsStr, args: &[&OsStr]) -> String {
    let mut shown = quote(program);
    for arg in args {
        shown.push(' ');
        shown.push_str(&quote(arg));
    }
    redact(&shown).into_owned()
}

fn quote(word: &OsStr) -> String {
    let text = word.to_string_lossy();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Mask the user information of every `scheme://user:password@host` in `text`.
fn redact_url_credentials(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends at the first '/', '?', '#', or whitespace or quote.
        let end = after
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) if at > 0 => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _password)) => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    None => out.push_str(MASK),
                }
                out.push_str(&authority[at..]);
                changed = true;
            }
            _ => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// The secret values of this process's environment, longest first (so that a secret that
/// contains another is masked whole).
fn environment_secrets() -> &'static [String] {
    static SECRETS: OnceLock<Vec<String>> = OnceLock::new();
    SECRETS.get_or_init(|| {
        secrets_of(std::env::vars_os().map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        }))
    })
}

fn secrets_of(vars: impl Iterator<Item = (String, String)>) -> Vec<String> {
    let mut secrets = Vec::new();
    for (name, value) in vars {
        if is_secret_name(&name) {
            secrets.push(value.clone());
        }
        secrets.extend(url_passwords(&value));
    }
    secrets.retain(|s| s.len() >= MIN_SECRET_LEN);
    // As JSON writes them too: a secret holding `"` or `\` appears escaped in the manifest.
    let escaped: Vec<String> = secrets
        .iter()
        .filter_map(|s| {
            let json = serde_json::to_string(s).ok()?;
            let inner = &json[1..json.len() - 1];
            (inner != s).then(|| inner.to_string())
        })
        .collect();
    secrets.extend(escaped);
    secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    secrets.dedup();
    secrets
}

/// The password (or lone token) of every URL in `text`.
fn url_passwords(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("://") {
        let after = &text[at + 3..];
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(after.len());
        if let Some(userinfo) = after[..end].rsplit_once('@').map(|(u, _)| u) {
            let secret = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
            if !secret.is_empty() {
                found.push(secret.to_string());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_found_while_running_are_masked_from_then_on() {
        let secret = "hunter2-found-in-a-config";
        assert_eq!(redact(&format!("a {secret} b")), format!("a {secret} b"));
        add_secret(secret);
        add_secret("ab");
        assert_eq!(redact(&format!("a {secret} b")), "a *** b");
        assert_eq!(redact("ab cd"), "ab cd", "too short to be told from a word");
    }

    #[test]
    fn url_credentials_are_masked_and_the_rest_kept() {
        assert_eq!(
            redact_url_credentials("see https://alice:s3cret@pypi.example/simple/ now"),
            "see https://alice:***@pypi.example/simple/ now"
        );
        assert_eq!(
            redact_url_credentials("`https://tok123@host:8080/x` and http://h/y"),
            "`https://***@host:8080/x` and http://h/y"
        );
        assert_eq!(
            redact_url_credentials("git+ssh://git@host/repo"),
            "git+ssh://***@host/repo"
        );
        assert!(matches!(
            redact_url_credentials("file:///tmp/a@b/c https://host/p@x"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn secret_looking_variables_and_url_passwords_are_collected() {
        let secrets = secrets_of(
            [
                ("FOO_TOKEN", "tok-abcdef"),
                ("PIP_INDEX_URL", "https://u:pw-1234567@host/simple"),
                ("PGPASSWORD", "quo\"ted-pw"),
                ("HOME", "/root"),
                ("API_KEY", "x"),
                ("XDG_SESSION_DESKTOP", "ubuntu-desktop"),
                ("KEYBOARD", "us-international"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let mut found = secrets.clone();
        found.sort();
        assert_eq!(
            found,
            ["pw-1234567", "quo\"ted-pw", "quo\\\"ted-pw", "tok-abcdef"]
        );
        // Longest first, so that a secret holding another is masked whole.
        assert_eq!(secrets[0], "quo\\\"ted-pw");
    }

    #[test]
    fn commands_show_arguments_quoted_and_masked() {
        let shown = show_command(
            OsStr::new("/usr/bin/uv"),
            &[
                OsStr::new("pip"),
                OsStr::new("--index-url"),
                OsStr::new("https://u:p@h/simple"),
                OsStr::new("a b"),
            ],
        );
        assert_eq!(
            shown,
            "/usr/bin/uv pip --index-url https://u:***@h/simple 'a b'"
        );
    }
}
