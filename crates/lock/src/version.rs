//! PEP 440 versions and specifiers, as far as a lock needs them: ordering (for markers on
//! `python_full_version`) and whether a locked version meets a requirement's specifier.

use std::cmp::Ordering;

/// A parsed PEP 440 version. Equal as PEP 440 says (`1.0` is `1.0.0`).
#[derive(Clone, Debug)]
pub struct Version {
    epoch: u64,
    release: Vec<u64>,
    /// `(0 for a, 1 for b, 2 for rc, number)`.
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Vec<LocalPart>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum LocalPart {
    // Declared first: PEP 440 orders a word segment before a number.
    Word(String),
    Number(u64),
}

impl Version {
    /// Parse any spelling PEP 440 accepts (`v1.0`, `1.0-beta.2`, `1.0_rc1`, `1.0-1`).
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim().to_ascii_lowercase();
        let text = text.strip_prefix('v').unwrap_or(&text);
        let (public, local) = match text.split_once('+') {
            Some((public, local)) => (public, Some(local)),
            None => (text, None),
        };
        let (epoch, mut rest) = match public.split_once('!') {
            Some((epoch, rest)) => (epoch.parse().ok()?, rest),
            None => (0, public),
        };
        let mut release = Vec::new();
        loop {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                return None;
            }
            release.push(rest[..digits].parse().ok()?);
            rest = &rest[digits..];
            match rest.strip_prefix('.') {
                Some(after) if after.starts_with(|c: char| c.is_ascii_digit()) => rest = after,
                _ => break,
            }
        }
        let mut version = Version {
            epoch,
            release,
            pre: None,
            post: None,
            dev: None,
            local: Vec::new(),
        };
        const PRE: [(&str, u8); 7] = [
            ("alpha", 0),
            ("beta", 1),
            ("preview", 2),
            ("pre", 2),
            ("rc", 2),
            ("a", 0),
            ("b", 1),
        ];
        if let Some((after, phase)) =
            labelled(rest, &PRE.map(|(l, p)| (l, p))).or_else(|| labelled(rest, &[("c", 2u8)]))
        {
            let (n, after) = number(after);
            version.pre = Some((phase, n.unwrap_or(0)));
            rest = after;
        }
        if let Some((after, ())) = labelled(rest, &[("post", ()), ("rev", ()), ("r", ())]) {
            let (n, after) = number(after);
            version.post = Some(n.unwrap_or(0));
            rest = after;
        } else if let Some(after) = rest
            .strip_prefix('-')
            .filter(|a| a.starts_with(|c: char| c.is_ascii_digit()))
        {
            // `1.0-1`: an implicit post-release.
            let (n, after) = number(after);
            version.post = Some(n?);
            rest = after;
        }
        if let Some((after, ())) = labelled(rest, &[("dev", ())]) {
            let (n, after) = number(after);
            version.dev = Some(n.unwrap_or(0));
            rest = after;
        }
        if !rest.is_empty() {
            return None;
        }
        if let Some(local) = local {
            for part in local.split(['.', '-', '_']) {
                if part.is_empty() || !part.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return None;
                }
                version.local.push(match part.parse() {
                    Ok(n) => LocalPart::Number(n),
                    Err(_) => LocalPart::Word(part.to_string()),
                });
            }
        }
        Some(version)
    }

    fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    /// The ordering key of PEP 440, without the local part.
    #[allow(clippy::type_complexity)]
    fn key(&self) -> (u64, Vec<u64>, (i8, u8, u64), (i8, u64), (i8, u64)) {
        let mut release = self.release.clone();
        while release.len() > 1 && release.last() == Some(&0) {
            release.pop();
        }
        // A dev release of a final version sorts before its pre-releases.
        let pre = match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (-1, 0, 0),
            (None, _, _) => (1, 0, 0),
            (Some((phase, n)), _, _) => (0, phase, n),
        };
        let post = self.post.map_or((-1, 0), |n| (0, n));
        let dev = self.dev.map_or((1, 0), |n| (0, n));
        (self.epoch, release, pre, post, dev)
    }

    fn without_local(&self) -> Version {
        Version {
            local: Vec::new(),
            ..self.clone()
        }
    }
}

/// After `label` (with an optional `.`, `-` or `_` before it), and what the label stands for.
fn labelled<'a, T: Copy>(text: &'a str, labels: &[(&str, T)]) -> Option<(&'a str, T)> {
    let text = text.strip_prefix(['.', '-', '_']).unwrap_or(text);
    labels
        .iter()
        .find_map(|(label, value)| text.strip_prefix(label).map(|after| (after, *value)))
}

/// A number after an optional separator, and what follows it.
fn number(text: &str) -> (Option<u64>, &str) {
    let trimmed = text.strip_prefix(['.', '-', '_']).unwrap_or(text);
    let digits = trimmed.len()
        - trimmed
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .len();
    if digits == 0 {
        return (None, text);
    }
    (trimmed[..digits].parse().ok(), &trimmed[digits..])
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key()
            .cmp(&other.key())
            .then_with(|| self.local.cmp(&other.local))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}!", self.epoch)?;
        }
        let release: Vec<String> = self.release.iter().map(u64::to_string).collect();
        f.write_str(&release.join("."))?;
        if let Some((phase, n)) = self.pre {
            write!(f, "{}{n}", ["a", "b", "rc"][phase as usize])?;
        }
        if let Some(n) = self.post {
            write!(f, ".post{n}")?;
        }
        if let Some(n) = self.dev {
            write!(f, ".dev{n}")?;
        }
        if !self.local.is_empty() {
            let parts: Vec<String> = self
                .local
                .iter()
                .map(|p| match p {
                    LocalPart::Word(w) => w.clone(),
                    LocalPart::Number(n) => n.to_string(),
                })
                .collect();
            write!(f, "+{}", parts.join("."))?;
        }
        Ok(())
    }
}

