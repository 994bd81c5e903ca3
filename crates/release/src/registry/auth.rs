//! Credentials answered to what a registry asks: `Basic` with the user and password, or
//! `Bearer` with a token from the realm it names (asked with the same credentials when
//! there are any), kept per scope (`repository:NAME:pull,push`). The header values are
//! marked sensitive; no message holds them.

use super::client::{retryable_status, server_message, Session, Try};
use super::credentials::Credentials;
use super::RegistryError;
use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Method, Url};
use std::collections::HashMap;

/// What the server asked for.
#[derive(Clone, Debug)]
pub(crate) enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Session {
    /// The `Authorization` header for `scope` (`repository:NAME:pull,push`), when the
    /// server asks for one and credentials or its token service give one.
    pub(crate) async fn authorization(&self, scope: &str) -> Result<Option<HeaderValue>, Try> {
        let challenge = self.challenge.lock().expect("not poisoned").clone();
        let value = match &challenge {
            Challenge::None => return Ok(None),
            Challenge::Basic => match &self.credentials {
                None => return Ok(None),
                Some(c) => format!("Basic {}", basic(c)),
            },
            Challenge::Bearer { realm, service } => {
                let mut tokens = self.tokens.lock().await;
                let token = match tokens.get(scope) {
                    Some(token) => token.clone(),
                    None => {
                        let token = self.token(realm, service.as_deref(), scope).await?;
                        gradient_core::redact::add_secret(&token);
                        tokens.insert(scope.to_string(), token.clone());
                        token
                    }
                };
                format!("Bearer {token}")
            }
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            Try::Stop(RegistryError::Credentials {
                origin: self.credential_origin(),
                reason: "the credentials hold characters a header cannot".into(),
            })
        })?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    pub(crate) fn credential_origin(&self) -> String {
        self.credentials
            .as_ref()
            .map_or("no credentials".into(), |c| c.origin.clone())
    }

    /// A token for `scope` from the realm, asked with the credentials when there are any.
    async fn token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String, Try> {
        let mut url = Url::parse(realm).map_err(|_| {
            Try::Stop(RegistryError::Status {
                action: "authenticate to".into(),
                url: self.origin(),
                status: 401,
                message: "the token realm the server names is not a URL".into(),
            })
        })?;
        // Plain http only where the registry itself is plain and the realm is on its host or
        // on this machine: a registry reached over a port forward must not send the
        // credentials in clear to a host of its choosing.
        let realm_is_local = match url.host() {
            Some(url::Host::Domain(name)) => name == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        let plain_allowed = url.scheme() == "http"
            && self.base.scheme() == "http"
            && (realm_is_local || url.host_str() == self.base.host_str());
        if url.scheme() != "https" && !plain_allowed {
            return Err(Try::Stop(RegistryError::Insecure {
                url: realm.to_string(),
            }));
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for scope in scope.split(' ') {
                query.append_pair("scope", scope);
            }
        }
        let mut headers = HeaderMap::new();
        if let Some(c) = &self.credentials {
            let mut value =
                HeaderValue::from_str(&format!("Basic {}", basic(c))).map_err(|_| {
                    Try::Stop(RegistryError::Credentials {
                        origin: c.origin.clone(),
                        reason: "the credentials hold characters a header cannot".into(),
                    })
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let answer = self.raw(Method::GET, url.clone(), headers, None).await?;
        let answer = retryable_status(answer)?;
        // The realm's URL is shown without its query (it carries nothing secret, but short).
        let shown = format!("{}://{}{}", url.scheme(), url.authority(), url.path());
        if !answer.status.is_success() {
            return Err(Try::Stop(RegistryError::Auth {
                registry: self.destination.registry(),
                url: shown,
                status: answer.status.as_u16(),
                message: server_message(&answer.body),
                origin: self.credential_origin(),
            }));
        }
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                Try::Stop(RegistryError::Status {
                    action: "get a token from".into(),
                    url: shown,
                    status: answer.status.as_u16(),
                    message: "the answer holds no token".into(),
                })
            })
    }
}

pub(crate) fn basic(c: &Credentials) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
}

/// The challenge of a `WWW-Authenticate` header.
pub(crate) fn parse_challenge(header: Option<&str>) -> Option<Challenge> {
    let header = header?.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = auth_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
    })
}

/// `key="value", key=value` pairs (quoted values may hold commas).
fn auth_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        params.insert(key, value.to_string());
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_read() {
        assert!(matches!(
            parse_challenge(Some("Basic realm=\"basic-realm\"")),
            Some(Challenge::Basic)
        ));
        match parse_challenge(Some(
            "Bearer realm=\"https://auth.test/token\",service=\"reg.test\",scope=\"repository:a/b:pull,push\"",
        )) {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "https://auth.test/token");
                assert_eq!(service.as_deref(), Some("reg.test"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_challenge(Some("Negotiate abc")).is_none());
        assert!(parse_challenge(Some("Bearer service=x")).is_none());
    }
}
