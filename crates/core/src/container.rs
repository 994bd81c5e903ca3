//! `[tool.gradient.container]`: what the container image is made from and how it runs,
//! checked when the project is read so a mistake is reported with its line.

use crate::text::{one_line, ONE_LINE_HINT};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use toml::Spanned;

/// The user an image runs as by default: made by gradient on a `scratch` base.
pub const DEFAULT_USER: &str = "app";

/// `[tool.gradient.container]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerConfig {
    /// `scratch` (the default), `docker:NAME:TAG` (an image of the local engine) or
    /// `oci:PATH` (an OCI layout folder or tarball, relative to the project folder).
    pub base: Option<Spanned<String>>,
    /// The command the image runs (default: the main console script).
    pub entrypoint: Option<Spanned<Vec<String>>>,
    /// Default arguments to the entrypoint.
    pub cmd: Option<Spanned<Vec<String>>>,
    /// `app` (the default), `root`, a name the base image defines, or `UID[:GID]`.
    pub user: Option<Spanned<String>>,
    /// Ports the app listens on: `8080`, `"8080/tcp"`, `"53/udp"`.
    #[serde(default)]
    pub ports: Vec<Spanned<PortSetting>>,
    /// Extra environment variables (each value with its place, which errors about the name
    /// point at too).
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<String>>,
    /// The working folder (default: the user's home).
    pub workdir: Option<Spanned<String>>,
}

/// A port as written: a number or text.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PortSetting {
    Number(i64),
    Text(String),
}

/// Where an image starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseImage {
    /// Nothing: gradient adds the C library, the runtime and a minimal `/etc`.
    Scratch,
    /// An image of the local engine, exported through its API.
    Docker(String),
    /// An OCI image layout, as a folder or a tarball (relative to the project folder).
    Oci(PathBuf),
}

/// A setting that cannot be used: where it is, what is wrong, what to do.
pub(crate) struct Invalid {
    pub span: Option<Range<usize>>,
    pub message: String,
    pub hint: &'static str,
}

impl ContainerConfig {
    /// The base image (`scratch` when unset).
    pub fn base(&self) -> BaseImage {
        match self.base.as_ref().map(|b| b.get_ref().as_str()) {
            None | Some("scratch") => BaseImage::Scratch,
            Some(other) => match other.split_once(':') {
                Some(("docker", image)) => BaseImage::Docker(image.to_string()),
                Some(("oci", path)) => BaseImage::Oci(PathBuf::from(path)),
                _ => BaseImage::Scratch, // refused by `check`
            },
        }
    }

    /// The user the image runs as.
    pub fn user(&self) -> String {
        self.user
            .as_ref()
            .map(|u| u.get_ref().clone())
            .unwrap_or_else(|| DEFAULT_USER.to_string())
    }

    /// The command the image runs, when the project sets one.
    pub fn entrypoint(&self) -> Option<Vec<String>> {
        self.entrypoint.as_ref().map(|e| e.get_ref().clone())
    }

    /// The default arguments, when the project sets them.
    pub fn cmd(&self) -> Option<Vec<String>> {
        self.cmd.as_ref().map(|c| c.get_ref().clone())
    }

    /// The extra environment, as `NAME=VALUE`.
    pub fn env(&self) -> Vec<String> {
        self.env
            .iter()
            .map(|(name, value)| format!("{name}={}", value.get_ref()))
            .collect()
    }

    /// The exposed ports, normalised (`8080/tcp`).
    pub fn ports(&self) -> Vec<String> {
        self.ports
            .iter()
            .filter_map(|p| parse_port(p.get_ref()).ok())
            .collect()
    }

