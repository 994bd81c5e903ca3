//! Calendar arithmetic: the zip format stores civil time, image configs RFC 3339 text.

/// `(year, month, day, hour, minute, second)` in UTC for a Unix timestamp.
pub(crate) fn civil_from_unix(seconds: u64) -> (u16, u8, u8, u8, u8, u8) {
    let days = (seconds / 86_400) as i64;
    let rem = seconds % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u16;
    (
        year,
        month,
        day,
        (rem / 3600) as u8,
        (rem % 3600 / 60) as u8,
        (rem % 60) as u8,
    )
}

/// A Unix timestamp as RFC 3339 in UTC (`2023-11-14T22:13:20Z`), as image configs write it.
pub fn rfc3339(seconds: u64) -> String {
    let (year, month, day, hour, minute, second) = civil_from_unix(seconds);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// A Unix timestamp as RFC 2822 in UTC (`Tue, 14 Nov 2023 22:13:20 +0000`), as Debian
/// changelogs and mail headers write it.
pub fn rfc2822(seconds: u64) -> String {
    let (year, month, day, hour, minute, second) = civil_from_unix(seconds);
    // 1970-01-01 was a Thursday.
    let weekday =
        ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(seconds / 86_400 % 7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][month as usize - 1];
    format!("{weekday}, {day:02} {month} {year} {hour:02}:{minute:02}:{second:02} +0000")
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc2822_names_the_weekday() {
        assert_eq!(
            super::rfc2822(1_700_000_000),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
        assert_eq!(
            super::rfc2822(315_532_800),
            "Tue, 01 Jan 1980 00:00:00 +0000"
        );
    }

    #[test]
    fn known_dates() {
        assert_eq!(super::civil_from_unix(315_532_800), (1980, 1, 1, 0, 0, 0));
        assert_eq!(
            super::civil_from_unix(1_700_000_000),
            (2023, 11, 14, 22, 13, 20)
        );
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
