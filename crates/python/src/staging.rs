//! Staging folders and files: what a run makes beside its final place (or in the temporary
//! folder) and renames into place when complete. Each is held under an exclusive `flock`
//! for as long as the run works on it, so that a later run can tell one whose owner is gone
//! (killed, even with SIGKILL, which no handler sees: the kernel drops the lock with the
//! process) from one a concurrent run is still filling, and [`sweep`] removes only the
//! former.
//!
//! Between creating an entry and locking it there is a moment when it exists unlocked. The
//! creator holds a shared lock on the parent folder over that moment, and [`sweep`] looks
//! only while holding the parent's exclusive lock, so it never sees an entry in it.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// A staging folder or file, removed when dropped unless [`Staged::persist`]ed.
#[derive(Debug)]
pub struct Staged {
    path: PathBuf,
    /// The entry itself, opened and locked. For a file it is the file, for writing.
    handle: File,
    is_dir: bool,
    settled: bool,
}

impl Staged {
    /// A new folder `PREFIX` + random characters in `parent` (which must exist).
    pub fn dir_in(parent: &Path, prefix: &str) -> io::Result<Staged> {
        let _creating = lock_parent_shared(parent)?;
        let path = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)?
            .keep();
        let handle =
            File::open(&path).and_then(|dir| dir.try_lock().map(|()| dir).map_err(io::Error::from));
        let handle = handle.inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&path);
        })?;
        Ok(Staged {
            path,
            handle,
            is_dir: true,
            settled: false,
        })
    }

    /// A new empty file `PREFIX` + random characters in `parent` (which must exist).
    pub fn file_in(parent: &Path, prefix: &str) -> io::Result<Staged> {
        let _creating = lock_parent_shared(parent)?;
        let (handle, path) = tempfile::Builder::new()
            .prefix(prefix)
            .tempfile_in(parent)?
            .into_parts();
        let path = path.keep().map_err(|e| e.error)?;
        if let Err(error) = handle.try_lock() {
            let _ = std::fs::remove_file(&path);
            return Err(error.into());
        }
        Ok(Staged {
            path,
            handle,
            is_dir: false,
            settled: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The staging file, open for reading and writing (for a folder: the folder, read-only).
    pub fn file(&self) -> &File {
        &self.handle
    }

    /// Rename the entry to `to`, still under its lock, so that no sweep can take it between
    /// being complete and being in place. On failure it stays staged (and is removed when
    /// dropped).
    pub fn persist(&mut self, to: &Path) -> io::Result<()> {
        std::fs::rename(&self.path, to)?;
        self.settled = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Removed while still locked; the lock goes with the handle afterwards.
        let _ = match self.is_dir {
            true => std::fs::remove_dir_all(&self.path),
            false => std::fs::remove_file(&self.path),
        };
    }
}

fn lock_parent_shared(parent: &Path) -> io::Result<File> {
    let folder = File::open(parent)?;
    folder.lock_shared()?;
    Ok(folder)
}

/// Remove the entries of `parent` named `PREFIX…` whose lock can be taken: their run has
/// ended without removing them. Entries a live run holds, and everything while another run
/// is creating an entry in `parent` (the next sweep gets them), are left alone. Returns
/// what was removed.
pub fn sweep(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(folder) = File::open(parent) else {
        return Vec::new();
    };
    if folder.try_lock().is_err() {
        return Vec::new();
    }
    let Ok(listing) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut abandoned = Vec::new();
    for entry in listing.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        // Never a link (it could point anywhere) nor anything that could block on open.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if !(kind.is_dir() || kind.is_file()) {
            continue;
        }
        let path = entry.path();
        if let Ok(handle) = File::open(&path) {
            if handle.try_lock().is_ok() {
                abandoned.push((path, handle, kind.is_dir()));
            }
        }
    }
    // Removing can take a while (a work folder of hundreds of megabytes): new entries may
    // be created meanwhile, as the abandoned ones stay locked by this sweep.
    drop(folder);
    let mut removed = Vec::new();
    for (path, _lock, is_dir) in abandoned {
        let gone = match is_dir {
            true => std::fs::remove_dir_all(&path),
            false => std::fs::remove_file(&path),
        };
        match gone {
            Ok(()) => removed.push(path),
            Err(error) => tracing::debug!("could not remove `{}`: {error}", path.display()),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_removes_what_no_run_holds_and_leaves_what_a_run_holds() {
        let parent = tempfile::tempdir().unwrap();
        let held_dir = Staged::dir_in(parent.path(), ".key-").unwrap();
        std::fs::write(held_dir.path().join("part"), b"x").unwrap();
        let held_file = Staged::file_in(parent.path(), ".key-").unwrap();
        // What a killed run leaves: entries nobody holds a lock on.
        let dead_dir = parent.path().join(".key-dead");
        std::fs::create_dir(&dead_dir).unwrap();
        std::fs::write(dead_dir.join("part"), b"x").unwrap();
        let dead_file = parent.path().join(".key-dead-file");
        std::fs::write(&dead_file, b"x").unwrap();
        let other = parent.path().join("key-final");
        std::fs::create_dir(&other).unwrap();

        let mut removed = sweep(parent.path(), ".key-");
        removed.sort();
        assert_eq!(removed, [dead_dir.clone(), dead_file.clone()]);
        assert!(held_dir.path().join("part").is_file());
        assert!(held_file.path().is_file());
        assert!(other.is_dir(), "only names with the prefix are looked at");

        // Dropped: removed; persisted: in place, and no longer a staging entry.
        let held_path = held_dir.path().to_path_buf();
        drop(held_dir);
        assert!(!held_path.exists());
        let mut held_file = held_file;
        held_file.persist(&parent.path().join("done")).unwrap();
        drop(held_file);
        assert!(parent.path().join("done").is_file());
        assert!(sweep(parent.path(), ".key-").is_empty());
    }

    #[test]
    fn nothing_is_swept_while_another_run_creates_an_entry() {
        let parent = tempfile::tempdir().unwrap();
        let dead = parent.path().join(".key-dead");
        std::fs::create_dir(&dead).unwrap();
        let creating = lock_parent_shared(parent.path()).unwrap();
        assert!(sweep(parent.path(), ".key-").is_empty());
        assert!(dead.is_dir());
        drop(creating);
        assert_eq!(sweep(parent.path(), ".key-"), [dead]);
    }

    #[test]
    fn a_link_with_the_prefix_is_never_followed() {
        let parent = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("keep"), b"x").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), parent.path().join(".key-link")).unwrap();
        assert!(sweep(parent.path(), ".key-").is_empty());
        assert!(elsewhere.path().join("keep").is_file());
    }
}
