//! Cache entries that tiers read, checked against what was recorded when they were made.
//!
//! An entry is a folder of the cache (a runtime bundle, an installed wheelhouse, a stripped
//! copy of a bundle, a packed runtime part). When it is complete, [`seal`] writes
//! [`MANIFEST`] into it, last and atomically: the sha256 and mode of every file, the target
//! of every symbolic link and the name of every folder in it. [`check`] compares the entry
//! with its manifest: an entry without one is incomplete, one that differs is damaged, and
//! the caller warns (naming the file) and makes it again. A flipped byte in the cache would
//! otherwise be copied into every artifact without a word.
//!
//! Checking hashes the files on every core, and each entry is checked at most once per
//! process (one gradient run): the runtime bundle and its stripped copy are asked for by
//! several tiers.

use crate::staging::Staged;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The manifest's name inside an entry. A file, not a folder, so it is renamed into place.
pub const MANIFEST: &str = "gradient-sha256.json";

#[derive(Serialize, Deserialize, PartialEq, Debug, Default)]
struct Manifest {
    /// Relative path → `(sha256 hex, permission bits)`.
    files: BTreeMap<String, (String, u32)>,
    /// Relative path → link target.
    links: BTreeMap<String, String>,
    folders: BTreeSet<String>,
}

/// The record of the files' identities at the last full check, at the entry's top.
const VERIFIED: &str = "gradient-verified.json";

/// What identifies a file's bytes without reading them: inode, size, permission bits,
/// modification and change times.
type Identity = (u64, u64, u32, i64, i64, i64, i64);

/// The identities of the manifest's files, in its order; `None` when one cannot be read.
fn identities(entry: &Path, manifest: &Manifest) -> Option<Vec<Identity>> {
    use std::os::unix::fs::MetadataExt;
    manifest
        .files
        .keys()
        .map(|relative| {
            let m = std::fs::metadata(entry.join(relative)).ok()?;
            Some((
                m.ino(),
                m.size(),
                m.mode(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            ))
        })
        .collect()
}

/// What [`check`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum State {
    /// Every recorded file is as it was made.
    Intact,
    /// No manifest (or one that does not parse): the entry was never finished, or was made
    /// by a gradient that did not record one.
    Unsealed,
    /// This file is not what was recorded (why).
    Damaged { file: PathBuf, why: &'static str },
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Intact => write!(f, "intact"),
            State::Unsealed => write!(f, "has no {MANIFEST}"),
            State::Damaged { file, why } => write!(f, "`{}` {why}", file.display()),
        }
    }
}

/// Entries found intact or sealed by this process.
fn known_good() -> &'static Mutex<HashSet<PathBuf>> {
    static GOOD: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    GOOD.get_or_init(Default::default)
}

/// Record what `entry` holds now in `entry/MANIFEST`, written last through a temporary
/// file and a rename, so that a manifest is always whole.
pub fn seal(entry: &Path) -> std::io::Result<()> {
    let mut manifest = Manifest::default();
    let mut files = Vec::new();
    for item in walkdir::WalkDir::new(entry)
        .sort_by_file_name()
        .min_depth(1)
    {
        let item = item.map_err(std::io::Error::from)?;
        let relative = relative(entry, item.path());
        if relative == MANIFEST {
            continue;
        }
        let kind = item.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(item.path())?;
            manifest
                .links
                .insert(relative, target.to_string_lossy().into_owned());
        } else if kind.is_dir() {
            manifest.folders.insert(relative);
        } else {
            use std::os::unix::fs::PermissionsExt;
            let mode = item
                .metadata()
                .map_err(std::io::Error::from)?
                .permissions()
                .mode();
            files.push((relative, item.into_path(), mode & 0o7777));
        }
    }
    let paths: Vec<&Path> = files.iter().map(|(_, path, _)| path.as_path()).collect();
    for ((relative, _, mode), digest) in files.iter().zip(hash_all(&paths)) {
        manifest.files.insert(relative.clone(), (digest?, *mode));
    }
    let mut temp = tempfile::NamedTempFile::new_in(entry)?;
    std::io::Write::write_all(
        &mut temp,
        &serde_json::to_vec(&manifest).expect("a manifest serialises"),
    )?;
    temp.as_file().sync_all()?;
    temp.persist(entry.join(MANIFEST)).map_err(|e| e.error)?;
    Ok(())
}

/// Move a sealed staging folder to `entry`. When another run got there first with an
/// intact entry, theirs is kept (it is in use) and ours goes; an unsealed or damaged one
/// is replaced.
pub fn settle(mut staged: Staged, entry: &Path) -> std::io::Result<()> {
    // Renamed under its lock (see [`Staged::persist`]); a staging folder that is not used
    // is removed when `staged` is dropped.
    if staged.persist(entry).is_err() {
        if check(entry) == State::Intact {
            return Ok(());
        }
        discard(entry)?;
        staged.persist(entry)?;
    }
    // Sealed from what this run has just written: trusted for the rest of the run.
    known_good()
        .lock()
        .expect("not poisoned")
        .insert(entry.to_path_buf());
    Ok(())
}

