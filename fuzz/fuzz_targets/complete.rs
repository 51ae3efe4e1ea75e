//! `/complete` bodies, read as the API reads JSON bodies (`edge::parse_json`, which retries
//! with whole numbers as integers), then checked for nesting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanhook::domain::ci::{value_depth, Complete, MAX_STATS_DEPTH};

fuzz_target!(|data: &[u8]| {
    if let Ok(complete) = scanhook::edge::parse_json::<Complete>(data) {
        let depth = value_depth(&complete.stats);
        assert_eq!(complete.check().is_ok(), depth <= MAX_STATS_DEPTH);
    }
});
