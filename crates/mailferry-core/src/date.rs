//! Internal dates (IMAP INTERNALDATE, Maildir mtime, the mbox `From ` line): an instant plus the
//! UTC offset it was given in. Equality of instants is what verification compares; the offset is
//! kept so that an IMAP → IMAP copy reproduces the original zone. A small hand-written civil
//! calendar avoids a date-time dependency for three fixed formats.

use std::fmt;

use serde::{Deserialize, Serialize};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// An instant with the UTC offset it was expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InternalDate {
    /// Seconds since the Unix epoch, UTC.
    pub timestamp: i64,
    /// The offset from UTC, in minutes, that the date was given in.
    pub offset_minutes: i16,
}

impl PartialOrd for InternalDate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InternalDate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.timestamp.cmp(&other.timestamp)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp as i64 + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Broken-down local time fields.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    weekday: usize,
}

impl InternalDate {
    /// An instant in UTC.
    pub fn from_timestamp(timestamp: i64) -> Self {
        InternalDate {
            timestamp,
            offset_minutes: 0,
        }
    }

    /// From local civil fields and an offset; `None` if a field is out of range.
    pub fn from_civil(
        year: i64,
        month: u32,
        day: u32,
        hms: (u32, u32, u32),
        offset_minutes: i16,
    ) -> Option<Self> {
        let (h, mi, s) = hms;
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        let local = days_from_civil(year, month, day) * 86_400
            + i64::from(h) * 3600
            + i64::from(mi) * 60
            + i64::from(s.min(59));
        Some(InternalDate {
            timestamp: local - i64::from(offset_minutes) * 60,
            offset_minutes,
        })
    }

    fn local(&self) -> Civil {
        let t = self.timestamp + i64::from(self.offset_minutes) * 60;
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            weekday: days.rem_euclid(7) as usize,
        }
    }

    /// IMAP `date-time`: `"25-Nov-2026 00:28:58 +0100"`.
    pub fn to_imap(&self) -> String {
        let c = self.local();
        let sign = if self.offset_minutes < 0 { '-' } else { '+' };
        let off = self.offset_minutes.unsigned_abs();
        format!(
            "{:02}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}",
            c.day,
            MONTHS[c.month as usize - 1],
            c.year,
            c.hour,
            c.minute,
            c.second,
            sign,
            off / 60,
            off % 60
        )
    }

    /// Parses an IMAP `date-time` (`" 5-Nov-2026 00:28:58 +0100"`, quotes allowed).
    pub fn parse_imap(s: &str) -> Option<Self> {
        let s = s.trim().trim_matches('"').trim();
        let (date, rest) = s.split_once(' ')?;
        let (time, zone) = rest.trim().split_once(' ')?;
        let mut d = date.split('-');
        let day: u32 = d.next()?.trim().parse().ok()?;
        let month = month_number(d.next()?)?;
        let year: i64 = d.next()?.parse().ok()?;
        let hms = parse_hms(time)?;
        let offset = parse_zone(zone.trim())?;
        Self::from_civil(year, month, day, hms, offset)
    }

    /// The asctime form used on mbox `From ` lines, in UTC: `"Wed Nov 25 00:28:58 2026"`.
    pub fn to_asctime(&self) -> String {
        let c = InternalDate::from_timestamp(self.timestamp).local();
        format!(
            "{} {} {:2} {:02}:{:02}:{:02} {}",
            WEEKDAYS[c.weekday],
            MONTHS[c.month as usize - 1],
            c.day,
            c.hour,
            c.minute,
            c.second,
            c.year
        )
    }

    /// Parses the asctime form (`"Wed Nov 25 00:28:58 2026"`, optionally with a zone or a zone
    /// name before the year, as some mbox writers do). Without a numeric zone it is UTC.
    pub fn parse_asctime(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        if parts.len() < 5 {
            return None;
        }
        let month = month_number(parts[1])?;
        let day: u32 = parts[2].parse().ok()?;
        let hms = parse_hms(parts[3])?;
        let mut offset = 0;
        let mut year = None;
        for p in &parts[4..] {
            if let Ok(y) = p.parse::<i64>()
                && p.len() == 4
            {
                year = Some(y);
            } else if let Some(o) = parse_zone(p) {
                offset = o;
            }
        }
        Self::from_civil(year?, month, day, hms, offset)
    }
}

impl fmt::Display for InternalDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_imap())
    }
}

fn month_number(name: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(name))
        .map(|i| i as u32 + 1)
}

fn parse_hms(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split(':');
    let h = it.next()?.parse().ok()?;
    let m = it.next()?.parse().ok()?;
    let sec = it.next().map_or(Some(0), |x| x.parse().ok())?;
    Some((h, m, sec))
}

fn parse_zone(z: &str) -> Option<i16> {
    let (sign, digits) = match z.as_bytes().first()? {
        b'+' => (1, &z[1..]),
        b'-' => (-1, &z[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i16 = digits[..2].parse().ok()?;
    let m: i16 = digits[2..].parse().ok()?;
    Some(sign * (h * 60 + m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imap_form_round_trips_with_offset() {
        let d = InternalDate::parse_imap("\" 5-Mar-2024 23:59:01 -0130\"").expect("parse");
        assert_eq!(d.offset_minutes, -90);
        assert_eq!(d.timestamp, 1_709_688_541);
        assert_eq!(d.to_imap(), "05-Mar-2024 23:59:01 -0130");
        assert_eq!(InternalDate::parse_imap(&d.to_imap()), Some(d));
    }

    #[test]
    fn asctime_round_trips_in_utc() {
        let d = InternalDate::from_timestamp(1_795_566_538);
        assert_eq!(d.to_asctime(), "Wed Nov 25 00:28:58 2026");
        assert_eq!(InternalDate::parse_asctime(&d.to_asctime()), Some(d));
        let z = InternalDate::parse_asctime("Thu Jan  1 01:00:00 +0100 1970").expect("zone");
        assert_eq!(z.timestamp, 0);
    }

    #[test]
    fn civil_conversion_agrees_over_four_centuries() {
        for days in (-200_000..200_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
