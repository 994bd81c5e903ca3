//! What an upload sends: the wheel's or sdist's core metadata read, as the upload API's
//! form fields, in a `multipart/form-data` body with the file.

use super::IndexError;
use crate::folder::Folder;
use gradient_core::Tier;
use std::path::{Path, PathBuf};

/// A file to upload, with its metadata read.
pub(super) struct Upload {
    pub(super) file: String,
    pub(super) path: PathBuf,
    pub(super) filetype: &'static str,
    pub(super) pyversion: String,
    pub(super) sha256: String,
    /// Core metadata, in file order, one entry per header line (repeated fields repeat).
    pub(super) metadata: Vec<(String, String)>,
}

impl Upload {
    pub(super) fn field(&self, name: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A plain file name of the kind indexes accept (it goes into a header and a URL).
fn check_name(file: &str) -> Result<(), IndexError> {
    let fine = !file.is_empty()
        && !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '!'));
    if fine {
        Ok(())
    } else {
        Err(IndexError::Name { file: file.into() })
    }
}

/// The wheels and sdists of the folder, metadata read.
pub(super) fn uploads(folder: &Folder) -> Result<Vec<Upload>, IndexError> {
    let mut found = Vec::new();
    for (tier, filetype) in [(Tier::Sdist, "sdist"), (Tier::Wheel, "bdist_wheel")] {
        for record in folder.artifacts(tier) {
            check_name(&record.file)?;
            let path = folder.path(&record.file);
            let metadata = match tier {
                Tier::Wheel => wheel_metadata(&path)?,
                _ => sdist_metadata(&path)?,
            };
            let pyversion = match tier {
                Tier::Wheel => {
                    let stem = record.file.trim_end_matches(".whl");
                    let parts: Vec<&str> = stem.split('-').collect();
                    if parts.len() < 5 {
                        return Err(IndexError::Name {
                            file: record.file.clone(),
                        });
                    }
                    parts[parts.len() - 3].to_string()
                }
                _ => "source".to_string(),
            };
            let upload = Upload {
                file: record.file.clone(),
                path,
                filetype,
                pyversion,
                sha256: record.sha256.clone(),
                metadata,
            };
            for required in ["Metadata-Version", "Name", "Version"] {
                if upload.field(required).is_none() {
                    return Err(IndexError::Metadata {
                        path: upload.path.clone(),
                        reason: format!("no {required}"),
                    });
                }
            }
            // The name becomes a path on the index (its project page): PEP 508's form only.
            let name = upload.field("Name").unwrap_or_default();
            let valid = !name.is_empty()
                && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                && name.ends_with(|c: char| c.is_ascii_alphanumeric())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid {
                return Err(IndexError::Metadata {
                    path: upload.path.clone(),
                    reason: format!("its Name `{}` is not a project name", name.escape_debug()),
                });
            }
            found.push(upload);
        }
    }
    if found.is_empty() {
        return Err(IndexError::Nothing {
            dir: folder.dir.clone(),
        });
    }
    Ok(found)
}

pub(super) fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// The wheel's `*.dist-info/METADATA`, parsed.
fn wheel_metadata(path: &Path) -> Result<Vec<(String, String)>, IndexError> {
    let bad = |reason: String| IndexError::Metadata {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(read_error(path))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let names: Vec<String> = archive
        .file_names()
        .filter(|n| {
            let parts: Vec<&str> = n.split('/').collect();
            parts.len() == 2 && parts[0].ends_with(".dist-info") && parts[1] == "METADATA"
        })
        .map(String::from)
        .collect();
    let [name] = names.as_slice() else {
        return Err(bad(format!(
            "{} *.dist-info/METADATA files, not one",
            names.len()
        )));
    };
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(
            archive.by_name(name).map_err(|e| bad(e.to_string()))?,
            METADATA_CAP + 1,
        ),
        &mut text,
    )
    .map_err(|e| bad(format!("{name}: {e}")))?;
    if text.len() as u64 > METADATA_CAP {
        return Err(bad(format!(
            "{name} is larger than {} MiB",
            METADATA_CAP >> 20
        )));
    }
    Ok(parse_metadata(&text))
}

/// The most of a METADATA or PKG-INFO file read (a long description included): a
/// compressed file that inflates past it is refused, not read into memory.
const METADATA_CAP: u64 = 16 << 20;

/// The sdist's top-level `NAME-VERSION/PKG-INFO`, parsed.
fn sdist_metadata(path: &Path) -> Result<Vec<(String, String)>, IndexError> {
    let bad = |reason: String| IndexError::Metadata {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(read_error(path))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let entry_path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let parts: Vec<_> = entry_path.components().collect();
        if parts.len() == 2 && parts[1].as_os_str() == "PKG-INFO" {
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(&mut entry, METADATA_CAP + 1),
                &mut text,
            )
            .map_err(|e| bad(format!("PKG-INFO: {e}")))?;
            if text.len() as u64 > METADATA_CAP {
                return Err(bad(format!(
                    "PKG-INFO is larger than {} MiB",
                    METADATA_CAP >> 20
                )));
            }
            return Ok(parse_metadata(&text));
        }
    }
    Err(bad("no NAME-VERSION/PKG-INFO in it".into()))
}

