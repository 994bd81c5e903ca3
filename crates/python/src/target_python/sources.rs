//! The host's apt sources, read from its `/etc` (one-line `.list` and deb822 `.sources`
//! files): the `deb` sources of its suite that a root for another architecture is made from.

use std::path::{Path, PathBuf};

/// The host's apt sources and release, as read from its `/etc`.
pub(super) struct HostSources {
    /// `VERSION_CODENAME` of `os-release` (`bookworm`).
    pub(super) codename: Option<String>,
    /// Each sources file read, with its text.
    pub(super) files: Vec<(PathBuf, String)>,
}

/// One `deb` source, in deb822 terms.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Source {
    uris: Vec<String>,
    suites: Vec<String>,
    components: Vec<String>,
    /// A keyring path or an inline key (its lines as in the file).
    signed_by: Option<String>,
    /// The architectures it is limited to, when it is.
    architectures: Option<Vec<String>>,
}

impl HostSources {
    pub(super) fn read(etc: &Path) -> HostSources {
        let codename = std::fs::read_to_string(etc.join("os-release"))
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .ok()
            .and_then(|text| {
                text.lines().find_map(|line| {
                    let value = line.strip_prefix("VERSION_CODENAME=")?;
                    let value = value.trim().trim_matches('"').to_string();
                    (!value.is_empty()).then_some(value)
                })
            });
        let apt = etc.join("apt");
        let mut paths = vec![apt.join("sources.list")];
        if let Ok(listing) = std::fs::read_dir(apt.join("sources.list.d")) {
            let mut more: Vec<PathBuf> = listing
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources"))
                .collect();
            more.sort();
            paths.extend(more);
        }
        let files = paths
            .into_iter()
            .filter_map(|path| Some((path.clone(), std::fs::read_to_string(&path).ok()?)))
            .collect();
        HostSources { codename, files }
    }

    /// The suite a root is made from: the host's release codename, else the first suite
    /// its sources name.
    pub(super) fn suite(&self) -> String {
        if let Some(codename) = &self.codename {
            return codename.clone();
        }
        self.all_sources()
            .into_iter()
            .find_map(|s| s.suites.into_iter().next())
            .unwrap_or_else(|| "unknown".into())
    }

    fn all_sources(&self) -> Vec<Source> {
        self.files
            .iter()
            .flat_map(|(path, text)| {
                if path.extension().is_some_and(|e| e == "sources") {
                    parse_deb822(text)
                } else {
                    parse_one_line(text)
                }
            })
            .collect()
    }

    /// The `deb` sources of the host's suite (and its `-updates`, `-security`, …) that may
    /// carry `arch`; others (a vendor's repository for one architecture) are left out.
    pub(super) fn debian_sources(&self, arch: &str) -> Vec<Source> {
        let suite = self.suite();
        let ours = |s: &String| match &self.codename {
            Some(_) => *s == suite || s.starts_with(&format!("{suite}-")),
            None => true,
        };
        self.all_sources()
            .into_iter()
            .filter_map(|mut source| {
                source.suites.retain(ours);
                (!source.suites.is_empty()).then_some(source)
            })
            .filter(|s| s.architectures_allow(arch))
            .collect()
    }
}

impl Source {
    fn architectures_allow(&self, arch: &str) -> bool {
        self.architectures
            .as_ref()
            .is_none_or(|list| list.iter().any(|a| a == arch))
    }

    pub(super) fn deb822(&self, arch: &str) -> String {
        let mut text = format!(
            "Types: deb\nURIs: {}\nSuites: {}\nComponents: {}\nArchitectures: {arch}\n",
            self.uris.join(" "),
            self.suites.join(" "),
            self.components.join(" ")
        );
        if let Some(signed_by) = &self.signed_by {
            // An inline key starts on the line after the field's name.
            let gap = if signed_by.starts_with('\n') { "" } else { " " };
            text.push_str(&format!("Signed-By:{gap}{signed_by}\n"));
        }
        text
    }
}

