//! Running an image without an engine: its layers unpacked in order into a folder (with
//! whiteouts applied), ready for a command run there through [`gradient_sandbox::Rootfs`].
//! What the oci tier's smoke test uses, so the tarball itself is checked whether or not an
//! engine is present.

use crate::base::{read_image, unpack};
use crate::{io, OciError};
use gradient_sandbox::Rootfs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Unpack the image tarball into `scratch/rootfs`.
pub fn unpack_image(tarball: &Path, scratch: &Path) -> Result<Rootfs, OciError> {
    let layout = scratch.join("layout");
    unpack(tarball, &layout)?;
    let image = read_image(&layout, &tarball.display().to_string())?;
    let root = scratch.join("rootfs");
    std::fs::create_dir_all(&root).map_err(io("create", &root))?;
    for layer in &image.layers {
        apply_layer(&layer.path, &root)?;
    }
    let proc = root.join("proc");
    std::fs::create_dir_all(&proc).map_err(io("create", &proc))?;
    Ok(rootfs_of(&image, root))
}

/// The root an earlier [`unpack_image`] of `tarball` left in `scratch`.
pub fn unpacked_image(tarball: &Path, scratch: &Path) -> Result<Rootfs, OciError> {
    let image = read_image(&scratch.join("layout"), &tarball.display().to_string())?;
    Ok(rootfs_of(&image, scratch.join("rootfs")))
}

/// How to run commands in `root` as the image's config says: its environment and user.
fn rootfs_of(image: &crate::base::Base, root: PathBuf) -> Rootfs {
    let run = &image.config["config"];
    let strings = |value: &serde_json::Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let env = strings(&run["Env"])
        .into_iter()
        .filter_map(|line| {
            let (k, v) = line.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    Rootfs {
        root,
        env,
        user: run["User"].as_str().unwrap_or_default().to_string(),
        entrypoint: strings(&run["Entrypoint"]),
        cmd: strings(&run["Cmd"]),
    }
}

/// Unpack one layer blob over `root`: `.wh.NAME` removes NAME, `.wh..wh..opq` empties its
/// folder, everything else is written (the tar reader refuses paths that leave `root`).
/// As root, each file gets the owner the layer gives it, as an engine does: the commands
/// then run as the image's user (`chroot --userspec`), who must own its home folder as in
/// the image, or an app that writes there (ansible's `~/.ansible/tmp`) fails here and not
/// under the engine. Without root the commands run as the namespace's root, who owns all.
fn apply_layer(blob: &Path, root: &Path) -> Result<(), OciError> {
    let file = std::fs::File::open(blob).map_err(io("open", blob))?;
    let mut reader = std::io::BufReader::new(file);
    let mut magic = [0u8; 2];
    reader.read_exact(&mut magic).map_err(io("read", blob))?;
    let file = std::fs::File::open(blob).map_err(io("open", blob))?;
    let stream: Box<dyn Read> = if magic == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(gradient_python::is_root());
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(io("read", blob))? {
        let mut entry = entry.map_err(io("read", blob))?;
        let path = entry.path().map_err(io("read", blob))?.into_owned();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Some(name) = name.as_deref().filter(|n| n.starts_with(".wh.")) {
            let parent = root.join(path.parent().unwrap_or(Path::new("")));
            if name == ".wh..wh..opq" {
                for child in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                    remove(&child.path());
                }
            } else {
                remove(&parent.join(&name[4..]));
            }
            continue;
        }
        entry
            .unpack_in(root)
            .map_err(io("unpack a layer into", root))?;
    }
    Ok(())
}

fn remove(path: &Path) {
    if path.is_dir() && !path.is_symlink() {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_layer_unpacked_as_root_keeps_the_owners_it_gives_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("layer.tar");
        let mut layer = tar::Builder::new(std::fs::File::create(&blob).unwrap());
        for (path, uid) in [("home/app/", 1000u64), ("etc/", 0)] {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_uid(uid);
            header.set_gid(uid);
            header.set_size(0);
            layer
                .append_data(&mut header, path, std::io::empty())
                .unwrap();
        }
        layer.into_inner().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        apply_layer(&blob, &root).unwrap();
        let owner = |path: &str| std::fs::metadata(root.join(path)).unwrap().uid();
        if gradient_python::is_root() {
            assert_eq!(
                owner("home/app"),
                1000,
                "the image's user owns its home, as in the image"
            );
            assert_eq!(owner("etc"), 0);
        } else {
            // Unpacked as this user, who is the namespace's root the commands run as.
            let me = std::fs::metadata(dir.path()).unwrap().uid();
            assert_eq!(owner("home/app"), me);
        }
    }
}
