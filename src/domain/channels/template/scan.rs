//! The filters a template names, read from its source. minijinja looks a filter up only
//! when the render reaches it, so a typo in a branch the samples do not take would first
//! fail when a real message is sent; reading the names from the source catches it when the
//! template is saved.

/// What a template's source names, each with its line, outside comments, `raw` blocks
/// and string literals.
#[derive(Debug, Default)]
pub(super) struct Names {
    /// The filters it applies (`x|name`, `{% filter name %}`).
    pub filters: Vec<(String, usize)>,
    /// The statements of its tags (`if`, `for`, `include`, …).
    pub statements: Vec<(String, usize)>,
}

pub(super) fn names(source: &str) -> Names {
    let bytes = source.as_bytes();
    let mut names = Names::default();
    let mut i = 0;
    while i + 1 < bytes.len() {
        let open = &bytes[i..i + 2];
        if open == b"{#" {
            i = find(bytes, i + 2, b"#}").map_or(bytes.len(), |at| at + 2);
        } else if open == b"{{" || open == b"{%" {
            let close: &[u8] = if open == b"{{" { b"}}" } else { b"%}" };
            let start = i + 2;
            let end = code_end(bytes, start, close);
            let code = &source[start..end];
            let words = tag_words(code);
            if open == b"{%" && words.first() == Some(&"raw") {
                i = end_of_raw(source, end);
                continue;
            }
            if open == b"{%" {
                if let Some(first) = words.first() {
                    names
                        .statements
                        .push((ident(first).to_string(), line_of(source, start)));
                }
            }
            let out = &mut names.filters;
            if open == b"{%" && words.first() == Some(&"filter") {
                if let Some(name) = words.get(1) {
                    out.push((ident(name).to_string(), line_of(source, start)));
                }
            }
            piped(source, start, end, out);
            i = (end + close.len()).min(bytes.len());
        } else {
            i += 1;
        }
    }
    names
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Where the code of a tag ends: its closing delimiter outside string literals.
fn code_end(bytes: &[u8], from: usize, close: &[u8]) -> usize {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'"' | b'\'') => i = string_end(bytes, i + 1, q),
            _ if bytes[i..].starts_with(close) => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The position after a string literal's closing quote.
fn string_end(bytes: &[u8], mut i: usize, quote: u8) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The words of a tag, past its whitespace-control marks (`{%- raw -%}`).
fn tag_words(code: &str) -> Vec<&str> {
    code.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace())
        .split_whitespace()
        .collect()
}

fn ident(s: &str) -> &str {
    let end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
        .map_or(s.len(), |(i, _)| i);
    &s[..end]
}

/// Past the `{% endraw %}` that closes a raw block opened by a tag ending at `from`.
fn end_of_raw(source: &str, from: usize) -> usize {
    let bytes = source.as_bytes();
    let mut i = from;
    while let Some(at) = find(bytes, i, b"{%") {
        let end = code_end(bytes, at + 2, b"%}");
        if tag_words(&source[at + 2..end]).first() == Some(&"endraw") {
            return (end + 2).min(bytes.len());
        }
        i = at + 2;
    }
    bytes.len()
}

/// The names after each `|` of the code in `start..end`, outside string literals.
fn piped(source: &str, start: usize, end: usize, out: &mut Vec<(String, usize)>) {
    let bytes = source.as_bytes();
    let mut i = start;
    while i < end {
        match bytes[i] {
            q @ (b'"' | b'\'') => i = string_end(bytes, i + 1, q),
            b'|' => {
                let rest = source[i + 1..end].trim_start();
                let name = ident(rest);
                if !name.is_empty() {
                    out.push((name.to_string(), line_of(source, i)));
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
}

fn line_of(source: &str, at: usize) -> usize {
    source.as_bytes()[..at]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_filters_where_they_are_applied() {
        let src = "{# x|nope #}{{ a|upper }}\n{% if b %}{{ c | lenght(1) }}{% endif %}\n\
                   {{ \"x|no\" ~ d|trim }}{% raw %}{{ e|raw_no }}{% endraw %}\n\
                   {% filter title %}x{% endfilter %}{%- set f = g|default('|') -%}";
        let read = names(src);
        let filters: Vec<(&str, usize)> =
            read.filters.iter().map(|(n, l)| (n.as_str(), *l)).collect();
        assert_eq!(
            filters,
            [
                ("upper", 1),
                ("lenght", 2),
                ("trim", 3),
                ("title", 4),
                ("default", 4)
            ]
        );
        let statements: Vec<&str> = read.statements.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(statements, ["if", "endif", "filter", "endfilter", "set"]);
    }
}
