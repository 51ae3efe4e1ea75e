//! When a failed message is tried again: a configurable list of delays with ±jitter, a
//! `Retry-After` that can only lengthen a delay (up to the longest step), then failure.

use std::time::Duration;

/// The retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub delays: Vec<Duration>,
    /// Fraction of each delay added or removed at random (0.2 = ±20 %).
    pub jitter: f64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::parse("5s,5m,30m,2h,5h,10h,10h").expect("the default schedule parses")
    }
}

/// The longest step a schedule may have. Past a year a retry is no retry, and an unbounded
/// step (up to `Duration::MAX`) overflowed when jitter lengthened it.
pub const MAX_STEP: Duration = Duration::from_secs(365 * 86_400);

impl Schedule {
    /// `5s,5m,30m,2h`: comma-separated durations, each at most [`MAX_STEP`].
    pub fn parse(s: &str) -> Result<Schedule, String> {
        let delays = s
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(crate::clock::parse_duration)
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() {
            return Err("the retry schedule needs at least one delay".into());
        }
        if delays.iter().any(|d| *d > MAX_STEP) {
            return Err("a retry delay must be at most 365d".into());
        }
        Ok(Schedule {
            delays,
            jitter: 0.2,
        })
    }

    /// The longest delay of the schedule: how long a `Retry-After` may hold anything.
    pub fn longest(&self) -> Duration {
        self.delays.iter().max().copied().unwrap_or_default()
    }

    /// The delay before the next attempt after `failed_attempts` failures, or `None` when the
    /// schedule is spent. `unit` is a random number in [0, 1).
    pub fn next_delay(
        &self,
        failed_attempts: usize,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> Option<Duration> {
        let base = *self.delays.get(failed_attempts.checked_sub(1)?)?;
        let factor = 1.0 + self.jitter * (2.0 * unit - 1.0);
        // `mul_f64` panics past `Duration::MAX`; a step built by hand may be that long.
        let jittered = Duration::try_from_secs_f64(base.as_secs_f64() * factor.max(0.0))
            .unwrap_or(Duration::MAX);
        let longest = self.delays.iter().max().copied().unwrap_or(base);
        Some(match retry_after {
            Some(ra) => jittered.max(ra.min(longest)),
            None => jittered,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_and_jitter_bounds() {
        let s = Schedule::default();
        assert_eq!(s.delays.len(), 7);
        assert_eq!(s.next_delay(1, None, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(s.next_delay(1, None, 0.0), Some(Duration::from_secs(4)));
        assert_eq!(s.next_delay(2, None, 0.5), Some(Duration::from_secs(300)));
        let high = s.next_delay(7, None, 0.999_999).unwrap();
        assert!(high <= Duration::from_secs(43_200) && high > Duration::from_secs(43_000));
        assert_eq!(
            s.next_delay(8, None, 0.5),
            None,
            "spent after 1 + 7 attempts"
        );
        assert_eq!(s.next_delay(0, None, 0.5), None);
    }

    #[test]
    fn retry_after_lengthens_within_bounds() {
        let s = Schedule::parse("1s,2s").unwrap();
        let ra = Some(Duration::from_secs(60));
        assert_eq!(
            s.next_delay(1, ra, 0.5),
            Some(Duration::from_secs(2)),
            "capped at the longest step"
        );
        let s = Schedule::parse("10s,1h").unwrap();
        assert_eq!(
            s.next_delay(1, Some(Duration::from_secs(1)), 0.5),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            s.next_delay(1, Some(Duration::from_secs(120)), 0.5),
            Some(Duration::from_secs(120))
        );
        assert!(Schedule::parse("").is_err());
        assert!(Schedule::parse("1s,366d").is_err());
        assert!(Schedule::parse("365d").is_ok());
        assert!(Schedule::parse("5s,soon").is_err());
    }

    /// Found by `fuzz/` (target `schedule`): a step of 5,111,111,111,111,110 hours parsed,
    /// and the first retry after it panicked in `Duration::mul_f64` when jitter made it
    /// longer still.
    #[test]
    fn fuzz_huge_step_is_refused_and_never_panics() {
        let text = "1111111111115s,5111111111111110h,10h";
        assert!(Schedule::parse(text).is_err());
        let by_hand = Schedule {
            delays: vec![Duration::MAX],
            jitter: 0.2,
        };
        assert_eq!(by_hand.next_delay(1, None, 0.99), Some(Duration::MAX));
    }
}
