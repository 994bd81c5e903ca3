//! `[tool.gradient.deb]`, `[tool.gradient.rpm]` and `[tool.gradient.service]`, and the rules
//! each package format sets for names and versions: one place for both, so a setting is
//! checked with its line when the project is read and a derived value with the same words
//! when a package is built.

use serde::Deserialize;
use toml::Spanned;

use crate::container::Invalid;
use crate::text::{one_line, ONE_LINE_HINT};

/// The two OS package formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackageFormat {
    Deb,
    Rpm,
}

impl PackageFormat {
    /// The table of `[tool.gradient]` that configures this format.
    pub fn table(self) -> &'static str {
        match self {
            PackageFormat::Deb => "[tool.gradient.deb]",
            PackageFormat::Rpm => "[tool.gradient.rpm]",
        }
    }
}

/// How the app is laid out in the package.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The runtime bundle, the app and its dependencies under `/usr/lib/NAME/`: nothing is
    /// asked of the system but its C library.
    Bundled,
    /// The app and its dependencies against the distribution's own `python3`.
    System,
}

/// `[tool.gradient.deb]` or `[tool.gradient.rpm]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageConfig {
    /// The package name (default: the project's name, normalised to the format's rules).
    pub name: Option<Spanned<String>>,
    /// The upstream version in the format's syntax (default: mapped from the PEP 440 one).
    pub version: Option<Spanned<String>>,
    /// Debian revision or RPM release (default `1`).
    pub revision: Option<Spanned<String>>,
    /// `bundled` (default) or `system`.
    pub layout: Option<Spanned<String>>,
    /// `Name <email>` (default: the project's first maintainer or author with an email).
    pub maintainer: Option<Spanned<String>>,
    /// The distribution's python3 as `X.Y`, for the `system` layout (default: the build
    /// interpreter's): the package depends on it and its wheels must fit it.
    pub python: Option<Spanned<String>>,
}

impl PackageConfig {
    pub fn layout(&self) -> Layout {
        match self.layout.as_ref().map(|l| l.get_ref().as_str()) {
            Some("system") => Layout::System,
            _ => Layout::Bundled,
        }
    }

    /// The `python` setting as `(major, minor)`.
    pub fn python(&self) -> Option<(u32, u32)> {
        let text = self.python.as_ref()?.get_ref();
        let (major, minor) = text.split_once('.')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    }

    pub fn revision(&self) -> String {
        self.revision
            .as_ref()
            .map_or_else(|| "1".to_string(), |r| r.get_ref().clone())
    }

    pub(crate) fn check(&self, format: PackageFormat) -> Result<(), Invalid> {
        if let Some(name) = &self.name {
            if let Err(rule) = check_package_name(format, name.get_ref()) {
                return Err(Invalid {
                    span: Some(name.span()),
                    message: format!("`{}` is not a valid package name: {rule}", name.get_ref()),
                    hint: name_hint(format),
                });
            }
        }
        if let Some(version) = &self.version {
            if let Err(rule) = check_package_version(format, version.get_ref()) {
                return Err(Invalid {
                    span: Some(version.span()),
                    message: format!("`{}` is not a valid version: {rule}", version.get_ref()),
                    hint: version_hint(format),
                });
            }
        }
        if let Some(revision) = &self.revision {
            let text = revision.get_ref();
            let allowed = |c: char| c.is_ascii_alphanumeric() || ".+~_".contains(c);
            if text.is_empty() || !text.chars().all(allowed) {
                return Err(Invalid {
                    span: Some(revision.span()),
                    message: format!("`{text}` is not a valid revision"),
                    hint: "a revision is letters, digits, `.`, `+`, `~` and `_`, like \"1\" or \"2ubuntu1\"",
                });
            }
        }
        if let Some(layout) = &self.layout {
            if !["bundled", "system"].contains(&layout.get_ref().as_str()) {
                return Err(Invalid {
                    span: Some(layout.span()),
                    message: format!("`{}` is not a layout", layout.get_ref()),
                    hint: "use \"bundled\" (the runtime inside the package, needs only glibc) or \"system\" (uses the distribution's python3)",
                });
            }
        }
        if let Some(python) = &self.python {
            if self.python().is_none_or(|(major, _)| major != 3) {
                return Err(Invalid {
                    span: Some(python.span()),
                    message: format!("`{}` is not a Python version", python.get_ref()),
                    hint: "give the distribution's python3 as X.Y, e.g. python = \"3.11\"",
                });
            }
        }
        if let Some(maintainer) = &self.maintainer {
            one_line("the maintainer", maintainer.get_ref()).map_err(|message| Invalid {
                span: Some(maintainer.span()),
                message,
                hint: ONE_LINE_HINT,
            })?;
            if maintainer_email(maintainer.get_ref()).is_none() {
                return Err(Invalid {
                    span: Some(maintainer.span()),
                    message: format!(
                        "the maintainer `{}` has no email address",
                        maintainer.get_ref()
                    ),
                    hint: "write it as \"Full Name <name@example.org>\"",
                });
            }
        }
        Ok(())
    }
}

