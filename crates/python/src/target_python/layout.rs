//! The unpacked packages made a root qemu-user can run: merged /usr, links kept inside.

use std::path::{Path, PathBuf};

/// The top-level folders a merged-/usr system keeps in `/usr`, linked from the top.
const MERGED: &[&str] = &["bin", "sbin", "lib", "lib64"];

/// Make `root` a merged-/usr tree as Debian installs it: what packages put in `/lib`
/// (the loader, libc) moves to `/usr/lib` and `/lib` becomes a link to `usr/lib`, so every
/// path the loader and libraries are named by resolves. Where both hold a file, `/usr`'s
/// is kept (it is the newer layout).
pub(super) fn merge_usr(root: &Path) -> std::io::Result<()> {
    for name in MERGED {
        let top = root.join(name);
        let usr = root.join("usr").join(name);
        let Ok(meta) = std::fs::symlink_metadata(&top) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        std::fs::create_dir_all(&usr)?;
        move_into(&top, &usr)?;
        std::fs::remove_dir_all(&top)?;
        std::os::unix::fs::symlink(format!("usr/{name}"), &top)?;
    }
    Ok(())
}

fn move_into(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(from)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        match std::fs::symlink_metadata(&target) {
            Err(_) => std::fs::rename(entry.path(), &target)?,
            Ok(there) if there.is_dir() && kind.is_dir() => move_into(&entry.path(), &target)?,
            Ok(_) => tracing::debug!(
                "`{}` is in both /{} and /usr: /usr's is kept",
                entry.file_name().to_string_lossy(),
                from.display()
            ),
        }
    }
    Ok(())
}

/// Turn each link to an absolute path into one relative to its folder, so that it points
/// into the root and not into the host (`usr/lib/python3.11/sitecustomize.py →
/// /etc/python3.11/sitecustomize.py`: the kernel follows a link without qemu's prefix).
pub(super) fn relative_links(root: &Path) -> std::io::Result<()> {
    let mut links = Vec::new();
    for item in walkdir::WalkDir::new(root).sort_by_file_name() {
        let item = item.map_err(std::io::Error::from)?;
        if item.file_type().is_symlink() {
            let target = std::fs::read_link(item.path())?;
            if target.is_absolute() {
                links.push((item.into_path(), target));
            }
        }
    }
    for (link, target) in links {
        let depth = link
            .parent()
            .and_then(|p| p.strip_prefix(root).ok())
            .map_or(0, |p| p.components().count());
        let mut relative = PathBuf::new();
        for _ in 0..depth {
            relative.push("..");
        }
        relative.push(target.strip_prefix("/").unwrap_or(&target));
        std::fs::remove_file(&link)?;
        std::os::unix::fs::symlink(&relative, &link)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_folders_are_merged_into_usr_and_absolute_links_point_into_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("lib/aarch64-linux-gnu")).unwrap();
        std::fs::create_dir_all(r.join("usr/lib/aarch64-linux-gnu")).unwrap();
        std::fs::create_dir_all(r.join("usr/lib/python3.11")).unwrap();
        std::fs::create_dir_all(r.join("etc/python3.11")).unwrap();
        std::fs::write(r.join("lib/aarch64-linux-gnu/ld.so"), b"loader").unwrap();
        std::fs::write(r.join("lib/aarch64-linux-gnu/both"), b"old").unwrap();
        std::fs::write(r.join("usr/lib/aarch64-linux-gnu/both"), b"new").unwrap();
        std::os::unix::fs::symlink(
            "aarch64-linux-gnu/ld.so",
            r.join("lib/ld-linux-aarch64.so.1"),
        )
        .unwrap();
        std::fs::write(r.join("etc/python3.11/sitecustomize.py"), b"x = 1").unwrap();
        std::os::unix::fs::symlink(
            "/etc/python3.11/sitecustomize.py",
            r.join("usr/lib/python3.11/sitecustomize.py"),
        )
        .unwrap();

        merge_usr(r).unwrap();
        relative_links(r).unwrap();

        assert_eq!(
            std::fs::read_link(r.join("lib")).unwrap(),
            Path::new("usr/lib")
        );
        assert_eq!(
            std::fs::read(r.join("lib/ld-linux-aarch64.so.1")).unwrap(),
            b"loader"
        );
        assert_eq!(
            std::fs::read(r.join("usr/lib/aarch64-linux-gnu/both")).unwrap(),
            b"new"
        );
        assert!(
            !r.join("bin").exists(),
            "no link for a folder no package had"
        );
        assert_eq!(
            std::fs::read_link(r.join("usr/lib/python3.11/sitecustomize.py")).unwrap(),
            Path::new("../../../etc/python3.11/sitecustomize.py")
        );
        assert_eq!(
            std::fs::read(r.join("usr/lib/python3.11/sitecustomize.py")).unwrap(),
            b"x = 1"
        );
    }
}
