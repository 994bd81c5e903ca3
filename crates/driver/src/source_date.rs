//! The build's one timestamp: `SOURCE_DATE_EPOCH`, else the project's last git commit, else a
//! fixed date.

use crate::DriverError;
use gradient_core::{SourceDate, SourceDateOrigin, FALLBACK_EPOCH};
use std::path::Path;

/// 2107-12-31T23:59:59Z, the latest time a zip entry can hold.
const LAST_ZIP_SECOND: u64 = 4_354_819_199;

/// Decide the source date for the project at `root`.
pub async fn resolve_source_date(root: &Path) -> Result<SourceDate, DriverError> {
    if let Some(value) = std::env::var_os("SOURCE_DATE_EPOCH").filter(|v| !v.is_empty()) {
        let text = value.to_string_lossy().trim().to_string();
        let seconds = text.parse::<u64>().map_err(|_| DriverError::SourceDate {
            value: text.clone(),
            why: "not a whole number of seconds since 1970",
        })?;
        // A wheel is a zip, whose entries' dates end with 2107 (backends crash past it).
        if seconds > LAST_ZIP_SECOND {
            return Err(DriverError::SourceDate {
                value: text,
                why: "after 2107-12-31, the last day a zip archive (a wheel) can record",
            });
        }
        return Ok(SourceDate {
            seconds,
            origin: SourceDateOrigin::Environment,
        });
    }
    let git = tokio::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["log", "-1", "--format=%ct", "--", "."])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await;
    if let Ok(output) = git {
        if let Ok(seconds) = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse::<u64>()
        {
            if output.status.success() {
                return Ok(SourceDate {
                    seconds,
                    origin: SourceDateOrigin::GitCommit,
                });
            }
        }
    }
    Ok(SourceDate {
        seconds: FALLBACK_EPOCH,
        origin: SourceDateOrigin::Fixed,
    })
}