/// `[tool.gradient.service]`: run the app as a systemd service once the package is installed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The command, its first word a console script (default: the main console script).
    pub command: Option<Spanned<Vec<String>>>,
    /// The system user the service runs as, made on install (default: the package name).
    pub user: Option<Spanned<String>>,
    /// The port the service listens on, passed to it as `PORT`.
    pub port: Option<Spanned<i64>>,
}

impl ServiceConfig {
    pub(crate) fn check(&self) -> Result<(), Invalid> {
        if let Some(command) = &self.command {
            if command.get_ref().is_empty() {
                return Err(Invalid {
                    span: Some(command.span()),
                    message: "`command` is empty".into(),
                    hint: "give the command as a list, e.g. command = [\"myapp\", \"serve\"]",
                });
            }
            // Each word is written into the unit's ExecStart= line.
            for word in command.get_ref() {
                one_line("the command word", word).map_err(|message| Invalid {
                    span: Some(command.span()),
                    message,
                    hint: ONE_LINE_HINT,
                })?;
            }
        }
        if let Some(user) = &self.user {
            let text = user.get_ref();
            let mut chars = text.chars();
            let ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c))
                && text.len() <= 32
                && text != "root";
            if !ok {
                return Err(Invalid {
                    span: Some(user.span()),
                    message: format!("`{text}` is not a system user gradient can make"),
                    hint: "use a name of lower-case letters, digits, `_` and `-`, starting with a letter, and not root",
                });
            }
        }
        if let Some(port) = &self.port {
            if !(1..=65535).contains(port.get_ref()) {
                return Err(Invalid {
                    span: Some(port.span()),
                    message: format!("port {} is not a number from 1 to 65535", port.get_ref()),
                    hint: "port = 8080",
                });
            }
        }
        Ok(())
    }
}

/// The email of a `Name <email>` (or bare `email`) maintainer.
pub fn maintainer_email(maintainer: &str) -> Option<&str> {
    let email = match (maintainer.find('<'), maintainer.rfind('>')) {
        (Some(open), Some(close)) if open < close => &maintainer[open + 1..close],
        _ => maintainer.trim(),
    };
    let (local, domain) = email.split_once('@')?;
    (!local.is_empty() && domain.contains('.') && !email.contains(char::is_whitespace))
        .then_some(email)
}

