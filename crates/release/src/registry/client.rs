//! One registry, spoken to over the OCI distribution API: the scheme chosen (https; plain
//! http only for loopback hosts, after https failed, as Docker does, or with `insecure`),
//! the credentials answered to the server's challenge (`Basic`, or a `Bearer` token from
//! its realm, kept per scope), and every operation retried with backoff on connection
//! errors, 429 and 5xx.
//!
//! An operation is retried as a whole: a blob upload that breaks off is started again
//! from its POST, since what a registry kept of a broken PATCH is not known.

use super::credentials::{self, Credentials};
use super::layout::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use super::{Destination, RegistryError, RegistryOptions};
use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::sync::Mutex;

/// How many times an operation is tried before its error is given.
const ATTEMPTS: u32 = 4;
/// The first wait between attempts; each later one doubles.
const FIRST_BACKOFF: Duration = Duration::from_millis(400);
/// The longest wait a 429's `Retry-After` may ask for.
const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// The size of an upload's chunks.
pub const DEFAULT_CHUNK: u64 = 8 << 20;

/// Every manifest type gradient reads, for `Accept`.
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// What the server asked for.
#[derive(Clone, Debug)]
enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A connection to one registry, for one repository.
pub struct Session {
    http: reqwest::Client,
    /// `https://HOST[:PORT]` or `http://…`.
    base: Url,
    pub destination: Destination,
    credentials: Option<Credentials>,
    /// What the server last asked for (a 401 may change it).
    challenge: std::sync::Mutex<Challenge>,
    tokens: Mutex<HashMap<String, String>>,
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
                session.ping().await.map_err(|e| match e {
                    RegistryError::Connect {
                        reason: plain,
                        attempts,
                        ..
                    } => RegistryError::Connect {
                        url,
                        attempts,
                        reason: format!("{reason}; over plain http: {plain}"),
                    },
                    other => other,
                })?
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
    async fn raw(
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
        let body = response.bytes().await.map_err(|e| {
            Try::Again(RegistryError::Connect {
                url: redacted_url(&url),
                attempts: ATTEMPTS,
                reason: error_chain(&e.without_url()),
            })
        })?;
        Ok(Answer {
            status,
            headers,
            body: body.to_vec(),
            url,
        })
    }