    /// Check every setting; the first problem is returned with its place in the file.
    pub(crate) fn check(&self) -> Result<(), Invalid> {
        if let Some(base) = &self.base {
            let text = base.get_ref();
            one_line("the base image", text).map_err(|message| Invalid {
                span: Some(base.span()),
                message,
                hint: ONE_LINE_HINT,
            })?;
            let ok = text == "scratch"
                || text.split_once(':').is_some_and(|(kind, rest)| {
                    ["docker", "oci"].contains(&kind) && !rest.is_empty()
                });
            if !ok {
                return Err(Invalid {
                    span: Some(base.span()),
                    message: format!("`{text}` is not a base image gradient understands"),
                    hint: "use \"scratch\", \"docker:NAME:TAG\" (an image of the local engine) or \"oci:PATH\" (an OCI layout folder or .tar)",
                });
            }
        }
        for port in &self.ports {
            if let Err(message) = parse_port(port.get_ref()) {
                return Err(Invalid {
                    span: Some(port.span()),
                    message,
                    hint: "a port is a number from 1 to 65535, optionally followed by /tcp or /udp: ports = [8080, \"53/udp\"]",
                });
            }
        }
        if let Some(user) = &self.user {
            if !is_valid_user(user.get_ref()) {
                return Err(Invalid {
                    span: Some(user.span()),
                    message: format!("`{}` is not a valid user", user.get_ref()),
                    hint: "use a user name (lower-case letters, digits, `_`, `-`, starting with a letter or `_`), or UID[:GID] with numbers below 2147483648",
                });
            }
        }
        if let Some(workdir) = &self.workdir {
            let text = workdir.get_ref();
            let invalid = |message: String, hint| Invalid {
                span: Some(workdir.span()),
                message,
                hint,
            };
            one_line("the working folder", text).map_err(|m| invalid(m, ONE_LINE_HINT))?;
            if !text.starts_with('/') {
                return Err(invalid(
                    format!("`{text}` is not an absolute path"),
                    "the working folder is a path inside the image, starting with /",
                ));
            }
            // It becomes an entry of the app's layer: it must not climb out of the image.
            if text.split('/').any(|part| part == "..") {
                return Err(invalid(
                    format!("`{text}` has a `..` component"),
                    "write the working folder without `..`, e.g. \"/srv/app\"",
                ));
            }
        }
        for (name, value) in &self.env {
            let invalid = |message: String, hint| Invalid {
                span: Some(value.span()),
                message,
                hint,
            };
            one_line("the environment variable name", name)
                .map_err(|m| invalid(m, ONE_LINE_HINT))?;
            if name.is_empty() || name.contains(['=', ' ']) {
                return Err(invalid(
                    format!("`{name}` is not a valid environment variable name"),
                    "names in [tool.gradient.container.env] cannot be empty or contain `=` or spaces",
                ));
            }
            // A process's environment is NUL-terminated text: a NUL cannot be in it. Other
            // characters, newlines included, are valid in a value (OCI image spec, POSIX).
            if value.get_ref().contains('\0') {
                return Err(invalid(
                    format!("the value of `{name}` holds a NUL character"),
                    "remove the NUL: an environment variable cannot hold one",
                ));
            }
        }
        for (setting, words) in [("entrypoint", &self.entrypoint), ("cmd", &self.cmd)] {
            if let Some(words) = words
                .as_ref()
                .filter(|w| w.get_ref().iter().any(|w| w.contains('\0')))
            {
                return Err(Invalid {
                    span: Some(words.span()),
                    message: format!("a word of `{setting}` holds a NUL character"),
                    hint: "remove the NUL: a program's arguments cannot hold one",
                });
            }
        }
        Ok(())
    }
}

fn parse_port(setting: &PortSetting) -> Result<String, String> {
    let (number, protocol) = match setting {
        PortSetting::Number(n) => (n.to_string(), "tcp"),
        PortSetting::Text(text) => match text.split_once('/') {
            Some((n, protocol)) => (n.to_string(), protocol),
            None => (text.clone(), "tcp"),
        },
    };
    let shown = match setting {
        PortSetting::Number(n) => n.to_string(),
        PortSetting::Text(t) => format!("\"{t}\""),
    };
    match number.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => {}
        _ => return Err(format!("port {shown} is not a number from 1 to 65535")),
    }
    if !["tcp", "udp", "sctp"].contains(&protocol) {
        return Err(format!(
            "port {shown} has the protocol `{protocol}`; use tcp, udp or sctp"
        ));
    }
    Ok(format!("{number}/{protocol}"))
}

fn is_valid_user(user: &str) -> bool {
    let id = |part: &str| part.parse::<u32>().is_ok_and(|n| n < 1 << 31);
    let name = |part: &str| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c))
            && part.len() <= 32
    };
    match user.split_once(':') {
        Some((uid, gid)) => (id(uid) || name(uid)) && (id(gid) || name(gid)),
        None => id(user) || name(user),
    }
}
