//! `[tool.gradient.runtime]`: which CPython the frozen, container and OS tiers bundle, and
//! what of its standard library.
//!
//! The CPython is the build interpreter unless the table names a relocatable archive: a
//! file in the project (`archive`), or a download checked by its digest (`url` + `sha256`).
//! The top-level `archive`/`url` is the host platform's; `[tool.gradient.runtime.platforms.
//! "linux/arm64"]` names one for a given platform. Everything here is checked when the
//! project is read, so a bad URL or digest is reported with its line before any build.

use crate::container::Invalid;
use crate::Platform;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;

/// The CPython bundled by the frozen, container and OS tiers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// A relocatable CPython archive (`.tar.gz`) to bundle instead of the build
    /// interpreter, relative to the project folder (the host platform's).
    pub archive: Option<String>,
    /// Where to download such an archive instead (the host platform's); needs `sha256`.
    pub url: Option<String>,
    /// The download's SHA-256, 64 lowercase hex digits.
    pub sha256: Option<String>,
    /// An archive or download per platform, keyed as users name platforms (`linux/arm64`).
    #[serde(default)]
    pub platforms: BTreeMap<String, PlatformRuntime>,
    /// Standard-library modules and packages to leave out; replaces the default list.
    pub exclude: Option<Vec<String>>,
    /// Whether the bundled standard library carries its sources beside its bytecode
    /// (default: no, bytecode only).
    #[serde(rename = "stdlib-sources")]
    pub stdlib_sources: Option<bool>,
}

/// `[tool.gradient.runtime.platforms."PLATFORM"]`: one platform's archive or download.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformRuntime {
    pub archive: Option<String>,
    pub url: Option<String>,
    pub sha256: Option<String>,
}

/// Where a platform's relocatable CPython comes from, once the settings are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeSource {
    /// A `.tar.gz` in the project, relative to its folder.
    Archive(String),
    /// A `.tar.gz` to download once into the cache, accepted only with this SHA-256.
    Download { url: String, sha256: String },
}

impl RuntimeConfig {
    /// The archive or download named for `platform`: its own entry under `platforms`,
    /// else, for the host's platform, the top-level `archive`/`url`. `None`: bundle the
    /// build interpreter. Only meaningful on settings [`Project::parse`] accepted.
    ///
    /// [`Project::parse`]: crate::Project::parse
    pub fn source_for(&self, platform: Platform) -> Option<RuntimeSource> {
        match self.own_entry(platform) {
            Some(entry) => source(&entry.archive, &entry.url, &entry.sha256),
            None if platform.is_host() => source(&self.archive, &self.url, &self.sha256),
            None => None,
        }
    }

    /// The archive or download for the machine running gradient: its platform's own entry,
    /// else the top-level `archive`/`url` (also on a machine of no platform gradient knows).
    pub fn host_source(&self) -> Option<RuntimeSource> {
        match Platform::host().and_then(|p| self.own_entry(p)) {
            Some(entry) => source(&entry.archive, &entry.url, &entry.sha256),
            None => source(&self.archive, &self.url, &self.sha256),
        }
    }

    fn own_entry(&self, platform: Platform) -> Option<&PlatformRuntime> {
        self.platforms
            .iter()
            .find(|(key, _)| Platform::parse(key).ok() == Some(platform))
            .map(|(_, entry)| entry)
    }

    /// Whether any archive or download is named, for any platform.
    pub fn names_an_archive(&self) -> bool {
        self.archive.is_some() || self.url.is_some() || !self.platforms.is_empty()
    }

