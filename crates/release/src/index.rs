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

use crate::folder::Folder;
use crate::Sent;
use base64::Engine;
use gradient_core::Tier;
use reqwest::Url;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An API token for the index, sent as the password of user `__token__`.
pub const TOKEN_VAR: &str = "GRADIENT_INDEX_TOKEN";
/// The index user name (with [`PASSWORD_VAR`]).
pub const USERNAME_VAR: &str = "GRADIENT_INDEX_USERNAME";
/// The index password (with [`USERNAME_VAR`]).
pub const PASSWORD_VAR: &str = "GRADIENT_INDEX_PASSWORD";

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

/// A user and password (or `__token__` and a token) for the index. Never printed: its
/// `Debug` shows the user only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
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
        Credentials::from_vars(|name| std::env::var(name).ok()).or_else(|| {
            let home = std::env::var_os("HOME")?;
            let text = std::fs::read_to_string(Path::new(&home).join(".pypirc")).ok()?;
            Credentials::from_pypirc(&text, index_url)
        })
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

    fn header(&self) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.username, self.password))
        )
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

/// A file to upload, with its metadata read.
struct Upload {
    file: String,
    path: PathBuf,
    filetype: &'static str,
    pyversion: String,
    sha256: String,
    /// Core metadata, in file order, one entry per header line (repeated fields repeat).
    metadata: Vec<(String, String)>,
}

impl Upload {
    fn field(&self, name: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A plain file name of the kind indexes accept (it goes into a header and a URL).
fn check_name(file: &str) -> Result<(), IndexError> {
    let fine = !file.is_empty()
        && !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '!'));
    if fine {
        Ok(())
    } else {
        Err(IndexError::Name { file: file.into() })
    }
}

/// The wheels and sdists of the folder, metadata read.
fn uploads(folder: &Folder) -> Result<Vec<Upload>, IndexError> {
    let mut found = Vec::new();
    for (tier, filetype) in [(Tier::Sdist, "sdist"), (Tier::Wheel, "bdist_wheel")] {
        for record in folder.artifacts(tier) {
            check_name(&record.file)?;
            let path = folder.path(&record.file);
            let metadata = match tier {
                Tier::Wheel => wheel_metadata(&path)?,
                _ => sdist_metadata(&path)?,
            };
            let pyversion = match tier {
                Tier::Wheel => {
                    let stem = record.file.trim_end_matches(".whl");
                    let parts: Vec<&str> = stem.split('-').collect();
                    if parts.len() < 5 {
                        return Err(IndexError::Name {
                            file: record.file.clone(),
                        });
                    }
                    parts[parts.len() - 3].to_string()
                }
                _ => "source".to_string(),
            };
            let upload = Upload {
                file: record.file.clone(),
                path,
                filetype,
                pyversion,
                sha256: record.sha256.clone(),
                metadata,
            };
            for required in ["Metadata-Version", "Name", "Version"] {
                if upload.field(required).is_none() {
                    return Err(IndexError::Metadata {
                        path: upload.path.clone(),
                        reason: format!("no {required}"),
                    });
                }
            }
            // The name becomes a path on the index (its project page): PEP 508's form only.
            let name = upload.field("Name").unwrap_or_default();
            let valid = !name.is_empty()
                && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                && name.ends_with(|c: char| c.is_ascii_alphanumeric())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid {
                return Err(IndexError::Metadata {
                    path: upload.path.clone(),
                    reason: format!("its Name `{}` is not a project name", name.escape_debug()),
                });
            }
            found.push(upload);
        }
    }
    if found.is_empty() {
        return Err(IndexError::Nothing {
            dir: folder.dir.clone(),
        });
    }
    Ok(found)
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// The wheel's `*.dist-info/METADATA`, parsed.
fn wheel_metadata(path: &Path) -> Result<Vec<(String, String)>, IndexError> {
    let bad = |reason: String| IndexError::Metadata {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(read_error(path))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let names: Vec<String> = archive
        .file_names()
        .filter(|n| {
            let parts: Vec<&str> = n.split('/').collect();
            parts.len() == 2 && parts[0].ends_with(".dist-info") && parts[1] == "METADATA"
        })
        .map(String::from)
        .collect();
    let [name] = names.as_slice() else {
        return Err(bad(format!(
            "{} *.dist-info/METADATA files, not one",
            names.len()
        )));
    };
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut archive.by_name(name).map_err(|e| bad(e.to_string()))?,
        &mut text,
    )
    .map_err(|e| bad(format!("{name}: {e}")))?;
    Ok(parse_metadata(&text))
}

/// The sdist's top-level `NAME-VERSION/PKG-INFO`, parsed.
fn sdist_metadata(path: &Path) -> Result<Vec<(String, String)>, IndexError> {
    let bad = |reason: String| IndexError::Metadata {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(read_error(path))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let entry_path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let parts: Vec<_> = entry_path.components().collect();
        if parts.len() == 2 && parts[1].as_os_str() == "PKG-INFO" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text)
                .map_err(|e| bad(format!("PKG-INFO: {e}")))?;
            return Ok(parse_metadata(&text));
        }
    }
    Err(bad("no NAME-VERSION/PKG-INFO in it".into()))
}

