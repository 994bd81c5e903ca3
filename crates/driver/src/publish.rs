//! Writing into the output folder: always a temporary file beside the target, then a rename,
//! so the folder never holds a half-written file under a real name.

use gradient_python::staging::Staged;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A file as published.
pub struct Published {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

/// Copy `src` into `out_dir` under its own name, atomically, hashing as it goes.
pub fn publish_file(src: &Path, out_dir: &Path) -> std::io::Result<Published> {
    publish_checked(src, out_dir, None)
}

/// As [`publish_file`], refusing (an `InvalidData` error, nothing written) a file whose
/// digest is not `expected`.
pub fn publish_checked(
    src: &Path,
    out_dir: &Path,
    expected: Option<&str>,
) -> std::io::Result<Published> {
    let name = src
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?;
    let mut input = std::fs::File::open(src)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 16];
    let mut size = 0u64;
    let tmp = temp_beside(out_dir)?;
    loop {
        let n = input.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        tmp.file().write_all(&buffer[..n])?;
        size += n as u64;
    }
    let sha256 = hex::encode(hasher.finalize());
    if expected.is_some_and(|e| e != sha256) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "its digest is {sha256}, not the recorded {}",
                expected.unwrap_or("")
            ),
        ));
    }
    let path = out_dir.join(name);
    let executable = input.metadata()?.permissions().mode() & 0o111 != 0;
    persist(tmp, &path, if executable { 0o755 } else { 0o644 })?;
    Ok(Published { path, sha256, size })
}

/// The SHA-256 of a file, in hex, read in pieces.
pub fn file_digest(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 16];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..n]);
    }
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Write a text gradient made itself (the manifest, a report) to `path` atomically, with
/// secrets masked: error texts and a tool's output end up in these files.
pub fn write_text_atomically(path: &Path, text: &[u8]) -> std::io::Result<()> {
    write_atomically(path, redact_bytes(text).as_bytes())
}

/// `text` (UTF-8, as gradient writes it) with secrets masked.
pub fn redact_bytes(text: &[u8]) -> String {
    gradient_core::redact(&String::from_utf8_lossy(text)).into_owned()
}

/// Write `bytes` to `path` atomically.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_beside(path.parent().unwrap_or(Path::new(".")))?;
    tmp.file().write_all(bytes)?;
    persist(tmp, path, 0o644)
}

/// The name prefix of a file being written into the output folder.
pub(crate) const STAGING_PREFIX: &str = ".gradient-";

fn temp_beside(dir: &Path) -> std::io::Result<Staged> {
    Staged::file_in(dir, STAGING_PREFIX)
}

fn persist(mut tmp: Staged, path: &Path, mode: u32) -> std::io::Result<()> {
    tmp.file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.persist(path)
}

/// Fail early, before any work, when `out` cannot be written: it is a file, or the nearest
/// existing folder on its path refuses a new file.
pub fn check_writable(out: &Path) -> Result<(), String> {
    if out.exists() && !out.is_dir() {
        return Err("it exists and is not a folder".into());
    }
    let mut probe = out;
    while !probe.exists() {
        probe = match probe.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
    }
    if !probe.is_dir() {
        return Err(format!("`{}` is not a folder", probe.display()));
    }
    temp_beside(probe).map(drop).map_err(|e| e.to_string())
}
