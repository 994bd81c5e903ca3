//! The trailer that ends a frozen executable and says where its payload is.

use std::io::{Read, Seek, SeekFrom};

/// `2`: the digest covers the whole file (`1` covered the payload only).
pub const MAGIC: &[u8; 8] = b"GRADFRZ2";
/// magic (8) · payload offset (8) · payload length (8) · sha256 (32) · name (64) · zero (8)
pub const TRAILER_LEN: usize = 128;

/// Where the payload is, the file's digest, and the app's name. The digest is the SHA-256
/// of the whole file with its own 32 bytes read as zeros: the launcher, the payload and the
/// trailer's other fields, so that no byte of the executable can change unnoticed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trailer {
    pub offset: u64,
    pub length: u64,
    pub sha256: [u8; 32],
    pub name: String,
}

impl Trailer {
    /// The first 16 hex digits of the digest: names the extraction folder.
    pub fn short_digest(&self) -> String {
        self.sha256[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl Trailer {
    /// The trailer's bytes with the digest's place zeroed: the last bytes the digest
    /// covers, after everything before the trailer.
    pub fn digested_bytes(&self) -> Vec<u8> {
        write_trailer(&Trailer {
            sha256: [0; 32],
            ..self.clone()
        })
    }
}

/// The trailer's bytes.
pub fn write_trailer(trailer: &Trailer) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(TRAILER_LEN);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&trailer.offset.to_le_bytes());
    bytes.extend_from_slice(&trailer.length.to_le_bytes());
    bytes.extend_from_slice(&trailer.sha256);
    let mut name = [0u8; 64];
    let n = trailer.name.len().min(64);
    name[..n].copy_from_slice(&trailer.name.as_bytes()[..n]);
    bytes.extend_from_slice(&name);
    bytes.extend_from_slice(&[0u8; 8]);
    bytes
}

/// Read and sanity-check the trailer at the end of `file`.
pub fn read_trailer(file: &mut std::fs::File) -> Result<Trailer, crate::LaunchError> {
    let no = |why: &str| crate::LaunchError::NoPayload(why.to_string());
    let size = file.seek(SeekFrom::End(0))?;
    if size < TRAILER_LEN as u64 {
        return Err(no("it is shorter than a trailer"));
    }
    file.seek(SeekFrom::End(-(TRAILER_LEN as i64)))?;
    let mut bytes = [0u8; TRAILER_LEN];
    file.read_exact(&mut bytes)?;
    if &bytes[..8] != MAGIC {
        return Err(no("its last bytes are not a gradient trailer"));
    }
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let (offset, length) = (u64_at(8), u64_at(16));
    if offset.checked_add(length) != Some(size - TRAILER_LEN as u64) {
        return Err(no("the payload's recorded size does not match the file's"));
    }
    let name_bytes = &bytes[56..120];
    let end = name_bytes.iter().position(|b| *b == 0).unwrap_or(64);
    let name = String::from_utf8_lossy(&name_bytes[..end]).into_owned();
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(no("its trailer names no app"));
    }
    Ok(Trailer {
        offset,
        length,
        sha256: bytes[24..56].try_into().expect("32 bytes"),
        name,
    })
}
