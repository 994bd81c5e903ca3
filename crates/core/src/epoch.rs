//! The one timestamp every artifact carries, and where it came from.

use serde::{Deserialize, Serialize};

/// Used when neither `SOURCE_DATE_EPOCH` nor a git commit gives a time:
/// 1980-01-01T00:00:00Z, the earliest time a zip archive can hold.
pub const FALLBACK_EPOCH: u64 = 315_532_800;

/// Where the build's timestamp came from; shown with `-v` so a user knows why two
/// machines agree (or do not).
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceDateOrigin {
    /// The `SOURCE_DATE_EPOCH` environment variable.
    Environment,
    /// The committer time of the project's last git commit.
    GitCommit,
    /// Neither was available: [`FALLBACK_EPOCH`].
    Fixed,
}

/// The timestamp written into every archive entry and passed to build backends.
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceDate {
    pub seconds: u64,
    pub origin: SourceDateOrigin,
}

impl SourceDate {
    /// Zip cannot store times before 1980: clamp for zip writers.
    pub fn zip_seconds(self) -> u64 {
        self.seconds.max(FALLBACK_EPOCH)
    }
}

impl std::fmt::Display for SourceDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origin = match self.origin {
            SourceDateOrigin::Environment => "from SOURCE_DATE_EPOCH",
            SourceDateOrigin::GitCommit => "from the last git commit",
            SourceDateOrigin::Fixed => "fixed default: no SOURCE_DATE_EPOCH and not a git checkout",
        };
        write!(f, "{} ({origin})", self.seconds)
    }
}