/// Forget that `entry` was found intact or sealed by this process, so that the next
/// [`check`] looks at it again, as a later run would.
pub fn forget(entry: &Path) {
    known_good().lock().expect("not poisoned").remove(entry);
}

/// Whether `entry` is still what [`seal`] recorded (only files, links and folders listed
/// in its manifest are looked at: what a tier reads).
pub fn check(entry: &Path) -> State {
    if known_good().lock().expect("not poisoned").contains(entry) {
        return State::Intact;
    }
    let Some(manifest) = std::fs::read(entry.join(MANIFEST))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Manifest>(&bytes).ok())
    else {
        return State::Unsealed;
    };
    let damaged = |relative: &str, why| State::Damaged {
        file: entry.join(relative),
        why,
    };
    for folder in &manifest.folders {
        if !entry.join(folder).is_dir() {
            return damaged(folder, "is missing");
        }
    }
    for (link, target) in &manifest.links {
        match std::fs::read_link(entry.join(link)) {
            Ok(found) if found.to_string_lossy() == *target => {}
            Ok(_) => return damaged(link, "links elsewhere than it did"),
            Err(_) => return damaged(link, "is missing"),
        }
    }
    // Nothing may have been added inside a recorded folder either: tiers copy those trees
    // whole, so a file slipped in later (a `.pth`, a module) would reach every artifact.
    // Beside them, at the entry's top, later runs keep what they derive from it (the SBOM's
    // digests), which no tier copies.
    for found in walkdir::WalkDir::new(entry).min_depth(2) {
        let Ok(found) = found else {
            return damaged("", "cannot be read whole");
        };
        let relative = relative(entry, found.path());
        let listed = relative == MANIFEST
            || manifest.files.contains_key(&relative)
            || manifest.folders.contains(&relative)
            || manifest.links.contains_key(&relative);
        if !listed {
            return damaged(&relative, "was not there when the entry was made");
        }
    }
    // The files' identities now; when they are those recorded by the last full check, no
    // byte has been written since (any write or chmod moves a file's ctime, which no program
    // can set back), and the hashing is skipped, as git trusts its index's stat data.
    let identities = identities(entry, &manifest);
    let recorded = std::fs::read(entry.join(VERIFIED))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Vec<Identity>>(&bytes).ok());
    if identities.is_some() && recorded == identities {
        known_good()
            .lock()
            .expect("not poisoned")
            .insert(entry.to_path_buf());
        return State::Intact;
    }
    let paths: Vec<PathBuf> = manifest.files.keys().map(|f| entry.join(f)).collect();
    let borrowed: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    for ((relative, (sha256, mode)), found) in manifest.files.iter().zip(hash_all(&borrowed)) {
        let Ok(found) = found else {
            return damaged(relative, "is missing or unreadable");
        };
        if found != *sha256 {
            return damaged(
                relative,
                "does not match the sha256 recorded when it was made",
            );
        }
        use std::os::unix::fs::PermissionsExt;
        let now = std::fs::metadata(entry.join(relative)).map(|m| m.permissions().mode() & 0o7777);
        if now.ok() != Some(*mode) {
            return damaged(relative, "has other permissions than it was made with");
        }
    }
    // Written in place (a torn record does not parse, and only costs the next run a full
    // check): at the entry's top, beside the recorded trees, where no tier reads. Not while
    // a file is younger than two seconds: a write within the same clock tick could leave
    // its times unchanged (git's "racy" case), so such a file is hashed again next time.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let settled = |(_, _, _, _, _, ctime, ctime_nsec): &Identity| {
        (*ctime as f64 + *ctime_nsec as f64 / 1e9) + 2.0 < now
    };
    if let Some(identities) = identities.filter(|all| all.iter().all(settled)) {
        let _ = std::fs::write(
            entry.join(VERIFIED),
            serde_json::to_vec(&identities).expect("identities serialise"),
        );
    }
    known_good()
        .lock()
        .expect("not poisoned")
        .insert(entry.to_path_buf());
    State::Intact
}

