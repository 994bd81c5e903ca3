//! Zip archives (wheels, zipapps): read, rewrite deterministically.

use crate::time::civil_from_unix;
use crate::{normal_mode, ArchiveError, Entry, EntryKind};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use zip::write::SimpleFileOptions;

/// The order entries are written in. This is the one place that decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZipOrder {
    /// Sorted by path.
    Path,
    /// Sorted by path, the `.dist-info` folder last and its `RECORD` very last, as the wheel
    /// spec recommends so that installers can stream the archive.
    Wheel,
}

impl ZipOrder {
    fn key(self, path: &str) -> (u8, &str) {
        match self {
            ZipOrder::Path => (0, path),
            ZipOrder::Wheel => {
                let top = path.split('/').next().unwrap_or("");
                if !top.ends_with(".dist-info") {
                    (0, path)
                } else if path.ends_with("/RECORD") {
                    (2, path)
                } else {
                    (1, path)
                }
            }
        }
    }
}

/// Read every file entry of a zip archive (folder entries are implied by paths).
pub fn read_zip_entries(path: &Path) -> Result<Vec<Entry>, ArchiveError> {
    let zip_err = |source| ArchiveError::Zip {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| ArchiveError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(zip_err)?;
    let mut entries = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let mut file = archive.by_index(index).map_err(zip_err)?;
        if file.is_dir() {
            continue;
        }
        let name = file.name().to_string();
        let mode = file.unix_mode().unwrap_or(0o644);
        let mut data = Vec::with_capacity(file.size() as usize);
        file.read_to_end(&mut data)
            .map_err(|source| ArchiveError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        entries.push(Entry {
            path: name,
            kind: EntryKind::File(data),
            mode,
        });
    }
    Ok(entries)
}

/// Rewrite a zip so that it depends only on its contents, `order` and `mtime`.
pub fn normalise_zip(
    src: &Path,
    dst: &Path,
    mtime: u64,
    order: ZipOrder,
) -> Result<(), ArchiveError> {
    let mut entries = read_zip_entries(src)?;
    entries.sort_by(|a, b| order.key(&a.path).cmp(&order.key(&b.path)));
    entries.dedup_by(|a, b| a.path == b.path);
    write_zip(dst, &entries, mtime)
}

/// Write file and folder entries (links are left out), in the order given, as a
/// deterministic zip.
pub fn write_zip(dst: &Path, entries: &[Entry], mtime: u64) -> Result<(), ArchiveError> {
    write_zip_with(dst, entries, mtime, b"", "")
}

/// [`write_zip`] with `prefix` bytes before the archive (a `#!` line, a launcher) and an
/// archive `comment`. Offsets inside the zip count from the start of the file.
pub fn write_zip_with(
    dst: &Path,
    entries: &[Entry],
    mtime: u64,
    prefix: &[u8],
    comment: &str,
) -> Result<(), ArchiveError> {
    write(
        dst,
        entries,
        mtime,
        prefix,
        comment,
        zip::CompressionMethod::Deflated,
    )
}

/// [`write_zip`] without compression: for archives read member by member at run time
/// (an interpreter's standard library) that travel inside a compressed payload anyway.
pub fn write_zip_stored(dst: &Path, entries: &[Entry], mtime: u64) -> Result<(), ArchiveError> {
    write(dst, entries, mtime, b"", "", zip::CompressionMethod::Stored)
}

fn write(
    dst: &Path,
    entries: &[Entry],
    mtime: u64,
    prefix: &[u8],
    comment: &str,
    method: zip::CompressionMethod,
) -> Result<(), ArchiveError> {
    let write_err = |source| ArchiveError::Write {
        path: dst.to_path_buf(),
        source,
    };
    let zip_err = |source: zip::result::ZipError| ArchiveError::Write {
        path: dst.to_path_buf(),
        source: std::io::Error::other(source),
    };
    let (year, month, day, hour, minute, second) = civil_from_unix(mtime.max(crate::ZIP_EPOCH_MIN));
    let time = zip::DateTime::from_date_and_time(year, month, day, hour, minute, second)
        .map_err(|_| write_err(std::io::Error::other("timestamp out of zip's range")))?;
    let mut file = File::create(dst).map_err(write_err)?;
    file.write_all(prefix).map_err(write_err)?;
    let mut writer = zip::ZipWriter::new(BufWriter::new(file));
    writer.set_comment(comment);
    for entry in entries {
        let data = match &entry.kind {
            EntryKind::File(data) => data,
            // Folders are listed for readers that need them (zipimport finds namespace
            // packages only through their folder entries).
            EntryKind::Dir => {
                let options = SimpleFileOptions::default()
                    .last_modified_time(time)
                    .unix_permissions(normal_mode(entry.mode, true));
                writer
                    .add_directory(entry.path.trim_end_matches('/'), options)
                    .map_err(zip_err)?;
                continue;
            }
            EntryKind::Symlink(_) => continue,
        };
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .compression_level((method == zip::CompressionMethod::Deflated).then_some(6))
            .last_modified_time(time)
            .unix_permissions(normal_mode(entry.mode, false));
        writer
            .start_file(entry.path.as_str(), options)
            .map_err(zip_err)?;
        writer.write_all(data).map_err(write_err)?;
    }
    let mut out = writer.finish().map_err(zip_err)?;
    out.flush().map_err(write_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &[u8]) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File(data.to_vec()),
            mode: 0o644,
        }
    }

    #[test]
    fn wheel_order_puts_record_last_and_output_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in.whl");
        write_zip(
            &src,
            &[
                file("pkg-1.dist-info/RECORD", b"r"),
                file("pkg-1.dist-info/METADATA", b"m"),
                file("pkg/__init__.py", b"i"),
                file("zzz/x.py", b"x"),
            ],
            1_600_000_000,
        )
        .unwrap();
        let (a, b) = (dir.path().join("a.whl"), dir.path().join("b.whl"));
        normalise_zip(&src, &a, 1_700_000_000, ZipOrder::Wheel).unwrap();
        normalise_zip(&a, &b, 1_700_000_000, ZipOrder::Wheel).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let names: Vec<String> = read_zip_entries(&a)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            names,
            [
                "pkg/__init__.py",
                "zzz/x.py",
                "pkg-1.dist-info/METADATA",
                "pkg-1.dist-info/RECORD"
            ]
        );
    }
}
