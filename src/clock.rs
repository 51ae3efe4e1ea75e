//! Time as scanhook stores and prints it: integer microseconds since the Unix epoch in the
//! database (portable and sortable on both backends), ISO 8601 strings at the edges; the
//! durations people type (`30s`, `5m`); and the [`Clock`] seam that lets tests move time.

use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Microseconds since the Unix epoch.
pub type Micros = i64;

/// The current time in microseconds.
pub fn now() -> Micros {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as Micros
}

/// Where time-driven code (delivery retries, retention) reads the time, so that tests can
/// drive it step by step instead of sleeping.
pub trait Clock: Send + Sync {
    fn now(&self) -> Micros;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Micros {
        now()
    }
}

/// `500ms`, `30s`, `5m`, `2h`, `1d`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 5m or 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a duration this long"))
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
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("1e400").is_err());
    }

    #[test]
    fn since_accepts_seconds_and_rfc3339() {
        assert_eq!(parse_since("10"), Some(10_000_000));
        assert_eq!(parse_since("1970-01-01T00:00:10Z"), Some(10_000_000));
        assert_eq!(parse_since("yesterday"), None);
    }
}
