//! CycloneDX 1.5 SBOMs: one JSON bill of materials per artifact (`FILE.cdx.json`, shortened
//! when that would be too long for a file name).
//!
//! The artifact itself is the document's `metadata.component`; `components` lists what the
//! artifact carries, which depends on its tier:
//!
//! ```text
//!  sdist, wheel                 nothing: the target installs the dependencies itself
//!  zipapp                       the wheelhouse's Python distributions
//!  frozen, oci, docker, deb, rpm  the distributions + the embedded CPython + its shared libraries
//! ```
//! Everything is read from the shared inputs (wheelhouse `site/*.dist-info`, its lock file,
//! the runtime bundle's `lib/`), so the same inputs give the same bytes.

use crate::manifest::{ArtifactRecord, ProjectRecord, PythonRecord};
use crate::publish::file_digest;
use gradient_core::{normalize_name, RuntimeFiles, SourceDate, Tier, WheelhouseFiles};
use gradient_wheel::metadata::{parse_core_metadata, CoreMetadata};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// What an artifact's bill of materials is made from.
pub struct SbomSources<'a> {
    pub project: &'a ProjectRecord,
    /// The app's own core metadata, as its wheel has it (it gives the app's licence);
    /// `None` when no wheel was built.
    pub app: Option<&'a CoreMetadata>,
    pub wheelhouse: Option<&'a WheelhouseFiles>,
    /// The runtime bundle as the artifact ships it; `None` when it ships none.
    pub runtime: Option<&'a RuntimeFiles>,
    /// Whether the artifact carries the bundle's shared libraries (else CPython only).
    pub runtime_libraries: bool,
    pub python: &'a PythonRecord,
    pub source_date: SourceDate,
}

/// The SBOM's file name for an artifact file: `FILE.cdx.json`. When that is longer than a
/// file name may be (255 bytes, where the artifact's own name may use all of them), the
/// start of FILE, a digest of all of it and `.cdx.json`, so every artifact gets its SBOM and
/// two long names never share one.
pub fn sbom_file_name(artifact_file: &str) -> String {
    const SUFFIX: &str = ".cdx.json";
    const NAME_MAX: usize = 255;
    let name = format!("{artifact_file}{SUFFIX}");
    if name.len() <= NAME_MAX {
        return name;
    }
    let digest = &hex::encode(Sha256::digest(artifact_file.as_bytes()))[..16];
    let mut keep = NAME_MAX - SUFFIX.len() - digest.len() - 1;
    while !artifact_file.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}-{digest}{SUFFIX}", &artifact_file[..keep])
}

/// A CycloneDX 1.5 JSON document for `artifact`, deterministic (same inputs, same bytes).
pub fn sbom(artifact: &ArtifactRecord, sources: &SbomSources) -> Result<Vec<u8>, io::Error> {
    let project = sources.project;
    let kind = if artifact.target_needs.carries.userspace {
        "container"
    } else {
        "application"
    };
    let mut app = json!({
        "type": kind,
        "name": project.name,
        "version": project.version,
        "bom-ref": "app",
        "purl": pypi_purl(&project.name, &project.version),
        "hashes": [sha256_hash(&artifact.sha256)],
        "properties": [
            // oci and docker publish one file: its bill of materials is the same for both.
            property("gradient:tier", match artifact.tier {
                Tier::Oci | Tier::Docker => "oci,docker",
                tier => tier.name(),
            }),
            property("gradient:file", &artifact.file),
        ],
    });
    if let Some(platform) = artifact.platform {
        app["properties"]
            .as_array_mut()
            .expect("a list")
            .push(property("gradient:platform", platform.oci()));
    }
    if let Some(licenses) = sources.app.and_then(licenses) {
        app["licenses"] = licenses;
    }

    // Which runtime it carries is its backend's answer (`sources.runtime`).
    let distributions = artifact.target_needs.carries.dependencies;
    let mut components = Vec::new();
    if let Some(wheelhouse) = sources.wheelhouse.filter(|_| distributions) {
        components.extend(python_distributions(wheelhouse, &project.name)?);
    }
    if let Some(bundle) = sources.runtime {
        components.push(cpython(&sources.python.version));
        if sources.runtime_libraries {
            components.extend(shared_libraries(bundle)?);
        }
    }
    let mut refs: Vec<&str> = components
        .iter()
        .filter_map(|c| c["bom-ref"].as_str())
        .collect();
    refs.sort_unstable();

    let document = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial_number(&artifact.sha256),
        "version": 1,
        "metadata": {
            "timestamp": gradient_archive::rfc3339(sources.source_date.seconds),
            "tools": {
                "components": [{
                    "type": "application",
                    "name": "gradient",
                    "version": env!("CARGO_PKG_VERSION"),
                }],
            },
            "component": app,
        },
        "components": components,
        "dependencies": [{"ref": "app", "dependsOn": refs}],
    });
    let mut bytes = serde_json::to_vec_pretty(&document).map_err(io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// `urn:uuid:…` from the artifact's digest, shaped as a version-5 UUID.
fn serial_number(artifact_sha256: &str) -> String {
    let digest = Sha256::digest(format!("gradient-sbom:{artifact_sha256}"));
    let mut bytes: [u8; 16] = digest[..16].try_into().expect("a SHA-256 has 32 bytes");
    bytes[6] = (bytes[6] & 0x0f) | 0x50; // version 5
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex = hex::encode(bytes);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `pkg:pypi/NAME@VERSION`, the name normalised and the version percent-encoded.
fn pypi_purl(name: &str, version: &str) -> String {
    let mut purl = format!("pkg:pypi/{}@", normalize_name(name));
    for byte in version.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_' | b'~') {
            purl.push(byte as char);
        } else {
            purl.push_str(&format!("%{byte:02X}"));
        }
    }
    purl
}

