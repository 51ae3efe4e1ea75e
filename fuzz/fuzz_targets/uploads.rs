//! SARIF and `semgrep scan --json` uploads: whatever `convert` makes of a file is a body
//! that `/results` itself accepts, as `Converted` promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanhook::domain::ci::Results;
use scanhook::domain::uploads::{convert, UploadFormat};

fuzz_target!(|data: &[u8]| {
    let Ok(format) = UploadFormat::detect(data) else {
        return;
    };
    let Ok(converted) = convert(data, format) else {
        return;
    };
    for body in converted {
        let results = Results::parse(&body.results_json).expect("a converted body parses");
        results
            .check()
            .expect("a converted body passes the /results checks");
        assert_eq!(results.findings.len(), body.findings);
    }
});
