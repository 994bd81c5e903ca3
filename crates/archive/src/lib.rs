//! gradient-archive: byte-reproducible archives.
//!
//! Every archive gradient writes or rewrites passes through here, so the rules that make
//! two builds byte-identical live in one place:
//! - entries sorted (by a caller-given key, path by default),
//! - every timestamp set to the build's source date,
//! - modes normalised to 0644 / 0755, owners to 0:0 with empty names,
//! - gzip headers without file name or time, a fixed compression level, and a fixed cut
//!   of the data into chunks that are compressed on every core (`gzip`).
//!
//! Data enters as an existing archive (a build backend's output) or as in-memory entries,
//! and leaves as a new file at a path the caller chooses.

mod gzip;
mod tar_gz;
mod time;
mod tree;
mod zip_file;

pub use gzip::{deflate, gzip, gzip_trailer, End, GZIP_HEADER};
pub use tar_gz::{extract_tar_gz, normalise_tar_gz, read_tar_gz_entries};
pub use tar_gz::{write_tar, write_tar_gz, Owner};
pub use time::{rfc2822, rfc3339};
pub use tree::tree_entries;
pub use zip_file::{
    normalise_zip, read_zip_entries, write_zip, write_zip_stored, write_zip_with, ZipOrder,
};

/// Zip cannot hold times before 1980-01-01; earlier source dates are clamped to it.
pub const ZIP_EPOCH_MIN: u64 = 315_532_800;

use std::path::PathBuf;

/// A file's permission bits after normalisation: executable or not, nothing else, but for
/// the sticky bit of a folder anyone may write to (`/tmp` in an image).
pub fn normal_mode(mode: u32, is_dir: bool) -> u32 {
    if is_dir && mode & 0o1000 != 0 {
        0o1777
    } else if is_dir || mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

/// One entry of an archive read into memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The path inside the archive, `/`-separated, without a leading `./`.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits as found (normalised on write).
    pub mode: u32,
}

/// The folder entries that lead to and include `path`: `a`, `a/b`, `a/b/c` for `a/b/c`.
pub fn folder_entries(path: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut current = String::new();
    for part in path.split('/') {
        if !current.is_empty() {
            current.push('/');
        }
        current.push_str(part);
        entries.push(Entry {
            path: current.clone(),
            kind: EntryKind::Dir,
            mode: 0o755,
        });
    }
    entries
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
}

/// Why an archive could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("failed to read archive `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read zip archive `{}`", path.display())]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("failed to write archive `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("archive `{}` holds `{entry}`, which {why}", path.display())]
    UnsafeEntry {
        path: PathBuf,
        entry: String,
        why: &'static str,
    },
}
