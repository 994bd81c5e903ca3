//! Just enough of PEP 440 specifiers to check `requires-python` against an interpreter.

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

#[cfg(test)]
mod tests {
    use super::python_satisfies as sat;

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
