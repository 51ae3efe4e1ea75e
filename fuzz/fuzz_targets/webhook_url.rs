//! Webhook URLs as integrations are saved with them: an accepted URL is http(s), and its
//! text is accepted again as the same URL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanhook::domain::webhook::WebhookUrl;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = WebhookUrl::parse(text) {
        assert!(matches!(url.as_url().scheme(), "http" | "https"));
        let again = WebhookUrl::parse(url.as_str()).expect("an accepted URL parses again");
        assert_eq!(again.as_str(), url.as_str());
    }
});
