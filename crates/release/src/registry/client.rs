//! A session with one registry: the scheme chosen (https; plain http only for loopback
//! hosts, after https failed, as Docker does, or with `insecure`), the challenge of
//! `GET /v2/` read, each request sent with the credentials it asks for ([`super::auth`]),
//! and every operation ([`super::api`]) retried with backoff on connection errors, 429 and
//! 5xx.
//!
//! An operation is retried as a whole: a blob upload that breaks off is started again
//! from its POST, since what a registry kept of a broken PATCH is not known.

use super::auth::{parse_challenge, Challenge};
use super::credentials::{self, Credentials};
use super::{Destination, RegistryError, RegistryOptions};
use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::{Method, StatusCode, Url};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::sync::Mutex;

/// How many times an operation is tried before its error is given.
const ATTEMPTS: u32 = 4;
/// The first wait between attempts; each later one doubles.
const FIRST_BACKOFF: Duration = Duration::from_millis(400);
/// The longest wait between attempts.
const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// The largest answer read from a registry: manifests, tokens and the attachments verify
/// fetches are far smaller (the client never downloads an image's layers).
const MAX_ANSWER: usize = 64 << 20;

/// A connection to one registry, for one repository.
pub struct Session {
    http: reqwest::Client,
    /// `https://HOST[:PORT]` or `http://…`.
    pub(crate) base: Url,
    pub destination: Destination,
    pub(crate) credentials: Option<Credentials>,
    /// What the server last asked for (a 401 may change it).
    pub(crate) challenge: std::sync::Mutex<Challenge>,
    pub(crate) tokens: Mutex<HashMap<String, String>>,
}

/// A failure of one try: whether trying again may help.
pub(crate) enum Try {
    Again(RegistryError),
    Stop(RegistryError),
}

impl From<RegistryError> for Try {
    fn from(e: RegistryError) -> Try {
        Try::Stop(e)
    }
}

