//! pylock.toml (PEP 751, lock-version 1.x): a flat list of packages, each installed where
//! its marker holds (markers may test the `extras` and `dependency_groups` sets).

use crate::{
    kind_of, lock_marker, toml_error, url_file_name, FileKind, Lock, LockError, LockFile,
    LockedFile, Package, Source,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "lock-version")]
    lock_version: Option<String>,
    #[serde(default)]
    environments: Vec<String>,
    #[serde(rename = "requires-python")]
    requires_python: Option<String>,
    #[serde(default, rename = "default-groups")]
    default_groups: Vec<String>,
    extras: Option<Vec<String>>,
    #[serde(rename = "dependency-groups")]
    dependency_groups: Option<Vec<String>>,
    #[serde(default)]
    packages: Vec<Spanned<RawPackage>>,
    tool: Option<RawTool>,
}

#[derive(Deserialize)]
struct RawTool {
    gradient: Option<RawGradient>,
}

#[derive(Deserialize)]
struct RawGradient {
    inputs: Option<String>,
    requirements: Option<String>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: Option<String>,
    marker: Option<String>,
    index: Option<String>,
    vcs: Option<toml::Value>,
    directory: Option<RawDirectory>,
    archive: Option<RawFile>,
    sdist: Option<RawFile>,
    #[serde(default)]
    wheels: Vec<RawFile>,
}

#[derive(Deserialize)]
struct RawDirectory {
    path: String,
}

#[derive(Deserialize)]
struct RawFile {
    name: Option<String>,
    url: Option<String>,
    path: Option<String>,
    size: Option<u64>,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
}

pub(crate) fn parse(file: LockFile, text: String) -> Result<Lock, LockError> {
    let raw: Raw = toml::from_str(&text).map_err(|e| toml_error(&file, &text, e))?;
    match raw.lock_version.as_deref() {
        Some(v) if v.split('.').next() == Some("1") => {}
        other => {
            return Err(LockError::Version {
                path: file.path.clone(),
                formats: other.map_or("no `lock-version`".into(), |v| format!("lock-version {v}")),
                supported: "1.x".into(),
            })
        }
    }
    let environments = raw
        .environments
        .iter()
        .map(|m| lock_marker(&file, 1, m))
        .collect::<Result<_, _>>()?;
    let lines = crate::LineIndex::new(&text);
    let mut packages = Vec::new();
    let mut project = None;
    for spanned in &raw.packages {
        let line = lines.line(spanned.span().start);
        let p = spanned.get_ref();
        let name = gradient_core::normalize_name(&p.name);
        if p.directory
            .as_ref()
            .is_some_and(|d| d.path == "." || d.path == "./")
        {
            project = Some(name.clone());
        }
        let source = if p.vcs.is_some() {
            Source::Unsupported("a version control checkout".into())
        } else if let Some(directory) = &p.directory {
            Source::Unsupported(format!("the local path `{}`", directory.path))
        } else if let Some(archive) = &p.archive {
            match &archive.url {
                Some(url) => Source::Url(url.clone()),
                None => Source::Unsupported(format!(
                    "the local archive `{}`",
                    archive.path.as_deref().unwrap_or("?")
                )),
            }
        } else {
            Source::Index(p.index.clone())
        };
        let mut files = Vec::new();
        let raw_files = p
            .archive
            .iter()
            .map(|f| (f, Some(FileKind::Archive)))
            .chain(p.sdist.iter().map(|f| (f, Some(FileKind::Sdist))))
            .chain(p.wheels.iter().map(|f| (f, Some(FileKind::Wheel))));
        for (raw_file, kind) in raw_files {
            let Some(sha256) = raw_file.hashes.get("sha256") else {
                continue;
            };
            let name = raw_file.name.clone().or_else(|| {
                raw_file
                    .url
                    .as_deref()
                    .or(raw_file.path.as_deref())
                    .and_then(url_file_name)
            });
            files.push(LockedFile {
                kind: kind.unwrap_or_else(|| name.as_deref().map_or(FileKind::Sdist, kind_of)),
                name,
                url: raw_file.url.clone(),
                size: raw_file.size,
                sha256: sha256.to_ascii_lowercase(),
            });
        }
        packages.push(Package {
            name,
            version: p.version.clone().unwrap_or_default(),
            marker: p
                .marker
                .as_deref()
                .map(|m| lock_marker(&file, line, m))
                .transpose()?,
            source,
            files,
            line,
            dependencies: Vec::new(),
            optional: Vec::new(),
            groups: Vec::new(),
        });
    }
    let gradient = raw.tool.and_then(|t| t.gradient);
    Ok(Lock {
        file,
        requires_python: raw.requires_python,
        packages,
        root: None,
        project,
        environments,
        default_groups: raw
            .default_groups
            .iter()
            .map(|g| gradient_core::normalize_name(g))
            .collect(),
        recorded: None,
        gradient_inputs: gradient.as_ref().and_then(|g| g.inputs.clone()),
        gradient_requirements: gradient.and_then(|g| g.requirements),
        known_extras: raw
            .extras
            .map(|e| e.iter().map(|x| gradient_core::normalize_name(x)).collect()),
        known_groups: raw
            .dependency_groups
            .map(|g| g.iter().map(|x| gradient_core::normalize_name(x)).collect()),
        text,
    })
}