/// `deb [options] uri suite component…` lines (`deb-src` and comments skipped).
fn parse_one_line(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let rest = rest.trim_start();
        let (options, rest) = match rest.strip_prefix('[') {
            Some(bracketed) => match bracketed.split_once(']') {
                Some((options, rest)) => (options, rest),
                None => continue,
            },
            None => ("", rest),
        };
        let mut signed_by = None;
        let mut architectures = None;
        for option in options.split_whitespace() {
            if let Some(value) = option.strip_prefix("signed-by=") {
                signed_by = Some(value.to_string());
            } else if let Some(value) = option.strip_prefix("arch=") {
                architectures = Some(value.split(',').map(str::to_string).collect());
            }
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        sources.push(Source {
            uris: vec![uri.to_string()],
            suites: vec![suite.to_string()],
            components: words.map(str::to_string).collect(),
            signed_by,
            architectures,
        });
    }
    sources
}

/// deb822 stanzas (`Types: deb`, not `Enabled: no`). A field's continuation lines (an
/// inline `Signed-By` key) are kept as written.
fn parse_deb822(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for stanza in text.split("\n\n").flat_map(|s| s.split("\n\r\n")) {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = fields.last_mut() {
                    value.push('\n');
                    value.push_str(line);
                }
                continue;
            }
            if let Some((key, value)) = line.split_once(':') {
                fields.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let field = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let words = |name: &str| -> Vec<String> {
            field(name)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let enabled = field("enabled").is_none_or(|v| !v.eq_ignore_ascii_case("no"));
        if !enabled || !words("types").iter().any(|t| t == "deb") {
            continue;
        }
        let (uris, suites) = (words("uris"), words("suites"));
        if uris.is_empty() || suites.is_empty() {
            continue;
        }
        sources.push(Source {
            uris,
            suites,
            components: words("components"),
            signed_by: field("signed-by")
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            architectures: field("architectures").map(|_| words("architectures")),
        });
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(codename: Option<&str>, files: &[(&str, &str)]) -> HostSources {
        HostSources {
            codename: codename.map(str::to_string),
            files: files
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_hosts_suite_is_kept_from_both_formats_and_other_suites_and_arches_left_out() {
        let deb822 = "Types: deb deb-src\n# a comment\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: https://vendor.example/apt\nSuites: nodistro\nComponents: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\n\nTypes: deb\nEnabled: no\nURIs: http://off.example\nSuites: bookworm\nComponents: main\n\nTypes: deb\nURIs: http://amd64-only.example\nSuites: bookworm\nComponents: main\nArchitectures: amd64\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n -----END PGP PUBLIC KEY BLOCK-----\n";
        let one_line = "deb [signed-by=/k.gpg arch=amd64,arm64] http://security.example bookworm-security main # why\ndeb-src http://src.example bookworm main\ndeb http://cloud.example cloud-sdk-bookworm main\n";
        let host = host(
            Some("bookworm"),
            &[
                ("/etc/apt/sources.list.d/debian.sources", deb822),
                ("/etc/apt/sources.list", one_line),
            ],
        );
        assert_eq!(host.suite(), "bookworm");
        let arm64 = host.debian_sources("arm64");
        assert_eq!(
            arm64,
            vec![
                Source {
                    uris: vec!["http://deb.debian.org/debian".into()],
                    suites: vec!["bookworm".into(), "bookworm-updates".into()],
                    components: vec!["main".into(), "contrib".into()],
                    signed_by: Some("/usr/share/keyrings/debian-archive-keyring.gpg".into()),
                    architectures: None,
                },
                Source {
                    uris: vec!["http://security.example".into()],
                    suites: vec!["bookworm-security".into()],
                    components: vec!["main".into()],
                    signed_by: Some("/k.gpg".into()),
                    architectures: Some(vec!["amd64".into(), "arm64".into()]),
                },
            ]
        );
        // For amd64 the amd64-only source comes too, its inline key kept line for line.
        let amd64 = host.debian_sources("amd64");
        assert_eq!(amd64.len(), 3);
        let written = amd64[1].deb822("amd64");
        assert!(
            written.contains("Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n"),
            "{written}"
        );
        assert!(arm64[0].deb822("arm64").contains("Architectures: arm64\n"));
    }
}