/// What a request answered.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub url: Url,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Session {
    /// Connect to the registry of `destination`: choose the scheme, read the challenge of
    /// `GET /v2/`, find the credentials.
    pub async fn open(
        destination: &Destination,
        options: &RegistryOptions,
    ) -> Result<Session, RegistryError> {
        let host = destination.registry();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(600))
            .user_agent(concat!("gradient/", env!("CARGO_PKG_VERSION")))
            // Redirects (a blob served from elsewhere) never step down from https to http;
            // reqwest drops the credentials when one leaves the registry's host.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let downgrade = attempt.url().scheme() == "http"
                    && attempt.previous().iter().any(|u| u.scheme() == "https");
                if downgrade {
                    attempt.error("a redirect from https to plain http")
                } else if attempt.previous().len() > 5 {
                    attempt.error("too many redirects")
                } else {
                    attempt.follow()
                }
            }));
        if let Some(ca) = &options.ca_file {
            let pem = std::fs::read(ca).map_err(|e| RegistryError::Tls {
                path: ca.clone(),
                reason: e.to_string(),
            })?;
            let certificates =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| RegistryError::Tls {
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
            if certificates.is_empty() {
                return Err(RegistryError::Tls {
                    path: ca.clone(),
                    reason: "it holds no PEM certificate".into(),
                });
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if options.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|e| RegistryError::Connect {
            url: format!("https://{host}/v2/"),
            attempts: 0,
            reason: e.to_string(),
        })?;
        let credentials = credentials::find(&host)?;
        let plain_allowed = options.insecure || destination.is_loopback();
        let mut session = Session {
            http,
            base: Url::parse(&format!("https://{host}/")).expect("a checked host makes a URL"),
            destination: destination.clone(),
            credentials,
            challenge: std::sync::Mutex::new(Challenge::None),
            tokens: Mutex::new(HashMap::new()),
        };
        // Where plain http may follow, https is tried once: a server that speaks only
        // plain http fails the handshake the same way every time.
        let first = if plain_allowed {
            session.ping_once().await
        } else {
            session.ping().await
        };
        let ping = match first {
            Err(RegistryError::Connect { url, reason, .. }) if plain_allowed => {
                tracing::debug!("https to {host} failed ({reason}); trying plain http");
                session.base =
                    Url::parse(&format!("http://{host}/")).expect("a checked host makes a URL");
                // When plain http fails too, the https failure is the one to tell.
                let both = |plain: String, attempts: u32| RegistryError::Connect {
                    url: url.clone(),
                    attempts,
                    reason: format!("{reason}; over plain http: {plain}"),
                };
                match session.ping().await {
                    Err(RegistryError::Connect {
                        reason: plain,
                        attempts,
                        ..
                    }) => return Err(both(plain, attempts)),
                    Err(other) => return Err(other),
                    Ok(answer)
                        if answer.status.is_success()
                            || answer.status == StatusCode::UNAUTHORIZED =>
                    {
                        answer
                    }
                    Ok(answer) => {
                        let said = format!(
                            "the server answered {}: {}",
                            answer.status.as_u16(),
                            server_message(&answer.body)
                        );
                        return Err(both(said, 1));
                    }
                }
            }
            other => other?,
        };
        let challenge = match ping.status {
            StatusCode::UNAUTHORIZED => parse_challenge(ping.header("www-authenticate"))
                .ok_or_else(|| RegistryError::Status {
                    action: "authenticate to".into(),
                    url: ping.url.to_string(),
                    status: ping.status.as_u16(),
                    message: "the server asks for credentials in a way gradient does not know (neither Basic nor Bearer)".into(),
                })?,
            status if status.is_success() => Challenge::None,
            status => {
                return Err(RegistryError::Status {
                    action: "reach the registry API at".into(),
                    url: ping.url.to_string(),
                    status: status.as_u16(),
                    message: server_message(&ping.body),
                })
            }
        };
        if !matches!(challenge, Challenge::None) && session.credentials.is_none() {
            tracing::debug!("{host} asks for credentials and none are configured");
        }
        *session.challenge.lock().expect("not poisoned") = challenge;
        Ok(session)
    }

    /// `GET /v2/`, tried once.
    async fn ping_once(&self) -> Result<Answer, RegistryError> {
        match self
            .raw(Method::GET, self.url("v2/"), HeaderMap::new(), None)
            .await
        {
            Ok(answer) => Ok(answer),
            Err(Try::Again(e) | Try::Stop(e)) => Err(with_attempts(e, 1)),
        }
    }

    /// `GET /v2/`, retried.
    async fn ping(&self) -> Result<Answer, RegistryError> {
        let url = self.url("v2/");
        retry(|| async {
            let answer = self
                .raw(Method::GET, url.clone(), HeaderMap::new(), None)
                .await?;
            retryable_status(answer)
        })
        .await
    }

    /// The base URL, as messages show it (`https://HOST[:PORT]`).
    pub fn origin(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// `BASE/PATH`.
    pub fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("a checked path joins")
    }

    /// `/v2/REPOSITORY/…`.
    pub fn repo_url(&self, rest: &str) -> Url {
        self.url(&format!("v2/{}/{rest}", self.destination.repository))
    }

    /// One request, without retry: no answer is a [`Try::Again`].
    pub(crate) async fn raw(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, Try> {
        let mut request = self.http.request(method, url.clone()).headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        // The error is shown without its URL: an upload's carries the upload's state.
        let response = request.send().await.map_err(|e| {
            Try::Again(RegistryError::Connect {
                url: redacted_url(&url),
                attempts: ATTEMPTS,
                reason: error_chain(&e.without_url()),
            })
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let url = response.url().clone();
        // Read up to a cap: a registry cannot fill the memory with an endless answer.
        let mut response = response;
        let mut body = Vec::new();
        loop {
            let chunk = response.chunk().await.map_err(|e| {
                Try::Again(RegistryError::Connect {
                    url: redacted_url(&url),
                    attempts: ATTEMPTS,
                    reason: error_chain(&e.without_url()),
                })
            })?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(Try::Stop(RegistryError::Status {
                    action: "read the answer of".into(),
                    url: redacted_url(&url),
                    status: status.as_u16(),
                    message: format!("it is larger than {} MiB", MAX_ANSWER >> 20),
                }));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body,
            url,
        })
    }

    /// One request with the credentials the server asks for; a 401 on a token clears it
    /// and asks for a new one once. Not retried: see [`retry`].
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
        push: bool,
    ) -> Result<Answer, Try> {
        let scope = format!(
            "repository:{}:{}",
            self.destination.repository,
            if push { "pull,push" } else { "pull" }
        );
        self.send_scoped(method, url, headers, body, &scope).await
    }

    /// [`Session::send`] with a token scope of its own (scopes separated by spaces).
    pub(crate) async fn send_scoped(
        &self,
        method: Method,
        url: Url,
        mut headers: HeaderMap,
        body: Option<Vec<u8>>,
        scope: &str,
    ) -> Result<Answer, Try> {
        let scope = scope.to_string();
        // Credentials go only to the registry itself (an upload location may be elsewhere).
        let same_origin = url.origin() == self.base.origin();
        if url.scheme() == "http" && self.base.scheme() == "https" {
            return Err(Try::Stop(RegistryError::Insecure {
                url: redacted_url(&url),
            }));
        }
        for round in 0..2 {
            if same_origin {
                match self.authorization(&scope).await? {
                    Some(value) => headers.insert(AUTHORIZATION, value),
                    None => headers.remove(AUTHORIZATION),
                };
            }
            let answer = self
                .raw(method.clone(), url.clone(), headers.clone(), body.clone())
                .await?;
            // A redirect may have led elsewhere: only the registry's own answer sets
            // what is asked of the credentials.
            let answered_by_registry = answer.url.origin() == self.base.origin();
            if answer.status == StatusCode::UNAUTHORIZED && same_origin && answered_by_registry {
                // Once more with what this answer asks for: a registry may let anyone
                // list `/v2/` and ask for credentials only to push, and a token expires.
                if let (0, Some(asked)) =
                    (round, parse_challenge(answer.header("www-authenticate")))
                {
                    self.tokens.lock().await.remove(&scope);
                    *self.challenge.lock().expect("not poisoned") = asked;
                    continue;
                }
                return Err(Try::Stop(RegistryError::Auth {
                    registry: self.destination.registry(),
                    url: redacted_url(&answer.url),
                    status: answer.status.as_u16(),
                    message: server_message(&answer.body),
                    origin: self.credential_origin(),
                }));
            }
            if answer.status == StatusCode::FORBIDDEN {
                return Err(Try::Stop(RegistryError::Auth {
                    registry: self.destination.registry(),
                    url: redacted_url(&answer.url),
                    status: answer.status.as_u16(),
                    message: server_message(&answer.body),
                    origin: self.credential_origin(),
                }));
            }
            return retryable_status(answer);
        }
        unreachable!("the loop returns")
    }
}

/// Try an operation up to [`ATTEMPTS`] times, waiting longer each time, while it fails
/// in a way that may pass (no answer, 429, 5xx).
pub(crate) async fn retry<T, F, Fut>(mut operation: F) -> Result<T, RegistryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Try>>,
{
    let mut wait = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(Try::Stop(e)) => return Err(e),
            Err(Try::Again(e)) if attempt == ATTEMPTS => return Err(with_attempts(e, ATTEMPTS)),
            Err(Try::Again(e)) => {
                tracing::debug!("attempt {attempt} of {ATTEMPTS} failed: {e}; trying again");
                tokio::time::sleep(wait.min(LONGEST_WAIT)).await;
                wait *= 2;
            }
        }
    }
    unreachable!("the loop returns")
}

