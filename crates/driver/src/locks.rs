//! The locks of a run: a project folder or an output folder is worked on by one gradient
//! run at a time (a second one waits, and says for whom), and the cache folder this run
//! can write.

use crate::{DriverError, Reporter};
use gradient_python::cache_root;
use std::path::{Path, PathBuf};

/// Where the folder locks live: the user's cache, also for a run with a cache of its own
/// (`compare --cold`), since a lock is about a folder, not about cached content.
pub(crate) fn locks_root(reporter: &dyn Reporter) -> PathBuf {
    usable_cache(cache_root(), reporter)
}

/// The output folder's lock, for work on it after a run (`compare` adds its peers' output
/// and its reports): held until the returned value is dropped.
pub(crate) async fn lock_output_folder(
    out_dir: &Path,
    reporter: &dyn Reporter,
) -> Result<Vec<std::fs::File>, DriverError> {
    lock_folders(
        &locks_root(reporter),
        &[(out_dir, "writing into")],
        reporter,
    )
    .await
}

/// Take the lock of each folder (each given with what the run does there, for the message a
/// waiting run shows), in one global order (by lock file), so that two runs whose folders
/// cross cannot wait for each other; the same folder twice is locked once.
pub(crate) async fn lock_folders(
    cache: &Path,
    folders: &[(&Path, &str)],
    reporter: &dyn Reporter,
) -> Result<Vec<std::fs::File>, DriverError> {
    let mut wanted: Vec<(PathBuf, PathBuf, &str)> = folders
        .iter()
        .map(|(folder, doing)| {
            let folder = real_path(folder);
            (lock_path(cache, &folder), folder, *doing)
        })
        .collect();
    wanted.sort_by(|a, b| a.0.cmp(&b.0));
    wanted.dedup_by(|a, b| a.0 == b.0);
    let mut held = Vec::new();
    for (path, folder, doing) in wanted {
        held.push(lock_folder(&path, &folder, doing, reporter).await?);
    }
    Ok(held)
}

/// `folder` with symbolic links resolved, also before it exists (an output folder the run
/// will make): its nearest existing ancestor resolved, the rest as given, where a `..`
/// takes back the name before it (a folder that does not exist yet is no link). So one
/// folder has one lock however it is named.
fn real_path(folder: &Path) -> PathBuf {
    let mut existing = folder;
    let mut rest = Vec::new();
    while std::fs::metadata(existing).is_err() {
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return folder.to_path_buf(),
        }
    }
    let mut real = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    for part in rest.into_iter().rev() {
        match part {
            std::path::Component::ParentDir => {
                real.pop();
            }
            std::path::Component::CurDir => {}
            other => real.push(other),
        }
    }
    real
}

/// `CACHE/locks/NAME-HASH.lock` for a folder (its real path).
fn lock_path(cache: &Path, folder: &Path) -> PathBuf {
    let digest = crate::publish::sha256_hex(folder.to_string_lossy().as_bytes());
    let name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    cache
        .join("locks")
        .join(format!("{name}-{}.lock", &digest[..16]))
}

/// Take the lock at `path` (holding the owner's pid), waiting and saying so when another run
/// holds it. The lock goes with the process, however it ends.
async fn lock_folder(
    path: &Path,
    root: &Path,
    doing: &str,
    reporter: &dyn Reporter,
) -> Result<std::fs::File, DriverError> {
    use std::io::{Read, Seek, Write};
    let io = |action| {
        let path = path.to_path_buf();
        move |source| DriverError::Io {
            action,
            path,
            source,
        }
    };
    if let Some(locks) = path.parent() {
        std::fs::create_dir_all(locks).map_err(io("create"))?;
    }
    let mut file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io("open"))?;
    if let Err(std::fs::TryLockError::WouldBlock) = file.try_lock() {
        let mut owner = String::new();
        let _ = file.read_to_string(&mut owner);
        // The pid of the last run that held the lock; shown only while that process lives.
        let owner = match owner.trim() {
            pid if !pid.is_empty() && Path::new("/proc").join(pid).exists() => {
                format!(" (pid {pid})")
            }
            _ => String::new(),
        };
        reporter.warn(&format!(
            "another gradient run{owner} is {doing} `{}`; waiting for it to finish (lock: `{}`)",
            root.display(),
            path.display()
        ));
        file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
            .await
            .expect("the lock wait does not panic")
            .map_err(io("lock"))?;
    }
    file.set_len(0).map_err(io("write"))?;
    file.rewind().map_err(io("write"))?;
    write!(file, "{}", std::process::id()).map_err(io("write"))?;
    Ok(file)
}

/// gradient's cache, or a folder in the temp dir when it cannot be written (said on stderr).
pub(crate) fn usable_cache(root: PathBuf, reporter: &dyn Reporter) -> PathBuf {
    let writable = std::fs::create_dir_all(&root).is_ok() && tempfile::tempfile_in(&root).is_ok();
    if writable {
        return root;
    }
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    let fallback = std::env::temp_dir().join(format!("gradient-cache-{uid}"));
    reporter.warn(&format!(
        "cannot write to the cache `{}`; using `{}` for this run (set GRADIENT_CACHE_DIR to choose)",
        root.display(),
        fallback.display()
    ));
    fallback
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_has_one_lock_whether_it_exists_yet_or_is_named_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let cache = dir.path().join("cache");
        let lock = |folder: &Path| lock_path(&cache, &real_path(folder));
        assert_eq!(
            lock(&real.join("dist")),
            lock(&dir.path().join("link/dist"))
        );
        std::fs::create_dir(real.join("dist")).unwrap();
        assert_eq!(
            lock(&real.join("dist")),
            lock(&dir.path().join("link/dist"))
        );
        assert_ne!(lock(&real.join("dist")), lock(&real.join("other")));
        // `..` and `.` through folders that do not exist yet.
        assert_eq!(
            lock(&real.join("new/../later/./out")),
            lock(&real.join("later/out"))
        );
        assert_eq!(
            lock(&dir.path().join("link/new/../dist")),
            lock(&real.join("dist"))
        );
    }
}
