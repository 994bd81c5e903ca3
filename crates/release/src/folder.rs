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
}

impl gradient_core::Hint for FolderError {
    fn hint(&self) -> Option<String> {
        match self {
            FolderError::Manifest(e) => e.hint(),
            FolderError::Damaged { .. } => Some(
                "rebuild the folder (`gradient build`), or download it again: a release is made only of files its manifest vouches for".into(),
            ),
        }
    }
}

impl Folder {
    /// Read `dir`'s manifest and check every file it lists (artifacts, SBOMs, inputs).
    pub fn open(dir: &Path) -> Result<Folder, FolderError> {
        let manifest = read_manifest(dir)?;
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