fn sha256_hash(hex: &str) -> Value {
    json!({"alg": "SHA-256", "content": hex})
}

fn property(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}

/// The embedded interpreter.
fn cpython(version: &str) -> Value {
    json!({
        "type": "framework",
        "name": "cpython",
        "version": version,
        "bom-ref": "cpython",
        "purl": format!("pkg:generic/cpython@{version}"),
        "licenses": [{"license": {"id": "PSF-2.0"}}],
    })
}

/// Every distribution installed in the wheelhouse but the app, sorted by name.
fn python_distributions(wheelhouse: &WheelhouseFiles, app: &str) -> io::Result<Vec<Value>> {
    // The digest of the file each package was installed from, as the published lock says.
    let hashes: BTreeMap<&str, &Vec<String>> = wheelhouse
        .packages
        .iter()
        .map(|p| (p.name.as_str(), &p.sha256))
        .collect();
    let mut dists = Vec::new();
    for entry in std::fs::read_dir(&wheelhouse.site).map_err(|e| context(e, &wheelhouse.site))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "dist-info") {
            let metadata = parse_core_metadata(&read_text(&path.join("METADATA"))?);
            if normalize_name(&metadata.name) != normalize_name(app) {
                dists.push(metadata);
            }
        }
    }
    dists.sort_by_cached_key(|m| (normalize_name(&m.name), m.version.clone()));
    Ok(dists
        .iter()
        .map(|m| {
            let name = normalize_name(&m.name);
            let mut component = json!({
                "type": "library",
                "name": m.name,
                "version": m.version,
                "bom-ref": format!("pypi:{name}@{}", m.version),
                "purl": pypi_purl(&m.name, &m.version),
            });
            if let Some(licenses) = licenses(m) {
                component["licenses"] = licenses;
            }
            if let Some(digests) = hashes.get(name.as_str()) {
                component["hashes"] = digests.iter().map(|h| sha256_hash(h)).collect();
            }
            component
        })
        .collect())
}

/// Each shared library directly in the bundle's `lib/`, with its digest, sorted by name.
fn shared_libraries(runtime: &RuntimeFiles) -> io::Result<Vec<Value>> {
    let dir = runtime.dir.join("lib");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| context(e, &dir))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // `metadata` follows symlinks: a link to a library counts as the library.
        if name.contains(".so") && std::fs::metadata(entry.path())?.is_file() {
            names.push(name);
        }
    }
    names.sort_unstable();
    let digests = library_digests(&runtime.dir, &dir, &names)?;
    Ok(names
        .into_iter()
        .zip(digests)
        .map(|(name, digest)| {
            json!({
                "type": "library",
                "name": name,
                "bom-ref": format!("lib:{name}"),
                "hashes": [sha256_hash(&digest)],
                "properties": [property("gradient:bundled-path", &format!("lib/{name}"))],
            })
        })
        .collect())
}

