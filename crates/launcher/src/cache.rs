//! Where frozen apps are extracted, and the extraction itself.

use crate::{LaunchError, Trailer};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

/// Written last into a finished extraction; its presence is what "extracted" means.
pub const MARKER: &str = ".gradient-complete";
/// A folder of the extraction holding one empty file per executable file found whole,
/// named by its identity ([`identity`]): a warm run of a file listed there need not hash
/// it again.
const VERIFIED: &str = ".gradient-verified";
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
        return vouch(exe, trailer, folder);
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
        return Err(LaunchError::NotPrivate(path.to_path_buf()));
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
        return vouch(exe, trailer, folder);
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
        std::fs::create_dir(staging.join(VERIFIED))?;
        std::fs::write(staging.join(VERIFIED).join(identity(exe)?), b"")?;
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

/// Let `exe` use the finished extraction `folder`, once the file is known whole: the
/// extraction only proves that some file with this trailer was. A file whose identity is
/// recorded in the folder was hashed before, and has not been written since (its
/// modification and change times would differ); any other is hashed now, and recorded
/// when the folder can be written. A warm run thus costs two `stat` calls, not a hash of
/// the whole file.
fn vouch(exe: &mut File, trailer: &Trailer, folder: PathBuf) -> Result<Prepared, LaunchError> {
    let stamp = folder.join(VERIFIED).join(identity(exe)?);
    if !stamp.is_file() {
        verify(exe, trailer)?;
        let _ = std::fs::create_dir(folder.join(VERIFIED));
        let _ = std::fs::write(&stamp, b"");
    }
    Ok(Prepared { folder })
}