/// Whether `name` is a valid package name; `Err` says which rule it breaks.
pub fn check_package_name(format: PackageFormat, name: &str) -> Result<(), String> {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    match format {
        PackageFormat::Deb => {
            if name.len() < 2 {
                return Err(
                    "Debian package names have at least two characters (Policy 5.6.1)".into(),
                );
            }
            if let Some(c) = name
                .chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(*c)))
            {
                return Err(format!("Debian package names are lower-case letters, digits, `+`, `-` and `.` only, and `{c}` is none of these (Policy 5.6.1)"));
            }
            if !first_ok {
                return Err(
                    "Debian package names start with a letter or digit (Policy 5.6.1)".into(),
                );
            }
        }
        PackageFormat::Rpm => {
            if let Some(c) = name
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "+-._".contains(*c)))
            {
                return Err(format!("RPM package names are letters, digits, `+`, `-`, `.` and `_` only, and `{c}` is none of these"));
            }
            if !first_ok {
                return Err("RPM package names start with a letter or digit".into());
            }
        }
    }
    Ok(())
}

/// Whether `version` is a valid upstream version (without epoch or revision).
pub fn check_package_version(format: PackageFormat, version: &str) -> Result<(), String> {
    match format {
        PackageFormat::Deb => {
            if !version.starts_with(|c: char| c.is_ascii_digit()) {
                return Err("Debian upstream versions start with a digit (Policy 5.6.12)".into());
            }
            if let Some(c) = version
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || ".+~".contains(*c)))
            {
                return Err(format!("Debian upstream versions are letters, digits, `.`, `+` and `~`, and `{c}` is none of these (Policy 5.6.12)"));
            }
        }
        PackageFormat::Rpm => {
            if version.is_empty() {
                return Err("RPM versions cannot be empty".into());
            }
            if let Some(c) = version
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "._+~^".contains(*c)))
            {
                return Err(format!("RPM versions are letters, digits, `.`, `_`, `+`, `~` and `^`, and `{c}` is none of these"));
            }
        }
    }
    Ok(())
}

fn name_hint(format: PackageFormat) -> &'static str {
    match format {
        PackageFormat::Deb => "Debian names are lower-case letters, digits, `+`, `-` and `.`, at least two characters, starting with a letter or digit",
        PackageFormat::Rpm => "RPM names are letters, digits, `+`, `-`, `.` and `_`, starting with a letter or digit",
    }
}

fn version_hint(format: PackageFormat) -> &'static str {
    match format {
        PackageFormat::Deb => "give the upstream version only (no epoch, no `-revision`): digits first, then letters, digits, `.`, `+` and `~`",
        PackageFormat::Rpm => "give the version only (no epoch, no `-release`): letters, digits, `.`, `_`, `+`, `~` and `^`",
    }
}

/// A package's version, mapped from PEP 440: `1!2.0rc1.post3.dev4+local`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageVersion {
    pub epoch: Option<u32>,
    /// The upstream version in the format's syntax: pre-releases and development releases
    /// sort before the release through `~`.
    pub upstream: String,
}

