//! gradient's image tarball read as what a registry holds: an OCI image layout in a plain
//! tar (`index.json`, `blobs/sha256/…`), indexed once so each blob is read in place, in
//! chunks, without unpacking. Every manifest and index is checked against its digest and
//! size before anything is sent; layers are checked as they are read for the upload.
//!
//! The layout's `index.json` names the image: one distinct descriptor (an image manifest,
//! or an image index whose manifests are per-platform image manifests), or several image
//! manifests, in which case `index.json` itself is pushed as the image index.

use super::RegistryError;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The most a manifest, an index or `index.json` may weigh (registries refuse more).
const DOCUMENT_MAX: u64 = 4 << 20;

/// A blob of the image: a configuration or a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

/// A manifest or an index, with its bytes (what its digest is of).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// The image in a tarball, in the order a registry must receive it: every blob, then the
/// manifests children first, the top one last.
#[derive(Debug)]
pub struct Image {
    pub blobs: Vec<Blob>,
    pub manifests: Vec<Document>,
}

impl Image {
    /// The manifest or index the tags point at.
    pub fn top(&self) -> &Document {
        self.manifests.last().expect("an image has a manifest")
    }
}

/// The tarball, with where each of its files lies.
pub struct Tarball {
    path: PathBuf,
    /// Normalised path → (offset of the data, size).
    files: HashMap<String, (u64, u64)>,
}