/// Core metadata (an email-style header block, then the description as its body) as
/// `(field, value)` pairs in order; the body becomes a `Description` field.
fn parse_metadata(text: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut lines = text.split_inclusive('\n');
    for line in lines.by_ref() {
        let bare = line.trim_end_matches(['\r', '\n']);
        if bare.is_empty() {
            break;
        }
        if bare.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push('\n');
                value.push_str(bare.trim_start());
            }
        } else if let Some((key, value)) = bare.split_once(':') {
            fields.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    let body: String = lines.collect();
    if !body.trim().is_empty() {
        fields.retain(|(k, _)| !k.eq_ignore_ascii_case("Description"));
        fields.push(("Description".into(), body));
    }
    fields
}

/// The upload API's name for a core metadata field (as twine and the index agree on them).
fn form_name(field: &str) -> Option<String> {
    let lower = field.to_ascii_lowercase();
    Some(match lower.as_str() {
        "classifier" => "classifiers".into(),
        "project-url" => "project_urls".into(),
        "home-page" => "home_page".into(),
        "metadata-version" | "name" | "version" => return None, // sent first, always
        "summary"
        | "description"
        | "description-content-type"
        | "author"
        | "author-email"
        | "maintainer"
        | "maintainer-email"
        | "license"
        | "license-expression"
        | "license-file"
        | "keywords"
        | "download-url"
        | "requires-dist"
        | "requires-python"
        | "requires-external"
        | "provides-extra"
        | "provides-dist"
        | "obsoletes-dist"
        | "platform"
        | "supported-platform"
        | "dynamic" => lower.replace('-', "_"),
        _ => return None,
    })
}

/// The form fields of one upload, in order; the file goes after them as `content`.
fn form_fields(upload: &Upload) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = vec![
        (":action".into(), "file_upload".into()),
        ("protocol_version".into(), "1".into()),
        ("filetype".into(), upload.filetype.into()),
        ("pyversion".into(), upload.pyversion.clone()),
        (
            "metadata_version".into(),
            upload.field("Metadata-Version").unwrap_or_default().into(),
        ),
        (
            "name".into(),
            upload.field("Name").unwrap_or_default().into(),
        ),
        (
            "version".into(),
            upload.field("Version").unwrap_or_default().into(),
        ),
        ("sha256_digest".into(), upload.sha256.clone()),
    ];
    for (key, value) in &upload.metadata {
        if let Some(name) = form_name(key) {
            fields.push((name, value.clone()));
        }
    }
    fields
}

