//! Rule files as `POST /api/v1/rules` and `scanhook rules add` take them: any text, never a
//! panic; every rule it accepts has an id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanhook::domain::rules::parse_file;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(rules) = parse_file("fuzz.yml", text) {
        assert!(!rules.is_empty(), "an accepted file has rules");
    }
});
