//! `--retry-schedule` and the delays it gives: never a panic, nothing past the schedule,
//! and no delay past its longest step with the jitter on top, nor (with `Retry-After`)
//! shorter than the jittered step.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanhook::delivery::schedule::Schedule;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    // The first 13 bytes choose the arguments; the rest is the schedule's text.
    if data.len() < 13 {
        return;
    }
    let (args, text) = data.split_at(13);
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(schedule) = Schedule::parse(text) else {
        return;
    };
    let failed = usize::from(args[0]);
    let retry_after = (args[1] & 1 == 1).then(|| {
        Duration::from_secs(u64::from(u32::from_le_bytes(
            args[1..5].try_into().unwrap(),
        )))
    });
    // `unit` is documented as [0, 1).
    let unit = f64::from(u32::from_le_bytes(args[5..9].try_into().unwrap())) / 4_294_967_296.0;
    let Some(delay) = schedule.next_delay(failed, retry_after, unit) else {
        assert!(failed == 0 || failed > schedule.delays.len());
        return;
    };
    assert!((1..=schedule.delays.len()).contains(&failed));
    let ceiling = schedule.longest().mul_f64(1.0 + schedule.jitter);
    assert!(delay <= ceiling, "{delay:?} past {ceiling:?}");
    if let Some(ra) = retry_after {
        assert!(delay >= ra.min(schedule.longest()));
    }
});
