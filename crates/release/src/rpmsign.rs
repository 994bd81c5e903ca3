//! The rpm's own header signature (what `rpm -K` and dnf's `gpgcheck` check), made on the
//! copy a yum repository serves: the artifact in the output folder stays the byte-identical
//! build its manifest, SBOM and provenance describe. The signature's time is the build's
//! source date, so the same rpm and key give the same signed bytes.

use crate::keys::{KeyError, PgpSigner};
use crate::ReleaseError;
use std::path::Path;

/// Write `src` signed with `key` to `dst` (through a temporary file beside it).
pub fn sign_rpm(src: &Path, dst: &Path, key: &PgpSigner, time: u64) -> Result<(), ReleaseError> {
    let rpm_error = |e: rpm::Error| ReleaseError::Rpm {
        path: src.to_path_buf(),
        reason: e.to_string(),
    };
    let mut package = rpm::Package::open(src).map_err(rpm_error)?;
    let time = u32::try_from(time).unwrap_or(u32::MAX);
    package
        .sign_with_timestamp(key.rpm_signer()?, time)
        .map_err(|e| KeyError::Sign {
            reason: e.to_string(),
        })?;
    let mut bytes = Vec::new();
    package.write(&mut bytes).map_err(rpm_error)?;
    gradient_driver::publish::write_atomically(dst, &bytes).map_err(ReleaseError::io("write", dst))
}

/// Whether the rpm at `path` carries a header signature one of the OpenPGP `keys` made,
/// over digests that hold.
pub fn rpm_signature_holds(
    path: &Path,
    keys: &[pgp::composed::SignedPublicKey],
) -> Result<(), String> {
    let package = rpm::Package::open(path).map_err(|e| format!("not a readable rpm: {e}"))?;
    package
        .verify_digests()
        .map_err(|e| format!("its digests do not hold: {e}"))?;
    let mut last = "no OpenPGP key was given".to_string();
    for key in keys {
        let armored = key
            .to_armored_string(pgp::composed::ArmorOptions::default())
            .map_err(|e| e.to_string())?;
        let verifier =
            rpm::signature::pgp::Verifier::from_asc(&armored).map_err(|e| e.to_string())?;
        match package.verify_signature(verifier) {
            Ok(()) => return Ok(()),
            Err(e) => last = format!("no header signature by the given key holds: {e}"),
        }
    }
    Err(last)
}
