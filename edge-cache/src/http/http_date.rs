//! HTTP-date parsing (RFC 9110 §5.6.7) as a recipient must do it.
//!
//! All three forms are read: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`),
//! the obsolete RFC 850 form (`Sunday, 06-Nov-94 08:49:37 GMT`, its
//! two-digit year resolved by the 50-year rule) and asctime
//! (`Sun Nov  6 08:49:37 1994`, day padded with a space).
//!
//! Lenient where the RFC asks recipients to be robust: day names, month
//! names and `GMT` in any case, and a day name that does not match the date
//! is ignored (the date decides). Strict where the grammar is: exactly one
//! space between parts (asctime's padded day aside), a comma after the day
//! name in the two forms that have one, spaces (not dashes) in IMF-fixdate,
//! two-digit hours, minutes and seconds, four-digit years outside RFC 850,
//! only `GMT` as the zone, and every field in range (`31 Feb` is no date).
//!
//! Dates before 1970 count as invalid: `SystemTime` cannot hold them on
//! `wasm32-wasip2`, and every caller treats an invalid date the safe way
//! (an `Expires` is already expired, a validator is absent, a precondition
//! is ignored).

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::AsHeaderName;

const SHORT_DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses an HTTP-date, resolving an RFC 850 two-digit year against the
/// wall clock. `None` for anything that is not one.
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    parse_http_date_at(text, SystemTime::now())
}

/// An HTTP-date field, if present exactly once and valid (RFC 9111 §4.2:
/// a duplicated date is as good as invalid).
pub fn header_date(headers: &HeaderMap, name: impl AsHeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_http_date(first.to_str().ok()?)
}

/// `at` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form
/// a sender generates (RFC 9110 §5.6.7), in whole seconds.
pub fn format_http_date(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs()) as i64;
    let (days, time) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday, three days after a Monday.
    let weekday = SHORT_DAYS[(days + 3).rem_euclid(7) as usize];
    let month = MONTHS[month as usize - 1];
    let (hour, minute, second) = (time / 3600, time % 3600 / 60, time % 60);
    format!("{weekday}, {day:02} {month} {year:04} {hour:02}:{minute:02}:{second:02} GMT")
}

/// [`parse_http_date`] with `now` as the reference for the 50-year rule.
pub fn parse_http_date_at(text: &str, now: SystemTime) -> Option<SystemTime> {
    let text = text.trim_matches([' ', '\t']);
    if !text.is_ascii() {
        return None;
    }
    let civil = match text.split_once(',') {
        Some((day, rest)) if is_one_of(day, &SHORT_DAYS) => imf_fixdate(rest.as_bytes())?,
        Some((day, rest)) if is_one_of(day, &LONG_DAYS) => rfc850(rest.as_bytes(), now)?,
        Some(_) => return None,
        None => asctime(text.as_bytes())?,
    };
    civil.to_system_time()
}

/// A date and time of day as written, not yet checked for range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Civil {
    fn to_system_time(self) -> Option<SystemTime> {
        let in_range = (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour <= 23
            && self.minute <= 59
            // 60 is a leap second (RFC 9110 §5.6.7).
            && self.second <= 60;
        if !in_range || self.year < 1970 {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let seconds = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        let seconds = u64::try_from(seconds).ok()?;
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
    }

    fn of(time: SystemTime) -> Civil {
        let seconds = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()) as i64;
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        let of_day = seconds.rem_euclid(86_400) as u32;
        Civil {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
        }
    }
}

/// ` DD Mon YYYY HH:MM:SS GMT` (what follows `day-name ","`).
fn imf_fixdate(b: &[u8]) -> Option<Civil> {
    if b.len() != 25 || b[0] != b' ' || b[3] != b' ' || b[7] != b' ' || b[12] != b' ' {
        return None;
    }
    let (hour, minute, second) = time_of_day(&b[13..])?;
    Some(Civil {
        day: digits(&b[1..3])?,
        month: month(&b[4..7])?,
        year: i64::from(digits(&b[8..12])?),
        hour,
        minute,
        second,
    })
}