/// Map a PEP 440 version to a package version; `Err` says what could not be mapped.
///
/// `1.2.3rc1` → `1.2.3~rc1`, `1.2.3.dev4` → `1.2.3~~dev4` (before any pre-release),
/// `1.2.3.post1` → `1.2.3.post1`, `1!2.0` → epoch 1, `1.0+local.7` → `1.0+local.7`.
/// Both dpkg and rpm sort `~` before anything, so the package versions order like PEP 440.
pub fn map_version(pep440: &str) -> Result<PackageVersion, String> {
    let text = pep440.trim().to_ascii_lowercase();
    let (public, local) = match text.split_once('+') {
        Some((public, local)) => (public, Some(local)),
        None => (text.as_str(), None),
    };
    let (epoch, rest) = match public.split_once('!') {
        Some((epoch, rest)) => (
            Some(
                epoch
                    .parse::<u32>()
                    .map_err(|_| format!("the epoch `{epoch}` of `{pep440}` is not a number"))?,
            ),
            rest,
        ),
        None => (None, public),
    };
    let release_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let release = rest[..release_end].trim_end_matches('.');
    if release.is_empty() || release.split('.').any(str::is_empty) {
        return Err(format!(
            "`{pep440}` has no release number (like 1.2.3) to start with"
        ));
    }
    let mut suffix = &rest[release.len()..];
    let mut upstream = release.to_string();
    let number = |s: &str| -> (String, usize) {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        (s[..end].to_string(), end)
    };
    for pre in ["rc", "a", "b"] {
        if let Some(after) = suffix.strip_prefix(pre) {
            let (n, used) = number(after);
            upstream.push_str(&format!("~{pre}{}", if n.is_empty() { "0" } else { &n }));
            suffix = &after[used..];
            break;
        }
    }
    if let Some(after) = suffix.strip_prefix(".post") {
        let (n, used) = number(after);
        upstream.push_str(&format!(".post{}", if n.is_empty() { "0" } else { &n }));
        suffix = &after[used..];
    }
    if let Some(after) = suffix.strip_prefix(".dev") {
        let (n, used) = number(after);
        // Two tildes: a development release comes before the pre-releases of its version.
        let tildes = if upstream.contains('~') { "~" } else { "~~" };
        upstream.push_str(&format!(
            "{tildes}dev{}",
            if n.is_empty() { "0" } else { &n }
        ));
        suffix = &after[used..];
    }
    if !suffix.is_empty() {
        return Err(format!(
            "`{pep440}` is not a normalised PEP 440 version (`{suffix}` is left over)"
        ));
    }
    if let Some(local) = local {
        if local.is_empty() || !local.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
            return Err(format!(
                "the local part `+{local}` of `{pep440}` is not valid"
            ));
        }
        upstream.push('+');
        upstream.push_str(local);
    }
    Ok(PackageVersion { epoch, upstream })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(v: &str) -> String {
        map_version(v).unwrap().upstream
    }

    #[test]
    fn pep440_versions_map_to_package_versions_that_sort_alike() {
        assert_eq!(up("1.2.3"), "1.2.3");
        assert_eq!(up("1.2.3rc1"), "1.2.3~rc1");
        assert_eq!(up("1.2.3a2"), "1.2.3~a2");
        assert_eq!(up("1.2.3.post1"), "1.2.3.post1");
        assert_eq!(up("1.2.3.dev4"), "1.2.3~~dev4");
        assert_eq!(up("1.2.3rc1.dev4"), "1.2.3~rc1~dev4");
        assert_eq!(up("1.2.3.post1.dev2"), "1.2.3.post1~~dev2");
        assert_eq!(up("1.0+ubuntu.7"), "1.0+ubuntu.7");
        let v = map_version("2!1.0").unwrap();
        assert_eq!((v.epoch, v.upstream.as_str()), (Some(2), "1.0"));
        assert!(map_version("one").is_err());
        assert!(map_version("1.0-beta").is_err());
        assert!(map_version("x!1.0").is_err());
    }

    #[test]
    fn names_follow_each_formats_rules() {
        assert!(check_package_name(PackageFormat::Deb, "sample-app").is_ok());
        assert!(check_package_name(PackageFormat::Deb, "x")
            .unwrap_err()
            .contains("two"));
        assert!(check_package_name(PackageFormat::Deb, "Sample")
            .unwrap_err()
            .contains("`S`"));
        assert!(check_package_name(PackageFormat::Rpm, "Sample_App").is_ok());
        assert!(check_package_name(PackageFormat::Rpm, "a b").is_err());
        assert!(check_package_version(PackageFormat::Deb, "v1").is_err());
        assert!(check_package_version(PackageFormat::Rpm, "1-2").is_err());
    }

    #[test]
    fn a_maintainer_needs_an_email() {
        assert_eq!(maintainer_email("A B <a@b.org>"), Some("a@b.org"));
        assert_eq!(maintainer_email("a@b.org"), Some("a@b.org"));
        assert_eq!(maintainer_email("A B"), None);
        assert_eq!(maintainer_email("A <nobody>"), None);
    }
}