/// The SHA-256 of each of `names` in `lib`. Bundles live in the cache and do not change, so
/// the digests are kept beside the bundle (`BUNDLE.sbom-digests.json`, by file size and
/// time) and a run hashes only what is new or changed: every run writes SBOMs.
fn library_digests(bundle: &Path, lib: &Path, names: &[String]) -> io::Result<Vec<String>> {
    type Stamped = BTreeMap<String, (u64, u128, String)>;
    let file_name = bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kept_at = bundle.with_file_name(format!("{file_name}.sbom-digests.json"));
    let kept: Stamped = std::fs::read(&kept_at)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut now = Stamped::new();
    for name in names {
        let path = lib.join(name);
        let meta = std::fs::metadata(&path).map_err(|e| context(e, &path))?;
        let time = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let digest = match kept.get(name) {
            Some((size, at, digest)) if *size == meta.len() && *at == time => digest.clone(),
            _ => file_digest(&path).map_err(|e| context(e, &path))?,
        };
        now.insert(name.clone(), (meta.len(), time, digest));
    }
    if now != kept {
        // Only a cache: a bundle that cannot be written beside is hashed again next time.
        let bytes = serde_json::to_vec(&now).expect("digests serialise");
        let _ = crate::publish::write_atomically(&kept_at, &bytes);
    }
    Ok(names.iter().map(|name| now[name].2.clone()).collect())
}

/// CycloneDX `licenses`: the SPDX expression, else the OSI classifiers, else a short
/// `License:` field; `None` when the metadata names none.
fn licenses(metadata: &CoreMetadata) -> Option<Value> {
    if let Some(expression) = &metadata.license_expression {
        return Some(json!([{"expression": expression}]));
    }
    let named = |name: &str| json!({"license": {"name": name}});
    let classified: Vec<Value> = metadata
        .classifiers
        .iter()
        .filter_map(|c| c.strip_prefix("License :: OSI Approved :: "))
        .map(named)
        .collect();
    if !classified.is_empty() {
        return Some(Value::Array(classified));
    }
    metadata
        .short_license_field()
        .map(|l| Value::Array(vec![named(l)]))
}

fn read_text(path: &Path) -> io::Result<String> {
    std::fs::read_to_string(path).map_err(|e| context(e, path))
}

