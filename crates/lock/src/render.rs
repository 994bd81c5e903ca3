//! What a build writes from a lock: the hashed requirements the installer reads, the files
//! the installed tree turned out to carry, and the `pylock.toml` that records them.

use crate::{FileKind, LockedFile, Package, Source};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Hashed requirements for `packages`: `name==version` (or `name @ URL`) with every hash
/// the lock gives, so the installer refuses any other file. `header` lines come first.
pub fn requirements_text(header: &[String], packages: &[&Package]) -> String {
    let mut text = String::new();
    for line in header {
        text.push_str(&format!("# {line}\n"));
    }
    for package in packages {
        match &package.source {
            Source::Url(url) => text.push_str(&format!("{} @ {url}", package.name)),
            _ => text.push_str(&format!("{}=={}", package.name, package.version)),
        }
        let hashes: BTreeSet<&str> = package.files.iter().map(|f| f.sha256.as_str()).collect();
        for hash in hashes {
            text.push_str(&format!(" \\\n    --hash=sha256:{hash}"));
        }
        text.push('\n');
    }
    text
}

/// One dependency as installed: the lock's file it came from, when that can be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Carried {
    pub name: String,
    pub version: String,
    pub index: Option<String>,
    /// The files it may have come from: one when the installed tags single it out.
    pub files: Vec<LockedFile>,
}

/// The tags a wheel's file name stands for (`py2.py3-none-any` is two).
fn wheel_tags(file_name: &str) -> BTreeSet<String> {
    let stem = file_name.strip_suffix(".whl").unwrap_or(file_name);
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() < 5 {
        return BTreeSet::new();
    }
    let n = parts.len();
    gradient_core::Tag::expand(parts[n - 3], parts[n - 2], parts[n - 1])
        .iter()
        .map(|tag| tag.to_string())
        .collect()
}

/// Whether a wheel (by its file name) can install on `env`'s platform and interpreter: a
/// CPython or generic Python tag of its version (or an older stable-ABI one), and a Linux
/// platform of its machine (glibc's `manylinux` or plain `linux`; not `musllinux`) or `any`.
/// It does not check the glibc version a `manylinux` tag asks for.
pub(crate) fn wheel_fits(file_name: &str, env: &crate::Environment) -> bool {
    let mut version = env.python_version.split('.');
    let (major, minor) = (
        version.next().unwrap_or("3"),
        version.next().unwrap_or("0").parse::<u32>().unwrap_or(0),
    );
    let cp = format!("cp{major}{minor}");
    let machine = &env.platform_machine;
    wheel_tags(file_name).iter().any(|tag| {
        let mut parts = tag.splitn(3, '-');
        let (python, abi, platform) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let older_cpython = |t: &str| {
            t.strip_prefix(&format!("cp{major}"))
                .and_then(|m| m.parse::<u32>().ok())
                .is_some_and(|m| m <= minor)
        };
        let python_fits = python == cp
            || python == format!("py{major}")
            || python == format!("py{major}{minor}")
            || (abi == "abi3" && older_cpython(python));
        let abi_fits = abi == "none" || abi == "abi3" || abi == cp;
        let platform_fits = platform == "any"
            || ((platform.starts_with("manylinux") || platform.starts_with("linux_"))
                && platform.ends_with(&format!("_{machine}")));
        python_fits && abi_fits && platform_fits
    })
}

/// The `Tag:` lines of each distribution installed in `site`, by normalised name.
fn installed_tags(site: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut tags = BTreeMap::new();
    for entry in std::fs::read_dir(site).into_iter().flatten().flatten() {
        let dir_name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = dir_name.strip_suffix(".dist-info") else {
            continue;
        };
        let name = gradient_core::normalize_name(stem.split('-').next().unwrap_or(stem));
        let wheel = std::fs::read_to_string(entry.path().join("WHEEL")).unwrap_or_default();
        let set = wheel
            .lines()
            .filter_map(|l| l.strip_prefix("Tag:"))
            .map(|t| t.trim().to_string())
            .collect();
        tags.insert(name, set);
    }
    tags
}

/// Which of each package's locked files the tree in `site` holds: the wheel whose tags are
/// the installed ones; else the sdist (built here); else every file the lock gives.
pub fn carried(site: &Path, packages: &[&Package]) -> Vec<Carried> {
    let installed = installed_tags(site);
    packages
        .iter()
        .map(|package| {
            let tags = installed.get(&package.name);
            let wheel = package.files.iter().find(|f| {
                f.kind == FileKind::Wheel
                    && f.name
                        .as_deref()
                        .is_some_and(|n| Some(&wheel_tags(n)) == tags)
            });
            let sdist = package.files.iter().find(|f| f.kind == FileKind::Sdist);
            let files = match (wheel, sdist) {
                (Some(file), _) | (None, Some(file)) => vec![file.clone()],
                (None, None) => package.files.clone(),
            };
            Carried {
                name: package.name.clone(),
                version: package.version.clone(),
                index: match &package.source {
                    Source::Index(index) => index.clone(),
                    _ => None,
                },
                files,
            }
        })
        .collect()
}

