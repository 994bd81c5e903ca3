//! Signing the folder itself: `SHA256SUMS.asc`, an OpenPGP signature over `SHA256SUMS`
//! (what `gpg --verify` checks), and the provenance, `NAME-VERSION.intoto.jsonl`. Both are
//! written beside the artifacts, atomically; a file that already holds the same bytes is
//! left alone.

use crate::folder::Folder;
use crate::keys::SigningKeys;
use crate::{provenance, ReleaseError, Sent};
use gradient_driver::manifest::SUMS_FILE;
use gradient_driver::publish::{sha256_hex, write_atomically};

/// The signature file of `SHA256SUMS`.
pub const SUMS_SIGNATURE: &str = "SHA256SUMS.asc";

/// Sign what the folder holds with the keys given: the checksum list with the OpenPGP key,
/// the provenance with the ECDSA key. Returns what was written.
pub fn sign_folder(folder: &Folder, keys: &SigningKeys) -> Result<Vec<Sent>, ReleaseError> {
    let mut written = Vec::new();
    if let Some(pgp) = &keys.pgp {
        // The list is made again from the manifest, so the signature covers what the
        // manifest vouches for even if SHA256SUMS was edited.
        let sums = folder.manifest.sha256sums();
        let path = folder.path(SUMS_FILE);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != sums {
            write_atomically(&path, sums.as_bytes()).map_err(ReleaseError::io("write", &path))?;
        }
        // OpenPGP signatures carry their time: one this key already made over the same
        // list is kept, so a rerun writes nothing.
        let existing = std::fs::read_to_string(folder.path(SUMS_SIGNATURE)).unwrap_or_default();
        let signature = if keys.public().pgp_detached_holds(sums.as_bytes(), &existing) {
            existing
        } else {
            pgp.detached(sums.as_bytes())?
        };
        written.push(write_if_changed(
            folder,
            SUMS_SIGNATURE,
            signature.as_bytes(),
        )?);
    }
    if let Some(ecdsa) = &keys.ecdsa {
        let statement = provenance::folder_statement(&folder.manifest);
        let line = provenance::envelope(&statement, ecdsa) + "\n";
        let name = provenance::file_name(&folder.manifest);
        written.push(write_if_changed(folder, &name, line.as_bytes())?);
    }
    Ok(written)
}

/// Write `bytes` as the folder's file `name` unless it already holds them.
fn write_if_changed(folder: &Folder, name: &str, bytes: &[u8]) -> Result<Sent, ReleaseError> {
    let path = folder.path(name);
    let same = std::fs::read(&path).is_ok_and(|old| old == bytes);
    if !same {
        write_atomically(&path, bytes).map_err(ReleaseError::io("write", &path))?;
    }
    Ok(Sent {
        what: name.to_string(),
        to: folder.dir.display().to_string(),
        digest: format!("sha256:{}", sha256_hex(bytes)),
        sent: !same,
    })
}
