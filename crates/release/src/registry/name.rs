//! Where an image goes (`HOST[:PORT]/REPO/PATH`) and which image a user means
//! (`HOST[:PORT]/REPO[:TAG][@sha256:…]`), checked against the distribution grammar before
//! any request: every part of them ends up in a URL path, a header or a tag.

use super::RegistryError;

/// The longest a repository name may be, registry host included (as Docker's reference
/// parser counts it).
const NAME_MAX: usize = 255;
/// The longest a tag may be.
const TAG_MAX: usize = 128;

/// A registry and a repository in it, e.g. `127.0.0.1:5000/team/sampleapp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The host as written: a DNS name, an IPv4 address, or an IPv6 address in brackets.
    pub host: String,
    pub port: Option<u16>,
    /// The repository path (`team/sampleapp`): lower-case components separated by `/`.
    pub repository: String,
}

/// An image in a registry: a destination and a tag or a digest (or both; the digest wins).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageReference {
    pub destination: Destination,
    pub tag: Option<String>,
    /// `sha256:` and 64 lower-case hex digits.
    pub digest: Option<String>,
}

impl Destination {
    /// Check `given` (`HOST[:PORT]/REPO/PATH`). A registry host is required: nothing is sent
    /// to a registry a user did not name. Credentials, a scheme, a tag or a digest are refused
    /// with the reason, as is anything outside the grammar (which keeps `..`, `%`, `?`, `#`,
    /// spaces and upper case out of the request paths).
    pub fn parse(given: &str) -> Result<Destination, RegistryError> {
        let bad = |reason: String| RegistryError::BadDestination {
            given: given.to_string(),
            reason,
        };
        if given.contains("://") {
            return Err(bad(
                "give HOST[:PORT]/REPOSITORY without a scheme: https is used, plain http only for loopback hosts or with --insecure".into(),
            ));
        }
        if given.contains('@') {
            return Err(bad(
                "it holds an `@`: credentials are read from the environment or the Docker configuration, never from the name, and a digest is computed from the image".into(),
            ));
        }
        let Some((host_port, repository)) = given.split_once('/') else {
            return Err(bad(
                "it names no registry host: give HOST[:PORT]/REPOSITORY".into(),
            ));
        };
        let (host, port) = split_host_port(host_port).map_err(bad)?;
        if let Some(last) = repository.rsplit('/').next() {
            if last.contains(':') {
                return Err(bad(
                    "it holds a tag: give the repository alone, the tags are given apart".into(),
                ));
            }
        }
        check_repository(repository).map_err(bad)?;
        let destination = Destination {
            host,
            port,
            repository: repository.to_string(),
        };
        if destination.name().len() > NAME_MAX {
            return Err(bad(format!(
                "the name is {} characters long, and a name has at most {NAME_MAX}",
                destination.name().len()
            )));
        }
        Ok(destination)
    }

    /// `HOST[:PORT]`, as Docker's configuration and credential helpers key it.
    pub fn registry(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    /// `HOST[:PORT]/REPOSITORY`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry(), self.repository)
    }