/// Remove a damaged or unfinished entry: first renamed aside (so that no other run finds a
/// half-removed folder under its name), then deleted.
pub fn discard(entry: &Path) -> std::io::Result<()> {
    known_good().lock().expect("not poisoned").remove(entry);
    let name = entry
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = entry.with_file_name(format!(".{name}.discarded-{}", std::process::id()));
    let target = if std::fs::rename(entry, &aside).is_ok() {
        aside
    } else {
        entry.to_path_buf()
    };
    match std::fs::remove_dir_all(&target).or_else(|_| std::fs::remove_file(&target)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether `entry` has a manifest (a quick look, for `plan`).
pub fn is_sealed(entry: &Path) -> bool {
    entry.join(MANIFEST).is_file()
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .expect("inside the walk")
        .to_string_lossy()
        .into_owned()
}

/// The sha256 (hex) of each file, in order, hashed on every core: the largest files are
/// taken first so that the threads finish together.
fn hash_all(paths: &[&Path]) -> Vec<std::io::Result<String>> {
    let mut order: Vec<usize> = (0..paths.len()).collect();
    let size = |i: &usize| std::fs::metadata(paths[*i]).map_or(0, |m| m.len());
    order.sort_by_key(|i| std::cmp::Reverse(size(i)));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Mutex<Vec<Option<std::io::Result<String>>>> =
        Mutex::new((0..paths.len()).map(|_| None).collect());
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(paths.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let at = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&index) = order.get(at) else { break };
                let digest = hash_file(paths[index]);
                results.lock().expect("not poisoned")[index] = Some(digest);
            });
        }
    });
    results
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .map(|r| r.expect("every file was hashed"))
        .collect()
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 18];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lib/empty")).unwrap();
        std::fs::write(dir.path().join("lib/a.so"), b"\x7fELF one").unwrap();
        std::fs::write(dir.path().join("b.py"), b"print('two')").unwrap();
        std::os::unix::fs::symlink("lib/a.so", dir.path().join("link")).unwrap();
        dir
    }

    /// `check` without the memory of this process, as a later run sees the entry.
    fn check_afresh(entry: &Path) -> State {
        known_good().lock().unwrap().remove(entry);
        check(entry)
    }

    #[test]
    fn a_settled_entry_is_trusted_by_identity_until_a_byte_is_written_in_place() {
        let dir = entry();
        seal(dir.path()).unwrap();
        // Files younger than two seconds are never trusted by identity.
        assert_eq!(check_afresh(dir.path()), State::Intact);
        assert!(!dir.path().join(VERIFIED).exists());
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(check_afresh(dir.path()), State::Intact);
        assert!(
            dir.path().join(VERIFIED).exists(),
            "recorded after a full check"
        );
        assert_eq!(check_afresh(dir.path()), State::Intact);
        // The same size, the same inode: only the file's times tell, and they do.
        std::fs::write(dir.path().join("b.py"), b"print('TWO')").unwrap();
        assert!(matches!(check_afresh(dir.path()), State::Damaged { .. }));
    }

    #[test]
    fn a_sealed_entry_is_intact_until_a_byte_a_file_a_folder_or_a_link_changes() {
        let dir = entry();
        assert_eq!(check_afresh(dir.path()), State::Unsealed);
        seal(dir.path()).unwrap();
        assert_eq!(check_afresh(dir.path()), State::Intact);
        // Files added at the top, beside the recorded trees, are not looked at ...
        std::fs::write(dir.path().join("extra"), b"").unwrap();
        assert_eq!(check_afresh(dir.path()), State::Intact);
        // ... but one added inside a recorded folder is damage: tiers copy those whole.
        std::fs::write(dir.path().join("lib/injected.pth"), b"import os").unwrap();
        assert!(matches!(check_afresh(dir.path()), State::Damaged { .. }));
        std::fs::remove_file(dir.path().join("lib/injected.pth")).unwrap();
        assert_eq!(check_afresh(dir.path()), State::Intact);

        let mut bytes = std::fs::read(dir.path().join("lib/a.so")).unwrap();
        bytes[5] ^= 1;
        std::fs::write(dir.path().join("lib/a.so"), &bytes).unwrap();
        let state = check_afresh(dir.path());
        assert_eq!(
            state,
            State::Damaged {
                file: dir.path().join("lib/a.so"),
                why: "does not match the sha256 recorded when it was made"
            }
        );
        assert!(
            state.to_string().contains("lib/a.so` does not match"),
            "{state}"
        );

        for damage in [
            |d: &Path| std::fs::remove_file(d.join("b.py")).unwrap(),
            |d: &Path| std::fs::remove_dir(d.join("lib/empty")).unwrap(),
            |d: &Path| {
                std::fs::remove_file(d.join("link")).unwrap();
                std::os::unix::fs::symlink("b.py", d.join("link")).unwrap();
            },
            |d: &Path| {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::Permissions::from_mode(0o777);
                std::fs::set_permissions(d.join("b.py"), mode).unwrap();
            },
        ] {
            let dir = entry();
            seal(dir.path()).unwrap();
            damage(dir.path());
            assert!(
                matches!(check_afresh(dir.path()), State::Damaged { .. }),
                "{:?}",
                check_afresh(dir.path())
            );
        }
    }

    #[test]
    fn a_discarded_entry_is_gone_and_forgotten() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("KEY");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("f"), b"x").unwrap();
        seal(&dir).unwrap();
        assert_eq!(check(&dir), State::Intact);
        discard(&dir).unwrap();
        assert!(std::fs::read_dir(parent.path()).unwrap().next().is_none());
        assert_eq!(check(&dir), State::Unsealed);
    }
}
