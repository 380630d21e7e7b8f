//! Timestamps as the inventory stores them: RFC 3339, UTC, milliseconds.

use time::{OffsetDateTime, UtcOffset};

/// `2025-01-31T12:00:00.000Z`. A fixed width makes text order time order,
/// which the queries rely on. Written by hand because it cannot fail, unlike
/// the general formatter.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// The forms `parse_time` accepts, for error messages.
pub const TIME_FORMS: &str = "RFC 3339 (2025-03-01T08:00:00Z, 2025-03-01T10:00:00+02:00), a UTC date and time \
                              (2025-03-01 08:00, 2025-03-01T08:00:30), a date (2025-03-01: the end of that day, \
                              UTC) or Unix seconds (@1740816000)";

/// A time a person gives on the command line (`--at`), in one of `TIME_FORMS`; `None` when it
/// is none of them.
pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    use time::{Date, PrimitiveDateTime, Time};
    let t = text.trim();
    if let Some(secs) = t.strip_prefix('@') {
        return secs.parse::<i64>().ok().and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok());
    }
    if let Ok(at) = OffsetDateTime::parse(t, &Rfc3339) {
        return Some(at);
    }
    let spaced = t.replacen(' ', "T", 1);
    let minutes = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    for form in [minutes, seconds] {
        if let Ok(at) = PrimitiveDateTime::parse(&spaced, form) {
            return Some(at.assume_utc());
        }
    }
    let date = Date::parse(t, format_description!("[year]-[month]-[day]")).ok()?;
    let end = Time::from_hms_milli(23, 59, 59, 999).ok()?;
    Some(PrimitiveDateTime::new(date, end).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_are_read_in_every_documented_form_and_nothing_else() {
        let at = |t: &str| parse_time(t).map(format_timestamp);
        assert_eq!(at("2025-03-01T08:00:00Z").as_deref(), Some("2025-03-01T08:00:00.000Z"));
        assert_eq!(at("2025-03-01T10:00:00+02:00").as_deref(), Some("2025-03-01T08:00:00.000Z"));
        assert_eq!(at("2025-03-01 08:00").as_deref(), Some("2025-03-01T08:00:00.000Z"));
        assert_eq!(at("2025-03-01T08:00:30").as_deref(), Some("2025-03-01T08:00:30.000Z"));
        assert_eq!(at("2025-03-01").as_deref(), Some("2025-03-01T23:59:59.999Z"));
        assert_eq!(at("@1740816000").as_deref(), Some("2025-03-01T08:00:00.000Z"));
        for bad in ["yesterday", "2025-13-01", "01/03/2025", "@x", ""] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_utc_with_fixed_width() {
        assert_eq!(format_timestamp(datetime!(2025-01-31 14:05:06.789 +02:00)), "2025-01-31T12:05:06.789Z");
        assert_eq!(format_timestamp(datetime!(2025-01-01 00:00:00 UTC)), "2025-01-01T00:00:00.000Z");
    }
}
