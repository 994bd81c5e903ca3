//! An image tarball pushed to a repository: every blob looked up and sent when missing,
//! the manifests (per-platform ones before their index) put by digest, then the tags —
//! each tag only when it points elsewhere, so a rerun sends nothing.

use super::api::DEFAULT_CHUNK;
use super::client::Session;
use super::layout::{Tarball, DOCKER_LIST, OCI_INDEX};
use super::{Destination, RegistryError, RegistryOptions};
use crate::Sent;
use std::path::Path;

/// What a push did, or what a plan would do.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PushedImage {
    /// `HOST[:PORT]/REPOSITORY@sha256:…`, what `docker pull` and `cosign verify` take.
    pub reference: String,
    /// The digest of the top manifest or index: the image's digest.
    pub digest: String,
    /// Each blob, manifest and tag, in the order they were (or would be) sent.
    pub items: Vec<Sent>,
}

fn check_tags(tags: &[String]) -> Result<(), RegistryError> {
    for tag in tags {
        super::name::check_tag(tag).map_err(|reason| RegistryError::BadTag { reason })?;
    }
    Ok(())
}

fn kind(media_type: &str, is_top: bool) -> &'static str {
    match media_type {
        OCI_INDEX | DOCKER_LIST => "image index",
        _ if is_top => "image manifest",
        _ => "platform manifest",
    }
}

/// What [`push`] would send, offline: every blob, manifest and tag of the image in the
/// tarball, each listed with `sent: true` as it would go to a registry holding none of
/// them (a push skips what the registry holds). Reads and checks the tarball; sends
/// nothing, asks no credentials.
pub fn plan(
    tarball: &Path,
    destination: &Destination,
    tags: &[String],
) -> Result<PushedImage, RegistryError> {
    check_tags(tags)?;
    let image = Tarball::open(tarball)?.image()?;
    let name = destination.name();
    let top = image.top().digest.clone();
    let mut items: Vec<Sent> = image
        .blobs
        .iter()
        .map(|b| Sent {
            what: format!("blob {} ({}, {} bytes)", b.digest, b.media_type, b.size),
            to: format!("{name}@{}", b.digest),
            digest: b.digest.clone(),
            sent: true,
        })
        .collect();
    items.extend(image.manifests.iter().map(|m| Sent {
        what: kind(&m.media_type, m.digest == top).to_string(),
        to: format!("{name}@{}", m.digest),
        digest: m.digest.clone(),
        sent: true,
    }));
    items.extend(tags.iter().map(|tag| Sent {
        what: format!("tag {tag}"),
        to: format!("{name}:{tag}"),
        digest: top.clone(),
        sent: true,
    }));
    Ok(PushedImage {
        reference: format!("{name}@{top}"),
        digest: top,
        items,
    })
}

/// Push the image in `tarball` (gradient's OCI image layout in a tar) to `destination`,
/// tagged with each of `tags`. The tarball is read and checked whole before the first
/// request; tags are written last, after every blob and manifest is in.
pub async fn push(
    tarball: &Path,
    destination: &Destination,
    tags: &[String],
    options: &RegistryOptions,
) -> Result<PushedImage, RegistryError> {
    check_tags(tags)?;
    for from in &options.mount_from {
        super::name::check_repository(from).map_err(|reason| RegistryError::BadDestination {
            given: from.clone(),
            reason,
        })?;
    }
    let archive = Tarball::open(tarball)?;
    let image = archive.image()?;
    let session = Session::open(destination, options).await?;
    let name = destination.name();
    let chunk = options.chunk_size.unwrap_or(DEFAULT_CHUNK).max(1);
    let top = image.top().digest.clone();
    let mut items = Vec::new();
    for blob in &image.blobs {
        let present = session.has_blob(&blob.digest).await?;
        let mut mounted = None;
        if !present {
            let read =
                |start: u64, len: u64| archive.blob_chunk(&blob.digest, blob.size, start, len);
            mounted = session
                .upload_blob(&blob.digest, blob.size, chunk, &options.mount_from, &read)
                .await?;
        }
        let how = match (&mounted, present) {
            (Some(from), _) => format!(", mounted from {from}"),
            (None, true) => ", already there".to_string(),
            (None, false) => String::new(),
        };
        tracing::info!("blob {} ({} bytes{how})", blob.digest, blob.size);
        items.push(Sent {
            what: format!(
                "blob {} ({}, {} bytes{how})",
                blob.digest, blob.media_type, blob.size
            ),
            to: format!("{name}@{}", blob.digest),
            digest: blob.digest.clone(),
            // A mount sends no bytes.
            sent: !present && mounted.is_none(),
        });
    }
    for manifest in &image.manifests {
        let present = session.manifest_digest(&manifest.digest).await?.is_some();
        if !present {
            session
                .put_manifest(
                    &manifest.digest,
                    &manifest.media_type,
                    &manifest.bytes,
                    &manifest.digest,
                )
                .await?;
        }
        items.push(Sent {
            what: kind(&manifest.media_type, manifest.digest == top).to_string(),
            to: format!("{name}@{}", manifest.digest),
            digest: manifest.digest.clone(),
            sent: !present,
        });
    }
    let top_manifest = image.top();
    for tag in tags {
        let current = session.manifest_digest(tag).await?;
        let same = current.as_deref() == Some(top.as_str());
        if !same {
            session
                .put_manifest(tag, &top_manifest.media_type, &top_manifest.bytes, &top)
                .await?;
        }
        items.push(Sent {
            what: format!("tag {tag}"),
            to: format!("{name}:{tag}"),
            digest: top.clone(),
            sent: !same,
        });
    }
    Ok(PushedImage {
        reference: format!("{name}@{top}"),
        digest: top,
        items,
    })
}
