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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_utc_with_fixed_width() {
        assert_eq!(format_timestamp(datetime!(2025-01-31 14:05:06.789 +02:00)), "2025-01-31T12:05:06.789Z");
        assert_eq!(format_timestamp(datetime!(2025-01-01 00:00:00 UTC)), "2025-01-01T00:00:00.000Z");
    }
}
