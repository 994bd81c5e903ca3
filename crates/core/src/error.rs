//! Errors as users read them: a message, its causes, and a hint kept apart from the text.
//!
//! Every error enum of gradient says what went wrong in its `Display` text and what the
//! user can do about it in [`Hint::hint`], never both in one string. A tier's error crosses
//! the [`Backend`](crate::Backend) trait as a [`TierError`], which boxes the error together
//! with its hint, so the driver keeps the hint without knowing any tier's error type. Only
//! the CLI prints errors, once, with [`render`]:
//!
//! ```text
//! MESSAGE
//!   caused by: CAUSE
//!   hint: HINT
//! ```

use std::error::Error;

/// What the user can do about an error.
pub trait Hint {
    /// The advice, in one line without a `hint:` prefix; `None` when there is none.
    fn hint(&self) -> Option<String> {
        None
    }
}

impl Hint for std::io::Error {}

/// A tier's error as it crosses the [`Backend`](crate::Backend) trait: the error (with its
/// causes) and its hint. `?` turns any gradient error into one; [`TierError::message`]
/// makes one from text.
#[derive(Debug)]
pub struct TierError {
    error: Box<dyn Error + Send + Sync + 'static>,
    hint: Option<String>,
}

impl<E: Error + Hint + Send + Sync + 'static> From<E> for TierError {
    fn from(error: E) -> Self {
        TierError {
            hint: error.hint(),
            error: Box::new(error),
        }
    }
}

/// Text is an error without causes or hint (the tiers' own checks say what failed in words).
impl From<String> for TierError {
    fn from(text: String) -> Self {
        TierError::message(text)
    }
}

impl From<&str> for TierError {
    fn from(text: &str) -> Self {
        TierError::message(text)
    }
}

/// An error that is only its text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

impl TierError {
    /// An error from its text alone, without causes or a hint.
    pub fn message(text: impl Into<String>) -> TierError {
        TierError {
            error: Box::new(Message(text.into())),
            hint: None,
        }
    }

    /// The error itself, whose `source()` chain holds the causes.
    pub fn error(&self) -> &(dyn Error + 'static) {
        self.error.as_ref()
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The error and its causes, one per line ([`error_chain`]).
    pub fn chain(&self) -> String {
        error_chain(self.error())
    }
}

impl std::fmt::Display for TierError {
    /// The error's own message, as [`Error`]'s `Display` would give it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// An error and its causes, one per line (`  caused by: ...`), with secrets masked: this is
/// the text that reaches the terminal and the records.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!("\n  caused by: {cause}"));
        source = cause.source();
    }
    crate::redact(&text).into_owned()
}

/// An error chain ([`error_chain`]) followed by its hint, as users read it; secrets masked.
pub fn render(chain: &str, hint: Option<&str>) -> String {
    match hint {
        Some(hint) => crate::redact(&format!("{chain}\n  hint: {hint}")).into_owned(),
        None => crate::redact(chain).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to read the thing")]
    struct Outer {
        #[source]
        source: std::io::Error,
    }

    impl Hint for Outer {
        fn hint(&self) -> Option<String> {
            Some("read another thing".into())
        }
    }

    #[test]
    fn a_tier_error_keeps_its_causes_and_hint_apart() {
        let error: TierError = Outer {
            source: std::io::Error::other("no such file"),
        }
        .into();
        assert_eq!(error.to_string(), "failed to read the thing");
        assert_eq!(error.hint(), Some("read another thing"));
        assert_eq!(
            render(&error.chain(), error.hint()),
            "failed to read the thing\n  caused by: no such file\n  hint: read another thing"
        );
        let text = TierError::message("just words");
        assert_eq!(render(&text.chain(), text.hint()), "just words");
    }

    /// Every `#[error(...)]` attribute in the workspace, with where it starts.
    fn error_attributes() -> Vec<(String, String)> {
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut found = Vec::new();
        let mut folders = vec![crates];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() && !path.ends_with("target") {
                    folders.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    let mut open: Option<(usize, String)> = None;
                    for (number, line) in text.lines().enumerate() {
                        let line = line.trim();
                        if open.is_none() && line.starts_with(concat!("#[", "error(")) {
                            open = Some((number + 1, String::new()));
                        }
                        if let Some((start, attribute)) = &mut open {
                            attribute.push_str(line);
                            if line.ends_with(")]") {
                                let at = format!("{}:{start}", path.display());
                                found.push((at, std::mem::take(attribute)));
                                open = None;
                            }
                        }
                    }
                }
            }
        }
        found
    }

    /// The rule for new errors too: a hint goes in [`Hint::hint`], not in the message.
    #[test]
    fn no_error_attribute_in_the_workspace_carries_a_hint() {
        let attributes = error_attributes();
        assert!(attributes.len() > 50, "found only {}", attributes.len());
        let glued: Vec<&str> = attributes
            .iter()
            .filter(|(_, attribute)| attribute.contains("hint:"))
            .map(|(at, _)| at.as_str())
            .collect();
        assert!(
            glued.is_empty(),
            "move these hints into `Hint::hint`:\n{}",
            glued.join("\n")
        );
    }
}