    /// Check every setting; `locate` finds a text in pyproject.toml for the error's line.
    pub(crate) fn check(
        &self,
        locate: &dyn Fn(&str) -> Option<Range<usize>>,
    ) -> Result<(), Invalid> {
        let table = "[tool.gradient.runtime]";
        check_source(
            table,
            (&self.archive, &self.url, &self.sha256),
            locate(table).or_else(|| locate("runtime")),
            locate,
        )?;
        let mut seen: BTreeMap<Platform, &str> = BTreeMap::new();
        for (key, entry) in &self.platforms {
            let header = format!("[tool.gradient.runtime.platforms.\"{key}\"]");
            let at = locate(&format!("\"{key}\"")).or_else(|| locate(key));
            let Ok(platform) = Platform::parse(key) else {
                return Err(Invalid {
                    span: at,
                    message: format!(
                        "`{key}` in [tool.gradient.runtime.platforms] is not a platform gradient knows ({})",
                        Platform::names()
                    ),
                    hint: "name the platform as OCI does, e.g. [tool.gradient.runtime.platforms.\"linux/arm64\"]",
                });
            };
            if let Some(first) = seen.insert(platform, key) {
                return Err(Invalid {
                    span: at,
                    message: format!(
                        "[tool.gradient.runtime.platforms] names {platform} twice (`{first}` and `{key}`)"
                    ),
                    hint: "keep one entry per platform",
                });
            }
            if entry.archive.is_none() && entry.url.is_none() {
                return Err(Invalid {
                    span: at,
                    message: format!("{header} names neither `archive` nor `url`"),
                    hint: "give `archive = \"cpython-….tar.gz\"`, or `url` and `sha256`",
                });
            }
            check_source(
                &header,
                (&entry.archive, &entry.url, &entry.sha256),
                at,
                locate,
            )?;
        }
        Ok(())
    }
}

type Fields<'a> = (&'a Option<String>, &'a Option<String>, &'a Option<String>);

fn source(
    archive: &Option<String>,
    url: &Option<String>,
    sha256: &Option<String>,
) -> Option<RuntimeSource> {
    match (archive, url, sha256) {
        (Some(archive), _, _) => Some(RuntimeSource::Archive(archive.clone())),
        (None, Some(url), Some(sha256)) => Some(RuntimeSource::Download {
            url: url.clone(),
            sha256: sha256.clone(),
        }),
        _ => None,
    }
}

/// One table's `archive`, `url` and `sha256`: at most one of the first two, a digest with a
/// URL and only then, and a URL gradient will fetch.
fn check_source(
    table: &str,
    (archive, url, sha256): Fields<'_>,
    table_at: Option<Range<usize>>,
    locate: &dyn Fn(&str) -> Option<Range<usize>>,
) -> Result<(), Invalid> {
    let at = |value: &str| locate(value).or_else(|| table_at.clone());
    if archive.is_some() && url.is_some() {
        return Err(Invalid {
            span: url.as_deref().and_then(locate).or(table_at),
            message: format!("{table} names both `archive` and `url`"),
            hint:
                "keep one: `archive` for a file in the project, `url` with `sha256` for a download",
        });
    }
    match (url, sha256) {
        (Some(url), None) => Err(Invalid {
            span: at(url),
            message: format!("{table}: `url` needs `sha256`, the digest the download must have"),
            hint: "add sha256 = \"…\" (64 hex digits; python-build-standalone publishes one beside each archive, or run sha256sum on a copy you trust)",
        }),
        (None, Some(sha256)) => Err(Invalid {
            span: at(sha256),
            message: format!("{table}: `sha256` is for a download, and there is no `url`"),
            hint: "add the `url` it is the digest of, or remove `sha256` (an `archive` in the project is not checked by digest)",
        }),
        (Some(url), Some(sha256)) => {
            if !is_sha256(sha256) {
                return Err(Invalid {
                    span: at(sha256),
                    message: format!("{table}: `sha256 = {sha256:?}` is not 64 lowercase hex digits"),
                    hint: "write the SHA-256 as sha256sum prints it (64 characters 0-9 a-f)",
                });
            }
            check_url(url).map_err(|(message, hint)| Invalid {
                // The message never quotes the URL: it may hold credentials.
                span: at(url),
                message: format!("{table}: {message}"),
                hint,
            })
        }
        (None, None) => Ok(()),
    }
}

/// Whether `text` is a SHA-256 as sha256sum prints it.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Hosts plain `http` is accepted for: nothing leaves this machine.
pub const LOOPBACK_HOSTS: &[&str] = &["127.0.0.1", "[::1]", "localhost"];