/// ` DD-Mon-YY HH:MM:SS GMT` (what follows `day-name-l ","`).
fn rfc850(b: &[u8], now: SystemTime) -> Option<Civil> {
    if b.len() != 23 || b[0] != b' ' || b[3] != b'-' || b[7] != b'-' || b[10] != b' ' {
        return None;
    }
    let (hour, minute, second) = time_of_day(&b[11..])?;
    let mut civil = Civil {
        day: digits(&b[1..3])?,
        month: month(&b[4..7])?,
        year: 0,
        hour,
        minute,
        second,
    };
    // §5.6.7: a two-digit year that appears to be more than 50 years in the
    // future is the most recent past year with those digits. Read it as the
    // year within fifty years either side of now.
    let now = Civil::of(now);
    civil.year = now.year - now.year.rem_euclid(100) + i64::from(digits(&b[8..10])?);
    let ahead = Civil {
        year: now.year + 50,
        ..now
    };
    let behind = Civil {
        year: now.year - 50,
        ..now
    };
    if civil > ahead {
        civil.year -= 100;
    } else if civil <= behind {
        civil.year += 100;
    }
    Some(civil)
}

/// `Www Mon DD HH:MM:SS YYYY`, the day two digits or a space and one.
fn asctime(b: &[u8]) -> Option<Civil> {
    if b.len() != 24 || b[3] != b' ' || b[7] != b' ' || b[10] != b' ' || b[19] != b' ' {
        return None;
    }
    if !is_one_of(std::str::from_utf8(&b[..3]).ok()?, &SHORT_DAYS) {
        return None;
    }
    let day = match b[8] {
        b' ' => digits(&b[9..10])?,
        _ => digits(&b[8..10])?,
    };
    let (hour, minute, second) = time_of_day_only(&b[11..19])?;
    Some(Civil {
        day,
        month: month(&b[4..7])?,
        year: i64::from(digits(&b[20..24])?),
        hour,
        minute,
        second,
    })
}

/// `HH:MM:SS GMT`.
fn time_of_day(b: &[u8]) -> Option<(u32, u32, u32)> {
    if b.len() != 12 || b[8] != b' ' || !b[9..].eq_ignore_ascii_case(b"GMT") {
        return None;
    }
    time_of_day_only(&b[..8])
}

/// `HH:MM:SS`.
fn time_of_day_only(b: &[u8]) -> Option<(u32, u32, u32)> {
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    Some((digits(&b[0..2])?, digits(&b[3..5])?, digits(&b[6..8])?))
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

fn month(b: &[u8]) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.as_bytes().eq_ignore_ascii_case(b))
        .map(|i| i as u32 + 1)
}

