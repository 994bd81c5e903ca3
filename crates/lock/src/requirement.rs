//! PEP 508 dependency specifiers (`click[extra]>=8.1; sys_platform != "win32"`), parsed
//! into parts that compare by meaning rather than spelling.

use crate::marker::Marker;
use std::collections::BTreeSet;

/// One requirement.
#[derive(Clone, Debug)]
pub struct Requirement {
    /// Normalised name.
    pub name: String,
    pub extras: BTreeSet<String>,
    /// The specifier's clauses, without spaces, sorted (`<9`, `>=8.1`).
    pub specifier: Vec<String>,
    /// `name @ URL`.
    pub url: Option<String>,
    pub marker: Option<Marker>,
    /// As written.
    pub text: String,
}

impl Requirement {
    pub fn parse(text: &str) -> Result<Requirement, String> {
        let (head, marker) = match text.split_once(';') {
            Some((head, marker)) => (head, Some(Marker::parse(marker.trim())?)),
            None => (text, None),
        };
        let head = head.trim();
        let name_len = head
            .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
            .unwrap_or(head.len());
        if name_len == 0 {
            return Err(format!("`{text}` does not start with a project name"));
        }
        let name = gradient_core::normalize_name(&head[..name_len]);
        let mut rest = head[name_len..].trim_start();
        let mut extras = BTreeSet::new();
        if let Some(after) = rest.strip_prefix('[') {
            let (inside, after) = after
                .split_once(']')
                .ok_or_else(|| format!("`{text}`: a `[` without its `]`"))?;
            extras = inside
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(gradient_core::normalize_name)
                .collect();
            rest = after.trim_start();
        }
        let mut url = None;
        let mut specifier = Vec::new();
        if let Some(after) = rest.strip_prefix('@') {
            url = Some(after.trim().to_string());
        } else {
            let spec = rest.trim().trim_start_matches('(').trim_end_matches(')');
            specifier = split_specifier(spec);
        }
        Ok(Requirement {
            name,
            extras,
            specifier,
            url,
            marker,
            text: text.trim().to_string(),
        })
    }
}

/// A specifier set's clauses without spaces, sorted.
pub fn split_specifier(spec: &str) -> Vec<String> {
    let mut clauses: Vec<String> = spec
        .split(',')
        .map(|c| c.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .filter(|c| !c.is_empty())
        .collect();
    clauses.sort();
    clauses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_split_into_parts() {
        let r = Requirement::parse("Click[Extra_One, b] (<9, >= 8.1) ; sys_platform != 'win32'")
            .unwrap();
        assert_eq!(r.name, "click");
        assert_eq!(r.extras.iter().collect::<Vec<_>>(), ["b", "extra-one"]);
        assert_eq!(r.specifier, ["<9", ">=8.1"]);
        assert!(r.marker.is_some());
        let r = Requirement::parse("pkg @ https://example.invalid/pkg-1.0.tar.gz").unwrap();
        assert_eq!(
            r.url.as_deref(),
            Some("https://example.invalid/pkg-1.0.tar.gz")
        );
        assert!(Requirement::parse(">=1").is_err());
    }
}