/// Whether gradient fetches `url`: https anywhere, http on this machine only, no
/// credentials. On refusal, the message (which never repeats credentials) and a hint.
pub fn check_url(url: &str) -> Result<(), (String, &'static str)> {
    let parsed = url::Url::parse(url).map_err(|e| {
        (
            format!("`url` is not a URL ({e})"),
            "write the archive's full address, e.g. https://example.org/cpython-3.11.9-aarch64-unknown-linux-gnu-install_only.tar.gz",
        )
    })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err((
            "`url` holds credentials (`user:password@`); gradient does not send them, and pyproject.toml is no place for them".into(),
            "use a URL the archive can be downloaded from without logging in, or download it and name it with `archive`",
        ));
    }
    let host = parsed.host_str().unwrap_or_default();
    match parsed.scheme() {
        "https" if !host.is_empty() => Ok(()),
        "http" if LOOPBACK_HOSTS.contains(&host) => Ok(()),
        "http" => Err((
            format!("`url` uses plain http to `{host}`: a download from another machine must use https (plain http is accepted only for this machine: 127.0.0.1, ::1, localhost)"),
            "use the https address of the archive",
        )),
        scheme => Err((
            format!("`url` has the scheme `{scheme}`: gradient downloads over https (or http from 127.0.0.1, ::1, localhost)"),
            "use an https URL, or name a file in the project with `archive`",
        )),
    }
}