impl Tarball {
    pub fn open(path: &Path) -> Result<Tarball, RegistryError> {
        let bad = |reason: String| RegistryError::Tarball {
            path: path.to_path_buf(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open it: {e}")))?;
        let mut archive = tar::Archive::new(file);
        let mut files = HashMap::new();
        let entries = archive
            .entries()
            .map_err(|e| bad(format!("it is not a tar: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| bad(format!("it is not a readable tar: {e}")))?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let name = entry
                .path()
                .map_err(|e| bad(format!("an entry has an unreadable path: {e}")))?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            files.insert(name, (entry.raw_file_position(), entry.size()));
        }
        if !files.contains_key("index.json") {
            return Err(bad(
                "it holds no `index.json`: it is not an OCI image layout".into(),
            ));
        }
        Ok(Tarball {
            path: path.to_path_buf(),
            files,
        })
    }

    fn bad(&self, reason: String) -> RegistryError {
        RegistryError::Tarball {
            path: self.path.clone(),
            reason,
        }
    }

    /// Where the blob `digest` lies, checked to be `size` bytes long.
    fn locate(&self, digest: &str, size: u64) -> Result<(u64, u64), RegistryError> {
        super::name::check_digest(digest).map_err(|r| self.bad(r))?;
        let name = format!("blobs/sha256/{}", &digest[7..]);
        let &(offset, actual) = self
            .files
            .get(&name)
            .ok_or_else(|| self.bad(format!("it lacks the blob `{name}`")))?;
        if actual != size {
            return Err(self.bad(format!(
                "the blob `{name}` is {actual} bytes, and its descriptor says {size}"
            )));
        }
        Ok((offset, actual))
    }

    fn read_at(&self, offset: u64, size: u64) -> Result<Vec<u8>, RegistryError> {
        let mut file = std::fs::File::open(&self.path)
            .map_err(|e| self.bad(format!("cannot open it: {e}")))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| self.bad(format!("cannot read it: {e}")))?;
        let mut bytes = vec![0; size as usize];
        file.read_exact(&mut bytes)
            .map_err(|e| self.bad(format!("cannot read it: {e}")))?;
        Ok(bytes)
    }

    /// A document (manifest, index) by its descriptor, checked against its digest.
    fn document(&self, digest: &str, size: u64) -> Result<Vec<u8>, RegistryError> {
        if size > DOCUMENT_MAX {
            return Err(self.bad(format!(
                "the manifest {digest} is {size} bytes, more than a registry takes"
            )));
        }
        let (offset, size) = self.locate(digest, size)?;
        let bytes = self.read_at(offset, size)?;
        let actual = gradient_driver::publish::sha256_hex(&bytes);
        if digest[7..] != actual {
            return Err(self.bad(format!(
                "the blob {digest} holds content whose digest is sha256:{actual}"
            )));
        }
        Ok(bytes)
    }

    /// A reader over `size` bytes of the blob `digest`, from `start`.
    pub fn blob_chunk(
        &self,
        digest: &str,
        size: u64,
        start: u64,
        len: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let (offset, _) = self.locate(digest, size)?;
        self.read_at(offset + start, len.min(size - start))
    }

    /// `index.json`: its bytes, parsed.
    fn layout_index(&self) -> Result<(Vec<u8>, Value), RegistryError> {
        let &(offset, size) = self.files.get("index.json").expect("checked at open");
        if size > DOCUMENT_MAX {
            return Err(self.bad("its `index.json` is too large".into()));
        }
        let bytes = self.read_at(offset, size)?;
        let index = serde_json::from_slice(&bytes)
            .map_err(|e| self.bad(format!("its `index.json` is not JSON: {e}")))?;
        Ok((bytes, index))
    }

    /// The tags the image was built with: the tag part of each reference `index.json`
    /// names (`org.opencontainers.image.ref.name`, `sampleapp:1.2.3` → `1.2.3`), in order,
    /// once each.
    pub fn tags(&self) -> Result<Vec<String>, RegistryError> {
        let (_, index) = self.layout_index()?;
        let mut tags: Vec<String> = Vec::new();
        for descriptor in index["manifests"].as_array().into_iter().flatten() {
            let Some(name) =
                descriptor["annotations"]["org.opencontainers.image.ref.name"].as_str()
            else {
                continue;
            };
            let last = &name[name.rfind('/').map_or(0, |i| i + 1)..];
            let tag = last.rsplit_once(':').map_or(name, |(_, tag)| tag);
            if !tags.iter().any(|t| t == tag) {
                tags.push(tag.to_string());
            }
        }
        Ok(tags)
    }

    /// The image: `index.json` followed down to every blob, each document checked.
    pub fn image(&self) -> Result<Image, RegistryError> {
        let (index_bytes, index) = self.layout_index()?;
        let descriptors = index["manifests"]
            .as_array()
            .ok_or_else(|| self.bad("its `index.json` lists no manifests".into()))?;
        let mut distinct: Vec<&Value> = Vec::new();
        for d in descriptors {
            if !distinct.iter().any(|seen| seen["digest"] == d["digest"]) {
                distinct.push(d);
            }
        }
        let mut image = Image {
            blobs: Vec::new(),
            manifests: Vec::new(),
        };
        match distinct.as_slice() {
            [] => return Err(self.bad("its `index.json` lists no manifests".into())),
            [one] => self.visit(one, 0, &mut image)?,
            several => {
                for d in several {
                    if descriptor_type(d) != OCI_MANIFEST && descriptor_type(d) != DOCKER_MANIFEST {
                        return Err(self.bad(
                            "its `index.json` lists several images that are not all image manifests".into(),
                        ));
                    }
                    self.visit(d, 1, &mut image)?;
                }
                image.manifests.push(Document {
                    digest: format!(
                        "sha256:{}",
                        gradient_driver::publish::sha256_hex(&index_bytes)
                    ),
                    media_type: OCI_INDEX.into(),
                    bytes: index_bytes,
                });
            }
        }
        Ok(image)
    }

    fn visit(
        &self,
        descriptor: &Value,
        depth: usize,
        image: &mut Image,
    ) -> Result<(), RegistryError> {
        let (digest, size) = descriptor_digest(descriptor).map_err(|r| self.bad(r))?;
        let media_type = descriptor_type(descriptor).to_string();
        if image.manifests.iter().any(|m| m.digest == digest) {
            return Ok(());
        }
        let bytes = self.document(&digest, size)?;
        let document: Value = serde_json::from_slice(&bytes)
            .map_err(|e| self.bad(format!("the manifest {digest} is not JSON: {e}")))?;
        match media_type.as_str() {
            OCI_INDEX | DOCKER_LIST if depth == 0 => {
                let children = document["manifests"]
                    .as_array()
                    .ok_or_else(|| self.bad(format!("the index {digest} lists no manifests")))?;
                for child in children {
                    self.visit(child, depth + 1, image)?;
                }
            }
            OCI_MANIFEST | DOCKER_MANIFEST => {
                let mut blobs = vec![&document["config"]];
                blobs.extend(document["layers"].as_array().into_iter().flatten());
                for blob in blobs {
                    let (digest, size) = descriptor_digest(blob).map_err(|r| self.bad(r))?;
                    self.locate(&digest, size)?;
                    if !image.blobs.iter().any(|b| b.digest == digest) {
                        image.blobs.push(Blob {
                            digest,
                            size,
                            media_type: descriptor_type(blob).to_string(),
                        });
                    }
                }
            }
            other => {
                return Err(self.bad(format!(
                    "the manifest {digest} is of type `{other}`, where an image manifest or (at the top) an image index is expected"
                )))
            }
        }
        image.manifests.push(Document {
            digest,
            media_type,
            bytes,
        });
        Ok(())
    }
}

fn descriptor_type(descriptor: &Value) -> &str {
    descriptor["mediaType"].as_str().unwrap_or_default()
}

/// A descriptor's digest (checked) and size.
pub(crate) fn descriptor_digest(descriptor: &Value) -> Result<(String, u64), String> {
    let digest = descriptor["digest"]
        .as_str()
        .ok_or("a descriptor has no digest")?;
    super::name::check_digest(digest)?;
    let size = descriptor["size"]
        .as_u64()
        .ok_or_else(|| format!("the descriptor of {digest} has no size"))?;
    Ok((digest.to_string(), size))
}
