//! Registry credentials, found where Docker's own client finds them: the environment
//! (`GRADIENT_REGISTRY_USERNAME` and `GRADIENT_REGISTRY_PASSWORD`), else the Docker
//! configuration (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): a credential
//! helper for the host (`credHelpers`), the `auths` entry of the host, the store of every
//! host (`credsStore`). A helper is run as `docker-credential-NAME get` with the registry
//! on its standard input. Secrets stay in [`Credentials`], whose `Debug` hides them; no
//! message quotes them or the variables that hold them.

use super::RegistryError;
use base64::Engine;
use serde_json::Value;
use std::path::PathBuf;

/// The variables that name a user and a password for every registry.
pub const USERNAME_VAR: &str = "GRADIENT_REGISTRY_USERNAME";
pub const PASSWORD_VAR: &str = "GRADIENT_REGISTRY_PASSWORD";

/// A user and a password (or token), and where they came from.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Said in messages: `the environment`, `the Docker configuration `…``, `docker-credential-NAME`.
    pub origin: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ from {} }}", self.origin)
    }
}

/// The credentials for `registry` (`HOST[:PORT]`), or none when nothing is configured.
pub fn find(registry: &str) -> Result<Option<Credentials>, RegistryError> {
    let found = find_anywhere(registry)?;
    if let Some(c) = &found {
        // Masked wherever it might be echoed (a server's message): as given, and as the
        // `Authorization` header carries it.
        gradient_core::redact::add_secret(&c.password);
        gradient_core::redact::add_secret(&super::auth::basic(c));
    }
    Ok(found)
}

fn find_anywhere(registry: &str) -> Result<Option<Credentials>, RegistryError> {
    let username = std::env::var(USERNAME_VAR).ok().filter(|v| !v.is_empty());
    let password = std::env::var(PASSWORD_VAR).ok().filter(|v| !v.is_empty());
    match (username, password) {
        (Some(username), Some(password)) => {
            return Ok(Some(Credentials {
                username,
                password,
                origin: "the environment".into(),
            }))
        }
        (None, None) => {}
        _ => {
            return Err(RegistryError::Credentials {
                origin: "the environment".into(),
                reason: format!("set both {USERNAME_VAR} and {PASSWORD_VAR}, or neither"),
            })
        }
    }
    let Some(path) = config_path() else {
        return Ok(None);
    };
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RegistryError::Credentials {
                origin: format!("`{}`", path.display()),
                reason: format!("it cannot be read: {e}"),
            })
        }
    };
    let origin = format!("the Docker configuration `{}`", path.display());
    let config: Value = serde_json::from_slice(&text).map_err(|e| RegistryError::Credentials {
        origin: origin.clone(),
        reason: format!("it is not JSON ({})", e.classify_name()),
    })?;
    from_config(&config, registry, &origin)
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    /// The kind of a JSON error without its position's text: the file holds secrets.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "a syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "it ends early",
        }
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// The registry an `auths` or `credHelpers` key names: without a scheme or a path.
fn key_registry(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

fn from_config(
    config: &Value,
    registry: &str,
    origin: &str,
) -> Result<Option<Credentials>, RegistryError> {
    let entry = |section: &str| -> Option<(String, Value)> {
        config[section].as_object().and_then(|map| {
            map.iter()
                .find(|(key, _)| key_registry(key) == registry)
                .map(|(key, value)| (key.clone(), value.clone()))
        })
    };
    if let Some((_, Value::String(helper))) = entry("credHelpers") {
        return run_helper(&helper, registry);
    }
    if let Some((key, auth)) = entry("auths") {
        if let Some(encoded) = auth["auth"].as_str().filter(|a| !a.is_empty()) {
            let bad = || RegistryError::Credentials {
                origin: origin.to_string(),
                reason: format!("`auths[\"{key}\"].auth` is not base64 of USER:PASSWORD"),
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, password) = decoded.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials {
                username: username.to_string(),
                password: password.to_string(),
                origin: origin.to_string(),
            }));
        }
    }
    if let Some(store) = config["credsStore"].as_str().filter(|s| !s.is_empty()) {
        return run_helper(store, registry);
    }
    Ok(None)
}

/// Ask `docker-credential-NAME get` for the credentials of `registry`.
fn run_helper(name: &str, registry: &str) -> Result<Option<Credentials>, RegistryError> {
    let program = format!("docker-credential-{name}");
    let bad = |reason: String| RegistryError::Credentials {
        origin: format!("`{program}`"),
        reason,
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(bad(
            "the helper's name holds characters a program name cannot".into(),
        ));
    }
    use std::io::Write;
    // The helper needs none of gradient's own secrets.
    let mut child = std::process::Command::new(&program)
        .env_remove(PASSWORD_VAR)
        .env_remove(crate::keys::KEY_VAR)
        .env_remove(crate::keys::PASSPHRASE_VAR)
        .env_remove(crate::index::TOKEN_VAR)
        .env_remove(crate::index::PASSWORD_VAR)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| bad(format!("it cannot be run: {e}")))?;
    let written = child
        .stdin
        .take()
        .expect("piped")
        .write_all(registry.as_bytes());
    let output = child
        .wait_with_output()
        .map_err(|e| bad(format!("it cannot be run: {e}")))?;
    written.map_err(|e| bad(format!("it did not take the registry's name: {e}")))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stdout);
        if said.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        // Its words are not quoted: a helper may echo what it holds.
        return Err(bad(format!("it failed ({})", output.status)));
    }
    let answer: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| bad(format!("its answer is not JSON ({})", e.classify_name())))?;
    let (Some(username), Some(secret)) = (answer["Username"].as_str(), answer["Secret"].as_str())
    else {
        return Err(bad("its answer lacks `Username` or `Secret`".into()));
    };
    Ok(Some(Credentials {
        username: username.to_string(),
        password: secret.to_string(),
        origin: format!("`{program}`"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auths_are_matched_by_host_and_decoded() {
        let config = json!({"auths": {
            "https://other:5000/v1/": {"auth": "eDp5"},
            "http://127.0.0.1:5000": {"auth": "dXNlcjpwOnc="},
        }});
        let found = from_config(&config, "127.0.0.1:5000", "here")
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("user", "p:w")
        );
        assert!(from_config(&config, "127.0.0.1:5001", "here")
            .unwrap()
            .is_none());
        let broken = json!({"auths": {"h": {"auth": "not base64!"}}});
        let error = from_config(&broken, "h", "here").unwrap_err().to_string();
        assert!(!error.contains("not base64!"), "{error}");
        assert!(!format!("{found:?}").contains("p:w"));
    }
}
