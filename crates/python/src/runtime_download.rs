//! A relocatable CPython archive named by URL in `[tool.gradient.runtime]`, downloaded once
//! into `CACHE/runtime-downloads/SHA256.tar.gz` and accepted only with the SHA-256 the
//! project gave.
//!
//! ```text
//!  url ─► .SHA256-XXXX staging file (hashed and counted as it arrives, capped, timed out)
//!      ─► digest == sha256 ? renamed to SHA256.tar.gz : removed, error naming both digests
//! ```
//! A cached download is hashed again before each use: a damaged one is removed and fetched
//! again. The file is named by its digest, so two projects naming the same archive share it.

use crate::runtime::RuntimeError;
use crate::staging::Staged;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest download accepted. python-build-standalone's `install_only` archives are
/// some 30 MB; anything near this is not a CPython.
pub const DOWNLOAD_LIMIT: u64 = 512 * 1024 * 1024;
/// How long a whole download may take, and a connection to be made.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Release hosts redirect to a storage host once or twice.
const MAX_REDIRECTS: usize = 5;

/// The cache folder of downloaded runtime archives.
pub fn downloads_folder(cache_root: &Path) -> PathBuf {
    cache_root.join("runtime-downloads")
}

/// The archive at `url` whose SHA-256 is `sha256`, from the cache or downloaded into it
/// first. `progress` is told the bytes received so far and the total when the server said.
/// Nothing is kept unless its digest is `sha256`.
pub async fn fetch_runtime_archive(
    url: &str,
    sha256: &str,
    cache_root: &Path,
    progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
) -> Result<PathBuf, RuntimeError> {
    // Settings are checked when the project is read; a caller may come another way.
    gradient_core::check_url(url)
        .map_err(|(reason, _)| RuntimeError::DownloadRefused { reason })?;
    if !gradient_core::is_sha256(sha256) {
        return Err(RuntimeError::DownloadRefused {
            reason: format!("`{sha256}` is not a SHA-256 (64 lowercase hex digits)"),
        });
    }
    let folder = downloads_folder(cache_root);
    let target = folder.join(format!("{sha256}.tar.gz"));
    if target.is_file() {
        let check = target.clone();
        let digest = tokio::task::spawn_blocking(move || file_sha256(&check))
            .await
            .map_err(|e| RuntimeError::Io {
                action: "hash",
                path: target.clone(),
                source: std::io::Error::other(e),
            })?;
        if digest.as_deref().ok() == Some(sha256) {
            return Ok(target);
        }
        tracing::warn!(
            "the cached runtime download `{}` does not have its digest any more: fetching it again",
            target.display()
        );
        std::fs::remove_file(&target).map_err(io("remove", &target))?;
    }
    std::fs::create_dir_all(&folder).map_err(io("create", &folder))?;
    let mut staged =
        Staged::file_in(&folder, &format!(".{sha256}-")).map_err(io("create", &folder))?;
    let actual = download(url, staged.file(), progress).await?;
    if actual != sha256 {
        // `staged` is removed as it drops: nothing is kept.
        return Err(RuntimeError::DigestMismatch {
            url: url.to_string(),
            expected: sha256.to_string(),
            actual,
        });
    }
    staged
        .file()
        .sync_all()
        .map_err(io("write", staged.path()))?;
    staged
        .persist(&target)
        .map_err(io("move into place", &target))?;
    Ok(target)
}

/// Stream `url` into `file`, hashing and counting as it comes; the body's SHA-256.
async fn download(
    url: &str,
    mut file: &std::fs::File,
    progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
) -> Result<String, RuntimeError> {
    let failed = |reason: String| RuntimeError::DownloadFailed {
        url: url.to_string(),
        reason,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(DOWNLOAD_TIMEOUT)
        .user_agent(concat!("gradient/", env!("CARGO_PKG_VERSION")))
        // A redirect is held to the rules of the URL itself: https, or http on this machine.
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match gradient_core::check_url(attempt.url().as_str()) {
                Ok(()) => attempt.follow(),
                Err((reason, _)) => attempt.error(format!("refused a redirect: {reason}")),
            }
        }))
        .build()
        .map_err(|e| failed(gradient_core::error_chain(&e)))?;
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| failed(gradient_core::error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("the server answered {status}")));
    }
    let total = response.content_length();
    if let Some(total) = total.filter(|t| *t > DOWNLOAD_LIMIT) {
        return Err(failed(format!(
            "it is {total} bytes, more than the {DOWNLOAD_LIMIT} a runtime archive may be"
        )));
    }
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => {
                let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
                return Err(failed(format!(
                    "the transfer broke off after {received}{of} bytes ({})",
                    gradient_core::error_chain(&error)
                )));
            }
        };
        received += chunk.len() as u64;
        if received > DOWNLOAD_LIMIT {
            return Err(failed(format!(
                "it goes on past {DOWNLOAD_LIMIT} bytes, more than a runtime archive may be"
            )));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(|source| RuntimeError::Io {
            action: "write the download of",
            path: PathBuf::from(url),
            source,
        })?;
        progress(received, total);
    }
    if let Some(total) = total.filter(|t| *t != received) {
        return Err(failed(format!(
            "the server announced {total} bytes and sent {received}"
        )));
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The SHA-256 of a file, read in pieces.
fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let path = path.to_path_buf();
    move |source| RuntimeError::Io {
        action,
        path,
        source,
    }
}