    /// Whether the host is this machine's loopback (`localhost`, 127.0.0.0/8, `[::1]`),
    /// where plain http is allowed as Docker allows it.
    pub fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl ImageReference {
    /// Check `given` (`HOST[:PORT]/REPO[:TAG][@sha256:HEX]`); `:latest` when it names neither.
    pub fn parse(given: &str) -> Result<ImageReference, RegistryError> {
        let bad = |reason: String| RegistryError::BadDestination {
            given: given.to_string(),
            reason,
        };
        let (rest, digest) = match given.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest).map_err(bad)?;
                (rest, Some(digest.to_string()))
            }
            None => (given, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        if let Some(tag) = &tag {
            check_tag(tag).map_err(bad)?;
        }
        let destination = Destination::parse(name).map_err(|e| match e {
            RegistryError::BadDestination { reason, .. } => bad(reason),
            other => other,
        })?;
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(ImageReference {
            destination,
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest when there is one, else the tag.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .expect("a tag or a digest")
    }
}

impl std::fmt::Display for ImageReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.destination)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `HOST[:PORT]` into its parts, each checked.
fn split_host_port(given: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(inner) = given.strip_prefix('[') {
        // An IPv6 address in brackets, then maybe `:PORT`.
        let Some((address, after)) = inner.split_once(']') else {
            return Err(format!("`{given}` opens a `[` it does not close"));
        };
        address
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{address}` is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("`{given}`: only `:PORT` may follow the address"))?,
            ),
        };
        (format!("[{address}]"), port)
    } else {
        match given.split_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (given.to_string(), None),
        }
    };
    if !host.starts_with('[') {
        check_host(&host)?;
    }
    let port = match port {
        None => None,
        Some(port) => {
            let number = (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
                .then(|| port.parse::<u16>().ok())
                .flatten()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("`{port}` is not a port (1 to 65535)"))?;
            Some(number)
        }
    };
    Ok((host, port))
}

/// A DNS name or IPv4 address: labels of letters, digits and inner `-`, separated by `.`.
fn check_host(host: &str) -> Result<(), String> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!(
            "`{host}` is not a registry host: letters, digits and `-` in labels separated by `.`"
        ));
    }
    Ok(())
}

/// Repository path components: lower-case letters and digits, separated inside a component
/// by one `.`, one or two `_`, or any number of `-`.
pub(crate) fn check_repository(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the repository is empty: give HOST[:PORT]/REPOSITORY".into());
    }
    for part in path.split('/') {
        if !is_path_component(part) {
            return Err(format!(
                "`{part}` is not a repository path component: lower-case letters and digits, separated by one `.`, one or two `_`, or `-`s"
            ));
        }
    }
    Ok(())
}

fn is_path_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &part[start..i];
        let ok = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A tag: a letter, digit or `_`, then up to 127 of those, `.` and `-`.
pub(crate) fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= TAG_MAX
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{tag}` is not a tag: up to {TAG_MAX} letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
        ))
    }
}

/// `sha256:` and 64 lower-case hex digits, the only digests gradient writes or reads.
pub(crate) fn check_digest(digest: &str) -> Result<(), String> {
    let ok = digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{digest}` is not a digest: `sha256:` and 64 lower-case hex digits"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_follow_the_grammar() {
        let d = Destination::parse("127.0.0.1:5000/team/sample-app").unwrap();
        assert_eq!(d.host, "127.0.0.1");
        assert_eq!(d.port, Some(5000));
        assert_eq!(d.repository, "team/sample-app");
        assert!(d.is_loopback());
        let d = Destination::parse("[::1]:443/a__b/c.d").unwrap();
        assert_eq!(d.registry(), "[::1]:443");
        assert!(d.is_loopback());
        assert!(!Destination::parse("registry.example/app")
            .unwrap()
            .is_loopback());
        for bad in [
            "app",
            "https://host/app",
            "user:pw@host/app",
            "host/app@sha256:00",
            "host/app:1.0",
            "host/App",
            "host/../app",
            "host/a%2fb",
            "host/a?b",
            "host/a b",
            "host:0/app",
            "host:99999/app",
            "host:/app",
            "-host/app",
            "host/",
            "host//app",
            "host/a___b",
            "[::1/app",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn references_take_a_tag_or_a_digest() {
        let r = ImageReference::parse("localhost:5000/app").unwrap();
        assert_eq!(r.reference(), "latest");
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = ImageReference::parse(&format!("localhost:5000/app:1.0@{digest}")).unwrap();
        assert_eq!(r.reference(), digest);
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert!(ImageReference::parse("localhost:5000/app:.x").is_err());
        assert!(ImageReference::parse("localhost:5000/app@sha256:AB").is_err());
    }
}
