//! The distribution API's requests, each retried as a whole: manifests looked up, fetched
//! and put (the digest the server acknowledges checked), blobs looked up, fetched (checked
//! against their digest) and uploaded in chunks, referrers listed.

use super::client::{redacted_url, retry, status_error, Answer, Session, Try};
use super::layout::OCI_INDEX;
use super::RegistryError;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};

/// The size of an upload's chunks.
pub const DEFAULT_CHUNK: u64 = 8 << 20;

/// Every manifest type gradient reads, for `Accept`.
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

impl Session {
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

fn accept_manifests() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_MANIFESTS));
    headers
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