    /// The `Authorization` header for `scope` (`repository:NAME:pull,push`), when the
    /// server asks for one and credentials or its token service give one.
    async fn authorization(&self, scope: &str) -> Result<Option<HeaderValue>, Try> {
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

    fn credential_origin(&self) -> String {
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
        if url.scheme() != "https" && !(url.scheme() == "http" && self.base.scheme() == "http") {
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
    async fn send_scoped(
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
                url: url.to_string(),
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
            if answer.status == StatusCode::UNAUTHORIZED && same_origin {
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

    /// The digest a manifest reference (a tag or a digest) points at, or `None` when the
    /// registry does not hold it.
    pub async fn manifest_digest(&self, reference: &str) -> Result<Option<String>, RegistryError> {
        let url = self.repo_url(&format!("manifests/{reference}"));
        retry(|| async {
            let answer = self
                .send(Method::HEAD, url.clone(), accept_manifests(), None, false)
                .await?;
            match answer.status {
                StatusCode::NOT_FOUND => Ok(None),
                s if s.is_success() => {
                    Ok(answer.header("docker-content-digest").map(str::to_string))
                }
                _ => Err(Try::Stop(status_error("look up", &answer))),
            }
        })
        .await
    }

    /// A manifest's bytes and media type, checked against the digest when `reference`
    /// is one; `None` when the registry does not hold it.
    pub async fn get_manifest(
        &self,
        reference: &str,
    ) -> Result<Option<(Vec<u8>, String)>, RegistryError> {
        let url = self.repo_url(&format!("manifests/{reference}"));
        let answer = retry(|| async {
            let answer = self
                .send(Method::GET, url.clone(), accept_manifests(), None, false)
                .await?;
            match answer.status {
                StatusCode::NOT_FOUND => Ok(None),
                s if s.is_success() => Ok(Some(answer)),
                _ => Err(Try::Stop(status_error("fetch", &answer))),
            }
        })
        .await?;
        let Some(answer) = answer else {
            return Ok(None);
        };
        if reference.starts_with("sha256:") {
            check_content(&answer.url, reference, &answer.body)?;
        }
        let media_type = answer
            .header("content-type")
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        Ok(Some((answer.body, media_type)))
    }

    /// PUT a manifest under `reference` (its digest or a tag); gives the digest the
    /// server acknowledged (checked against `digest`) and whether it took the `subject`
    /// into its referrers (`OCI-Subject`).
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let url = self.repo_url(&format!("manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| RegistryError::BadContent {
                reason: format!("the media type `{media_type}` cannot be a header"),
            })?,
        );
        let answer = retry(|| async {
            let answer = self
                .send(
                    Method::PUT,
                    url.clone(),
                    headers.clone(),
                    Some(bytes.to_vec()),
                    true,
                )
                .await?;
            if answer.status.is_success() {
                Ok(answer)
            } else {
                Err(Try::Stop(status_error("store a manifest at", &answer)))
            }
        })
        .await?;
        acknowledged(&answer, digest)?;
        Ok(answer.header("oci-subject").is_some())
    }

    /// Whether the repository holds the blob `digest`.
    pub async fn has_blob(&self, digest: &str) -> Result<bool, RegistryError> {
        let url = self.repo_url(&format!("blobs/{digest}"));
        retry(|| async {
            let answer = self
                .send(Method::HEAD, url.clone(), HeaderMap::new(), None, true)
                .await?;
            match answer.status {
                StatusCode::NOT_FOUND => Ok(false),
                s if s.is_success() => Ok(true),
                _ => Err(Try::Stop(status_error("look up", &answer))),
            }
        })
        .await
    }

    /// A blob's bytes, checked against `digest`.
    pub async fn get_blob(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let url = self.repo_url(&format!("blobs/{digest}"));
        let answer = retry(|| async {
            let answer = self
                .send(Method::GET, url.clone(), HeaderMap::new(), None, false)
                .await?;
            if answer.status.is_success() {
                Ok(answer)
            } else {
                Err(Try::Stop(status_error("fetch", &answer)))
            }
        })
        .await?;
        check_content(&answer.url, digest, &answer.body)?;
        Ok(answer.body)
    }

    /// Upload a blob of `size` bytes: POST, then PATCH chunks of `chunk` bytes with their
    /// `Content-Range`, then PUT `?digest=`; each chunk's bytes come from `read(start, len)`
    /// and are hashed on the way, so a blob that is not what its digest says is never
    /// committed. Retried as a whole.
    ///
    /// First, for each repository of `mount_from` (on the same registry), the blob is
    /// asked to be mounted from there; a mount sends no bytes, and gives the repository.
    pub async fn upload_blob(
        &self,
        digest: &str,
        size: u64,
        chunk: u64,
        mount_from: &[String],
        read: &(dyn Fn(u64, u64) -> Result<Vec<u8>, RegistryError> + Sync),
    ) -> Result<Option<String>, RegistryError> {
        retry(|| async {
            let mut started = None;
            for from in mount_from {
                let mut url = self.repo_url("blobs/uploads/");
                url.query_pairs_mut()
                    .append_pair("mount", digest)
                    .append_pair("from", from);
                let scope = format!(
                    "repository:{}:pull,push repository:{from}:pull",
                    self.destination.repository
                );
                let answer = self
                    .send_scoped(Method::POST, url, HeaderMap::new(), None, &scope)
                    .await?;
                match answer.status {
                    StatusCode::CREATED => return Ok(Some(from.clone())),
                    // Not mounted, but an upload started: use it.
                    StatusCode::ACCEPTED => {
                        started = Some(answer);
                        break;
                    }
                    _ => {}
                }
            }
            let answer = match started {
                Some(answer) => answer,
                None => {
                    let start_url = self.repo_url("blobs/uploads/");
                    self.send(Method::POST, start_url, HeaderMap::new(), None, true)
                        .await?
                }
            };
            if answer.status != StatusCode::ACCEPTED {
                return Err(Try::Stop(status_error("start an upload at", &answer)));
            }
            let mut location = self.location(&answer)?;
            let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
            let mut start = 0;
            while start < size {
                let bytes = read(start, chunk)?;
                if bytes.is_empty() {
                    return Err(Try::Stop(RegistryError::BadContent {
                        reason: format!("the blob {digest} ends early"),
                    }));
                }
                sha2::Digest::update(&mut hasher, &bytes);
                let end = start + bytes.len() as u64;
                let mut headers = HeaderMap::new();
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                headers.insert(
                    "content-range",
                    HeaderValue::from_str(&format!("{start}-{}", end - 1)).expect("digits"),
                );
                let answer = self
                    .send(Method::PATCH, location.clone(), headers, Some(bytes), true)
                    .await?;
                if answer.status != StatusCode::ACCEPTED {
                    return Err(Try::Stop(status_error("upload a chunk to", &answer)));
                }
                location = self.location(&answer)?;
                start = end;
            }
            let actual = format!("sha256:{}", hex::encode(sha2::Digest::finalize(hasher)));
            if actual != digest {
                return Err(Try::Stop(RegistryError::BadContent {
                    reason: format!("the blob {digest} holds content whose digest is {actual}"),
                }));
            }
            location.query_pairs_mut().append_pair("digest", digest);
            let mut headers = HeaderMap::new();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            let answer = self
                .send(Method::PUT, location, headers, Some(Vec::new()), true)
                .await?;
            if answer.status != StatusCode::CREATED {
                return Err(Try::Stop(status_error("finish an upload at", &answer)));
            }
            acknowledged(&answer, digest)?;
            Ok(None)
        })
        .await
    }

    /// The upload location an answer names, resolved against its URL.
    fn location(&self, answer: &Answer) -> Result<Url, Try> {
        let location = answer.header(LOCATION.as_str()).ok_or_else(|| {
            Try::Stop(RegistryError::Status {
                action: "upload to".into(),
                url: redacted_url(&answer.url),
                status: answer.status.as_u16(),
                message: "the answer names no upload location".into(),
            })
        })?;
        answer.url.join(location).map_err(|_| {
            Try::Stop(RegistryError::Status {
                action: "upload to".into(),
                url: redacted_url(&answer.url),
                status: answer.status.as_u16(),
                message: "the upload location is not a URL".into(),
            })
        })
    }

    /// The referrers of `digest` through the referrers API, or `None` when the registry
    /// has no such API (a 404, as registries before OCI distribution 1.1 answer).
    pub async fn referrers(&self, digest: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let url = self.repo_url(&format!("referrers/{digest}"));
        retry(|| async {
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT, HeaderValue::from_static(OCI_INDEX));
            let answer = self
                .send(Method::GET, url.clone(), headers, None, false)
                .await?;
            match answer.status {
                StatusCode::NOT_FOUND => Ok(None),
                s if s.is_success()
                    && answer
                        .header("content-type")
                        .is_some_and(|t| t.starts_with(OCI_INDEX)) =>
                {
                    Ok(Some(answer.body))
                }
                s if s.is_success() => Ok(None),
                _ => Err(Try::Stop(status_error("list the referrers at", &answer))),
            }
        })
        .await
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
fn retryable_status(answer: Answer) -> Result<Answer, Try> {
    if answer.status == StatusCode::TOO_MANY_REQUESTS || answer.status.is_server_error() {
        return Err(Try::Again(status_error("reach", &answer)));
    }
    Ok(answer)
}

fn accept_manifests() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_MANIFESTS));
    headers
}

/// The media types of manifests the registry may hold.
pub fn is_manifest_type(media_type: &str) -> bool {
    [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].contains(&media_type)
}

fn basic(c: &Credentials) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
}

/// The challenge of a `WWW-Authenticate` header.
fn parse_challenge(header: Option<&str>) -> Option<Challenge> {
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

fn status_error(action: &str, answer: &Answer) -> RegistryError {
    RegistryError::Status {
        action: action.to_string(),
        url: redacted_url(&answer.url),
        status: answer.status.as_u16(),
        message: server_message(&answer.body),
    }
}

/// The digest the server says it stored, when it says one, is `digest`.
fn acknowledged(answer: &Answer, digest: &str) -> Result<(), RegistryError> {
    match answer.header("docker-content-digest") {
        Some(said) if said != digest => Err(RegistryError::Mismatch {
            url: redacted_url(&answer.url),
            expected: digest.to_string(),
            found: said.to_string(),
        }),
        _ => Ok(()),
    }
}

fn check_content(url: &Url, digest: &str, bytes: &[u8]) -> Result<(), RegistryError> {
    let actual = format!("sha256:{}", gradient_driver::publish::sha256_hex(bytes));
    if actual != digest {
        return Err(RegistryError::Mismatch {
            url: redacted_url(url),
            expected: digest.to_string(),
            found: actual,
        });
    }
    Ok(())
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
