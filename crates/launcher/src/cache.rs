//! Where frozen apps are extracted, and the extraction itself.

use crate::{LaunchError, Trailer};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

/// Written last into a finished extraction; its presence is what "extracted" means.
pub const MARKER: &str = ".gradient-complete";
/// Extractions of one app kept in the cache.
const KEEP: usize = 3;

/// `$GRADIENT_FROZEN_CACHE`, else `$XDG_CACHE_HOME/gradient/frozen`, else
/// `~/.cache/gradient/frozen`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("GRADIENT_FROZEN_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("gradient").join("frozen")
}

/// A ready extraction.
pub struct Prepared {
    pub folder: PathBuf,
}

/// The extraction folder for this executable, made on first run.
pub fn prepare(exe: &mut File, trailer: &Trailer) -> Result<Prepared, LaunchError> {
    let name = format!("{}-{}", trailer.name, trailer.short_digest());
    let root = cache_root();
    let folder = root.join(&name);
    if folder.join(MARKER).is_file() {
        return Ok(Prepared { folder });
    }
    match extract_into(exe, trailer, &root, &name) {
        Err(LaunchError::Io(error)) | Err(LaunchError::Extract { error, .. })
            if error.kind() == std::io::ErrorKind::PermissionDenied
                || error.raw_os_error() == Some(30) // EROFS
                || error.kind() == std::io::ErrorKind::NotADirectory
                || error.kind() == std::io::ErrorKind::NotFound =>
        {
            let fallback = std::env::temp_dir().join(format!("gradient-frozen-{}", uid()));
            eprintln!(
                "{}: cannot write to the cache `{}` ({error}); using `{}`",
                trailer.name,
                root.display(),
                fallback.display()
            );
            private_folder(&fallback)?;
            extract_into(exe, trailer, &fallback, &name)
        }
        other => other,
    }
}

/// A folder in a place everyone can write to (the temp dir) is only trusted when it is a
/// real folder of ours that nobody else can write into: otherwise another user could lay
/// out a "finished extraction" there and have us run their interpreter.
fn private_folder(path: &Path) -> Result<(), LaunchError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.into()),
    }
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_dir() || meta.uid() != uid() || meta.mode() & 0o022 != 0 {
        return Err(LaunchError::Unsafe(format!(
            "{} (the fallback cache is not a private folder of this user)",
            path.display()
        )));
    }
    Ok(())
}

fn uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

/// Extract under `root/name` unless another process already did: a lock serialises first
/// runs, a staging folder and a rename make the result appear whole or not at all.
fn extract_into(
    exe: &mut File,
    trailer: &Trailer,
    root: &Path,
    name: &str,
) -> Result<Prepared, LaunchError> {
    let folder = root.join(name);
    std::fs::create_dir_all(root)?;
    let lock = File::create(root.join(format!(".{name}.lock")))?;
    lock.lock()?;
    if folder.join(MARKER).is_file() {
        return Ok(Prepared { folder });
    }
    verify(exe, trailer)?;
    // Only the lock holder stages, so any staging folder found now was left by a run that
    // was killed: remove them all.
    let stale_prefix = format!(".{name}.");
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with(&stale_prefix)
            && !file_name.ends_with(".lock")
            && entry.path().is_dir()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let staging = root.join(format!(".{name}.{}", std::process::id()));
    let result = unpack(exe, trailer, &staging).and_then(|()| {
        std::fs::write(staging.join(MARKER), b"")?;
        if folder.exists() {
            // A folder without a marker is a leftover of an interrupted run: never used.
            std::fs::remove_dir_all(&folder)?;
        }
        std::fs::rename(&staging, &folder)?;
        Ok(())
    });
    if let Err(error) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(match error {
            LaunchError::Io(error) => LaunchError::Extract { folder, error },
            other => other,
        });
    }
    prune(root, &trailer.name, &folder);
    Ok(Prepared { folder })
}

/// The payload's sha256 must match the trailer's before anything is written.
fn verify(exe: &mut File, trailer: &Trailer) -> Result<(), LaunchError> {
    exe.seek(SeekFrom::Start(trailer.offset))?;
    let mut hasher = Sha256::new();
    let mut left = trailer.length;
    let mut buffer = vec![0u8; 1 << 20];
    while left > 0 {
        let n = exe.read(&mut buffer[..left.min(1 << 20) as usize])?;
        if n == 0 {
            return Err(LaunchError::Damaged("the payload ends early".into()));
        }
        hasher.update(&buffer[..n]);
        left -= n as u64;
    }
    if hasher.finalize().as_slice() != trailer.sha256 {
        return Err(LaunchError::Damaged(
            "its payload does not match the sha256 it was built with".into(),
        ));
    }
    Ok(())
}

fn unpack(exe: &mut File, trailer: &Trailer, staging: &Path) -> Result<(), LaunchError> {
    std::fs::create_dir_all(staging)?;
    exe.seek(SeekFrom::Start(trailer.offset))?;
    let payload = std::io::BufReader::new(&mut *exe).take(trailer.length);
    // The payload is several gzip members (the runtime, cached once; the app), each a tar
    // stream: read them as one.
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(payload));
    archive.set_preserve_permissions(true);
    archive.set_ignore_zeros(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let shown = path.display().to_string();
        if path.as_os_str().is_empty()
            || !path
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(LaunchError::Unsafe(shown));
        }
        if let Some(link) = entry.link_name()? {
            let depth = path.components().count() as isize - 1;
            if link.is_absolute() || climbs_out(&link, depth) {
                return Err(LaunchError::Unsafe(shown));
            }
        }
        let target = staging.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        entry.unpack(&target)?;
    }
    Ok(())
}

/// Whether a relative link at folder depth `depth` resolves above the root.
fn climbs_out(link: &Path, mut depth: isize) -> bool {
    for part in link.components() {
        match part {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    false
}

/// Keep the newest extractions of this app; remove older ones.
fn prune(root: &Path, app: &str, current: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.rsplit_once('-')
                .is_some_and(|(n, digest)| n == app && digest.len() == 16)
                && e.path() != current
        })
        .filter_map(|e| {
            let modified = std::fs::metadata(e.path().join(MARKER))
                .and_then(|m| m.modified())
                .ok()?;
            Some((modified, e.path()))
        })
        .collect();
    found.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, path) in found.into_iter().skip(KEEP - 1) {
        let _ = std::fs::remove_dir_all(path);
    }
}
