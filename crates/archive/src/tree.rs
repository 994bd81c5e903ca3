//! A folder on disk as archive entries, for writers that take entries.

use crate::{ArchiveError, Entry, EntryKind};
use std::path::Path;

/// Every file, folder and symlink under `root` as entries in walk order (sorted by name),
/// paths prefixed by `prefix` (none when empty), modes as found on disk.
pub fn tree_entries(root: &Path, prefix: &str) -> Result<Vec<Entry>, ArchiveError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArchiveError::Read { path, source }
    };
    let mut entries = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name().min_depth(1) {
        let entry = entry.map_err(|e| ArchiveError::Read {
            path: root.to_path_buf(),
            source: e.into(),
        })?;
        let relative = entry
            .path()
            .strip_prefix(root)
            .expect("inside the walk")
            .to_string_lossy()
            .into_owned();
        let path = if prefix.is_empty() {
            relative
        } else {
            format!("{prefix}/{relative}")
        };
        use std::os::unix::fs::PermissionsExt;
        let mode = entry
            .metadata()
            .map(|m| m.permissions().mode())
            .unwrap_or(0o644);
        let kind = if entry.file_type().is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(read_err(entry.path()))?;
            EntryKind::Symlink(target.to_string_lossy().into_owned())
        } else if entry.file_type().is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File(std::fs::read(entry.path()).map_err(read_err(entry.path()))?)
        };
        entries.push(Entry { path, kind, mode });
    }
    Ok(entries)
}
