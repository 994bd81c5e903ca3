//! Just enough of PEP 440: specifiers, to check `requires-python` against an interpreter,
//! and whether a version is valid at all.

/// Whether `version` satisfies `spec` (`>=3.9,<4`, `~=3.10`, `==3.11.*`, `!=3.12.0`).
/// `None` when the specifier has a clause this does not understand.
pub fn python_satisfies(spec: &str, version: (u32, u32, u32)) -> Option<bool> {
    let have = [version.0, version.1, version.2];
    let mut all = true;
    for clause in spec.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let op_len = clause.find(|c: char| c.is_ascii_digit())?;
        let (op, rest) = clause.split_at(op_len);
        let op = op.trim();
        let wildcard = rest.ends_with(".*");
        let parts: Vec<u32> = rest
            .trim_end_matches(".*")
            .split('.')
            .map(|p| p.trim().parse().ok())
            .collect::<Option<_>>()?;
        let padded =
            |n: usize| -> Vec<u32> { (0..n).map(|i| parts.get(i).copied().unwrap_or(0)).collect() };
        let cmp = have.as_slice().cmp(padded(3).as_slice());
        let prefix_equal = have[..parts.len().min(3)] == parts[..parts.len().min(3)];
        let ok = match op {
            ">=" => cmp.is_ge(),
            ">" => cmp.is_gt(),
            "<=" => cmp.is_le(),
            "<" => cmp.is_lt(),
            "==" if wildcard => prefix_equal,
            "==" | "===" => cmp.is_eq(),
            "!=" if wildcard => !prefix_equal,
            "!=" => !cmp.is_eq(),
            "~=" if parts.len() >= 2 => {
                let stem = parts.len() - 1;
                cmp.is_ge() && have[..stem] == parts[..stem]
            }
            _ => return None,
        };
        all &= ok;
    }
    Some(all)
}

/// Whether `text` is a public version in PEP 440's normal form (`1.0`, `2.1rc1`,
/// `1.0.post2.dev3`), which build backends write unchanged: `N(.N)*[{a|b|rc}N][.postN][.devN]`.
pub fn is_normalised_version(text: &str) -> bool {
    let Some(mut rest) = after_release(text) else {
        return false;
    };
    if let Some(after) = ["a", "b", "rc"]
        .iter()
        .find_map(|label| after_number(rest, label))
    {
        rest = after;
    }
    for label in [".post", ".dev"] {
        rest = after_number(rest, label).unwrap_or(rest);
    }
    rest.is_empty()
}

/// Whether `text` is a version PEP 440 accepts, in any spelling it allows (`v1.0`,
/// `1.0-beta.2`, `1.0_rc1`, `1.0-1`), which build backends then normalise.
pub fn is_pep440_version(text: &str) -> bool {
    let text = text.trim().to_ascii_lowercase();
    let text = text.strip_prefix('v').unwrap_or(&text);
    let (public, local) = match text.split_once('+') {
        Some((public, local)) => (public, Some(local)),
        None => (text, None),
    };
    let local_ok = local.is_none_or(|local| {
        local
            .split(['-', '_', '.'])
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
    });
    let rest = match public.split_once('!') {
        Some((epoch, rest)) if !epoch.is_empty() && leading_digits(epoch) == epoch.len() => rest,
        Some(_) => return false,
        None => public,
    };
    let Some(mut rest) = after_release(rest) else {
        return false;
    };
    rest = labelled_part(
        rest,
        &["alpha", "beta", "preview", "pre", "rc", "a", "b", "c"],
    );
    rest = after_number(rest, "-").unwrap_or_else(|| labelled_part(rest, &["post", "rev", "r"]));
    rest = labelled_part(rest, &["dev"]);
    rest.is_empty() && local_ok
}

/// How many ASCII digits `s` starts with.
fn leading_digits(s: &str) -> usize {
    s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len())
}

/// `s` after its release, `N(.N)*`; `None` when it does not start with one.
fn after_release(s: &str) -> Option<&str> {
    let mut rest = after_number(s, "")?;
    while let Some(after) = after_number(rest, ".") {
        rest = after;
    }
    Some(rest)
}

/// `s` after `prefix` and the number that follows it; `None` when they do not start it.
fn after_number<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let after = s.strip_prefix(prefix)?;
    let n = leading_digits(after);
    (n > 0).then(|| &after[n..])
}

/// `s` after an optional PEP 440 part `[-_.]? LABEL [-_.]? N?`, for one of `labels`
/// (longest first); `s` itself when none starts it.
fn labelled_part<'a>(s: &'a str, labels: &[&str]) -> &'a str {
    let unseparated = s.strip_prefix(['-', '_', '.']).unwrap_or(s);
    for label in labels {
        if let Some(after) = unseparated.strip_prefix(label) {
            let after = after.strip_prefix(['-', '_', '.']).unwrap_or(after);
            return &after[leading_digits(after)..];
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::python_satisfies as sat;
    use super::{is_normalised_version, is_pep440_version};

    #[test]
    fn normalised_versions_are_told_from_other_spellings() {
        for normal in ["1", "1.0", "2.1rc1", "1.0a2", "1.0.post2.dev3", "3.12.0b1"] {
            assert!(is_normalised_version(normal), "{normal}");
        }
        for other in [
            "v1.0",
            "1.0-RC1",
            "1.0_rc1",
            "1.0-1",
            "1!1.0",
            "1.0+local",
            "1.",
            "",
        ] {
            assert!(!is_normalised_version(other), "{other}");
        }
    }

    #[test]
    fn pep440_accepts_every_spelling_it_allows_and_nothing_else() {
        for good in [
            "1",
            "1.2.3",
            "v1.0",
            "1!2.0",
            "1.0a1",
            "1.0-beta.2",
            "1.0_rc1",
            "1.0c3",
            "1.0rc",
            "1.0.post1",
            "1.0-1",
            "1.0rev2",
            "1.0r",
            "1.0.dev4",
            "1.0dev",
            "1.0a1.post2.dev3",
            "1.0+ubuntu.7",
            "1.0+local-1_2",
            " 1.0 ",
            "1.0PREVIEW1",
            "1.0-dev-",
        ] {
            assert!(is_pep440_version(good), "{good}");
        }
        for bad in [
            "",
            "v",
            "one",
            "1.2.3-beta_final!x",
            "1..2",
            "1.",
            "1.0-",
            "x!1.0",
            "1.0+",
            "1.0+a..b",
            "1.0 beta",
            "1.0.gamma",
            "latest",
        ] {
            assert!(!is_pep440_version(bad), "{bad}");
        }
    }

    #[test]
    fn common_requires_python_forms() {
        assert_eq!(sat(">=3.9", (3, 11, 7)), Some(true));
        assert_eq!(sat(">=3.12", (3, 11, 7)), Some(false));
        assert_eq!(sat(">=3.8,<3.11", (3, 11, 0)), Some(false));
        assert_eq!(sat("~=3.10", (3, 11, 2)), Some(true));
        assert_eq!(sat("~=3.10.1", (3, 11, 2)), Some(false));
        assert_eq!(sat("==3.11.*", (3, 11, 7)), Some(true));
        assert_eq!(sat("!=3.11.*", (3, 11, 7)), Some(false));
        assert_eq!(sat(">= 3.7", (3, 11, 7)), Some(true));
        assert_eq!(sat("weird", (3, 11, 7)), None);
    }
}
