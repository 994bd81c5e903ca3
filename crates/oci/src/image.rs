//! The image tarball: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`)
//! that also carries a docker-archive `manifest.json`, so OCI tools and `docker load` of
//! any engine since 20.10 both read it. JSON keys are sorted (serde_json's map is ordered)
//! and the tar is written with fixed times and owners: the same image, the same bytes.

use crate::layer::{digest_of, Layer};
use crate::{io, OciError};
use gradient_archive::{write_tar, Entry, EntryKind};
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
    /// `name:tag` references (`sampleapp:1.2.3`).
    pub tags: Vec<String>,
}

/// What identifies a written image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageDigests {
    /// The manifest's digest: what a registry calls the image digest.
    pub manifest: String,
    /// The configuration's digest: what a Docker engine calls the image ID.
    pub config: String,
}

/// The image configuration as JSON bytes.
pub fn config_json(spec: &ImageSpec) -> Vec<u8> {
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
    let config = json!({
        "architecture": base["architecture"].as_str().unwrap_or("amd64"),
        "os": base["os"].as_str().unwrap_or("linux"),
        "created": spec.created,
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    serde_json::to_vec(&config).expect("JSON serialises")
}

/// Write the image tarball to `path` (a new file; the caller renames it into place).
pub fn write_image(spec: &ImageSpec, mtime: u64, path: &Path) -> Result<ImageDigests, OciError> {
    let config = config_json(spec);
    let config_digest = digest_of(&config);
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
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len()},
        "layers": layers,
    }))
    .expect("JSON serialises");
    let manifest_digest = digest_of(&manifest);
    let descriptors: Vec<Value> = spec
        .tags
        .iter()
        .map(|tag| {
            json!({
                "mediaType": MANIFEST_TYPE,
                "digest": manifest_digest,
                "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            })
        })
        .collect();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": descriptors,
    }))
    .expect("JSON serialises");
    let blob_path = |digest: &str| format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let docker_manifest = serde_json::to_vec(&json!([{
        "Config": blob_path(&config_digest),
        "RepoTags": spec.tags,
        "Layers": spec.layers.iter().map(|l| blob_path(&l.layer.digest)).collect::<Vec<_>>(),
    }]))
    .expect("JSON serialises");

    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert(
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    files.insert("index.json".into(), index);
    files.insert("manifest.json".into(), docker_manifest);
    files.insert(blob_path(&config_digest), config);
    files.insert(blob_path(&manifest_digest), manifest);
    for layer in &spec.layers {
        let bytes = std::fs::read(&layer.layer.path).map_err(io("read", &layer.layer.path))?;
        files.insert(blob_path(&layer.layer.digest), bytes);
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
    Ok(ImageDigests {
        manifest: manifest_digest,
        config: config_digest,
    })
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
            tags: vec!["hello:1.0".into(), "hello:latest".into()],
        }
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
        let digests = write_image(&image, MTIME, &path).unwrap();
        assert_eq!(
            sha256_of_file(&path),
            "sha256:8447113dd08ede72a32c80604557be1b5a2897bf25eada17cf190cfc7f1df6c9"
        );
        assert_eq!(
            digests.manifest,
            "sha256:aaec8a687ec9e99d7d3b0d2f90da23be8f110efb164d91c886a644954ee48313"
        );
    }
}
