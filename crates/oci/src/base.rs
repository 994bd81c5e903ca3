//! Base images: read from an OCI image layout (a folder or a tarball) or a docker-archive
//! (what an engine exports), and searched for a CPython of their own to install against.

use crate::content::Placement;
use crate::layer::{digest_of, Layer, GZIP_LAYER, PLAIN_LAYER};
use crate::{io, OciError};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A base image as this build uses it.
#[derive(Clone, Debug)]
pub struct Base {
    /// Its image configuration.
    pub config: Value,
    /// Its layers, bottom first, as blobs on disk.
    pub layers: Vec<Layer>,
    /// The CPython it has, if any.
    pub python: Option<BasePython>,
}

/// A CPython found in a base image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasePython {
    /// `(major, minor)`.
    pub version: (u32, u32),
    /// Where app and dependencies go to be found by it.
    pub placement: Placement,
}

/// Unpack an image tarball into `into` (refusing entries that would leave it).
pub fn unpack(tarball: &Path, into: &Path) -> Result<(), OciError> {
    let file = std::fs::File::open(tarball).map_err(io("open", tarball))?;
    std::fs::create_dir_all(into).map_err(io("create", into))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    for entry in archive.entries().map_err(io("read", tarball))? {
        let mut entry = entry.map_err(io("read", tarball))?;
        entry.unpack_in(into).map_err(io("unpack", tarball))?;
    }
    Ok(())
}

/// Read the image in `dir`: a docker-archive (`manifest.json`) or an OCI layout
/// (`index.json`). `origin` names it in errors.
pub fn read_image(dir: &Path, origin: &str) -> Result<Base, OciError> {
    read_image_in(dir, origin, None)
}

/// [`read_image`] for the image of architecture `arch` (`arm64`): through the OCI layout's
/// index when `dir` has one (a docker-archive `manifest.json` beside it names one image,
/// maybe another platform's), else the docker-archive's one image.
pub fn read_image_for(dir: &Path, origin: &str, arch: &str) -> Result<Base, OciError> {
    read_image_in(dir, origin, Some(arch))
}

