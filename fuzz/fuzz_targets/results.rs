//! `/results` bodies: parsed in place, then validated, as the handler does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanhook::domain::ci::Results;

fuzz_target!(|data: &[u8]| {
    if let Ok(results) = Results::parse(data) {
        let _ = results.check();
    }
});
