//! The app's own wheel as the tiers read it: its core metadata, tags and scripts, read once
//! by the driver (gradient-wheel parses it) and shared through [`crate::Inputs`].

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The app's wheel, read and checked once per run: what every tier builds from it.
#[derive(Clone, Debug)]
pub struct AppWheel {
    /// The normalised wheel file. Read-only: it is shared.
    pub path: PathBuf,
    /// What it holds: core metadata, tags, console and legacy scripts.
    pub info: WheelInfo,
    /// The scripts an artifact of it runs and its default, or why it has none to run
    /// (an error only for the tiers that run a script).
    pub entry: Result<AppScripts, EntryError>,
}

impl AppWheel {
    /// The app's name as its wheel's core metadata spells it.
    pub fn name(&self) -> &str {
        &self.info.metadata.name
    }

    /// The app's version, from its wheel's core metadata.
    pub fn version(&self) -> &str {
        &self.info.metadata.version
    }

    pub fn metadata(&self) -> &CoreMetadata {
        &self.info.metadata
    }

    /// The scripts an artifact runs, and its default: an error when the app has none, or
    /// `[tool.gradient] entry` names none of them.
    pub fn scripts(&self) -> Result<&AppScripts, EntryError> {
        self.entry.as_ref().map_err(Clone::clone)
    }
}

/// Every script an artifact of the app can run, and the one it runs by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppScripts {
    /// Console scripts (name → `module:function`), with `[tool.gradient] entry` when it is
    /// a `module:function` of its own.
    pub scripts: BTreeMap<String, String>,
    /// `None` for a multi-call artifact with no default (several scripts, none chosen).
    /// May name a legacy script, which `scripts` does not hold.
    pub default: Option<String>,
}

/// A shared input a tier needs was not built before it ran: a bug in the plan, not in the
/// project.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the {what} input was not built")]
pub struct MissingInput {
    pub what: &'static str,
}

impl crate::Hint for MissingInput {}

/// Why the app's scripts leave an artifact that runs one of them nothing to run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("{project} has no console script, so an artifact that runs one has nothing to run")]
    NoEntry { project: String },
    #[error("[tool.gradient] entry `{entry}` is neither a console script of {project} ({scripts}) nor `module:function`")]
    UnknownEntry {
        entry: String,
        project: String,
        scripts: String,
    },
}

impl crate::Hint for EntryError {
    fn hint(&self) -> Option<String> {
        match self {
            EntryError::NoEntry { .. } => Some(
                "add [project.scripts], or set `entry = \"module:function\"` in [tool.gradient]"
                    .into(),
            ),
            EntryError::UnknownEntry { .. } => None,
        }
    }
}

/// The core metadata fields gradient uses (METADATA in a wheel, PKG-INFO in an sdist).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreMetadata {
    pub name: String,
    pub version: String,
    pub summary: Option<String>,
    pub requires_python: Option<String>,
    pub requires_dist: Vec<String>,
    /// `License-Expression` (an SPDX expression).
    pub license_expression: Option<String>,
    /// `License` alone, when it fits on one line (not a licence's whole text).
    pub license_field: Option<String>,
    pub classifiers: Vec<String>,
    /// `Author`, `Author-email`, `Maintainer`, `Maintainer-email` as written.
    pub author: Option<String>,
    pub author_email: Option<String>,
    pub maintainer: Option<String>,
    pub maintainer_email: Option<String>,
    /// `Home-page`, then `Project-URL: label, url` in order.
    pub urls: Vec<(String, String)>,
}

impl CoreMetadata {
    /// The licence's name, for a package's or an image's licence field: the SPDX
    /// `License-Expression`, else a `License` field of one short line (not a licence's whole
    /// text, not `UNKNOWN`).
    pub fn license_name(&self) -> Option<&str> {
        self.license_expression
            .as_deref()
            .filter(|l| !l.is_empty())
            .or_else(|| self.short_license_field())
    }

    /// The `License` field when it names a licence: one short line, not `UNKNOWN`.
    pub fn short_license_field(&self) -> Option<&str> {
        self.license_field
            .as_deref()
            .filter(|l| !l.is_empty() && l.len() <= 100)
            .filter(|l| !l.eq_ignore_ascii_case("UNKNOWN"))
    }

    /// Who maintains the project, as `Name <email>`: the first maintainer with an email,
    /// else the first author with one; else whoever is named, without an email.
    pub fn maintainer(&self) -> Option<String> {
        let with_email = |names: &Option<String>, emails: &Option<String>| {
            let email = emails.as_deref()?.split(',').next()?.trim().to_string();
            if email.contains('<') {
                return Some(email);
            }
            match names.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
                Some(name) => Some(format!("{name} <{email}>")),
                None => Some(email),
            }
        };
        with_email(&self.maintainer, &self.maintainer_email)
            .or_else(|| with_email(&self.author, &self.author_email))
            .or_else(|| self.maintainer.clone().or_else(|| self.author.clone()))
            .filter(|m| !m.trim().is_empty())
    }

    /// The project's home page: `Home-page`, else a URL labelled like one, else the first.
    pub fn homepage(&self) -> Option<&str> {
        ["home-page", "homepage", "home", "source", "repository"]
            .iter()
            .find_map(|label| {
                self.urls
                    .iter()
                    .find(|(l, _)| l.to_ascii_lowercase() == *label)
            })
            .or_else(|| self.urls.first())
            .map(|(_, url)| url.as_str())
    }
}

/// A wheel's compatibility tag.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tag {
    pub python: String,
    pub abi: String,
    pub platform: String,
}

impl Tag {
    /// Every tag a compressed tag set (`py2.py3-none-any`) stands for, sorted.
    pub fn expand(python: &str, abi: &str, platform: &str) -> Vec<Tag> {
        let mut tags = Vec::new();
        for p in python.split('.') {
            for a in abi.split('.') {
                for pl in platform.split('.') {
                    tags.push(Tag {
                        python: p.into(),
                        abi: a.into(),
                        platform: pl.into(),
                    });
                }
            }
        }
        tags.sort();
        tags
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.python, self.abi, self.platform)
    }
}

/// What a wheel holds, once checked.
#[derive(Clone, Debug)]
pub struct WheelInfo {
    pub metadata: CoreMetadata,
    pub tags: Vec<Tag>,
    pub root_is_purelib: bool,
    /// `[console_scripts]` of entry_points.txt: name → `module:function`.
    pub console_scripts: BTreeMap<String, String>,
    /// Legacy scripts (setuptools `scripts=`), the files of `NAME.data/scripts/`: name →
    /// content as the wheel holds it (a Python script's first line is then `#!python`).
    pub legacy_scripts: BTreeMap<String, Vec<u8>>,
    /// Whether it holds compiled code (`.so` files).
    pub has_native_code: bool,
}

impl WheelInfo {
    /// Pure Python for any platform (`py3-none-any`).
    pub fn is_universal(&self) -> bool {
        self.tags.iter().all(|t| t.platform == "any")
    }
}
