//! The output folder a release starts from: its manifest read, and every file the manifest
//! lists checked against its recorded digest before anything is signed or sent.

use gradient_core::Tier;
use gradient_driver::manifest::{ArtifactRecord, Manifest};
use gradient_driver::merge::{read_manifest, MergeError};
use gradient_driver::publish::file_digest;
use std::path::{Path, PathBuf};

/// An output folder whose files all match their manifest.
#[derive(Debug)]
pub struct Folder {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error(transparent)]
    Manifest(#[from] MergeError),
    #[error("`{}` does not match the manifest ({reason})", path.display())]
    Damaged { path: PathBuf, reason: String },
    /// The manifest's project name or version cannot be part of a file name: a release
    /// names its files after them.
    #[error("the manifest's project {what} {value:?} is not valid: {rule}")]
    Unsafe {
        what: &'static str,
        value: String,
        rule: &'static str,
    },
}

impl gradient_core::Hint for FolderError {
    fn hint(&self) -> Option<String> {
        match self {
            FolderError::Manifest(e) => e.hint(),
            FolderError::Unsafe { .. } => Some(
                "this manifest was not written by gradient for a real project: rebuild the folder".into(),
            ),
            FolderError::Damaged { .. } => Some(
                "rebuild the folder (`gradient build`), or download it again: a release is made only of files its manifest vouches for".into(),
            ),
        }
    }
}

/// Whether `version` has the characters of a PEP 440 version (normalised or not) and no
/// more, so it is safe in a file name.
fn is_plain_version(version: &str) -> bool {
    version.len() <= 128
        && version.starts_with(|c: char| c.is_ascii_alphanumeric())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '!' | '-'))
}

impl Folder {
    /// Read `dir`'s manifest and check every file it lists (artifacts, SBOMs, inputs).
    pub fn open(dir: &Path) -> Result<Folder, FolderError> {
        let manifest = read_manifest(dir)?;
        // The name and version become file names (the provenance, the repositories' keys)
        // and lines of signed indexes: nothing but their well-formed shapes.
        let project = &manifest.project;
        if !gradient_core::is_valid_name(&project.name) {
            return Err(FolderError::Unsafe {
                what: "name",
                value: project.name.clone(),
                rule: "letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit (PEP 508)",
            });
        }
        if !is_plain_version(&project.version) {
            return Err(FolderError::Unsafe {
                what: "version",
                value: project.version.clone(),
                rule:
                    "letters, digits, `.`, `_`, `+`, `!` and `-`, starting with a letter or digit",
            });
        }
        for (file, sha256) in manifest.listed_files() {
            let path = dir.join(file);
            let digest = file_digest(&path).map_err(|e| FolderError::Damaged {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            if digest != sha256 {
                return Err(FolderError::Damaged {
                    path,
                    reason: format!("sha256 {digest}, recorded {sha256}"),
                });
            }
        }
        Ok(Folder {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// The artifacts of one tier.
    pub fn artifacts(&self, tier: Tier) -> impl Iterator<Item = &ArtifactRecord> {
        self.manifest
            .artifacts
            .iter()
            .filter(move |a| a.tier == tier)
    }

    /// A file of the folder, by its manifest name.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}