/// The error, with the path it concerns.
fn context(error: io::Error, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("`{}`: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradient_core::SourceDateOrigin;
    use std::fs;

    struct Fixture {
        _dir: tempfile::TempDir,
        project: ProjectRecord,
        python: PythonRecord,
        metadata: Option<CoreMetadata>,
        wheelhouse: WheelhouseFiles,
        runtime: RuntimeFiles,
    }

    const LIBFOO: &[u8] = b"\x7fELF not really a library";

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let dist = |folder: &str, metadata: &str| {
            let info = root.join("site").join(folder);
            fs::create_dir_all(&info).unwrap();
            fs::write(info.join("METADATA"), metadata).unwrap();
        };
        dist(
            "click-8.1.7.dist-info",
            "Metadata-Version: 2.4\nName: click\nVersion: 8.1.7\n\
             License-Expression: BSD-3-Clause\n\nLicense: not this\n",
        );
        dist(
            "Msgpack-1.0.8.dist-info",
            "Metadata-Version: 2.1\nName: Msgpack\nVersion: 1.0.8\nLicense: Apache 2.0\n\
             Classifier: Topic :: Utilities\n\
             Classifier: License :: OSI Approved :: Apache Software License\n",
        );
        dist(
            "sample_app-1.2.3.dist-info",
            "Name: sample_app\nVersion: 1.2.3\n",
        );
        let lock = root.join("lock.txt");
        fs::write(
            &lock,
            "# header\nclick==8.1.7 \\\n    --hash=sha256:bb \\\n    --hash=sha256:aa\n\
             msgpack==1.0.8 \\\n    --hash=sha256:cc\n",
        )
        .unwrap();
        fs::create_dir_all(root.join("bundle/lib/python3.11")).unwrap();
        fs::write(root.join("bundle/lib/libfoo.so.1"), LIBFOO).unwrap();
        fs::write(root.join("bundle/lib/python311.zip"), b"zip").unwrap();
        let metadata =
            parse_core_metadata("Name: sample-app\nVersion: 1.2.3\nLicense-Expression: MIT\n");
        Fixture {
            project: ProjectRecord {
                name: "Sample.App".into(),
                version: "1.2.3".into(),
            },
            python: PythonRecord {
                implementation: "cpython".into(),
                version: "3.11.9".into(),
                python_tag: "cp311".into(),
                abi_tag: "cp311".into(),
                platform_tag: "linux_x86_64".into(),
            },
            metadata: Some(metadata),
            wheelhouse: WheelhouseFiles {
                site: root.join("site"),
                lock,
                packages: vec![
                    gradient_core::LockedDependency {
                        name: "click".into(),
                        version: "8.1.7".into(),
                        sha256: vec!["aa".into(), "bb".into()],
                    },
                    gradient_core::LockedDependency {
                        name: "msgpack".into(),
                        version: "1.0.8".into(),
                        sha256: vec!["cc".into()],
                    },
                ],
            },
            runtime: RuntimeFiles {
                dir: root.join("bundle"),
                python: "bin/python3.11".into(),
                site_packages: "lib/python3.11/site-packages".into(),
                glibc: None,
                id: String::new(),
            },
            _dir: dir,
        }
    }

    fn artifact(tier: Tier) -> ArtifactRecord {
        ArtifactRecord {
            tier,
            file: format!("sample_app-1.2.3.{tier}"),
            sha256: "ab".repeat(32),
            size: 1,
            build_seconds: 0.0,
            target_needs: tier.generic_needs(),
            platform: None,
            smoke: None,
            delivered: None,
            reused: false,
            reproducible: None,
            sbom: None,
        }
    }

    /// Everything of the fixture, as a frozen or scratch-image artifact would ship it.
    fn sources(f: &Fixture, seconds: u64) -> SbomSources<'_> {
        SbomSources {
            project: &f.project,
            app: f.metadata.as_ref(),
            wheelhouse: Some(&f.wheelhouse),
            runtime: Some(&f.runtime),
            runtime_libraries: true,
            python: &f.python,
            source_date: SourceDate {
                seconds,
                origin: SourceDateOrigin::Fixed,
            },
        }
    }

    fn document(f: &Fixture, tier: Tier, seconds: u64) -> Value {
        serde_json::from_slice(&sbom(&artifact(tier), &sources(f, seconds)).unwrap()).unwrap()
    }

    /// As the driver gives it for a tier whose backend ships no runtime.
    fn document_without_runtime(f: &Fixture, tier: Tier) -> Value {
        let sources = SbomSources {
            runtime: None,
            runtime_libraries: false,
            ..sources(f, 0)
        };
        serde_json::from_slice(&sbom(&artifact(tier), &sources).unwrap()).unwrap()
    }

    fn refs(doc: &Value) -> Vec<&str> {
        let components = doc["components"].as_array().unwrap();
        components
            .iter()
            .map(|c| c["bom-ref"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn zipapp_lists_the_distributions_with_hashes_and_licences() {
        let f = fixture();
        let doc = document_without_runtime(&f, Tier::Zipapp);
        assert_eq!(refs(&doc), ["pypi:click@8.1.7", "pypi:msgpack@1.0.8"]);
        let click = &doc["components"][0];
        assert_eq!(click["purl"], "pkg:pypi/click@8.1.7");
        assert_eq!(click["licenses"], json!([{"expression": "BSD-3-Clause"}]));
        assert_eq!(
            click["hashes"],
            json!([sha256_hash("aa"), sha256_hash("bb")])
        );
        let msgpack = &doc["components"][1];
        assert_eq!(msgpack["name"], "Msgpack");
        assert_eq!(
            msgpack["licenses"],
            json!([{"license": {"name": "Apache Software License"}}])
        );
        assert_eq!(msgpack["hashes"], json!([sha256_hash("cc")]));

        let app = &doc["metadata"]["component"];
        assert_eq!(app["type"], "application");
        assert_eq!(app["purl"], "pkg:pypi/sample-app@1.2.3");
        assert_eq!(app["licenses"], json!([{"expression": "MIT"}]));
        assert_eq!(app["hashes"][0]["content"], "ab".repeat(32));
        assert_eq!(app["properties"][0], property("gradient:tier", "zipapp"));
        assert_eq!(
            doc["dependencies"],
            json!([{"ref": "app", "dependsOn": ["pypi:click@8.1.7", "pypi:msgpack@1.0.8"]}])
        );
        assert_eq!(doc["metadata"]["timestamp"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn frozen_adds_cpython_and_the_bundled_libraries() {
        let f = fixture();
        let doc = document(&f, Tier::Frozen, 1_700_000_000);
        assert_eq!(
            refs(&doc),
            [
                "pypi:click@8.1.7",
                "pypi:msgpack@1.0.8",
                "cpython",
                "lib:libfoo.so.1"
            ]
        );
        assert_eq!(doc["components"][2]["version"], "3.11.9");
        let libfoo = &doc["components"][3];
        assert_eq!(
            libfoo["hashes"][0]["content"],
            hex::encode(Sha256::digest(LIBFOO))
        );
        assert_eq!(libfoo["properties"][0]["value"], "lib/libfoo.so.1");
        assert_eq!(doc["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(
            document(&f, Tier::Oci, 0)["metadata"]["component"]["type"],
            "container"
        );
    }

    #[test]
    fn a_package_without_the_runtime_lists_only_the_distributions() {
        let f = fixture();
        let sources = SbomSources {
            app: None,
            runtime: None,
            runtime_libraries: false,
            ..sources(&f, 0)
        };
        let doc: Value =
            serde_json::from_slice(&sbom(&artifact(Tier::Rpm), &sources).unwrap()).unwrap();
        assert_eq!(refs(&doc), ["pypi:click@8.1.7", "pypi:msgpack@1.0.8"]);
        assert!(doc["metadata"]["component"].get("licenses").is_none());
    }

    #[test]
    fn wheel_bundles_nothing() {
        let f = fixture();
        let doc = document_without_runtime(&f, Tier::Wheel);
        assert_eq!(doc["components"], json!([]));
        assert_eq!(
            doc["dependencies"],
            json!([{"ref": "app", "dependsOn": []}])
        );
    }

    #[test]
    fn output_is_deterministic_with_a_version_5_serial_number() {
        let f = fixture();
        let sources = sources(&f, 0);
        let first = sbom(&artifact(Tier::Deb), &sources).unwrap();
        assert_eq!(first, sbom(&artifact(Tier::Deb), &sources).unwrap());
        assert!(first.ends_with(b"}\n"));

        let doc: Value = serde_json::from_slice(&first).unwrap();
        let serial = doc["serialNumber"].as_str().unwrap();
        let uuid = serial.strip_prefix("urn:uuid:").unwrap();
        let groups: Vec<&str> = uuid.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12]);
        assert!(uuid
            .chars()
            .all(|c| c == '-' || matches!(c, '0'..='9' | 'a'..='f')));
        assert!(groups[2].starts_with('5'), "{uuid}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{uuid}"
        );
        assert_eq!(sbom_file_name("app.deb"), "app.deb.cdx.json");
    }

    #[test]
    fn an_sbom_name_always_fits_in_a_file_name() {
        let fits = format!("{}.whl", "a".repeat(242));
        assert_eq!(sbom_file_name(&fits), format!("{fits}.cdx.json"));
        for length in [247, 250, 255] {
            for fill in ["a", "é"] {
                let file = format!("{}.whl", fill.repeat((length - 4) / fill.len()));
                let name = sbom_file_name(&file);
                assert!(name.len() <= 255, "{} bytes", name.len());
                assert!(name.ends_with(".cdx.json"), "{name}");
                assert!(name.starts_with(&file[..200]), "{name}");
            }
        }
        let (a, b) = (
            format!("{}1.whl", "a".repeat(250)),
            format!("{}2.whl", "a".repeat(250)),
        );
        assert_ne!(sbom_file_name(&a), sbom_file_name(&b));
    }
}