/// The top of a published pylock.toml.
pub struct PylockHeader {
    /// A comment saying what the file is.
    pub comment: String,
    /// A marker that holds exactly on the target (`sys_platform == 'linux' and ...`).
    pub environment: String,
    pub requires_python: String,
    pub extras: Vec<String>,
    pub groups: Vec<String>,
    /// When gradient resolved the lock: the digest of what it was resolved from, and of the
    /// hashed requirements the installer read (so that a later run reuses both as they are).
    pub inputs: Option<(String, String)>,
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn string_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|i| quote(i))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn file_table(file: &LockedFile) -> String {
    let mut fields = Vec::new();
    if let Some(name) = &file.name {
        fields.push(format!("name = {}", quote(name)));
    }
    if let Some(url) = &file.url {
        fields.push(format!("url = {}", quote(url)));
    }
    if let Some(size) = file.size {
        fields.push(format!("size = {size}"));
    }
    fields.push(format!("hashes = {{ sha256 = {} }}", quote(&file.sha256)));
    format!("{{ {} }}", fields.join(", "))
}

/// A PEP 751 lock of exactly what was carried.
pub fn pylock_text(header: &PylockHeader, carried: &[Carried]) -> String {
    let mut text = String::new();
    for line in header.comment.lines() {
        text.push_str(&format!("# {line}\n"));
    }
    text.push_str("lock-version = \"1.0\"\n");
    text.push_str(&format!(
        "environments = [{}]\n",
        quote(&header.environment)
    ));
    text.push_str(&format!(
        "requires-python = {}\n",
        quote(&header.requires_python)
    ));
    text.push_str(&format!("extras = {}\n", string_list(&header.extras)));
    text.push_str(&format!(
        "dependency-groups = {}\n",
        string_list(&header.groups)
    ));
    text.push_str("default-groups = []\n");
    text.push_str("created-by = \"gradient\"\n");
    for package in carried {
        text.push_str("\n[[packages]]\n");
        text.push_str(&format!("name = {}\n", quote(&package.name)));
        if !package.version.is_empty() {
            text.push_str(&format!("version = {}\n", quote(&package.version)));
        }
        if let Some(index) = &package.index {
            text.push_str(&format!("index = {}\n", quote(index)));
        }
        let wheels: Vec<&LockedFile> = package
            .files
            .iter()
            .filter(|f| f.kind == FileKind::Wheel)
            .collect();
        let others: Vec<&LockedFile> = package
            .files
            .iter()
            .filter(|f| f.kind != FileKind::Wheel)
            .collect();
        if !wheels.is_empty() {
            text.push_str("wheels = [\n");
            for wheel in wheels {
                text.push_str(&format!("    {},\n", file_table(wheel)));
            }
            text.push_str("]\n");
        }
        if let Some(first) = others.first() {
            let key = if first.kind == FileKind::Sdist {
                "sdist"
            } else {
                "archive"
            };
            text.push_str(&format!("{key} = {}\n", file_table(first)));
        }
    }
    if let Some((inputs, requirements)) = &header.inputs {
        text.push_str(&format!(
            "\n[tool.gradient]\ninputs = {}\nrequirements = {}\n",
            quote(inputs),
            quote(requirements)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_names_expand_to_their_tags() {
        let tags =
            wheel_tags("msgpack-1.1.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl");
        assert_eq!(tags.len(), 2);
        assert!(tags.contains("cp311-cp311-manylinux_2_17_x86_64"));
        assert_eq!(wheel_tags("six-1.16.0-py2.py3-none-any.whl").len(), 2);
    }

    #[test]
    fn wheels_fit_their_own_platform_and_interpreter() {
        let x86 = crate::Environment::linux("cpython", (3, 11, 7), "linux_x86_64");
        let arm = crate::Environment::linux("cpython", (3, 11, 7), "linux_aarch64");
        let msgpack = "msgpack-1.1.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl";
        assert!(wheel_fits(msgpack, &x86));
        assert!(!wheel_fits(msgpack, &arm));
        assert!(!wheel_fits(
            "msgpack-1.1.2-cp312-cp312-manylinux_2_17_x86_64.whl",
            &x86
        ));
        assert!(!wheel_fits(
            "msgpack-1.1.2-cp311-cp311-musllinux_1_2_x86_64.whl",
            &x86
        ));
        assert!(!wheel_fits("msgpack-1.1.2-cp311-cp311-win_amd64.whl", &x86));
        assert!(wheel_fits("six-1.16.0-py2.py3-none-any.whl", &arm));
        assert!(wheel_fits(
            "cryptography-44.0.0-cp39-abi3-manylinux_2_28_aarch64.whl",
            &arm
        ));
        assert!(!wheel_fits(
            "cryptography-44.0.0-cp312-abi3-manylinux_2_28_aarch64.whl",
            &arm
        ));
    }

    #[test]
    fn quoting_keeps_toml_valid() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000A\"");
    }
}
