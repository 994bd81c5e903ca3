//! What the apt and yum repositories share: a whole repository staged in a folder beside its
//! place and swapped in at once (never a half-written repository under the real name), left
//! as it is when it already says the same, and the record of what was written.

use crate::verify::{Check, Outcome};
use crate::Sent;
use gradient_python::staging::Staged;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The prefix of staging entries in the output folder: the driver's sweep knows it.
const STAGING_PREFIX: &str = ".gradient-";

/// A repository written into the output folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repository {
    /// Its folder (`OUT/apt`, `OUT/yum`).
    pub dir: PathBuf,
    /// Every file in it, relative to `dir`, sorted.
    pub files: Vec<String>,
    /// The fingerprint of the OpenPGP key that signed it; `None`: unsigned.
    pub signed_by: Option<String>,
    /// One record per package put in: its sha256, and whether anything was written (false
    /// when the repository already held the same packages and indexes).
    pub sent: Vec<Sent>,
    /// What its user should know (unsigned, how to use it).
    pub notes: Vec<String>,
}

/// A repository being written: a staging folder in the output folder.
pub(crate) struct Stage {
    staged: Staged,
}

impl Stage {
    pub(crate) fn new(out: &Path) -> std::io::Result<Stage> {
        std::fs::create_dir_all(out)?;
        let staged = Staged::dir_in(out, STAGING_PREFIX)?;
        Ok(Stage { staged })
    }

    pub(crate) fn path(&self) -> &Path {
        self.staged.path()
    }

    /// Write `bytes` to `name` (a path relative to the stage, made by gradient).
    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        // Names come from the manifest and the packages: only plain names below the stage.
        let relative = Path::new(name);
        if name.is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name:?} is not a plain relative path inside the repository"),
            ));
        }
        let path = self.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)
    }

    /// Every file of the stage, relative, sorted.
    pub(crate) fn files(&self) -> Vec<String> {
        files_under(self.path())
    }

    /// Put the stage at `target`: left out when `target` holds the same files with the
    /// same bytes, `signatures` aside (they differ from one signing to the next), and the
    /// same signature files exist. Otherwise swapped in with one `renameat2(EXCHANGE)` (or
    /// renamed into place when there is nothing yet). Returns whether it was written.
    pub(crate) fn settle(mut self, target: &Path, signatures: &[&str]) -> std::io::Result<bool> {
        let files = self.files();
        if same_repository(self.path(), target, &files, signatures) {
            return Ok(false);
        }
        // Readable by apt's and dnf's unprivileged fetchers: a staging folder is made 0700.
        for dir in walk_dirs(self.path()) {
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        }
        for file in &files {
            std::fs::set_permissions(
                self.path().join(file),
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )?;
        }
        if target.exists() {
            exchange(self.path(), target)?;
            // The stage now holds the previous repository, removed when it is dropped.
        } else {
            self.staged.persist(target)?;
        }
        Ok(true)
    }
}

fn same_repository(new: &Path, old: &Path, files: &[String], signatures: &[&str]) -> bool {
    files == files_under(old).as_slice()
        && files.iter().all(|file| {
            signatures.contains(&file.as_str())
                || std::fs::read(new.join(file)).ok() == std::fs::read(old.join(file)).ok()
        })
}

fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    let mut at = 0;
    while at < dirs.len() {
        if let Ok(entries) = std::fs::read_dir(&dirs[at]) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(entry.path());
                }
            }
        }
        at += 1;
    }
    dirs
}

fn files_under(root: &Path) -> Vec<String> {
    let mut files: Vec<String> = walk_dirs(root)
        .into_iter()
        .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            e.path()
                .strip_prefix(root)
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
        })
        .collect();
    files.sort();
    files
}

/// Swap two folders in one step (Linux's `renameat2` with `RENAME_EXCHANGE`).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::other("a path with a NUL byte"))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are valid NUL-terminated paths; the call reads them and nothing else.
    let done = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A file name of the output folder that may also name a file in a repository (and a line
/// of its index): plain, printable, no spaces.
pub(crate) fn plain_name(file: &str) -> bool {
    !file.is_empty()
        && !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '~' | ':'))
}

/// A check of `file` in the repository folder `dir` (`apt`, `yum`), for `gradient verify`.
pub(crate) fn push(
    checks: &mut Vec<Check>,
    dir: &str,
    file: &str,
    property: &'static str,
    outcome: Outcome,
) {
    checks.push(Check {
        subject: format!("{dir}/{file}"),
        property,
        outcome,
    })
}

/// Whether the file at `path` has `sha256` and `size`, as `by` says it should.
pub(crate) fn held(path: &Path, sha256: &str, size: u64, by: &str) -> Outcome {
    match std::fs::read(path) {
        Ok(bytes) => {
            let actual = hex::encode(Sha256::digest(&bytes));
            if actual == sha256 && bytes.len() as u64 == size {
                Outcome::Holds(format!("sha256 {actual}, as {by} says"))
            } else {
                Outcome::Fails(format!(
                    "sha256 {actual} and {} bytes; {by} says {sha256} and {size}",
                    bytes.len()
                ))
            }
        }
        Err(e) => Outcome::Fails(format!("cannot be read: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_replaces_a_repository_whole_and_leaves_an_equal_one() {
        let out = tempfile::tempdir().unwrap();
        let target = out.path().join("apt");
        let stage = Stage::new(out.path()).unwrap();
        stage.write("Packages", b"one").unwrap();
        stage.write("Release.gpg", b"sig 1").unwrap();
        assert!(stage.settle(&target, &["Release.gpg"]).unwrap());
        assert_eq!(std::fs::read(target.join("Packages")).unwrap(), b"one");

        // Only the signature differs: left as it was.
        let stage = Stage::new(out.path()).unwrap();
        stage.write("Packages", b"one").unwrap();
        stage.write("Release.gpg", b"sig 2").unwrap();
        assert!(!stage.settle(&target, &["Release.gpg"]).unwrap());
        assert_eq!(std::fs::read(target.join("Release.gpg")).unwrap(), b"sig 1");

        // Different: swapped in whole, the old one gone, no staging folder left.
        let stage = Stage::new(out.path()).unwrap();
        stage.write("Packages", b"two").unwrap();
        assert!(stage.settle(&target, &["Release.gpg"]).unwrap());
        assert_eq!(files_under(&target), ["Packages"]);
        let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }
}
