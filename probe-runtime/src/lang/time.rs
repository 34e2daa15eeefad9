//! RFC 3339 UTC timestamps with microseconds, from `SystemTime`, without any date library.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats `t` as UTC, e.g. `2026-11-29T01:37:18.123456Z`; times before 1970 clamp to the epoch.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
///
/// Howard Hinnant's `civil_from_days`, specialised to non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of each era-year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1, [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, micros: u32) -> String {
        rfc3339(UNIX_EPOCH + Duration::new(secs, micros * 1000))
    }

    #[test]
    fn known_timestamps() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(59, 999_999), "1970-01-01T00:00:59.999999Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(951_868_800, 0), "2000-03-01T00:00:00.000000Z");
        assert_eq!(at(1_234_567_890, 123_456), "2009-02-13T23:31:30.123456Z");
        assert_eq!(at(1_709_164_800, 0), "2024-02-29T00:00:00.000000Z");
        assert_eq!(at(1_798_675_200, 0), "2026-12-31T00:00:00.000000Z");
        assert_eq!(at(4_102_444_800, 1), "2100-01-01T00:00:00.000001Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z"); // 2100 is not a leap year
        assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
    }

    #[test]
    fn sub_microsecond_is_truncated() {
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::new(1, 999)),
            "1970-01-01T00:00:01.000000Z"
        );
    }

    #[test]
    fn before_epoch_clamps() {
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(86_400)),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn every_day_of_four_centuries_is_consistent() {
        // Walk day by day from 1970 to 2400, checking the calendar advances by exactly one day.
        let (mut y, mut m, mut d) = civil_from_days(0);
        for days in 1..157_000u64 {
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let month_len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            let len = month_len[(m - 1) as usize];
            let expect = if d < len {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            let got = civil_from_days(days);
            assert_eq!(got, expect, "day {days}");
            (y, m, d) = got;
        }
    }
}
