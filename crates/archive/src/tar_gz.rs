//! Gzipped tar archives: read, rewrite deterministically, extract safely.

use crate::{normal_mode, ArchiveError, Entry, EntryKind};
use flate2::read::GzDecoder;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path};

/// Read every entry of a `.tar.gz` into memory. Sizes are those of sdists and layers, which
/// fit comfortably; entries other than files, folders and symlinks are refused.
pub fn read_tar_gz_entries(path: &Path) -> Result<Vec<Entry>, ArchiveError> {
    let read_err = |source| ArchiveError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let mut entries = Vec::new();
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw_path = entry
            .path()
            .map_err(read_err)?
            .to_string_lossy()
            .into_owned();
        let entry_path = clean_path(&raw_path);
        if entry_path.is_empty() {
            continue; // the archive's own `./`
        }
        let mode = entry.header().mode().unwrap_or(0o644);
        let kind = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut data = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut data).map_err(read_err)?;
                EntryKind::File(data)
            }
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(read_err)?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                EntryKind::Symlink(target)
            }
            // pax and GNU extension headers are folded into the entries by the reader.
            tar::EntryType::XGlobalHeader => continue,
            _ => {
                return Err(ArchiveError::UnsafeEntry {
                    path: path.to_path_buf(),
                    entry: raw_path,
                    why: "is neither a file, a folder nor a symlink",
                })
            }
        };
        entries.push(Entry {
            path: entry_path,
            kind,
            mode,
        });
    }
    Ok(entries)
}

/// Rewrite a `.tar.gz` so that it depends only on its contents and `mtime`.
pub fn normalise_tar_gz(src: &Path, dst: &Path, mtime: u64) -> Result<(), ArchiveError> {
    let mut entries = read_tar_gz_entries(src)?;
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);
    write_tar_gz(dst, &entries, mtime)
}

/// Write entries, in the order given, as a deterministic POSIX (ustar/pax) `.tar.gz`.
pub fn write_tar_gz(dst: &Path, entries: &[Entry], mtime: u64) -> Result<(), ArchiveError> {
    let write_err = |source| ArchiveError::Write {
        path: dst.to_path_buf(),
        source,
    };
    let tar = write_tar(Vec::new(), entries, mtime, &|_| (0, 0)).map_err(write_err)?;
    std::fs::write(dst, crate::gzip(&tar, 9)).map_err(write_err)
}

/// Who owns an entry: `(uid, gid)`.
pub type Owner<'a> = &'a dyn Fn(&Entry) -> (u64, u64);

/// Write entries, in the order given, as a deterministic POSIX (ustar/pax) tar stream into
/// `out`, and hand `out` back. Owners come from `owner` (names stay empty); times are `mtime`.
pub fn write_tar<W: Write>(
    out: W,
    entries: &[Entry],
    mtime: u64,
    owner: Owner<'_>,
) -> std::io::Result<W> {
    let mut builder = tar::Builder::new(out);
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        let (entry_type, data, size): (_, &[u8], usize) = match &entry.kind {
            EntryKind::File(data) => (tar::EntryType::Regular, data, data.len()),
            EntryKind::Dir => (tar::EntryType::Directory, &[], 0),
            EntryKind::Symlink(_) => (tar::EntryType::Symlink, &[], 0),
        };
        let is_dir = matches!(entry.kind, EntryKind::Dir);
        let name = if is_dir {
            format!("{}/", entry.path)
        } else {
            entry.path.clone()
        };
        if header.set_path(&name).is_err() {
            // Too long for ustar's name and prefix fields: a pax record carries it.
            builder.append_pax_extensions([("path", name.as_bytes())])?;
            let short: String = name
                .chars()
                .rev()
                .take(99)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            header.set_path(short.trim_start_matches('/'))?;
        }
        if let EntryKind::Symlink(target) = &entry.kind {
            if header.set_link_name(target).is_err() {
                builder.append_pax_extensions([("linkpath", target.as_bytes())])?;
                header.set_link_name("")?;
            }
        }
        let (uid, gid) = owner(entry);
        header.set_entry_type(entry_type);
        header.set_size(size as u64);
        header.set_mode(normal_mode(entry.mode, is_dir));
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(mtime);
        header.set_cksum();
        builder.append(&header, data)?;
    }
    builder.into_inner()
}