/// Whether `version` meets every clause of the specifier set `spec` (`>=8.1,<9`, `~=1.4`,
/// `==2.*`). `None` when a clause does not parse. A pinned version is judged as it is:
/// a pre-release meets a clause it is inside of, since the lock chose it on purpose.
pub fn satisfies(version: &Version, spec: &str) -> Option<bool> {
    let mut all = true;
    for clause in spec.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        all &= clause_holds(version, clause)?;
    }
    Some(all)
}

fn clause_holds(version: &Version, clause: &str) -> Option<bool> {
    let op_len = clause
        .find(|c: char| c.is_ascii_alphanumeric())
        .filter(|&n| n > 0)?;
    let (op, target) = (clause[..op_len].trim(), clause[op_len..].trim());
    if op == "===" {
        return Some(version.to_string() == target);
    }
    if let Some(prefix) = target.strip_suffix(".*") {
        let prefix = Version::parse(prefix)?;
        let inside = version.epoch == prefix.epoch
            && (0..prefix.release.len())
                .all(|i| version.release.get(i).copied().unwrap_or(0) == prefix.release[i]);
        return match op {
            "==" => Some(inside),
            "!=" => Some(!inside),
            _ => None,
        };
    }
    let target = Version::parse(target)?;
    // A specifier without a local part ignores the candidate's.
    let candidate = if target.local.is_empty() {
        version.without_local()
    } else {
        version.clone()
    };
    let order = candidate.cmp(&target);
    Some(match op {
        "==" => order.is_eq(),
        "!=" => !order.is_eq(),
        ">=" => order.is_ge(),
        "<=" => order.is_le(),
        // `<V` leaves out V's own pre-releases, `>V` V's own post-releases.
        "<" => {
            order.is_lt()
                && !(candidate.is_prerelease()
                    && !target.is_prerelease()
                    && same_release(&candidate, &target))
        }
        ">" => {
            order.is_gt()
                && !(candidate.post.is_some()
                    && target.post.is_none()
                    && candidate.without_post() == target)
        }
        "~=" => {
            if target.release.len() < 2 {
                return None;
            }
            let stem = target.release.len() - 1;
            order.is_ge()
                && candidate.epoch == target.epoch
                && (0..stem)
                    .all(|i| candidate.release.get(i).copied().unwrap_or(0) == target.release[i])
        }
        _ => return None,
    })
}

/// Whether two versions have the same epoch and release (`2` is `2.0`).
fn same_release(a: &Version, b: &Version) -> bool {
    let len = a.release.len().max(b.release.len());
    a.epoch == b.epoch
        && (0..len).all(|i| a.release.get(i).unwrap_or(&0) == b.release.get(i).unwrap_or(&0))
}

impl Version {
    fn without_post(&self) -> Version {
        Version {
            post: None,
            dev: None,
            local: Vec::new(),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap_or_else(|| panic!("{text} parses"))
    }

    #[test]
    fn versions_order_as_pep_440_says() {
        let ordered = [
            "1.0.dev1",
            "1.0a1",
            "1.0a2.dev1",
            "1.0a2",
            "1.0b1",
            "1.0rc1",
            "1.0",
            "1.0+local",
            "1.0.post1.dev1",
            "1.0.post1",
            "1.1",
            "2!0.1",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("1.0"), v("1.0.0"));
        assert_ne!(v("1.0"), v("1.0+local"));
        assert_eq!(v("1.0-beta.2").to_string(), "1.0b2");
        assert_eq!(v("1.0-1").to_string(), "1.0.post1");
        assert_eq!(v("1.0-dev1").to_string(), "1.0.dev1");
        assert!(Version::parse("1.0x").is_none());
        assert!(Version::parse("").is_none());
    }

    #[test]
    fn specifiers_hold_or_not() {
        let cases = [
            ("8.1.7", ">=8.1", true),
            ("8.1.7", ">=8.1,<8.1.5", false),
            ("1.4.2", "~=1.4", true),
            ("2.0", "~=1.4", false),
            ("1.4.2", "~=1.4.0", true),
            ("1.5.0", "~=1.4.0", false),
            ("2.3.1", "==2.*", true),
            ("3.0", "==2.*", false),
            ("2.0rc1", "<2.0", false),
            ("2.0rc1", "<2", false),
            ("1.9", "<2.0", true),
            ("2.0.post1", ">2.0", false),
            ("2.0.1", ">2.0", true),
            ("1.0+abc", "==1.0", true),
            ("1.0", "!=1.0", false),
            ("3.11.7", ">=3.9", true),
        ];
        for (version, spec, expected) in cases {
            assert_eq!(
                satisfies(&v(version), spec),
                Some(expected),
                "{version} {spec}"
            );
        }
        assert_eq!(satisfies(&v("1.0"), ">=x"), None);
    }
}
