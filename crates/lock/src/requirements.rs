//! A pip requirements file used as a lock: every requirement pinned (`==`) or a URL, and
//! every one with at least one `--hash=sha256:`. Markers choose per target, as pip does.

use crate::requirement::Requirement;
use crate::{FileKind, Lock, LockError, LockFile, LockedFile, Package, Source};

/// One logical line (continuations joined), its first physical line, comments removed.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if current.is_empty() {
            start = i + 1;
        }
        let without_comment = match raw.find('#') {
            Some(0) => "",
            Some(at) if raw[..at].ends_with(char::is_whitespace) => &raw[..at],
            _ => raw,
        };
        match without_comment.trim_end().strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(without_comment);
                if !current.trim().is_empty() {
                    lines.push((start, current.trim().to_string()));
                }
                current.clear();
            }
        }
    }
    if !current.trim().is_empty() {
        lines.push((start, current.trim().to_string()));
    }
    lines
}

/// A requirement line split into the requirement and its sha256 hashes.
fn split_hashes(line: &str) -> (String, Vec<String>) {
    let mut requirement = String::new();
    let mut hashes = Vec::new();
    let mut words = line.split_whitespace().peekable();
    while let Some(word) = words.next() {
        if let Some(hash) = word.strip_prefix("--hash=") {
            hashes.extend(hash.strip_prefix("sha256:").map(str::to_ascii_lowercase));
        } else if word == "--hash" {
            if let Some(hash) = words.next().and_then(|h| h.strip_prefix("sha256:")) {
                hashes.push(hash.to_ascii_lowercase());
            }
        } else {
            requirement.push_str(word);
            requirement.push(' ');
        }
    }
    (requirement.trim().to_string(), hashes)
}

/// Options that pull in other files or editable trees: a lock lists every package itself.
const NOT_IN_A_LOCK: [&str; 6] = [
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-e",
    "--editable",
];

fn option_name(line: &str) -> &str {
    line.split([' ', '=']).next().unwrap_or_default()
}

/// Whether `text` reads as a hashed lock: requirements, each with a hash, and no option
/// that pulls in other files.
pub(crate) fn is_hashed_lock(text: &str) -> bool {
    let lines = logical_lines(text);
    if lines
        .iter()
        .any(|(_, l)| NOT_IN_A_LOCK.contains(&option_name(l)))
    {
        return false;
    }
    let requirements: Vec<(String, Vec<String>)> = lines
        .into_iter()
        .filter(|(_, l)| !l.starts_with('-'))
        .map(|(_, l)| split_hashes(&l))
        .collect();
    !requirements.is_empty() && requirements.iter().all(|(_, hashes)| !hashes.is_empty())
}

pub(crate) fn parse(file: LockFile, text: String) -> Result<Lock, LockError> {
    let invalid = |line: usize, message: String| LockError::Invalid {
        path: file.path.clone(),
        line,
        column: 1,
        message,
    };
    let mut packages = Vec::new();
    for (line, logical) in logical_lines(&text) {
        if logical.starts_with('-') {
            let option = option_name(&logical);
            if NOT_IN_A_LOCK.contains(&option) {
                return Err(invalid(
                    line,
                    format!(
                        "`{option}` is not allowed in a lock: it must list every package itself"
                    ),
                ));
            }
            // Index options (--index-url, --find-links) are the installer's business.
            continue;
        }
        let (requirement_text, hashes) = split_hashes(&logical);
        // Messages name the requirement's project, never the whole line: a file taken for a
        // lock may hold something else (a symlink to credentials, say).
        let requirement = Requirement::parse(&requirement_text).map_err(|_| {
            invalid(
                line,
                "not a requirement (`name==version --hash=sha256:...`)".into(),
            )
        })?;
        let name = &requirement.name;
        let version = match (&requirement.url, requirement.specifier.as_slice()) {
            (Some(_), _) => String::new(),
            (None, [one]) if one.starts_with("==") && !one.ends_with(".*") => {
                one.trim_start_matches('=').to_string()
            }
            _ => {
                return Err(invalid(
                    line,
                    format!("`{name}` is not pinned: a lock names one version (`name==1.2.3`)"),
                ))
            }
        };
        if hashes.is_empty() {
            return Err(invalid(
                line,
                format!("`{name}` has no --hash=sha256: digest"),
            ));
        }
        let source = match &requirement.url {
            Some(url) => Source::Url(url.clone()),
            None => Source::Index(None),
        };
        packages.push(Package {
            name: requirement.name.clone(),
            version,
            marker: requirement.marker.clone(),
            source,
            files: hashes
                .into_iter()
                .map(|sha256| LockedFile {
                    kind: FileKind::Archive,
                    name: None,
                    url: requirement.url.clone(),
                    size: None,
                    sha256,
                })
                .collect(),
            line,
            dependencies: Vec::new(),
            optional: Vec::new(),
            groups: Vec::new(),
        });
    }
    if packages.is_empty() {
        return Err(LockError::NotALock {
            path: file.path.clone(),
            reason: "it names no requirement".into(),
        });
    }
    Ok(Lock::flat(file, text, packages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Environment, LockFormat};

    fn lock(text: &str) -> Result<Lock, LockError> {
        let file = LockFile {
            path: "requirements.txt".into(),
            format: LockFormat::Requirements,
        };
        parse(file, text.to_string())
    }

    #[test]
    fn hashed_requirements_read_as_a_lock() {
        let (a, b, c) = ("A".repeat(64), "b".repeat(64), "c".repeat(64));
        let lock = lock(&format!(
            "# made by hand\n--index-url https://example.invalid/simple\n\
             click==8.1.7 \\\n    --hash=sha256:{a} \\\n    --hash=sha256:{b}\n\
             colorama==0.4.6 ; sys_platform == 'win32' --hash=sha256:{c}\n",
        ))
        .unwrap();
        let env = Environment::linux("cpython", (3, 11, 7), "linux_x86_64");
        let chosen = lock.select(Some("app"), &env).unwrap();
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].name, "click");
        assert_eq!(chosen[0].version, "8.1.7");
        let hashes: Vec<&str> = chosen[0].files.iter().map(|f| f.sha256.as_str()).collect();
        assert_eq!(hashes, ["a".repeat(64), "b".repeat(64)]);
    }

    #[test]
    fn unpinned_or_unhashed_lines_are_refused_with_their_line() {
        let err = lock("a==1 --hash=sha256:aa\nclick>=8 --hash=sha256:aa\n").unwrap_err();
        assert!(err.to_string().contains("requirements.txt:2:1"), "{err}");
        assert!(err.to_string().contains("not pinned"), "{err}");
        let err = lock("click==8.1.7\n").unwrap_err();
        assert!(err.to_string().contains("no --hash"), "{err}");
        let err = lock("-r base.txt\n").unwrap_err();
        assert!(err.to_string().contains("`-r`"), "{err}");
    }
}
