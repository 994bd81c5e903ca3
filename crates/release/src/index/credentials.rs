//! The index's credentials: from the environment, else `~/.pypirc`; never printed.

use base64::Engine;
use std::collections::BTreeMap;
use std::path::Path;

/// An API token for the index, sent as the password of user `__token__`.
pub const TOKEN_VAR: &str = "GRADIENT_INDEX_TOKEN";
/// The index user name (with [`PASSWORD_VAR`]).
pub const USERNAME_VAR: &str = "GRADIENT_INDEX_USERNAME";
/// The index password (with [`USERNAME_VAR`]).
pub const PASSWORD_VAR: &str = "GRADIENT_INDEX_PASSWORD";

/// A user and password (or `__token__` and a token) for the index. Never printed: its
/// `Debug` shows the user only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    pub(super) password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}:***)", self.username)
    }
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// An API token, sent as the password of user `__token__` (PyPI's convention).
    pub fn token(token: impl Into<String>) -> Credentials {
        Credentials::new("__token__", token)
    }

    /// The user name (not a secret).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The credentials for `index_url`: from the environment, else from `~/.pypirc`.
    pub fn find(index_url: &str) -> Option<Credentials> {
        let found = Credentials::from_vars(|name| std::env::var(name).ok()).or_else(|| {
            let home = std::env::var_os("HOME")?;
            let text = std::fs::read_to_string(Path::new(&home).join(".pypirc")).ok()?;
            Credentials::from_pypirc(&text, index_url)
        });
        if let Some(c) = &found {
            // Masked wherever it might be echoed, as given and in its header form.
            gradient_core::redact::add_secret(&c.password);
            gradient_core::redact::add_secret(c.header().trim_start_matches("Basic "));
        }
        found
    }

    /// [`TOKEN_VAR`], else [`USERNAME_VAR`] and [`PASSWORD_VAR`], looked up with `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Credentials> {
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        if let Some(token) = set(TOKEN_VAR) {
            return Some(Credentials::token(token));
        }
        Some(Credentials::new(set(USERNAME_VAR)?, set(PASSWORD_VAR)?))
    }

    /// The credentials of the `.pypirc` section whose `repository` is `index_url` (a
    /// trailing slash aside); a section with a password and no user name is a token.
    pub fn from_pypirc(text: &str, index_url: &str) -> Option<Credentials> {
        let mut sections: Vec<BTreeMap<String, String>> = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') && line.ends_with(']') {
                sections.push(BTreeMap::new());
            } else if line.starts_with(['#', ';']) || line.is_empty() {
                continue;
            } else if let (Some(section), Some((key, value))) =
                (sections.last_mut(), line.split_once(['=', ':']))
            {
                section.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let wanted = index_url.trim_end_matches('/');
        let section = sections.into_iter().find(|s| {
            s.get("repository")
                .is_some_and(|r| r.trim_end_matches('/') == wanted)
        })?;
        let password = section.get("password").filter(|p| !p.is_empty())?;
        let username = section
            .get("username")
            .filter(|u| !u.is_empty())
            .map_or("__token__", |u| u.as_str());
        Some(Credentials::new(username, password.clone()))
    }

    pub(super) fn header(&self) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.username, self.password))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_a_token_then_user_and_password() {
        let vars = |set: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                set.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            Credentials::from_vars(vars(&[(TOKEN_VAR, "pypi-abc"), (USERNAME_VAR, "u")])),
            Some(Credentials::token("pypi-abc"))
        );
        assert_eq!(
            Credentials::from_vars(vars(&[(USERNAME_VAR, "u"), (PASSWORD_VAR, "p")])),
            Some(Credentials::new("u", "p"))
        );
        assert_eq!(Credentials::from_vars(vars(&[(USERNAME_VAR, "u")])), None);
        assert_eq!(
            format!("{:?}", Credentials::new("u", "hunter22")),
            "Credentials(u:***)"
        );
    }

    #[test]
    fn pypirc_gives_the_section_whose_repository_is_the_url() {
        let text = "[distutils]\nindex-servers =\n    pypi\n    local\n\n[pypi]\nusername = __token__\npassword = pypi-secret\n\n[local]\nrepository: http://127.0.0.1:8080/\nusername = alice\npassword = wonderland\n";
        assert_eq!(
            Credentials::from_pypirc(text, "http://127.0.0.1:8080"),
            Some(Credentials::new("alice", "wonderland"))
        );
        assert_eq!(
            Credentials::from_pypirc(text, "http://127.0.0.1:9999/"),
            None
        );
    }
}