fn read_image_in(dir: &Path, origin: &str, wanted: Option<&str>) -> Result<Base, OciError> {
    let arch = wanted.unwrap_or("amd64");
    let through_index = wanted.is_some() && dir.join("index.json").is_file();
    let bad = |reason: String| OciError::BadBase {
        base: origin.to_string(),
        reason,
    };
    let read_json = |path: PathBuf| -> Result<Value, OciError> {
        let bytes = std::fs::read(&path)
            .map_err(|e| bad(format!("cannot read `{}`: {e}", path.display())))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("`{}` is not JSON: {e}", path.display())))
    };
    let blob = |digest: &str| {
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let (config, layer_files): (Value, Vec<(PathBuf, Option<String>)>) = if !through_index
        && dir.join("manifest.json").is_file()
    {
        let manifest = read_json(dir.join("manifest.json"))?;
        let first = &manifest[0];
        let config_path = first["Config"]
            .as_str()
            .ok_or_else(|| bad("manifest.json names no Config".into()))?;
        let layers = first["Layers"]
            .as_array()
            .ok_or_else(|| bad("manifest.json lists no Layers".into()))?
            .iter()
            .filter_map(|l| l.as_str().map(|p| (dir.join(p), None)))
            .collect();
        (read_json(dir.join(config_path))?, layers)
    } else if dir.join("index.json").is_file() {
        let top = read_json(dir.join("index.json"))?;
        // gradient's own layout lists its images, one per platform, in index.json.
        let mut descriptor = top["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == arch)
            .unwrap_or(&top["manifests"][0])
            .clone();
        // An index of platforms: take the one asked for.
        while descriptor["mediaType"]
            .as_str()
            .is_some_and(|t| t.contains("index"))
        {
            let index = read_json(blob(descriptor["digest"].as_str().unwrap_or_default()))?;
            descriptor = index["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == arch)
                .cloned()
                .ok_or_else(|| bad(format!("it has no linux/{arch} image")))?;
        }
        let digest = descriptor["digest"]
            .as_str()
            .ok_or_else(|| bad("index.json names no manifest".into()))?;
        let manifest = read_json(blob(digest))?;
        let layers = manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| {
                let digest = l["digest"].as_str()?;
                Some((blob(digest), l["mediaType"].as_str().map(str::to_string)))
            })
            .collect();
        let config_digest = manifest["config"]["digest"]
            .as_str()
            .ok_or_else(|| bad("its manifest names no config".into()))?;
        (read_json(blob(config_digest))?, layers)
    } else {
        return Err(bad(
            "it holds neither index.json (an OCI layout) nor manifest.json (a docker archive)"
                .into(),
        ));
    };
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    if diff_ids.len() != layer_files.len() {
        return Err(bad(format!(
            "its config lists {} layers and its manifest {}",
            diff_ids.len(),
            layer_files.len()
        )));
    }
    let mut layers = Vec::new();
    let mut listing = Vec::new();
    for ((path, media_type), diff_id) in layer_files.into_iter().zip(diff_ids) {
        let bytes = std::fs::read(&path)
            .map_err(|e| bad(format!("cannot read layer `{}`: {e}", path.display())))?;
        let gzipped = bytes.starts_with(&[0x1f, 0x8b]);
        listing.extend(
            list_layer(&bytes, gzipped)
                .map_err(|e| bad(format!("layer `{}` is not a tar: {e}", path.display())))?,
        );
        layers.push(Layer {
            digest: digest_of(&bytes),
            size: bytes.len() as u64,
            diff_id,
            media_type: media_type
                .unwrap_or_else(|| if gzipped { GZIP_LAYER } else { PLAIN_LAYER }.to_string()),
            path,
            reused: true,
        });
    }
    Ok(Base {
        config,
        layers,
        python: find_python(&listing),
    })
}

/// Every path in a layer, without a leading `./` or `/`.
fn list_layer(bytes: &[u8], gzipped: bool) -> std::io::Result<Vec<String>> {
    let reader: Box<dyn Read> = if gzipped {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let mut archive = tar::Archive::new(reader);
    let mut paths = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        paths.push(
            path.trim_start_matches("./")
                .trim_start_matches('/')
                .trim_end_matches('/')
                .to_string(),
        );
    }
    Ok(paths)
}

/// The CPython of an image whose files are `paths`: `usr/local/bin/python3.N` (the
/// convention of Python's own images and of gradient's) before `usr/bin/python3.N` (a
/// distribution's), the newest version first.
pub fn find_python(paths: &[String]) -> Option<BasePython> {
    let version_of = |path: &str, dir: &str| -> Option<(u32, u32)> {
        let minor = path.strip_prefix(dir)?.strip_prefix("/python3.")?;
        Some((3, minor.parse().ok()?))
    };
    for dir in ["usr/local/bin", "usr/bin"] {
        let Some(version) = paths.iter().filter_map(|p| version_of(p, dir)).max() else {
            continue;
        };
        let (major, minor) = version;
        let stdlib = format!("{}/lib/python{major}.{minor}", dir.trim_end_matches("/bin"));
        if !paths.iter().any(|p| p.starts_with(&format!("{stdlib}/"))) {
            continue; // an interpreter without its standard library is not one to build on
        }
        let site = if dir == "usr/bin"
            && paths
                .iter()
                .any(|p| p.starts_with("usr/lib/python3/dist-packages"))
        {
            // Debian and Ubuntu: local installs go to /usr/local/lib/pythonX.Y/dist-packages.
            format!("usr/local/lib/python{major}.{minor}/dist-packages")
        } else {
            format!("{stdlib}/site-packages")
        };
        return Some(BasePython {
            version,
            placement: Placement {
                python: format!("/{dir}/python{major}.{minor}"),
                site,
                bin: "usr/local/bin".into(),
            },
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_the_interpreter_and_where_packages_go() {
        let official = find_python(&paths(&[
            "usr/local/bin/python3.12",
            "usr/local/lib/python3.12/os.py",
        ]))
        .unwrap();
        assert_eq!(official.version, (3, 12));
        assert_eq!(
            official.placement.site,
            "usr/local/lib/python3.12/site-packages"
        );
        let debian = find_python(&paths(&[
            "usr/bin/python3.11",
            "usr/lib/python3.11/os.py",
            "usr/lib/python3/dist-packages",
        ]))
        .unwrap();
        assert_eq!(debian.placement.python, "/usr/bin/python3.11");
        assert_eq!(
            debian.placement.site,
            "usr/local/lib/python3.11/dist-packages"
        );
        assert_eq!(find_python(&paths(&["usr/bin/python3.11"])), None);
        assert_eq!(find_python(&paths(&["bin/sh"])), None);
    }
}
