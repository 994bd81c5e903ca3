//! Wheel and sdist to a package index, through the upload API twine uses (the "legacy" API:
//! one `multipart/form-data` POST per file, with the file's core metadata as form fields).
//!
//! The index's simple page (PEP 503 HTML or PEP 691 JSON) is read before and after each
//! upload: a file already listed with the same sha256 is not sent again, one listed with
//! another sha256 is an error (an index never replaces a file), and the sha256 the page
//! lists after the upload is the digest reported as acknowledged.
//!
//! Credentials come from [`TOKEN_VAR`] (sent as user `__token__`), else [`USERNAME_VAR`] and
//! [`PASSWORD_VAR`], else the `~/.pypirc` section whose `repository` is the index URL. They
//! go into the `Authorization` header and nowhere else: a URL carrying credentials is
//! refused, and the server's answer is shown with any secret masked. Plain `http` is used
//! only for a loopback host, or when the caller says `insecure`.

mod credentials;
mod metadata;
mod simple;

pub use credentials::{Credentials, PASSWORD_VAR, TOKEN_VAR, USERNAME_VAR};

use crate::folder::Folder;
use crate::Sent;
use metadata::{form_fields, multipart, read_error, uploads, Upload};
use reqwest::Url;
use simple::{listed, unescape};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("the index URL `{url}` cannot be used: {reason}")]
    Url { url: String, reason: String },
    #[error("`{file}` is not a file name a package index takes")]
    Name { file: String },
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` has no core metadata gradient can read ({reason})", path.display())]
    Metadata { path: PathBuf, reason: String },
    #[error("cannot reach the index at `{url}`: {reason}")]
    Connect { url: String, reason: String },
    #[error("the index at `{url}` refused `{file}`: {status} {message}")]
    Refused {
        url: String,
        file: String,
        status: u16,
        message: String,
    },
    #[error(
        "the index at `{url}` already holds `{file}` with sha256 {theirs}, not this file's {ours}"
    )]
    Conflict {
        url: String,
        file: String,
        theirs: String,
        ours: String,
    },
    #[error("the index at `{url}` took `{file}`, but its simple page `{page}` {reason}")]
    Unconfirmed {
        url: String,
        file: String,
        page: String,
        reason: String,
    },
    #[error("the folder `{}` holds no wheel and no sdist to upload", dir.display())]
    Nothing { dir: PathBuf },
    #[error("cannot use `{}` as a CA certificate ({reason})", path.display())]
    Ca { path: PathBuf, reason: String },
}

impl gradient_core::Hint for IndexError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            IndexError::Url { .. } => format!(
                "give the upload URL over https (plain http only for a loopback host, or with --insecure); credentials go in {TOKEN_VAR}, or {USERNAME_VAR} and {PASSWORD_VAR}, or ~/.pypirc — never in the URL"
            ),
            IndexError::Name { .. } | IndexError::Metadata { .. } => {
                "rebuild the folder with `gradient build --to sdist,wheel`".into()
            }
            IndexError::Read { .. } => "check the folder is readable".into(),
            IndexError::Connect { .. } => {
                "check the URL, that the index is up, and the network between".into()
            }
            IndexError::Refused { status: 401 | 403, .. } => format!(
                "check the credentials: {TOKEN_VAR} (an API token), or {USERNAME_VAR} and {PASSWORD_VAR}, or the ~/.pypirc section whose `repository` is this URL; and that this user may upload this project"
            ),
            IndexError::Refused { .. } => {
                "the index's message says why; fix the metadata or the URL (the upload URL, not the simple page)".into()
            }
            IndexError::Conflict { .. } => {
                "an index never replaces a file: release a new version, or delete the file on the index first".into()
            }
            IndexError::Unconfirmed { .. } => {
                "check the index lists uploads on its simple page; the upload itself was accepted".into()
            }
            IndexError::Nothing { .. } => "build them first: `gradient build --to sdist,wheel`".into(),
            IndexError::Ca { .. } => "give a readable PEM file of one or more certificates".into(),
        })
    }
}

/// How to reach the index.
#[derive(Clone, Debug, Default)]
pub struct IndexOptions {
    /// Allow plain `http` to a host that is not loopback.
    pub insecure: bool,
    /// The credentials; `None`: [`Credentials::find`] (environment, then `~/.pypirc`).
    pub credentials: Option<Credentials>,
    /// The index's simple page root, when it is not the one the upload URL implies
    /// (`pypi.org/simple/` for PyPI's `upload.pypi.org/legacy/`, else `URL/simple/`).
    pub simple_url: Option<String>,
    /// A PEM file of CA certificates to trust besides the usual roots (an index behind a
    /// private CA).
    pub ca_file: Option<PathBuf>,
}

/// One file an upload would send, and where (what `--dry-run` shows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub file: String,
    /// `bdist_wheel` or `sdist`.
    pub filetype: &'static str,
    pub sha256: String,
    /// The upload URL.
    pub to: String,
    /// The simple page it is looked up on before and after.
    pub simple_page: String,
}

impl std::fmt::Display for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "would upload {} ({}, sha256 {}) to {}, unless {} lists it already",
            self.file, self.filetype, self.sha256, self.to, self.simple_page
        )
    }
}

/// The index an upload goes to: its upload URL and simple page root, checked.
struct Index {
    upload: Url,
    simple: Url,
}

/// `url` without credentials, for messages.
fn shown(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => gradient_core::redact(url).into_owned(),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A URL to talk to: http(s), no credentials, plain http only where allowed.
fn checked_url(url: &str, insecure: bool) -> Result<Url, IndexError> {
    let bad = |reason: &str| IndexError::Url {
        url: shown(url),
        reason: reason.into(),
    };
    let mut parsed = Url::parse(url).map_err(|e| bad(&format!("it does not parse ({e})")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("it carries credentials"));
    }
    match parsed.scheme() {
        "https" => {}
        "http" if insecure || is_loopback(&parsed) => {}
        "http" => return Err(bad("plain http to a host that is not loopback")),
        other => return Err(bad(&format!("the scheme `{other}` is not http(s)"))),
    }
    if parsed.host().is_none() {
        return Err(bad("it names no host"));
    }
    parsed.set_fragment(None);
    if !parsed.path().ends_with('/') {
        let path = format!("{}/", parsed.path());
        parsed.set_path(&path);
    }
    Ok(parsed)
}

impl Index {
    fn new(index_url: &str, options: &IndexOptions) -> Result<Index, IndexError> {
        let mut upload = checked_url(index_url, options.insecure)?;
        // The upload URL is used as given: PyPI's ends in a slash (`/legacy/`), others not.
        if !index_url.ends_with('/') {
            let path = upload.path().trim_end_matches('/').to_string();
            upload.set_path(&path);
        }
        let simple = match &options.simple_url {
            Some(simple) => checked_url(simple, options.insecure)?,
            None => {
                let implied = match (upload.host_str(), upload.path()) {
                    (Some("upload.pypi.org"), _) => "https://pypi.org/simple/".to_string(),
                    (Some("test.pypi.org"), _) => "https://test.pypi.org/simple/".to_string(),
                    _ => format!("{}/simple/", upload.as_str().trim_end_matches('/')),
                };
                checked_url(&implied, options.insecure)?
            }
        };
        Ok(Index { upload, simple })
    }

    /// The project's page: `SIMPLE/NORMALISED-NAME/` (PEP 503).
    fn project_page(&self, name: &str) -> Url {
        let mut normalised = String::new();
        for c in name.chars() {
            if matches!(c, '-' | '_' | '.') {
                if !normalised.ends_with('-') {
                    normalised.push('-');
                }
            } else {
                normalised.push(c.to_ascii_lowercase());
            }
        }
        self.simple
            .join(&format!("{normalised}/"))
            .unwrap_or_else(|_| self.simple.clone())
    }

    /// Whether the simple page is served by the upload host (so credentials may go there).
    fn same_origin(&self) -> bool {
        self.upload.origin() == self.simple.origin()
    }
}

/// What `upload` would send where, without sending (or asking) anything: `--dry-run`.
pub fn plan(
    folder: &Folder,
    index_url: &str,
    options: &IndexOptions,
) -> Result<Vec<Planned>, IndexError> {
    let index = Index::new(index_url, options)?;
    Ok(uploads(folder)?
        .into_iter()
        .map(|u| Planned {
            simple_page: index
                .project_page(u.field("Name").unwrap_or_default())
                .to_string(),
            file: u.file,
            filetype: u.filetype,
            sha256: u.sha256,
            to: index.upload.to_string(),
        })
        .collect())
}

/// A server's answer, fit to show: tags dropped, spaces folded, cut short, secrets masked.
fn server_message(body: &str, credentials: Option<&Credentials>) -> String {
    // An HTML error page: what it says is in its body, not its head, styles or scripts.
    let mut body = body.to_string();
    for element in ["head", "style", "script"] {
        loop {
            let lower = body.to_ascii_lowercase();
            let Some(start) = lower.find(&format!("<{element}")) else {
                break;
            };
            let close = format!("</{element}>");
            let end = lower[start..]
                .find(&close)
                .map_or(body.len(), |i| start + i + close.len());
            body.replace_range(start..end, " ");
        }
    }
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let mut text = unescape(&text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    // Masked before it is cut short: a secret cut in two would escape the mask.
    if let Some(credentials) = credentials {
        let header = credentials.header();
        for secret in [
            credentials.password.as_str(),
            header.trim_start_matches("Basic "),
        ] {
            if !secret.is_empty() {
                text = text.replace(secret, gradient_core::redact::MASK);
            }
        }
    }
    let mut text = gradient_core::redact(&text).into_owned();
    if text.chars().count() > 300 {
        text = text.chars().take(300).collect::<String>() + "…";
    }
    text
}

/// A request error, named by the URL (which carries no credentials) and its cause chain.
fn connect_error(url: &Url, error: reqwest::Error) -> IndexError {
    let error = error.without_url();
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    IndexError::Connect {
        url: url.to_string(),
        reason: gradient_core::redact(&reason).into_owned(),
    }
}

/// A response body as text, read no further than `cap` bytes (a page is not allowed to
/// fill the memory).
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<String, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Upload the folder's wheels and sdists to the index at `index_url` (the upload URL, as
/// twine's `--repository-url`). Files the index lists already with the same sha256 are not
/// sent; each record's digest is the sha256 the index's simple page lists afterwards.
pub async fn upload(
    folder: &Folder,
    index_url: &str,
    options: &IndexOptions,
) -> Result<Vec<Sent>, IndexError> {
    let index = Index::new(index_url, options)?;
    let uploads = uploads(folder)?;
    let credentials = options
        .credentials
        .clone()
        .or_else(|| Credentials::find(index_url));
    let mut client = reqwest::Client::builder();
    if let Some(path) = &options.ca_file {
        let ca_error = |reason: String| IndexError::Ca {
            path: path.clone(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let certificates =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
        if certificates.is_empty() {
            return Err(ca_error("no certificate in it".into()));
        }
        for certificate in certificates {
            client = client.add_root_certificate(certificate);
        }
    }
    let client = client
        .user_agent(concat!("gradient/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(600))
        // An upload that is redirected would go where the user did not say: refused.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| connect_error(&index.upload, e))?;
    let page_credentials = credentials.as_ref().filter(|_| index.same_origin());
    let to = index.upload.to_string();
    let mut sent = Vec::new();
    for upload in uploads {
        let name = upload.field("Name").unwrap_or_default().to_string();
        let page = index.project_page(&name);
        let before = listed(&client, &page, page_credentials).await?;
        if let Some(there) = already_there(&before, &upload, &to)? {
            sent.push(there);
            continue;
        }
        let content = std::fs::read(&upload.path).map_err(read_error(&upload.path))?;
        if gradient_driver::publish::sha256_hex(&content) != upload.sha256 {
            return Err(IndexError::Metadata {
                path: upload.path.clone(),
                reason: "it changed since its folder was checked".into(),
            });
        }
        let fields = form_fields(&upload);
        let boundary = loop {
            let candidate = format!("gradient-{}", hex::encode(rand::random::<[u8; 16]>()));
            let clash = fields.iter().any(|(_, v)| v.contains(&candidate))
                || content
                    .windows(candidate.len())
                    .any(|w| w == candidate.as_bytes());
            if !clash {
                break candidate;
            }
        };
        let body = multipart(&boundary, &fields, &upload.file, &content);
        let mut request = client
            .post(index.upload.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        if let Some(credentials) = &credentials {
            request = request.header(reqwest::header::AUTHORIZATION, credentials.header());
        }
        tracing::info!("uploading {} to {to}", upload.file);
        let response = request
            .send()
            .await
            .map_err(|e| connect_error(&index.upload, e))?;
        let status = response.status();
        let message = server_message(
            &read_capped(response, 1 << 20).await.unwrap_or_default(),
            credentials.as_ref(),
        );
        if !status.is_success() {
            // "Already exists": there after all (a race, or a page that hid it); its digest
            // decides whether that is this very file.
            if status.as_u16() == 409 || message.to_ascii_lowercase().contains("already exist") {
                let after = listed(&client, &page, page_credentials).await?;
                if let Some(there) = already_there(&after, &upload, &to)? {
                    sent.push(there);
                    continue;
                }
            }
            return Err(IndexError::Refused {
                url: to.clone(),
                file: upload.file.clone(),
                status: status.as_u16(),
                message,
            });
        }
        let digest = confirm(&client, &page, page_credentials, &upload, &to).await?;
        sent.push(Sent {
            what: upload.file.clone(),
            to: to.clone(),
            digest: format!("sha256:{digest}"),
            sent: true,
        });
    }
    Ok(sent)
}

/// What a project page's `listing` says of `upload`: there with the same sha256 (nothing to
/// send: its record), there with another (an index never replaces a file: an error), or
/// not there (`None`).
fn already_there(
    listing: &std::collections::BTreeMap<String, Option<String>>,
    upload: &Upload,
    to: &str,
) -> Result<Option<Sent>, IndexError> {
    match listing.get(&upload.file) {
        Some(Some(theirs)) if *theirs == upload.sha256 => Ok(Some(Sent {
            what: upload.file.clone(),
            to: to.to_string(),
            digest: format!("sha256:{theirs}"),
            sent: false,
        })),
        Some(Some(theirs)) => Err(IndexError::Conflict {
            url: to.to_string(),
            file: upload.file.clone(),
            theirs: theirs.clone(),
            ours: upload.sha256.clone(),
        }),
        _ => Ok(None),
    }
}

/// The sha256 the project page lists for the file just uploaded (asked a few times: some
/// indexes refresh their pages a moment after an upload).
async fn confirm(
    client: &reqwest::Client,
    page: &Url,
    credentials: Option<&Credentials>,
    upload: &Upload,
    to: &str,
) -> Result<String, IndexError> {
    let unconfirmed = |reason: String| IndexError::Unconfirmed {
        url: to.into(),
        file: upload.file.clone(),
        page: page.to_string(),
        reason,
    };
    for attempt in 0..5u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        match listed(client, page, credentials).await?.get(&upload.file) {
            Some(Some(theirs)) if *theirs == upload.sha256 => return Ok(theirs.clone()),
            Some(Some(theirs)) => {
                return Err(unconfirmed(format!(
                    "lists it with sha256 {theirs}, not {}",
                    upload.sha256
                )))
            }
            Some(None) => {
                tracing::warn!(
                    "{page} lists {} without a sha256; its digest is the file's own",
                    upload.file
                );
                return Ok(upload.sha256.clone());
            }
            None => {}
        }
    }
    Err(unconfirmed("does not list it".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_credentials_or_plain_http_elsewhere_are_refused_without_the_secret() {
        let error = checked_url("https://bob:s3cret-pass@index.example/legacy/", false)
            .err()
            .unwrap();
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(checked_url("http://index.example/", false).is_err());
        assert!(checked_url("http://index.example/", true).is_ok());
        assert!(checked_url("http://127.0.0.1:8080/", false).is_ok());
        assert!(checked_url("http://[::1]:8080/", false).is_ok());
        assert!(checked_url("http://localhost/", false).is_ok());
        assert!(checked_url("ftp://127.0.0.1/", true).is_err());
    }

    #[test]
    fn server_messages_never_carry_the_password() {
        let credentials = Credentials::new("alice", "wonderland-42");
        let message = server_message(
            "<html><head><title>x</title><style>p {color: red}</style></head><body><h1>403 Forbidden</h1><p>bad &#039;password&#039; wonderland-42</p></body></html>",
            Some(&credentials),
        );
        assert_eq!(message, "403 Forbidden bad 'password' ***");
    }
}