/// What names this executable file as it is now: device, inode, size, and the times of
/// its last modification and last change (which nothing but the clock can set back).
fn identity(exe: &File) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = exe.metadata()?;
    Ok(format!(
        "{:x}-{:x}-{}-{}.{}-{}.{}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

/// The file's sha256 (with the digest's own place read as zeros) must match the trailer's
/// before anything is run or written: a changed byte anywhere, the launcher included, is
/// refused.
fn verify(exe: &mut File, trailer: &Trailer) -> Result<(), LaunchError> {
    exe.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut left = trailer.offset + trailer.length;
    let mut buffer = vec![0u8; 1 << 20];
    while left > 0 {
        let n = exe.read(&mut buffer[..left.min(1 << 20) as usize])?;
        if n == 0 {
            return Err(LaunchError::Damaged("the file ends early".into()));
        }
        hasher.update(&buffer[..n]);
        left -= n as u64;
    }
    hasher.update(trailer.digested_bytes());
    if hasher.finalize().as_slice() != trailer.sha256 {
        return Err(LaunchError::Damaged(
            "its bytes do not match the sha256 it was built with".into(),
        ));
    }
    Ok(())
}

/// Unpack the payload into `staging`. Files, folders and symbolic links only (the three
/// kinds gradient writes), each made in as few system calls as it takes: a first run
/// writes thousands of small files, and per-file calls (a folder check, a mode change, a
/// time stamp nobody reads) were most of its system time.
///
/// A payload that matches its digest and still does not unpack was written from damaged
/// bytes: that is [`LaunchError::Damaged`], while a failure to write stays an I/O error
/// (a full disk, a read-only cache) with its own hint.
fn unpack(exe: &mut File, trailer: &Trailer, staging: &Path) -> Result<(), LaunchError> {
    use std::os::unix::fs::OpenOptionsExt;
    let unreadable =
        |e: std::io::Error| LaunchError::Damaged(format!("its payload does not unpack ({e})"));
    std::fs::create_dir_all(staging)?;
    exe.seek(SeekFrom::Start(trailer.offset))?;
    let payload = std::io::BufReader::new(&mut *exe).take(trailer.length);
    // The payload is several gzip members (the runtime, cached once; the app), each a tar
    // stream: read them as one.
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(payload));
    archive.set_ignore_zeros(true);
    let mut folders = HashSet::from([staging.to_path_buf()]);
    let mut data = Vec::new();
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let path = entry.path().map_err(unreadable)?.into_owned();
        let shown = path.display().to_string();
        if path.as_os_str().is_empty()
            || !path
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(LaunchError::Unsafe(format!(
                "`{shown}`: an absolute path, or one with `..`"
            )));
        }
        let target = staging.join(&path);
        if let Some(parent) = target.parent().filter(|p| !folders.contains(*p)) {
            std::fs::create_dir_all(parent)?;
            folders.insert(parent.to_path_buf());
        }
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().map_err(unreadable)? & 0o777;
        if kind.is_dir() {
            if folders.insert(target.clone()) {
                std::fs::create_dir_all(&target)?;
            }
        } else if kind.is_symlink() {
            let link = entry.link_name().map_err(unreadable)?.unwrap_or_default();
            let depth = path.components().count() as isize - 1;
            if link.as_os_str().is_empty() || link.is_absolute() || climbs_out(&link, depth) {
                return Err(LaunchError::Unsafe(format!(
                    "`{shown}`: a link to `{}`, outside the bundle",
                    link.display()
                )));
            }
            std::os::unix::fs::symlink(&link, &target)?;
        } else if kind.is_file() {
            data.clear();
            entry.read_to_end(&mut data).map_err(unreadable)?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&target)?
                .write_all(&data)?;
        } else {
            return Err(LaunchError::Unsafe(format!(
                "`{shown}`: a {kind:?} entry, where gradient writes only files, folders and links"
            )));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A tar entry with a raw name (the tar crate's builder refuses `..` and absolute
    /// paths, which is what these tests need to write).
    fn raw_entry(
        builder: &mut tar::Builder<Vec<u8>>,
        name: &str,
        kind: tar::EntryType,
        link: &str,
        data: &[u8],
    ) {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(if kind.is_dir() { 0o755 } else { 0o750 });
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }

    /// An executable-shaped file: some launcher bytes, the gzipped tar, the trailer.
    fn executable(dir: &Path, entries: &[(&str, tar::EntryType, &str, &[u8])]) -> (File, Trailer) {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, link, data) in entries {
            raw_entry(&mut builder, name, *kind, link, data);
        }
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        executable_with_payload(dir, &gz.finish().unwrap())
    }

    /// An executable-shaped file around `payload`.
    fn executable_with_payload(dir: &Path, payload: &[u8]) -> (File, Trailer) {
        let mut trailer = Trailer {
            offset: 4,
            length: payload.len() as u64,
            sha256: [0; 32],
            name: "app".into(),
        };
        let path = dir.join("app");
        let mut bytes = b"stub".to_vec();
        bytes.extend_from_slice(payload);
        trailer.sha256 = Sha256::new()
            .chain_update(&bytes)
            .chain_update(trailer.digested_bytes())
            .finalize()
            .into();
        bytes.extend_from_slice(&crate::write_trailer(&trailer));
        std::fs::write(&path, bytes).unwrap();
        (File::open(&path).unwrap(), trailer)
    }

    fn extract(
        entries: &[(&str, tar::EntryType, &str, &[u8])],
    ) -> (tempfile::TempDir, Result<Prepared, LaunchError>) {
        let dir = tempfile::tempdir().unwrap();
        let (mut exe, trailer) = executable(dir.path(), entries);
        let result = extract_into(&mut exe, &trailer, &dir.path().join("cache"), "app-0");
        (dir, result)
    }

    use tar::EntryType::{Directory, Link, Regular, Symlink};

    #[test]
    fn files_folders_and_inner_links_are_unpacked_with_their_modes() {
        let (dir, result) = extract(&[
            ("python/", Directory, "", b""),
            ("python/bin/python3", Regular, "", b"#!"),
            ("python/bin/python", Symlink, "python3", b""),
            ("python/lib/deep/data.txt", Regular, "", b"data"),
        ]);
        let folder = result.unwrap().folder;
        assert_eq!(folder, dir.path().join("cache/app-0"));
        assert_eq!(
            std::fs::read(folder.join("python/bin/python")).unwrap(),
            b"#!"
        );
        assert_eq!(
            std::fs::read(folder.join("python/lib/deep/data.txt")).unwrap(),
            b"data"
        );
        let mode = std::fs::metadata(folder.join("python/bin/python3"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o100, 0o100, "the executable bit is kept: {mode:o}");
        assert!(folder.join(MARKER).is_file());
    }

    #[test]
    fn a_payload_that_does_not_unpack_is_called_damaged_not_a_full_disk() {
        // What a damaged cache at build time made: a tar header with a flipped byte, inside
        // a payload whose digest is right (it was computed from the damaged bytes).
        let mut builder = tar::Builder::new(Vec::new());
        raw_entry(&mut builder, "python/bin/python3", Regular, "", b"#!");
        let mut tar = builder.into_inner().unwrap();
        tar[150] ^= 0x55; // inside the header's checksum and size fields
        let dir = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let payload = gz.finish().unwrap();
        let (mut exe, trailer) = executable_with_payload(dir.path(), &payload);
        let error = extract_into(&mut exe, &trailer, &dir.path().join("cache"), "app-0")
            .err()
            .expect("a damaged payload is not extracted");
        let message = format!("{error}\n{}", error.hint().unwrap_or_default());
        assert!(message.contains("this executable is damaged"), "{message}");
        assert!(!message.contains("free some space"), "{message}");
    }

    #[test]
    fn entries_that_leave_the_folder_or_that_gradient_never_writes_are_refused() {
        for (entries, expected) in [
            (
                vec![("../escape", Regular, "", &b"x"[..])],
                "`../escape`: an absolute path, or one with `..`",
            ),
            (
                vec![("/tmp/escape", Regular, "", &b"x"[..])],
                "`/tmp/escape`: an absolute path",
            ),
            (
                vec![("a/../../escape", Regular, "", &b"x"[..])],
                "with `..`",
            ),
            (
                vec![("lib/out", Symlink, "../../etc", &b""[..])],
                "`lib/out`: a link to `../../etc`, outside the bundle",
            ),
            (vec![("out", Symlink, "/etc", &b""[..])], "a link to `/etc`"),
            (
                vec![("copy", Link, "python", &b""[..])],
                "`copy`: a Link entry",
            ),
        ] {
            let (dir, result) = extract(&entries);
            let message = match result {
                Err(error @ LaunchError::Unsafe(_)) => error.to_string(),
                Err(other) => panic!("{entries:?}: {other}"),
                Ok(_) => panic!("{entries:?} was extracted"),
            };
            assert!(message.contains(expected), "{message}");
            assert!(
                message.starts_with("the payload holds an unsafe entry"),
                "{message}"
            );
            // Nothing is left: no extraction, no staging folder, nothing beside them.
            let left: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.ends_with(".lock"))
                .collect();
            assert!(left.is_empty(), "{entries:?} left {left:?}");
            assert!(!dir.path().join("escape").exists());
        }
    }
}
