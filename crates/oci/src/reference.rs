//! Image references (`[HOST[:PORT]/]NAME[:TAG]`): the defaults made from the project, and
//! checks of the ones a user gives against the grammar Docker's and the OCI distribution's
//! reference parsers use, with the rule a bad one breaks.

use crate::OciError;

/// The longest a name (registry host included) may be.
const NAME_MAX: usize = 255;
/// The longest a tag may be.
const TAG_MAX: usize = 128;

/// `NAME:VERSION` and `NAME:latest`, with the version made a valid tag (`+` → `-`), each
/// checked: a name or version too long for a reference is an error here, before any build.
pub fn default_tags(name: &str, version: &str) -> Result<Vec<String>, OciError> {
    let tag: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    [format!("{name}:{tag}"), format!("{name}:latest")]
        .iter()
        .map(|reference| check_reference(reference))
        .collect()
}

/// Check a reference and give it a tag (`:latest`) when it has none.
pub fn check_reference(reference: &str) -> Result<String, OciError> {
    let bad = |reason: &str| OciError::BadReference {
        reference: reference.to_string(),
        reason: reason.to_string(),
    };
    if reference.contains('@') {
        return Err(bad(
            "a digest cannot be given: it is computed from the image",
        ));
    }
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match reference[last_slash..].rfind(':') {
        Some(i) => (
            &reference[..last_slash + i],
            Some(&reference[last_slash + i + 1..]),
        ),
        None => (reference, None),
    };
    if name.is_empty() {
        return Err(bad("the name is empty"));
    }
    if name.len() > NAME_MAX {
        return Err(bad(&format!(
            "the name is {} characters long, and a name has at most {NAME_MAX}",
            name.len()
        )));
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // A first part with a dot, a colon or `localhost` names a registry host (as Docker
    // decides it; an upper-case letter, which a path cannot have, does too).
    if parts.len() > 1
        && (parts[0].contains(['.', ':'])
            || parts[0] == "localhost"
            || parts[0].contains(|c: char| c.is_ascii_uppercase()))
    {
        let host = parts.remove(0);
        if let Err(reason) = check_host(host) {
            return Err(bad(&reason));
        }
    }
    if let Some(part) = parts.iter().find(|part| !is_path_component(part)) {
        return Err(bad(&format!(
            "`{part}` is not a name component: lower-case letters and digits, separated by one `.`, one or two `_`, or `-`s"
        )));
    }
    let tag = match tag {
        None => "latest",
        Some(tag) => {
            let ok = !tag.is_empty()
                && tag.len() <= TAG_MAX
                && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(bad(&format!("a tag is 1 to {TAG_MAX} letters, digits, `_`, `.` and `-`, not starting with `.` or `-`")));
            }
            tag
        }
    };
    Ok(format!("{name}:{tag}"))
}

/// `[a-z0-9]+` runs joined by one separator each: `.`, `_`, `__` or any number of `-`.
fn is_path_component(part: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut chars = part.chars().peekable();
    loop {
        // One run of letters and digits.
        if !chars.peek().is_some_and(|c| alnum(*c)) {
            return false;
        }
        while chars.peek().is_some_and(|c| alnum(*c)) {
            chars.next();
        }
        // Then the end, or a separator.
        let separator: String = std::iter::from_fn(|| chars.next_if(|c| !alnum(*c))).collect();
        let valid = separator == "."
            || separator == "_"
            || separator == "__"
            || (!separator.is_empty() && separator.chars().all(|c| c == '-'));
        match (separator.is_empty(), chars.peek()) {
            (true, None) => return true,
            _ if !valid => return false,
            _ => {}
        }
    }
}

/// A registry host: domain components (letters, digits, inner `-`) separated by `.`, or an
/// IPv6 address in brackets, then an optional `:PORT`.
fn check_host(host: &str) -> Result<(), String> {
    let (address, port) = match host.rsplit_once(':') {
        Some((address, port)) if !host.ends_with(']') => (address, Some(port)),
        _ => (host, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("the registry's port `{port}` is not a number"));
        }
    }
    let valid = match address.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        Some(ipv6) => !ipv6.is_empty() && ipv6.chars().all(|c| c.is_ascii_hexdigit() || c == ':'),
        None => address.split('.').all(|component| {
            !component.is_empty()
                && component
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !component.starts_with('-')
                && !component.ends_with('-')
        }),
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "the registry `{address}` is not a host name (letters, digits and inner `-`, separated by single dots) or an [IPv6] address"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        assert_eq!(
            default_tags("app", "1.0+local.2").unwrap(),
            ["app:1.0-local.2", "app:latest"]
        );
        let err = default_tags("app", &format!("1{}", ".0".repeat(112)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("a tag is 1 to 128"), "{err}");
        assert!(default_tags(&"a".repeat(256), "1.0").is_err());
        assert_eq!(check_reference("app").unwrap(), "app:latest");
        assert_eq!(check_reference("team/app:1.2.3").unwrap(), "team/app:1.2.3");
        assert_eq!(
            check_reference("127.0.0.1:5000/app:v1").unwrap(),
            "127.0.0.1:5000/app:v1"
        );
        assert_eq!(
            check_reference("localhost/a__b/c---d:1").unwrap(),
            "localhost/a__b/c---d:1"
        );
        assert!(check_reference("Registry.Example.com:443/team/app").is_ok());
        assert!(check_reference("[::1]:5000/app:v1").is_ok());
        assert!(check_reference("a.b-c/app").is_ok(), "a host by its dot");
        assert!(
            check_reference("a.b_c/app").is_err(),
            "no `_` in a host name"
        );
        let long = "a".repeat(256);
        let tag_too_long = format!("app:{}", "1".repeat(129));
        for bad in [
            "../x",
            "./x",
            "a..b:1",
            "a___b",
            "a.-b",
            "-a/b",
            "host:port/app",
            "host:/app",
            "-host.com/app",
            "host..com/app",
            "[::1/app",
            long.as_str(),
            tag_too_long.as_str(),
            "App:1",
            "app:",
            "app:-x",
            "app@sha256:00",
            "a//b",
            "app:1+2",
            "",
        ] {
            assert!(check_reference(bad).is_err(), "{bad} should be refused");
        }
    }
}
