//! User text made safe for a chat line: cleaned to one line, escaped for a platform's
//! markup, and clipped to a length without splitting a character.
//!
//! Lengths are counted in UTF-16 code units: the platforms count "characters", some as
//! code points and some (JavaScript clients, discord.js) as UTF-16 units, and a UTF-16
//! count is never smaller than a code-point count, so a text within it is within both.

use crate::domain::text::is_format;

/// The length of `s` as the platforms count it (see the module's note).
pub fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

/// One tidy line of user text: controls and Unicode format characters (bidi overrides,
/// zero-width characters) dropped, every run of whitespace one space, trimmed. Line breaks
/// in a message would let it fake lines of our own.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = true;
        } else if c.is_control() || is_format(c) {
            continue;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

/// At most `max` units of `s`; a cut text ends with `…` (counted).
pub fn clip(s: &str, max: usize) -> String {
    escape_clip(s, max, |c, out| out.push(c))
}

/// `s` escaped by `escape` (which writes each character's escaped form), at most `max`
/// units long: a cut stops before a character whose escaped form would not fit and ends
/// with `…`, so no escape sequence and no character is ever split.
pub fn escape_clip(s: &str, max: usize, escape: fn(char, &mut String)) -> String {
    let mut out = String::new();
    let mut piece = String::new();
    // Where the text stood when it last had room for the ellipsis.
    let mut fits_with_ellipsis = 0;
    let mut used = 0;
    for c in s.chars() {
        piece.clear();
        escape(c, &mut piece);
        let n = units(&piece);
        if used + n > max {
            out.truncate(fits_with_ellipsis);
            if max > 0 {
                out.push('…');
            }
            return out;
        }
        out.push_str(&piece);
        used += n;
        if used < max {
            fits_with_ellipsis = out.len();
        }
    }
    out
}

/// Slack's mrkdwn escaping: `&`, `<` and `>` are the only characters Slack gives a meaning
/// beyond formatting (`<…>` makes links and mentions such as `<!channel>`).
pub fn slack_escape(c: char, out: &mut String) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        c => out.push(c),
    }
}

/// Discord markdown escaping: a backslash before every character that formats, links
/// (`[x](…)`, `<…>`), mentions (`@`, `<@…>`) or, with `:`, turns a bare `http://` into a
/// link or a word into an emoji. Discord hides the backslash before punctuation.
pub fn discord_escape(c: char, out: &mut String) {
    if matches!(
        c,
        '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']' | '(' | ')' | '<' | '>' | '@' | ':' | '#'
    ) {
        out.push('\\');
    }
    out.push(c);
}

/// Longest link target kept; a longer one is shown without its link.
pub const MAX_URL: usize = 500;

/// A link target, or `None` when `url` is not an absolute http(s) URL of at most
/// [`MAX_URL`] characters. The characters that end a link in one of the platforms' link
/// syntaxes (`|` and `>` for Slack, `(`, `)` for markdown) are percent-encoded.
pub fn link(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return None;
    }
    let mut out = String::with_capacity(parsed.as_str().len());
    for c in parsed.as_str().chars() {
        match c {
            '|' => out.push_str("%7C"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            '"' => out.push_str("%22"),
            '`' => out.push_str("%60"),
            c if c.is_ascii_graphic() => out.push(c),
            // The serialised URL is ASCII; anything else is refused rather than guessed.
            _ => return None,
        }
    }
    (out.len() <= MAX_URL).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_drops_what_hides_or_breaks_lines() {
        assert_eq!(one_line("  a\n\n b\t\u{202e}c\u{200b}d\u{7} "), "a b cd");
        assert_eq!(one_line(""), "");
    }

    #[test]
    fn clipping_counts_utf16_units_and_never_splits() {
        assert_eq!(clip("abcdef", 6), "abcdef");
        assert_eq!(clip("abcdef", 4), "abc…");
        // An emoji is two UTF-16 units: it does not fit in the last unit.
        assert_eq!(clip("ab🔴cd", 3), "ab…");
        assert_eq!(clip("ab🔴cd", 4), "ab…");
        assert_eq!(clip("ab🔴cd", 5), "ab🔴…");
        let e = escape_clip("a&b&c", 8, slack_escape);
        assert_eq!(e, "a&amp;b…");
        assert!(units(&e) <= 8);
        // Never a half escape.
        assert_eq!(escape_clip("&&&", 7, slack_escape), "&amp;…");
        assert_eq!(escape_clip("[x]", 4, discord_escape), "\\[x…");
    }

    #[test]
    fn links_are_http_and_end_nowhere_early() {
        assert_eq!(link("javascript:alert(1)"), None);
        assert_eq!(link("/relative"), None);
        assert_eq!(link(""), None);
        assert_eq!(
            link("https://x.test/a|b(c)?q=<d>").as_deref(),
            Some("https://x.test/a%7Cb%28c%29?q=%3Cd%3E")
        );
        assert_eq!(link(&format!("https://x.test/{}", "a".repeat(600))), None);
    }
}
