//! Text that people will read back: names shown in the UI and the logs, repository and ref
//! names from CI clients. Control characters forge log lines and break terminals; Unicode
//! format characters (bidi overrides such as U+202E, zero-width joiners) make a name show
//! as something it is not. Neither has a place in a name.

/// Unicode format characters (general category Cf), as of Unicode 15.
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// A Unicode format character (bidi controls, zero-width characters, …).
pub fn is_format(c: char) -> bool {
    let c = c as u32;
    FORMAT.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// Whether `s` holds a character that has no place in a name: a control or a format
/// character.
pub fn has_hidden(s: &str) -> bool {
    s.chars().any(|c| c.is_control() || is_format(c))
}

/// Whether free text (a commit title, an author's name) holds what it must not: NUL, a
/// control character other than tab and line breaks, or a bidi override.
pub fn has_forbidden_in_text(s: &str) -> bool {
    s.chars()
        .any(|c| (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || is_format(c))
}

/// A bidi embedding, override or isolate (U+202A–U+202E, U+2066–U+2069): text after one
/// shows in another order than it is stored in ("Trojan Source").
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The first character of a string sent by a CI client that has no place in what is stored
/// and shown: a C0 control (NUL, ESC, …; tab and line breaks too unless `line_breaks`) or a
/// bidi control. PostgreSQL refuses NUL in text outright, the others forge log lines and
/// hide code in what a reviewer reads.
pub fn first_forbidden_in_upload(s: &str, line_breaks: bool) -> Option<char> {
    s.chars().find(|&c| {
        (c <= '\u{1F}' && !(line_breaks && matches!(c, '\t' | '\n' | '\r'))) || is_bidi_control(c)
    })
}

/// A name people give (integrations, tokens, policies): trimmed, 1 to 200 characters,
/// nothing hidden.
pub fn check_name(name: &str) -> Result<&str, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err("the name must be 1 to 200 characters".into());
    }
    if has_hidden(name) {
        return Err(
            "the name must not hold control or invisible formatting characters (such as U+202E)"
                .into(),
        );
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_hide_nothing() {
        assert_eq!(check_name("  Alerts "), Ok("Alerts"));
        assert_eq!(check_name("Équipe sécurité"), Ok("Équipe sécurité"));
        for bad in [
            "",
            "a\nb",
            "a\u{202e}b",
            "a\u{200b}b",
            "a\u{0}b",
            "a\u{1b}[31mb",
            &"x".repeat(201),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(!has_forbidden_in_text("fix: a\n\nlonger\tbody"));
        assert!(has_forbidden_in_text("a\u{0}b"));
        assert!(has_forbidden_in_text("a\u{1b}[2Jb"));
        assert!(has_forbidden_in_text("a\u{2066}b"));
    }

    #[test]
    fn uploads_refuse_c0_and_bidi_controls() {
        assert_eq!(first_forbidden_in_upload("src/app.py", false), None);
        assert_eq!(first_forbidden_in_upload("Équipe \u{200d} ok", false), None);
        assert_eq!(first_forbidden_in_upload("a\tb\r\nc", true), None);
        assert_eq!(first_forbidden_in_upload("a\tb", false), Some('\t'));
        assert_eq!(first_forbidden_in_upload("a\u{0}b", true), Some('\u{0}'));
        assert_eq!(
            first_forbidden_in_upload("a\u{1b}[2J", true),
            Some('\u{1b}')
        );
        for c in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}') {
            assert_eq!(first_forbidden_in_upload(&format!("x{c}y"), true), Some(c));
        }
        assert_eq!(first_forbidden_in_upload("\u{2029}\u{206a}", true), None);
    }
}
