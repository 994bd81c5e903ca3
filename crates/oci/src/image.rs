//! The image tarball: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`)
//! that also carries a docker-archive `manifest.json`, so OCI tools and `docker load` of
//! any engine since 20.10 both read it. It holds one image per platform: with one,
//! `index.json` names its manifest; with several, it names an image index listing each
//! manifest with its platform, and `manifest.json` names one of them (engines before 25
//! load only that). A blob two images share is stored once. JSON keys are sorted (serde_json's map is ordered)
//! and the tar is written with fixed times and owners: the same image, the same bytes.

use crate::layer::{digest_of, Layer};
use crate::{io, OciError};
use gradient_archive::{write_tar, Entry, EntryKind};
use gradient_core::Platform;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// How the image runs: the `config` object of the image configuration.
#[derive(Clone, Debug, Default)]
pub struct RunConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value`, in order.
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    /// `8080/tcp`.
    pub ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// One layer of the image and the history line that says where it came from.
#[derive(Clone, Debug)]
pub struct ImageLayer {
    pub layer: Layer,
    pub created_by: String,
}

/// Everything that makes an image.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// The base image's configuration, when there is one: its layers come first in
    /// `layers`, and its settings are the defaults this image's settings override.
    pub base_config: Option<Value>,
    pub layers: Vec<ImageLayer>,
    pub run: RunConfig,
    /// RFC 3339.
    pub created: String,
}

/// What identifies a written image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageDigests {
    /// The manifest's digest: what a registry calls the image digest.
    pub manifest: String,
    /// The configuration's digest: what a Docker engine calls the image ID.
    pub config: String,
}

/// The image configuration of `spec`, built for `platform`, as JSON bytes.
pub fn config_json(spec: &ImageSpec, platform: Platform) -> Vec<u8> {
    let base = spec.base_config.clone().unwrap_or(Value::Null);
    let base_run = &base["config"];
    // Environment: the base's, with ours replacing variables of the same name.
    let mut env: Vec<String> = base_run["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .filter(|line| {
            let name = line.split('=').next().unwrap_or_default();
            !spec
                .run
                .env
                .iter()
                .any(|ours| ours.split('=').next() == Some(name))
        })
        .collect();
    env.extend(spec.run.env.iter().cloned());
    let mut labels: serde_json::Map<String, Value> =
        base_run["Labels"].as_object().cloned().unwrap_or_default();
    for (key, value) in &spec.run.labels {
        labels.insert(key.clone(), json!(value));
    }
    let mut ports: serde_json::Map<String, Value> = base_run["ExposedPorts"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for port in &spec.run.ports {
        ports.insert(port.clone(), json!({}));
    }
    let mut run = json!({
        "Entrypoint": spec.run.entrypoint,
        "Cmd": spec.run.cmd,
        "Env": env,
        "User": spec.run.user,
        "WorkingDir": spec.run.workdir,
        "Labels": labels,
    });
    if !ports.is_empty() {
        run["ExposedPorts"] = Value::Object(ports);
    }
    if spec.run.entrypoint.is_empty() {
        // Unset, not `[]`: the image then runs whatever command it is given.
        run.as_object_mut().expect("an object").remove("Entrypoint");
    }
    let mut history: Vec<Value> = base["history"].as_array().cloned().unwrap_or_default();
    let mut diff_ids: Vec<Value> = base["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // The base's layers come first and are already in its history and diff_ids.
    for layer in &spec.layers[diff_ids.len()..] {
        history.push(json!({
            "created": spec.created,
            "created_by": layer.created_by,
        }));
        diff_ids.push(json!(layer.layer.diff_id));
    }
    let (os, _) = platform.oci().split_once('/').expect("os/arch");
    let config = json!({
        "architecture": platform.oci_arch(),
        "os": os,
        "created": spec.created,
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    serde_json::to_vec(&config).expect("JSON serialises")
}

/// One platform's image, among those written into one layout.
#[derive(Clone, Copy, Debug)]
pub struct PlatformImage<'a> {
    pub platform: Platform,
    pub spec: &'a ImageSpec,
}

/// What goes into one image tarball: an image per platform, under the same tags.
#[derive(Clone, Debug)]
pub struct Layout<'a> {
    /// At least one, each for another platform; their order does not matter (the tarball
    /// lists them by platform).
    pub images: Vec<PlatformImage<'a>>,
    /// `name:tag` references (`sampleapp:1.2.3`).
    pub tags: Vec<String>,
    /// The platform whose image the docker-archive `manifest.json` names: engines before 25
    /// read only that file, so `docker load` there loads this one image (the host's).
    pub docker_load: Platform,
}

/// What identifies a written layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutDigests {
    /// Each platform's image, by platform.
    pub images: BTreeMap<Platform, ImageDigests>,
    /// The image index's digest, when the layout holds several platforms (with one, the
    /// tags name the image manifest itself).
    pub index: Option<String>,
}

/// One image's blobs, as [`write_layout`] names them.
struct WrittenImage<'a> {
    platform: Platform,
    spec: &'a ImageSpec,
    config: Vec<u8>,
    config_digest: String,
    manifest: Vec<u8>,
    manifest_digest: String,
}

/// Write the image tarball of `layout` to `path` (a new file; the caller renames it into
/// place). One platform gives an OCI layout whose `index.json` names the image manifest;
/// several give an image index, each manifest listed with its platform. Every blob is
/// stored once, so a layer whose bytes two platforms share is in the tarball once.
pub fn write_layout(layout: &Layout, mtime: u64, path: &Path) -> Result<LayoutDigests, OciError> {
    check_layout(layout)?;
    let mut images: Vec<WrittenImage> = layout
        .images
        .iter()
        .map(|image| {
            let config = config_json(image.spec, image.platform);
            let config_digest = digest_of(&config);
            let manifest = manifest_json(image.spec, &config, &config_digest);
            WrittenImage {
                platform: image.platform,
                spec: image.spec,
                manifest_digest: digest_of(&manifest),
                config,
                config_digest,
                manifest,
            }
        })
        .collect();
    images.sort_by_key(|image| image.platform);

    // What the tags name: the one image manifest, or an index of them all.
    let (top_type, top_digest, top_size, index_blob) = match images.as_slice() {
        [one] => (
            MANIFEST_TYPE,
            one.manifest_digest.clone(),
            one.manifest.len(),
            None,
        ),
        several => {
            let manifests: Vec<Value> = several
                .iter()
                .map(|image| {
                    let (os, _) = image.platform.oci().split_once('/').expect("os/arch");
                    json!({
                        "mediaType": MANIFEST_TYPE,
                        "digest": image.manifest_digest,
                        "size": image.manifest.len(),
                        "platform": {"architecture": image.platform.oci_arch(), "os": os},
                    })
                })
                .collect();
            let index = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": INDEX_TYPE,
                "manifests": manifests,
            }))
            .expect("JSON serialises");
            (INDEX_TYPE, digest_of(&index), index.len(), Some(index))
        }
    };
    let descriptors: Vec<Value> = layout
        .tags
        .iter()
        .map(|tag| {
            json!({
                "mediaType": top_type,
                "digest": top_digest,
                "size": top_size,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            })
        })
        .collect();
    let layout_index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": descriptors,
    }))
    .expect("JSON serialises");

    let loaded = images
        .iter()
        .find(|image| image.platform == layout.docker_load)
        .expect("checked: the docker-load platform has an image");
    let docker_manifest = serde_json::to_vec(&json!([{
        "Config": blob_path(&loaded.config_digest),
        "RepoTags": layout.tags,
        "Layers": loaded.spec.layers.iter().map(|l| blob_path(&l.layer.digest)).collect::<Vec<_>>(),
    }]))
    .expect("JSON serialises");

    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert(
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    files.insert("index.json".into(), layout_index);
    files.insert("manifest.json".into(), docker_manifest);
    if let Some(index) = index_blob {
        files.insert(blob_path(&top_digest), index);
    }
    let mut digests = BTreeMap::new();
    for image in images {
        for layer in &image.spec.layers {
            let name = blob_path(&layer.layer.digest);
            if files.contains_key(&name) {
                // The same bytes, already there (a layer two platforms share).
                continue;
            }
            let bytes = std::fs::read(&layer.layer.path).map_err(io("read", &layer.layer.path))?;
            files.insert(name, bytes);
        }
        files.insert(blob_path(&image.config_digest), image.config);
        files.insert(blob_path(&image.manifest_digest), image.manifest);
        digests.insert(
            image.platform,
            ImageDigests {
                manifest: image.manifest_digest,
                config: image.config_digest,
            },
        );
    }
    let mut entries = vec![
        Entry {
            path: "blobs".into(),
            kind: EntryKind::Dir,
            mode: 0o755,
        },
        Entry {
            path: "blobs/sha256".into(),
            kind: EntryKind::Dir,
            mode: 0o755,
        },
    ];
    entries.extend(files.into_iter().map(|(path, data)| Entry {
        path,
        kind: EntryKind::File(data),
        mode: 0o644,
    }));
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let file = std::fs::File::create(path).map_err(io("create", path))?;
    let mut out = write_tar(std::io::BufWriter::new(file), &entries, mtime, &|_| (0, 0))
        .map_err(io("write", path))?;
    out.flush().map_err(io("write", path))?;
    Ok(LayoutDigests {
        images: digests,
        index: (top_type == INDEX_TYPE).then_some(top_digest),
    })
}

/// Refuse a layout that cannot be written as asked: no image, a platform twice, no image
/// for `docker load`, or a base image made for another platform (operating system or
/// architecture) than its image.
fn check_layout(layout: &Layout) -> Result<(), OciError> {
    let bad = |reason: String| Err(OciError::BadLayout { reason });
    if layout.images.is_empty() {
        return bad("it holds no image".into());
    }
    let platforms: Vec<Platform> = layout.images.iter().map(|i| i.platform).collect();
    if gradient_core::unique_platforms(platforms.iter().copied()).len() != platforms.len() {
        return bad(format!(
            "it holds two images for one platform ({})",
            platforms
                .iter()
                .map(|p| p.oci())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !platforms.contains(&layout.docker_load) {
        return bad(format!(
            "`docker load` is to get its {} image, but it holds none",
            layout.docker_load
        ));
    }
    for image in &layout.images {
        let base = image.spec.base_config.as_ref();
        if let Some(os) = base.and_then(|b| b["os"].as_str()) {
            if os != "linux" {
                return bad(format!(
                    "its {} image is on a base image for the operating system `{os}`",
                    image.platform
                ));
            }
        }
        if let Some(arch) = base.and_then(|b| b["architecture"].as_str()) {
            if arch != image.platform.oci_arch() {
                return bad(format!(
                    "its {} image is on a base image for architecture `{arch}`",
                    image.platform
                ));
            }
        }
    }
    Ok(())
}

/// The image manifest of `spec`, whose configuration is `config`.
fn manifest_json(spec: &ImageSpec, config: &[u8], config_digest: &str) -> Vec<u8> {
    let layers: Vec<Value> = spec
        .layers
        .iter()
        .map(|l| {
            json!({
                "mediaType": l.layer.media_type,
                "digest": l.layer.digest,
                "size": l.layer.size,
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len()},
        "layers": layers,
    }))
    .expect("JSON serialises")
}

/// Where the blob `digest` lies in the layout.
fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::make_layer;

    const MTIME: u64 = 1_700_000_000;

    /// A small gzip layer holding one file, made through the layer cache in `cache`.
    fn small_layer(cache: &Path, path: &str, text: &str, created_by: &str) -> ImageLayer {
        let entries = [Entry {
            path: path.into(),
            kind: EntryKind::File(text.as_bytes().to_vec()),
            mode: 0o644,
        }];
        ImageLayer {
            layer: make_layer(&entries, MTIME, &|_| (0, 0), cache).unwrap(),
            created_by: created_by.into(),
        }
    }

    fn spec(layers: Vec<ImageLayer>) -> ImageSpec {
        ImageSpec {
            base_config: None,
            layers,
            run: RunConfig {
                entrypoint: vec!["/usr/local/bin/hello".into()],
                env: vec!["PATH=/usr/local/bin:/usr/bin".into()],
                user: "1000:1000".into(),
                workdir: "/home/app".into(),
                ..RunConfig::default()
            },
            created: gradient_archive::rfc3339(MTIME),
        }
    }

    fn tags() -> Vec<String> {
        vec!["hello:1.0".into(), "hello:latest".into()]
    }

    /// Each file of the tarball at `path`, in the order written; a name may come twice.
    fn tar_files(path: &Path) -> Vec<(String, Vec<u8>)> {
        let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
        let mut files = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.header().entry_type().is_dir() {
                continue;
            }
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            files.push((name, bytes));
        }
        files
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut tar = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(bytes), &mut tar)
            .unwrap();
        tar
    }

    fn json_of(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    fn sha256_of_file(path: &Path) -> String {
        digest_of(&std::fs::read(path).unwrap())
    }

    /// The single-platform tarball of a fixed image, pinned by its sha256 as the writer made
    /// it before it learnt to write several platforms: one image must stay byte for byte.
    #[test]
    fn one_image_gives_the_pinned_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let image = spec(vec![
            small_layer(&cache, "usr/local/bin/python3", "runtime", "runtime"),
            small_layer(&cache, "usr/local/app.py", "print('hi')", "app"),
        ]);
        let path = dir.path().join("hello-1.0.oci.tar");
        let layout = Layout {
            images: vec![PlatformImage {
                platform: Platform::LinuxAmd64,
                spec: &image,
            }],
            tags: tags(),
            docker_load: Platform::LinuxAmd64,
        };
        let written = write_layout(&layout, MTIME, &path).unwrap();
        assert_eq!(written.index, None);
        let digests = &written.images[&Platform::LinuxAmd64];
        assert_eq!(
            sha256_of_file(&path),
            "sha256:8447113dd08ede72a32c80604557be1b5a2897bf25eada17cf190cfc7f1df6c9"
        );
        assert_eq!(
            digests.manifest,
            "sha256:aaec8a687ec9e99d7d3b0d2f90da23be8f110efb164d91c886a644954ee48313"
        );
    }

    /// An amd64 and an arm64 image sharing their app layer, in one tarball.
    fn two_platforms(dir: &Path) -> (ImageSpec, ImageSpec) {
        let cache = dir.join("cache");
        let app = small_layer(&cache, "usr/local/app.py", "print('hi')", "app");
        let amd64 = spec(vec![
            small_layer(&cache, "usr/local/bin/python3", "amd64 runtime", "runtime"),
            app.clone(),
        ]);
        let arm64 = spec(vec![
            small_layer(&cache, "usr/local/bin/python3", "arm64 runtime", "runtime"),
            app,
        ]);
        (amd64, arm64)
    }

    #[test]
    fn two_platforms_give_an_image_index_and_share_equal_layers() {
        let dir = tempfile::tempdir().unwrap();
        let (amd64, arm64) = two_platforms(dir.path());
        let layout = Layout {
            // Given arm64 first: the tarball lists by platform all the same.
            images: vec![
                PlatformImage {
                    platform: Platform::LinuxArm64,
                    spec: &arm64,
                },
                PlatformImage {
                    platform: Platform::LinuxAmd64,
                    spec: &amd64,
                },
            ],
            tags: tags(),
            docker_load: Platform::LinuxAmd64,
        };
        let path = dir.path().join("hello-1.0.oci.tar");
        let written = write_layout(&layout, MTIME, &path).unwrap();
        let files = tar_files(&path);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names, unique, "each file once, in order");
        let file = |name: &str| -> &[u8] {
            let found = files.iter().find(|(n, _)| n == name);
            &found
                .unwrap_or_else(|| panic!("{name} is in the tarball"))
                .1
        };
        let blob = |digest: &str| file(&blob_path(digest));

        // index.json: one descriptor per tag, each naming the image index.
        let index_json = json_of(file("index.json"));
        let descriptors = index_json["manifests"].as_array().unwrap();
        assert_eq!(descriptors.len(), 2);
        let index_digest = written.index.clone().expect("several platforms: an index");
        for (descriptor, tag) in descriptors.iter().zip(tags()) {
            assert_eq!(descriptor["mediaType"], INDEX_TYPE);
            assert_eq!(descriptor["digest"], index_digest.as_str());
            assert_eq!(
                descriptor["annotations"]["org.opencontainers.image.ref.name"],
                tag.as_str()
            );
        }
        let index_bytes = blob(&index_digest);
        assert_eq!(digest_of(index_bytes), index_digest);
        assert_eq!(descriptors[0]["size"], index_bytes.len());

        // The index: each manifest with its platform, amd64 first.
        let index = json_of(index_bytes);
        assert_eq!(index["mediaType"], INDEX_TYPE);
        let listed = index["manifests"].as_array().unwrap();
        assert_eq!(listed.len(), 2);
        for (entry, (platform, arch)) in listed.iter().zip([
            (Platform::LinuxAmd64, "amd64"),
            (Platform::LinuxArm64, "arm64"),
        ]) {
            assert_eq!(
                entry["platform"],
                json!({"architecture": arch, "os": "linux"})
            );
            assert_eq!(entry["mediaType"], MANIFEST_TYPE);
            let digests = &written.images[&platform];
            assert_eq!(entry["digest"], digests.manifest.as_str());
            // The manifest, its config and its layers: each blob is what its digest says.
            let manifest_bytes = blob(&digests.manifest);
            assert_eq!(digest_of(manifest_bytes), digests.manifest);
            assert_eq!(entry["size"], manifest_bytes.len());
            let manifest = json_of(manifest_bytes);
            let config_digest = manifest["config"]["digest"].as_str().unwrap();
            assert_eq!(config_digest, digests.config);
            let config_bytes = blob(config_digest);
            assert_eq!(digest_of(config_bytes), config_digest);
            assert_eq!(manifest["config"]["size"], config_bytes.len());
            let config = json_of(config_bytes);
            assert_eq!(
                (config["architecture"].as_str(), config["os"].as_str()),
                (Some(arch), Some("linux"))
            );
            let layers = manifest["layers"].as_array().unwrap();
            assert_eq!(layers.len(), 2);
            for (layer, diff_id) in layers
                .iter()
                .zip(config["rootfs"]["diff_ids"].as_array().unwrap())
            {
                let digest = layer["digest"].as_str().unwrap();
                let bytes = blob(digest);
                assert_eq!(digest_of(bytes), digest);
                assert_eq!(layer["size"], bytes.len());
                let tar = gunzip(bytes);
                assert_eq!(digest_of(&tar), diff_id.as_str().unwrap());
            }
        }

        // The runtime layers differ, the app layer is shared and stored once.
        let amd64_layers: Vec<&str> = amd64
            .layers
            .iter()
            .map(|l| l.layer.digest.as_str())
            .collect();
        let arm64_layers: Vec<&str> = arm64
            .layers
            .iter()
            .map(|l| l.layer.digest.as_str())
            .collect();
        assert_ne!(amd64_layers[0], arm64_layers[0]);
        assert_eq!(amd64_layers[1], arm64_layers[1]);
        let blobs = names.iter().filter(|n| n.starts_with("blobs/")).count();
        // 3 layers, 2 configs, 2 manifests, 1 index.
        assert_eq!(blobs, 8);

        // manifest.json: the amd64 image, for docker load of engines before 25.
        let docker = json_of(file("manifest.json"));
        assert_eq!(docker.as_array().unwrap().len(), 1);
        assert_eq!(
            docker[0]["Config"],
            blob_path(&written.images[&Platform::LinuxAmd64].config)
        );
        assert_eq!(docker[0]["RepoTags"], json!(tags()));
        assert_eq!(
            docker[0]["Layers"],
            json!(amd64_layers
                .iter()
                .map(|d| blob_path(d))
                .collect::<Vec<_>>())
        );

        // The same inputs, in another order: the same bytes.
        let again = dir.path().join("again.oci.tar");
        let reversed = Layout {
            images: layout.images.iter().rev().copied().collect(),
            ..layout.clone()
        };
        assert_eq!(write_layout(&reversed, MTIME, &again).unwrap(), written);
        assert_eq!(
            std::fs::read(&again).unwrap(),
            std::fs::read(&path).unwrap()
        );
    }

    #[test]
    fn a_layout_that_cannot_be_written_is_refused_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (amd64, arm64) = two_platforms(dir.path());
        let path = dir.path().join("refused.oci.tar");
        let refusal = |images: Vec<PlatformImage>, docker_load| {
            let layout = Layout {
                images,
                tags: tags(),
                docker_load,
            };
            match write_layout(&layout, MTIME, &path) {
                Err(OciError::BadLayout { reason }) => reason,
                other => panic!("refused, not {other:?}"),
            }
        };
        let image = |platform, spec| PlatformImage { platform, spec };
        assert_eq!(refusal(vec![], Platform::LinuxAmd64), "it holds no image");
        assert!(refusal(
            vec![
                image(Platform::LinuxArm64, &arm64),
                image(Platform::LinuxArm64, &amd64)
            ],
            Platform::LinuxArm64
        )
        .contains("two images for one platform"));
        assert!(refusal(
            vec![image(Platform::LinuxArm64, &arm64)],
            Platform::LinuxAmd64
        )
        .contains("`docker load` is to get its linux/amd64 image"));
        let on_amd64_base = ImageSpec {
            base_config: Some(json!({"architecture": "amd64", "os": "linux"})),
            ..arm64.clone()
        };
        assert!(refusal(
            vec![image(Platform::LinuxArm64, &on_amd64_base)],
            Platform::LinuxArm64
        )
        .contains("base image for architecture `amd64`"));
        assert!(!path.exists(), "nothing written");
    }

    /// The crate's own reader of base images follows the index to the amd64 image when the
    /// tarball is read as an OCI layout only (without `manifest.json`, which it prefers).
    #[test]
    fn the_base_image_reader_finds_the_amd64_image_through_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let (amd64, arm64) = two_platforms(dir.path());
        let layout = Layout {
            images: vec![
                PlatformImage {
                    platform: Platform::LinuxArm64,
                    spec: &arm64,
                },
                PlatformImage {
                    platform: Platform::LinuxAmd64,
                    spec: &amd64,
                },
            ],
            tags: tags(),
            docker_load: Platform::LinuxArm64,
        };
        let path = dir.path().join("two.oci.tar");
        write_layout(&layout, MTIME, &path).unwrap();
        let unpacked = dir.path().join("unpacked");
        crate::base::unpack(&path, &unpacked).unwrap();
        // manifest.json names the arm64 image here: the reader would take that one.
        let via_manifest = crate::base::read_image(&unpacked, "test").unwrap();
        assert_eq!(via_manifest.config["architecture"], "arm64");
        std::fs::remove_file(unpacked.join("manifest.json")).unwrap();
        let via_index = crate::base::read_image(&unpacked, "test").unwrap();
        assert_eq!(via_index.config["architecture"], "amd64");
        let digests =
            |layers: &[Layer]| layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>();
        let ours: Vec<Layer> = amd64.layers.iter().map(|l| l.layer.clone()).collect();
        assert_eq!(digests(&via_index.layers), digests(&ours));
    }

    /// `docker load` of a two-platform tarball into the engine at hand, when one answers
    /// (a failure instead when GRADIENT_REQUIRE_DOCKER=1): an engine before 25 reads
    /// `manifest.json` and loads the amd64 image under both tags, not the arm64 one (a later
    /// engine on containerd's image store may load both: only the amd64 one is checked).
    #[test]
    fn docker_load_of_two_platforms_loads_the_named_one() {
        let docker = |args: &[&str]| std::process::Command::new("docker").args(args).output();
        if !docker(&["version"]).is_ok_and(|out| out.status.success()) {
            assert!(
                std::env::var("GRADIENT_REQUIRE_DOCKER").as_deref() != Ok("1"),
                "no Docker engine answers, and GRADIENT_REQUIRE_DOCKER=1"
            );
            eprintln!("skipped: no Docker engine answers");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (amd64, arm64) = two_platforms(dir.path());
        let name = format!("gradient-oci-index-test-{}", std::process::id());
        let tags = vec![format!("{name}:1.0"), format!("{name}:latest")];
        let layout = Layout {
            images: vec![
                PlatformImage {
                    platform: Platform::LinuxAmd64,
                    spec: &amd64,
                },
                PlatformImage {
                    platform: Platform::LinuxArm64,
                    spec: &arm64,
                },
            ],
            tags: tags.clone(),
            docker_load: Platform::LinuxAmd64,
        };
        let path = dir.path().join("two.oci.tar");
        let written = write_layout(&layout, MTIME, &path).unwrap();
        let load = docker(&["load", "-i", path.to_str().unwrap()]).unwrap();
        let said = String::from_utf8_lossy(&load.stdout).into_owned();
        let inspected = docker(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Architecture}} {{.Os}}",
            &tags[0],
        ])
        .unwrap();
        let arm64_there = docker(&[
            "image",
            "inspect",
            &written.images[&Platform::LinuxArm64].config,
        ])
        .unwrap()
        .status
        .success();
        let mut remove = vec!["image", "rm"];
        remove.extend(tags.iter().map(String::as_str));
        let _ = docker(&remove);

        assert!(
            load.status.success(),
            "docker load: {}",
            String::from_utf8_lossy(&load.stderr)
        );
        for tag in &tags {
            assert!(said.contains(&format!("Loaded image: {tag}")), "{said}");
        }
        assert_eq!(
            String::from_utf8_lossy(&inspected.stdout).trim(),
            format!(
                "{} amd64 linux",
                written.images[&Platform::LinuxAmd64].config
            )
        );
        assert!(
            !arm64_there,
            "an engine before 25 loads only the image manifest.json names"
        );
    }
}