/// `runtime` is either the archive's path or a table. Read through a `toml::Value` rather
/// than an untagged enum, so that a misspelt key is named ("unknown field `sha265`")
/// instead of "did not match any variant".
pub(crate) fn runtime_setting<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<RuntimeConfig, D::Error> {
    use serde::de::Error;
    match toml::Value::deserialize(deserializer)? {
        toml::Value::String(archive) => Ok(RuntimeConfig {
            archive: Some(archive),
            ..RuntimeConfig::default()
        }),
        table @ toml::Value::Table(_) => table
            .try_into()
            .map_err(|e: toml::de::Error| D::Error::custom(e.message().trim())),
        other => Err(D::Error::custom(format!(
            "invalid type: {}, expected the archive's path or a table",
            other.type_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Project, ProjectError};
    use std::path::Path;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parse(runtime: &str) -> Result<Project, ProjectError> {
        let text = format!("[project]\nname = \"x\"\nversion = \"1\"\n{runtime}");
        Project::parse(Path::new("/p"), Path::new("/p/pyproject.toml"), &text)
    }

    /// The error as the CLI shows it, which must start with `line`.
    fn refused(runtime: &str, line: usize, says: &str) -> String {
        let err = parse(runtime).unwrap_err();
        let shown = crate::render(&err.to_string(), crate::Hint::hint(&err).as_deref());
        assert!(
            shown.starts_with(&format!("/p/pyproject.toml:{line}:")),
            "expected line {line}: {shown}"
        );
        assert!(shown.contains(says), "expected {says:?} in {shown}");
        assert!(shown.contains("hint: "), "{shown}");
        shown
    }

    #[test]
    fn an_archive_a_download_and_per_platform_entries_are_read() {
        let config = parse("[tool.gradient]\nruntime = \"cpython.tar.gz\"\n")
            .unwrap()
            .config
            .runtime;
        let host = Platform::host().unwrap();
        assert_eq!(
            config.source_for(host),
            Some(RuntimeSource::Archive("cpython.tar.gz".into()))
        );
        let config = parse(&format!(
            "[tool.gradient.runtime]\nurl = \"https://example.org/a.tar.gz\"\nsha256 = \"{SHA}\"\n\
             [tool.gradient.runtime.platforms.\"linux/arm64\"]\nurl = \"http://127.0.0.1:8000/b.tar.gz\"\nsha256 = \"{SHA}\"\n\
             [tool.gradient.runtime.platforms.amd64]\narchive = \"amd.tar.gz\"\n"
        ))
        .unwrap()
        .config
        .runtime;
        assert_eq!(
            config.source_for(Platform::LinuxArm64),
            Some(RuntimeSource::Download {
                url: "http://127.0.0.1:8000/b.tar.gz".into(),
                sha256: SHA.into()
            })
        );
        // A platform's own entry wins over the top-level one, which is the host's.
        assert_eq!(
            config.source_for(Platform::LinuxAmd64),
            Some(RuntimeSource::Archive("amd.tar.gz".into()))
        );
        let only_top = parse(&format!(
            "[tool.gradient.runtime]\nurl = \"https://example.org/a.tar.gz\"\nsha256 = \"{SHA}\"\n"
        ))
        .unwrap()
        .config
        .runtime;
        for platform in Platform::ALL {
            assert_eq!(only_top.source_for(platform).is_some(), platform.is_host());
        }
    }

    #[test]
    fn bad_runtime_settings_are_refused_at_their_line() {
        refused(
            "[tool.gradient.runtime]\nurl = \"https://example.org/a.tar.gz\"\n",
            5,
            "`url` needs `sha256`",
        );
        refused(
            &format!("[tool.gradient.runtime]\nsha256 = \"{SHA}\"\n"),
            5,
            "there is no `url`",
        );
        refused(
            "[tool.gradient.runtime]\nurl = \"https://example.org/a.tar.gz\"\nsha256 = \"ABC\"\n",
            6,
            "`sha256 = \"ABC\"` is not 64 lowercase hex digits",
        );
        refused(
            &format!("[tool.gradient.runtime]\nurl = \"https://example.org/a.tar.gz\"\nsha256 = \"{}\"\n", SHA.to_uppercase()),
            6,
            "not 64 lowercase hex digits",
        );
        refused(
            &format!("[tool.gradient.runtime]\narchive = \"a.tar.gz\"\nurl = \"https://example.org/a.tar.gz\"\nsha256 = \"{SHA}\"\n"),
            6,
            "names both `archive` and `url`",
        );
        refused(
            "[tool.gradient.runtime.platforms.\"linux/riscv64\"]\narchive = \"r.tar.gz\"\n",
            4,
            "`linux/riscv64` in [tool.gradient.runtime.platforms] is not a platform gradient knows (linux/amd64, linux/arm64)",
        );
        refused(
            "[tool.gradient.runtime.platforms.arm64]\narchive = \"a.tar.gz\"\n[tool.gradient.runtime.platforms.\"linux/arm64\"]\narchive = \"b.tar.gz\"\n",
            6,
            "names linux/arm64 twice",
        );
        refused(
            "[tool.gradient.runtime.platforms.\"linux/arm64\"]\nurl = \"https://example.org/a.tar.gz\"\n",
            5,
            "[tool.gradient.runtime.platforms.\"linux/arm64\"]: `url` needs `sha256`",
        );
        refused(
            "\n[tool.gradient.runtime.platforms.\"linux/arm64\"]\n",
            5,
            "names neither `archive` nor `url`",
        );
        let url =
            |url: &str| format!("[tool.gradient.runtime]\nsha256 = \"{SHA}\"\nurl = \"{url}\"\n");
        let shown = refused(
            &url("https://alice:hunter2@example.org/a.tar.gz"),
            6,
            "`url` holds credentials",
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("alice"),
            "{shown}"
        );
        refused(
            &url("http://example.org/a.tar.gz"),
            6,
            "plain http is accepted only for this machine: 127.0.0.1, ::1, localhost",
        );
        refused(&url("ftp://example.org/a.tar.gz"), 6, "the scheme `ftp`");
        refused(&url("file:///etc/passwd"), 6, "the scheme `file`");
        refused(&url("example.org/a.tar.gz"), 6, "`url` is not a URL");
        refused(
            "[tool.gradient.runtime]\nurl = \"https://example.org/a.tar.gz\"\nsha265 = \"x\"\n",
            4,
            "unknown field `sha265`, expected one of `archive`, `url`, `sha256`",
        );
        for loopback in [
            "http://127.0.0.1:1/a",
            "http://[::1]:1/a",
            "http://localhost/a",
        ] {
            assert!(parse(&url(loopback)).is_ok(), "{loopback}");
        }
    }
}
