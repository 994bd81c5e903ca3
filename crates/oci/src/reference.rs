//! Image references (`NAME[:TAG]`): the defaults made from the project, and checks of the
//! ones a user gives, with the rule a bad one breaks.

use crate::OciError;

/// `NAME:VERSION` and `NAME:latest`, with the version made a valid tag (`+` → `-`).
pub fn default_tags(name: &str, version: &str) -> Vec<String> {
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
    vec![format!("{name}:{tag}"), format!("{name}:latest")]
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
    let mut parts: Vec<&str> = name.split('/').collect();
    // A first part with a dot, a colon or `localhost` names a registry host.
    if parts.len() > 1
        && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost")
    {
        let host = parts.remove(0);
        let valid_host = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        if !valid_host {
            return Err(bad(
                "the registry part has characters a host name cannot have",
            ));
        }
    }
    for part in &parts {
        let ok = !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            && part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(bad("each part of a name is lower-case letters and digits, separated by `.`, `_` or `-`"));
        }
    }
    let tag = match tag {
        None => "latest",
        Some(tag) => {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(bad("a tag is up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"));
            }
            tag
        }
    };
    Ok(format!("{name}:{tag}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        assert_eq!(
            default_tags("app", "1.0+local.2"),
            ["app:1.0-local.2", "app:latest"]
        );
        assert_eq!(check_reference("app").unwrap(), "app:latest");
        assert_eq!(check_reference("team/app:1.2.3").unwrap(), "team/app:1.2.3");
        assert_eq!(
            check_reference("127.0.0.1:5000/app:v1").unwrap(),
            "127.0.0.1:5000/app:v1"
        );
        for bad in [
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