fn with_attempts(e: RegistryError, attempts: u32) -> RegistryError {
    match e {
        RegistryError::Connect { url, reason, .. } => RegistryError::Connect {
            url,
            attempts,
            reason,
        },
        RegistryError::Status {
            action,
            url,
            status,
            message,
        } => RegistryError::Status {
            action,
            url,
            status,
            message: format!("{message} (after {attempts} attempts)"),
        },
        other => other,
    }
}

/// An answer that may pass on a later try (429, 5xx) as [`Try::Again`].
pub(crate) fn retryable_status(answer: Answer) -> Result<Answer, Try> {
    if answer.status == StatusCode::TOO_MANY_REQUESTS || answer.status.is_server_error() {
        return Err(Try::Again(status_error("reach", &answer)));
    }
    Ok(answer)
}

/// What the server said in its `errors` list, or its first line: no request data.
pub fn server_message(body: &[u8]) -> String {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let errors: Vec<String> = parsed["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{}: {}",
                e["code"].as_str().unwrap_or("ERROR"),
                e["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let text = if errors.is_empty() {
        let text = String::from_utf8_lossy(body);
        text.lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect()
    } else {
        errors.join("; ")
    };
    gradient_core::redact(&text).into_owned()
}

/// A URL without its query (upload locations carry the upload's state there).
pub fn redacted_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.to_string()
}

pub(crate) fn status_error(action: &str, answer: &Answer) -> RegistryError {
    RegistryError::Status {
        action: action.to_string(),
        url: redacted_url(&answer.url),
        status: answer.status.as_u16(),
        message: server_message(&answer.body),
    }
}

/// An error and its causes on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    gradient_core::redact(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_come_from_the_errors_list() {
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
        assert_eq!(
            server_message(body),
            "UNAUTHORIZED: authentication required"
        );
        let url = Url::parse("http://h:1/v2/a/blobs/uploads/x?_state=secret").unwrap();
        assert_eq!(redacted_url(&url), "http://h:1/v2/a/blobs/uploads/x");
    }
}