/// A `multipart/form-data` body: `fields`, then the file as `content`.
fn multipart(boundary: &str, fields: &[(String, String)], file: &str, content: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(content.len() + 4096);
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
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
    if text.chars().count() > 300 {
        text = text.chars().take(300).collect::<String>() + "…";
    }
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
    gradient_core::redact(&text).into_owned()
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

/// The files the project page lists: file name → sha256 (when the page gives one). An
/// absent page (404) lists nothing.
async fn listed(
    client: &reqwest::Client,
    page: &Url,
    credentials: Option<&Credentials>,
) -> Result<BTreeMap<String, Option<String>>, IndexError> {
    let mut request = client.get(page.clone()).header(
        reqwest::header::ACCEPT,
        "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1",
    );
    if let Some(credentials) = credentials {
        request = request.header(reqwest::header::AUTHORIZATION, credentials.header());
    }
    let response = request.send().await.map_err(|e| connect_error(page, e))?;
    let status = response.status();
    // Absent; or sent elsewhere, as an index that falls back to another one does for
    // projects it does not hold (what is elsewhere is not on this index).
    if status == reqwest::StatusCode::NOT_FOUND || status.is_redirection() {
        return Ok(BTreeMap::new());
    }
    let json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let body = read_capped(response, 32 << 20)
        .await
        .map_err(|e| connect_error(page, e))?;
    if !status.is_success() {
        return Err(IndexError::Refused {
            url: page.to_string(),
            file: "its simple page".into(),
            status: status.as_u16(),
            message: server_message(&body, credentials),
        });
    }
    Ok(if json {
        parse_simple_json(&body)
    } else {
        parse_simple_html(&body)
    })
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

/// PEP 691: `{"files": [{"filename": …, "hashes": {"sha256": …}}]}`.
fn parse_simple_json(body: &str) -> BTreeMap<String, Option<String>> {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    value["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let name = f["filename"].as_str()?.to_string();
            let sha256 = f["hashes"]["sha256"].as_str().map(str::to_ascii_lowercase);
            Some((name, sha256))
        })
        .collect()
}

/// PEP 503: anchors whose text is the file name and whose href ends `#sha256=HEX`.
fn parse_simple_html(body: &str) -> BTreeMap<String, Option<String>> {
    let mut files = BTreeMap::new();
    let lower = body.to_ascii_lowercase();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<a ").map(|i| i + at) {
        let Some(tag_end) = lower[start..].find('>').map(|i| i + start) else {
            break;
        };
        let Some(close) = lower[tag_end..].find("</a>").map(|i| i + tag_end) else {
            break;
        };
        let tag = &body[start..tag_end];
        let text = unescape(body[tag_end + 1..close].trim());
        let href = attribute(tag, "href")
            .map(|h| unescape(&h))
            .unwrap_or_default();
        let sha256 = href
            .split_once('#')
            .and_then(|(_, fragment)| fragment.strip_prefix("sha256="))
            .map(str::to_ascii_lowercase);
        let name = if text.is_empty() {
            href.split('#')
                .next()
                .unwrap_or_default()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string()
        } else {
            text
        };
        if !name.is_empty() {
            files.insert(name, sha256);
        }
        at = close + 4;
    }
    files
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let at = lower.find(&format!("{name}="))? + name.len() + 1;
    let rest = &tag[at..];
    let quote = rest.chars().next()?;
    if quote == '"' || quote == '\'' {
        rest[1..].split(quote).next().map(String::from)
    } else {
        rest.split([' ', '>']).next().map(String::from)
    }
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#039;", "'")
        .replace("&amp;", "&")
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
        let conflict = |theirs: &str| IndexError::Conflict {
            url: to.clone(),
            file: upload.file.clone(),
            theirs: theirs.into(),
            ours: upload.sha256.clone(),
        };
        let before = listed(&client, &page, page_credentials).await?;
        match before.get(&upload.file) {
            Some(Some(theirs)) if *theirs == upload.sha256 => {
                sent.push(Sent {
                    what: upload.file.clone(),
                    to: to.clone(),
                    digest: format!("sha256:{theirs}"),
                    sent: false,
                });
                continue;
            }
            Some(Some(theirs)) => return Err(conflict(theirs)),
            _ => {}
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
                match after.get(&upload.file) {
                    Some(Some(theirs)) if *theirs == upload.sha256 => {
                        sent.push(Sent {
                            what: upload.file.clone(),
                            to: to.clone(),
                            digest: format!("sha256:{theirs}"),
                            sent: false,
                        });
                        continue;
                    }
                    Some(Some(theirs)) => return Err(conflict(theirs)),
                    _ => {}
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
    fn the_simple_page_is_read_as_html_or_json() {
        let html = r#"<html><body><h1>Links for sampleapp</h1>
<a href="/packages/sampleapp-1.2.3.tar.gz#sha256=ABCDEF">sampleapp-1.2.3.tar.gz</a><br>
<a href='../../packages/sampleapp-1.2.3-py3-none-any.whl'>sampleapp-1.2.3-py3-none-any.whl</a>
</body></html>"#;
        let files = parse_simple_html(html);
        assert_eq!(
            files.get("sampleapp-1.2.3.tar.gz"),
            Some(&Some("abcdef".to_string()))
        );
        assert_eq!(files.get("sampleapp-1.2.3-py3-none-any.whl"), Some(&None));
        let json = r#"{"meta":{"api-version":"1.0"},"name":"sampleapp","files":[{"filename":"a-1.tar.gz","url":"x","hashes":{"sha256":"00ff"}}]}"#;
        assert_eq!(
            parse_simple_json(json).get("a-1.tar.gz"),
            Some(&Some("00ff".to_string()))
        );
    }

    #[test]
    fn metadata_headers_and_body_become_form_fields() {
        let text = "Metadata-Version: 2.4\nName: sampleapp\nVersion: 1.2.3\nSummary: A sample\nClassifier: A :: B\nClassifier: C :: D\nProject-URL: Homepage, https://x.invalid\nLicense: first line\n        second line\nX-Unknown: dropped\n\nThe long description.\n";
        let upload = Upload {
            file: "sampleapp-1.2.3.tar.gz".into(),
            path: PathBuf::new(),
            filetype: "sdist",
            pyversion: "source".into(),
            sha256: "00".into(),
            metadata: parse_metadata(text),
        };
        let fields = form_fields(&upload);
        let get = |name: &str| -> Vec<&str> {
            fields
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(get(":action"), ["file_upload"]);
        assert_eq!(get("metadata_version"), ["2.4"]);
        assert_eq!(get("name"), ["sampleapp"]);
        assert_eq!(get("classifiers"), ["A :: B", "C :: D"]);
        assert_eq!(get("project_urls"), ["Homepage, https://x.invalid"]);
        assert_eq!(get("license"), ["first line\nsecond line"]);
        assert_eq!(get("description"), ["The long description.\n"]);
        assert!(get("x_unknown").is_empty());
        let body = multipart("B", &fields, &upload.file, b"DATA");
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains(
            "Content-Disposition: form-data; name=\"content\"; filename=\"sampleapp-1.2.3.tar.gz\""
        ));
        assert!(body.ends_with("DATA\r\n--B--\r\n"));
    }

    #[test]
    fn names_that_would_bend_a_header_or_a_url_are_refused() {
        for bad in ["a\"b.whl", "../x.whl", "a b.tar.gz", "x\r\n.whl", ""] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("sampleapp-1.2.3-py3-none-any.whl").is_ok());
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
