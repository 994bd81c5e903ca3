//! Checks on text that gradient copies into line-based files: package control fields, RPM
//! headers, systemd units, `#!` lines, `launch.txt`. A value there must stay on its line, or
//! whoever wrote it adds fields of their own.

/// The first character of `text` that some reader takes for the end of a line, or that has
/// no place in a one-line value: a C0 or C1 control character other than tab (`\n`, `\r`,
/// NUL, vertical tab, form feed, NEL, escape...) or a Unicode line or paragraph separator.
/// Python's `str.splitlines` breaks on most of these, and dpkg and rpm refuse them.
pub fn line_break(text: &str) -> Option<char> {
    text.chars()
        .find(|&c| (c.is_control() && c != '\t') || c == '\u{2028}' || c == '\u{2029}')
}

/// `Err` with the message for a setting that must stay on one line but does not: what it
/// is, its value (escaped), and the character at fault.
pub(crate) fn one_line(what: &str, value: &str) -> Result<(), String> {
    match line_break(value) {
        None => Ok(()),
        Some(c) => Err(format!(
            "{what} `{}` holds a line break or control character ({}), which would end the line it is written on",
            value.escape_debug(),
            c.escape_unicode()
        )),
    }
}

/// The hint for [`one_line`]'s errors.
pub(crate) const ONE_LINE_HINT: &str =
    "write the value on one line, without control characters: it goes into a line-based file (a package's control fields, a unit file, a #! line)";

#[cfg(test)]
mod tests {
    use super::line_break;

    #[test]
    fn line_breaks_and_control_characters_are_found_and_tabs_are_not() {
        assert_eq!(line_break("Jane Doe <jane@example.org>"), None);
        assert_eq!(line_break("a\tb é ü"), None);
        for bad in [
            "a\nb",
            "a\rb",
            "a\0b",
            "a\u{b}b",
            "a\u{c}b",
            "a\u{85}b",
            "a\u{2028}b",
            "\u{1b}[2J",
        ] {
            assert!(line_break(bad).is_some(), "{bad:?}");
        }
    }
}