/// Unpack a `.tar.gz` into `dst`, refusing absolute paths, `..` and symlinks that leave `dst`.
pub fn extract_tar_gz(src: &Path, dst: &Path) -> Result<(), ArchiveError> {
    for entry in read_tar_gz_entries(src)? {
        let unsafe_entry = |why| ArchiveError::UnsafeEntry {
            path: src.to_path_buf(),
            entry: entry.path.clone(),
            why,
        };
        let relative = Path::new(&entry.path);
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(unsafe_entry("is absolute or climbs out with `..`"));
        }
        let target = dst.join(relative);
        let write_err = |source| ArchiveError::Write {
            path: target.clone(),
            source,
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(write_err)?;
        }
        match &entry.kind {
            EntryKind::Dir => std::fs::create_dir_all(&target).map_err(write_err)?,
            EntryKind::File(data) => {
                std::fs::write(&target, data).map_err(write_err)?;
                set_mode(&target, normal_mode(entry.mode, false)).map_err(write_err)?;
            }
            EntryKind::Symlink(link) => {
                let depth = relative.components().count() as isize - 1;
                if Path::new(link).is_absolute() || climbs_out(link, depth) {
                    return Err(unsafe_entry("is a symlink pointing outside the archive"));
                }
                std::os::unix::fs::symlink(link, &target).map_err(write_err)?;
            }
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Whether a relative link at folder depth `depth` resolves above the archive root.
fn climbs_out(link: &str, mut depth: isize) -> bool {
    for part in link.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

fn clean_path(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_end_matches('/')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &[u8], mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File(data.to_vec()),
            mode,
        }
    }

    #[test]
    fn normalising_twice_is_byte_identical_and_ignores_input_order_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.tar.gz");
        let b = dir.path().join("b.tar.gz");
        write_tar_gz(
            &a,
            &[file("p/z.txt", b"z", 0o600), file("p/a.py", b"a", 0o775)],
            99,
        )
        .unwrap();
        write_tar_gz(
            &b,
            &[file("p/a.py", b"a", 0o755), file("p/z.txt", b"z", 0o644)],
            12345,
        )
        .unwrap();
        let (na, nb) = (dir.path().join("na"), dir.path().join("nb"));
        normalise_tar_gz(&a, &na, 1000).unwrap();
        normalise_tar_gz(&b, &nb, 1000).unwrap();
        assert_eq!(std::fs::read(&na).unwrap(), std::fs::read(&nb).unwrap());
        let entries = read_tar_gz_entries(&na).unwrap();
        assert_eq!(entries[0].path, "p/a.py");
        assert_eq!(entries[0].mode, 0o755);
        assert_eq!(entries[1].mode, 0o644);
    }

    #[test]
    fn long_paths_survive_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let long = format!("pkg-1.0/{}/module.py", "d".repeat(180));
        let path = dir.path().join("long.tar.gz");
        write_tar_gz(&path, &[file(&long, b"x", 0o644)], 0).unwrap();
        assert_eq!(read_tar_gz_entries(&path).unwrap()[0].path, long);
    }

    #[test]
    fn extraction_refuses_symlinks_that_escape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evil.tar.gz");
        let link = Entry {
            path: "pkg/link".into(),
            kind: EntryKind::Symlink("../../etc/passwd".into()),
            mode: 0o777,
        };
        write_tar_gz(&path, &[link], 0).unwrap();
        let err = extract_tar_gz(&path, &dir.path().join("out")).unwrap_err();
        assert!(err.to_string().contains("outside the archive"), "{err}");
    }
}
