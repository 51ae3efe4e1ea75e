//! Time as scanhook stores and prints it: integer microseconds since the Unix epoch in the
//! database (portable and sortable on both backends), ISO 8601 strings at the edges.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Microseconds since the Unix epoch.
pub type Micros = i64;

/// The current time in microseconds.
pub fn now() -> Micros {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as Micros
}

/// `2021-09-21T23:49:17.480929+00:00`: the shape of the seed's `started_at`.
pub fn iso(micros: Micros) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Parses a `since` value given by a user: epoch seconds or an RFC 3339 timestamp.
pub fn parse_since(s: &str) -> Option<Micros> {
    if let Ok(secs) = s.trim().parse::<f64>() {
        return Some((secs * 1_000_000.0) as Micros);
    }
    OffsetDateTime::parse(s.trim(), &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000) as Micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_has_the_seed_shape() {
        assert_eq!(
            iso(1_632_268_157_480_929),
            "2021-09-21T23:49:17.480929+00:00"
        );
    }

    #[test]
    fn since_accepts_seconds_and_rfc3339() {
        assert_eq!(parse_since("10"), Some(10_000_000));
        assert_eq!(parse_since("1970-01-01T00:00:10Z"), Some(10_000_000));
        assert_eq!(parse_since("yesterday"), None);
    }
}