/// Core metadata (an email-style header block, then the description as its body) as
/// `(field, value)` pairs in order; the body becomes a `Description` field.
fn parse_metadata(text: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut lines = text.split_inclusive('\n');
    for line in lines.by_ref() {
        let bare = line.trim_end_matches(['\r', '\n']);
        if bare.is_empty() {
            break;
        }
        if bare.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push('\n');
                value.push_str(bare.trim_start());
            }
        } else if let Some((key, value)) = bare.split_once(':') {
            fields.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    let body: String = lines.collect();
    if !body.trim().is_empty() {
        fields.retain(|(k, _)| !k.eq_ignore_ascii_case("Description"));
        fields.push(("Description".into(), body));
    }
    fields
}

/// The upload API's name for a core metadata field (as twine and the index agree on them).
fn form_name(field: &str) -> Option<String> {
    let lower = field.to_ascii_lowercase();
    Some(match lower.as_str() {
        "classifier" => "classifiers".into(),
        "project-url" => "project_urls".into(),
        "home-page" => "home_page".into(),
        "metadata-version" | "name" | "version" => return None, // sent first, always
        "summary"
        | "description"
        | "description-content-type"
        | "author"
        | "author-email"
        | "maintainer"
        | "maintainer-email"
        | "license"
        | "license-expression"
        | "license-file"
        | "keywords"
        | "download-url"
        | "requires-dist"
        | "requires-python"
        | "requires-external"
        | "provides-extra"
        | "provides-dist"
        | "obsoletes-dist"
        | "platform"
        | "supported-platform"
        | "dynamic" => lower.replace('-', "_"),
        _ => return None,
    })
}

/// The form fields of one upload, in order; the file goes after them as `content`.
pub(super) fn form_fields(upload: &Upload) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = vec![
        (":action".into(), "file_upload".into()),
        ("protocol_version".into(), "1".into()),
        ("filetype".into(), upload.filetype.into()),
        ("pyversion".into(), upload.pyversion.clone()),
        (
            "metadata_version".into(),
            upload.field("Metadata-Version").unwrap_or_default().into(),
        ),
        (
            "name".into(),
            upload.field("Name").unwrap_or_default().into(),
        ),
        (
            "version".into(),
            upload.field("Version").unwrap_or_default().into(),
        ),
        ("sha256_digest".into(), upload.sha256.clone()),
    ];
    for (key, value) in &upload.metadata {
        if let Some(name) = form_name(key) {
            fields.push((name, value.clone()));
        }
    }
    fields
}

/// A `multipart/form-data` body: `fields`, then the file as `content`.
pub(super) fn multipart(
    boundary: &str,
    fields: &[(String, String)],
    file: &str,
    content: &[u8],
) -> Vec<u8> {
    let mut body = Vec::with_capacity(content.len() + 4096);
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_headers_and_body_become_form_fields() {
        let text = "Metadata-Version: 2.4\nName: sampleapp\nVersion: 1.2.3\nSummary: A sample\nClassifier: A :: B\nClassifier: C :: D\nProject-URL: Homepage, https://x.invalid\nLicense: first line\n        second line\nX-Unknown: dropped\n\nThe long description.\n";
        let upload = Upload {
            file: "sampleapp-1.2.3.tar.gz".into(),
            path: PathBuf::new(),
            filetype: "sdist",
            pyversion: "source".into(),
            sha256: "00".into(),
            metadata: parse_metadata(text),
        };
        let fields = form_fields(&upload);
        let get = |name: &str| -> Vec<&str> {
            fields
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(get(":action"), ["file_upload"]);
        assert_eq!(get("metadata_version"), ["2.4"]);
        assert_eq!(get("name"), ["sampleapp"]);
        assert_eq!(get("classifiers"), ["A :: B", "C :: D"]);
        assert_eq!(get("project_urls"), ["Homepage, https://x.invalid"]);
        assert_eq!(get("license"), ["first line\nsecond line"]);
        assert_eq!(get("description"), ["The long description.\n"]);
        assert!(get("x_unknown").is_empty());
        let body = multipart("B", &fields, &upload.file, b"DATA");
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains(
            "Content-Disposition: form-data; name=\"content\"; filename=\"sampleapp-1.2.3.tar.gz\""
        ));
        assert!(body.ends_with("DATA\r\n--B--\r\n"));
    }

    #[test]
    fn names_that_would_bend_a_header_or_a_url_are_refused() {
        for bad in ["a\"b.whl", "../x.whl", "a b.tar.gz", "x\r\n.whl", ""] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("sampleapp-1.2.3-py3-none-any.whl").is_ok());
    }
}