fn is_one_of(name: &str, names: &[&str]) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1994-11-06 08:49:37 UTC, RFC 9110's example.
    const EXAMPLE: u64 = 784_111_777;
    /// 2026-03-01 00:00:00 UTC: "now" for the 50-year rule.
    const NOW: u64 = 1_772_323_200;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn parse(text: &str) -> Option<u64> {
        parse_http_date_at(text, at(NOW))
            .map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs())
    }

    #[test]
    fn duplicated_dates_are_invalid() {
        let h = crate::test_support::headers(&[
            ("expires", "Sun, 06 Nov 1994 08:50:37 GMT"),
            ("expires", "Sun, 06 Nov 1994 08:51:37 GMT"),
        ]);
        assert_eq!(header_date(&h, "expires"), None);
    }

    #[test]
    fn the_three_forms_in_any_case_and_with_any_weekday() {
        let table = [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun Nov 06 08:49:37 1994",
            // Case of day, month and zone does not matter.
            "SUN, 06 NOV 1994 08:49:37 gmt",
            "sun, 06 nov 1994 08:49:37 gMT",
            "SUNDAY, 06-nov-94 08:49:37 Gmt",
            "sUN noV  6 08:49:37 1994",
            // A day name that does not match the date is ignored.
            "Thu, 06 Nov 1994 08:49:37 GMT",
            "Monday, 06-Nov-94 08:49:37 GMT",
            "Fri Nov  6 08:49:37 1994",
            // Surrounding whitespace is not part of the field value.
            "  Sun, 06 Nov 1994 08:49:37 GMT\t",
        ];
        for text in table {
            assert_eq!(parse(text), Some(EXAMPLE), "{text:?}");
        }
    }

    #[test]
    fn what_the_grammar_forbids_is_no_date() {
        let table = [
            // Zones other than GMT.
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 AEST",
            "Sun, 06 Nov 1994 08:49:37 +0000",
            "Sun, 06 Nov 1994 08:49:37",
            // Missing comma, dashes in IMF-fixdate, spaces in RFC 850.
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sun, 06-Nov-1994 08:49:37 GMT",
            "Sunday, 06 Nov 94 08:49:37 GMT",
            // Two-digit year outside RFC 850; four-digit year inside it.
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            // Short and long day names in the wrong form, unknown names.
            "Sun, 06-Nov-94 08:49:37 GMT",
            "Sunday, 06 Nov 1994 08:49:37 GMT",
            "Sunday Nov  6 08:49:37 1994",
            "Sonntag, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 November 1994 08:49:37 GMT",
            "Sun, 06 Nox 1994 08:49:37 GMT",
            // One-digit fields, periods, runs of spaces, tabs.
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun Nov 6 08:49:37 1994",
            "Sun, 06 Nov 1994 08.49.37 GMT",
            "Sun, 06  Nov  1994 08:49:37 GMT",
            "Sun,  06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37  GMT",
            "Sun  Nov  6 08:49:37 1994",
            "Sun Nov   6 08:49:37 1994",
            "Sun,\t06 Nov 1994 08:49:37 GMT",
            // asctime with a zone, signs, non-ASCII.
            "Sun Nov  6 08:49:37 1994 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT\u{a0}x",
            "Sün, 06 Nov 1994 08:49:37 GMT",
            // Out of range.
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1995 08:49:37 GMT",
            "Mon, 29 Feb 2100 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 08:49:61 GMT",
            "Sun Nov 32 08:49:37 1994",
            // Before 1970.
            "Wed, 31 Dec 1969 23:59:59 GMT",
            // Not dates at all.
            "",
            "0",
            "-1",
            ",",
            "Sun,",
            "yesterday",
        ];
        for text in table {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn edges_of_the_calendar() {
        let table = [
            ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
            ("Thu, 29 Feb 2024 12:00:00 GMT", 1_709_208_000),
            ("Tue, 29 Feb 2000 00:00:00 GMT", 951_782_400),
            ("Tue, 19 Jan 2038 03:14:08 GMT", 2_147_483_648),
            ("Fri, 31 Dec 9999 23:59:59 GMT", 253_402_300_799),
            // A leap second reads as the second after :59.
            ("Sat, 31 Dec 2016 23:59:60 GMT", 1_483_228_800),
        ];
        for (text, secs) in table {
            assert_eq!(parse(text), Some(secs), "{text:?}");
        }
    }

    #[test]
    fn rfc850_years_fall_within_fifty_years_of_now() {
        let year = |text: &str| parse(text).map(|secs| Civil::of(at(secs)).year);
        // Now is 2026-03-01.
        assert_eq!(year("Thursday, 18-Aug-50 02:01:18 GMT"), Some(2050));
        assert_eq!(year("Monday, 01-Jan-00 00:00:00 GMT"), Some(2000));
        assert_eq!(year("Sunday, 28-Feb-76 23:59:59 GMT"), Some(2076));
        // More than 50 years ahead: the past year with those digits.
        assert_eq!(year("Monday, 02-Mar-76 00:00:00 GMT"), Some(1976));
        assert_eq!(year("Wednesday, 01-Jan-99 00:00:00 GMT"), Some(1999));
        // Far from now the window moves with it.
        let in_2090 = at(days_from_civil(2090, 1, 1) as u64 * 86_400);
        let parsed = parse_http_date_at("Monday, 01-Jan-10 00:00:00 GMT", in_2090).unwrap();
        assert_eq!(Civil::of(parsed).year, 2110);
        // 29 Feb is checked in the year the rule chose.
        assert_eq!(year("Tuesday, 29-Feb-00 00:00:00 GMT"), Some(2000));
        assert_eq!(year("Friday, 29-Feb-01 00:00:00 GMT"), None);
    }

    #[test]
    fn civil_conversions_round_trip() {
        for days in [-719_468, -1, 0, 1, 11_016, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn agrees_with_httpdate_on_what_it_formats() {
        for secs in [
            0,
            1,
            784_111_777,
            1_700_000_000,
            4_102_444_800,
            253_402_300_799,
        ] {
            let formatted = httpdate::fmt_http_date(at(secs));
            assert_eq!(parse(&formatted), Some(secs), "{formatted}");
            assert_eq!(format_http_date(at(secs)), formatted);
        }
    }
}
