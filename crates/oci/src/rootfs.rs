//! Running an image without an engine: its layers unpacked in order into a folder (with
//! whiteouts applied), ready for a command run there through [`gradient_sandbox::Rootfs`].
//! What the oci tier's smoke test uses, so the tarball itself is checked whether or not an
//! engine is present.

use crate::base::{read_image, read_image_for, unpack};
use crate::{io, OciError};
use gradient_core::Platform;
use gradient_sandbox::Rootfs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Unpack the image tarball into `scratch/rootfs`.
pub fn unpack_image(tarball: &Path, scratch: &Path) -> Result<Rootfs, OciError> {
    let layout = scratch.join("layout");
    unpack(tarball, &layout)?;
    let image = read_image(&layout, &tarball.display().to_string())?;
    unpack_layers(&image, scratch.join("rootfs"))
}

/// Unpack the tarball's image for `platform` into `scratch/rootfs-OS-ARCH`, its layout
/// into `scratch/layout` (shared by every platform's root).
pub fn unpack_platform_image(
    tarball: &Path,
    scratch: &Path,
    platform: Platform,
) -> Result<Rootfs, OciError> {
    let layout = scratch.join("layout");
    if !layout.join("index.json").is_file() {
        unpack(tarball, &layout)?;
    }
    let image = read_image_for(&layout, &tarball.display().to_string(), platform.oci_arch())?;
    unpack_layers(
        &image,
        scratch.join(format!("rootfs-{}", platform.oci().replace('/', "-"))),
    )
}

/// One platform's image in an image tarball gradient wrote: its config's and its layers'
/// paths in the tarball (`blobs/sha256/HEX`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TarballImage {
    pub platform: Platform,
    pub config: String,
    pub layers: Vec<String>,
}

/// The images an image tarball gradient wrote holds, one per platform, in its index's
/// order; a tarball of one image gives that one, its platform read from its config.
pub fn tarball_images(tarball: &Path) -> Result<Vec<TarballImage>, OciError> {
    let bad = |reason: String| OciError::BadBase {
        base: tarball.display().to_string(),
        reason,
    };
    // The small files: index.json and the JSON blobs (a layer is never read here).
    let mut small: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    let file = std::fs::File::open(tarball).map_err(io("open", tarball))?;
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries().map_err(io("read", tarball))? {
        let mut entry = entry.map_err(io("read", tarball))?;
        let path = entry.path().map_err(io("read", tarball))?;
        let path = path.to_string_lossy().into_owned();
        if entry.size() > 1 << 20 || !(path == "index.json" || path.starts_with("blobs/")) {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(io("read", tarball))?;
        small.insert(path, bytes);
    }
    let json = |path: &str| -> Result<serde_json::Value, OciError> {
        let bytes = small
            .get(path)
            .ok_or_else(|| bad(format!("it has no `{path}`")))?;
        serde_json::from_slice(bytes).map_err(|e| bad(format!("`{path}` is not JSON: {e}")))
    };
    let blob = |digest: &serde_json::Value| {
        format!(
            "blobs/sha256/{}",
            digest
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("sha256:")
        )
    };
    let top = json("index.json")?["manifests"][0].clone();
    let manifests: Vec<(Option<Platform>, serde_json::Value)> = if top["mediaType"]
        .as_str()
        .is_some_and(|t| t.contains("index"))
    {
        json(&blob(&top["digest"]))?["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let platform = format!(
                    "{}/{}",
                    m["platform"]["os"].as_str().unwrap_or_default(),
                    m["platform"]["architecture"].as_str().unwrap_or_default()
                );
                (Platform::parse(&platform).ok(), m.clone())
            })
            .collect()
    } else {
        vec![(None, top)]
    };
    let mut images = Vec::new();
    for (platform, descriptor) in manifests {
        let manifest = json(&blob(&descriptor["digest"]))?;
        let config = blob(&manifest["config"]["digest"]);
        let platform = match platform {
            Some(platform) => platform,
            None => {
                let config = json(&config)?;
                let name = format!(
                    "{}/{}",
                    config["os"].as_str().unwrap_or_default(),
                    config["architecture"].as_str().unwrap_or_default()
                );
                Platform::parse(&name).map_err(|_| bad(format!("its image is for {name}")))?
            }
        };
        let layers = manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| blob(&l["digest"]))
            .collect();
        images.push(TarballImage {
            platform,
            config,
            layers,
        });
    }
    Ok(images)
}

/// A docker-archive of `image` alone from `tarball`, tagged `tags`: what
/// an engine that loads one image per archive (Docker before 25, whose `docker load` reads
/// `manifest.json` only) is given for a platform other than the one `tarball`'s
/// `manifest.json` names.
pub fn docker_archive_for(
    tarball: &Path,
    image: &TarballImage,
    tags: &[String],
) -> Result<Vec<u8>, OciError> {
    let into = tarball;
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": image.config,
        "RepoTags": tags,
        "Layers": image.layers,
    }]))
    .expect("JSON serialises");
    let keep: std::collections::BTreeSet<&str> = image
        .layers
        .iter()
        .chain([&image.config])
        .map(String::as_str)
        .collect();
    let mut builder = tar::Builder::new(Vec::new());
    let file = std::fs::File::open(tarball).map_err(io("open", tarball))?;
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries().map_err(io("read", tarball))? {
        let mut entry = entry.map_err(io("read", tarball))?;
        let path = entry
            .path()
            .map_err(io("read", tarball))?
            .to_string_lossy()
            .into_owned();
        let wanted = entry.header().entry_type().is_dir() || keep.contains(path.as_str());
        if !wanted {
            continue;
        }
        let mut header = entry.header().clone();
        builder
            .append_data(&mut header, &path, &mut entry)
            .map_err(io("write", into))?;
    }
    let mut header = tar::Header::new_ustar();
    header.set_size(manifest.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "manifest.json", manifest.as_slice())
        .map_err(io("write", into))?;
    builder.into_inner().map_err(io("write", into))
}

/// Apply `image`'s layers in order into `root`.
fn unpack_layers(image: &crate::base::Base, root: PathBuf) -> Result<Rootfs, OciError> {
    std::fs::create_dir_all(&root).map_err(io("create", &root))?;
    for layer in &image.layers {
        apply_layer(&layer.path, &root)?;
    }
    let proc = root.join("proc");
    std::fs::create_dir_all(&proc).map_err(io("create", &proc))?;
    Ok(rootfs_of(image, root))
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
