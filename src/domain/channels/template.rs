//! User templates for the `template` channel kind: a minijinja template over the webhook
//! body, rendered per message, its output sent (and signed) with the content type the
//! user chose.
//!
//! Sandboxed and bounded: no loader and no `include`, `import`, `extends` or `from` (a
//! template stands alone and reads no file), at most [`MAX_SOURCE`] bytes of source, [`FUEL`] instructions per
//! render (so a loop cannot run forever), [`MAX_OUTPUT`] bytes of output (the render stops
//! there and is refused), and the built-in filters whose argument sizes an allocation
//! (`indent`, `tojson(indent=…)`, `slice`, `batch`, `format`'s widths) refuse large ones.
//! What stays open: a template may still build large strings in memory before printing
//! them (minijinja caps one string repetition at 100 MB); templates are written by the
//! administrators who configure integrations, and the fuel bounds how often.

mod samples;
mod scan;

pub use samples::{sample_context, sample_contexts, SAMPLE_SCANHOOK_URL};

use minijinja::value::{Kwargs, Rest, StringInput, Value as JinjaValue};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};
use std::fmt;
use std::io::{self, Write};

/// Largest template source, in bytes.
pub const MAX_SOURCE: usize = 64 * 1024;
/// Largest rendered message, in bytes.
pub const MAX_OUTPUT: usize = 256 * 1024;
/// Instructions one render may run.
pub const FUEL: u64 = 50_000;
/// Longest content type, in bytes.
pub const MAX_CONTENT_TYPE: usize = 200;
/// Largest size a filter argument may ask for (an indent, a slice or batch count, a width).
const MAX_FILTER_SIZE: usize = 1000;
/// The template's name in its environment (errors never show it).
const NAME: &str = "message";

/// What a template renders one message from: its event type, the webhook body it would
/// otherwise be (parsed), and scanhook's public URL.
pub fn message_context(
    event: crate::domain::event_kind::EventKind,
    body: serde_json::Value,
    scanhook_url: &str,
) -> serde_json::Value {
    serde_json::json!({"event": event.as_str(), "body": body, "scanhook_url": scanhook_url})
}

/// Why a template was refused, and on which line of its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub line: Option<usize>,
    pub message: String,
}

impl TemplateError {
    fn new(message: impl Into<String>) -> Self {
        TemplateError {
            line: None,
            message: message.into(),
        }
    }

    fn from_jinja(e: &Error) -> Self {
        let message = match e.detail() {
            Some(d) => format!("{}: {d}", e.kind()),
            None => e.kind().to_string(),
        };
        TemplateError {
            line: e.line(),
            message,
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "line {n}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for TemplateError {}

/// One rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateOutput {
    pub content_type: String,
    pub body: String,
}

/// A compiled template and the content type of what it renders.
///
/// Values print as a user would expect of a notification:
/// - Under a JSON content type (one that contains `json`), every printed value is
///   JSON-encoded (minijinja's JSON auto-escaping): `{"text": {{ body.semgrep_scan.repository }}}`
///   is valid JSON whatever the repository is called; a missing or null value prints `null`.
///   `|safe` prints a string as it is.
/// - Otherwise values print as text, and a missing or null value prints nothing.
/// - Undefined values are *chainable*: `body.semgrep_scan.commit_title` on a finding
///   event, or any field an event lacks, is undefined rather than an error, so one template
///   can serve every event (`{% if event == "semgrep_scan" %}`); it is false in an `if`
///   and empty in a `for`. Calling an undefined value is still an error.
#[derive(Clone)]
pub struct Template {
    env: Environment<'static>,
    source: String,
    content_type: String,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("content_type", &self.content_type)
            .field("source_bytes", &self.source.len())
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Compiles `source` and renders every sample context once (one per event, see
    /// [`sample_contexts`]): syntax errors, unknown filters (anywhere in the source, taken
    /// or not), render errors, outputs over [`MAX_OUTPUT`] and, for a JSON content type,
    /// output that is not JSON are refused, with the line where the source has one.
    pub fn compile(source: &str, content_type: &str) -> Result<Template, TemplateError> {
        if source.len() > MAX_SOURCE {
            return Err(TemplateError::new(format!(
                "the template is {} bytes: at most {MAX_SOURCE} are allowed",
                source.len()
            )));
        }
        let content_type = check_content_type(content_type)?;
        let json = content_type.to_ascii_lowercase().contains("json");
        let mut env = environment(json);
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| TemplateError::from_jinja(&e))?;
        let names = scan::names(source);
        if let Some((tag, line)) = names
            .statements
            .iter()
            .find(|(s, _)| matches!(s.as_str(), "include" | "extends" | "import" | "from"))
        {
            return Err(TemplateError {
                line: Some(*line),
                message: format!("`{tag}` is not available: a template stands alone"),
            });
        }
        for (name, line) in names.filters {
            if !has_filter(&env, &name) {
                return Err(TemplateError {
                    line: Some(line),
                    message: format!("unknown filter: filter {name} is unknown"),
                });
            }
        }
        let template = Template {
            env,
            source: source.to_string(),
            content_type,
        };
        for sample in sample_contexts() {
            let out = template.render(&sample)?;
            if json {
                if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&out.body) {
                    return Err(TemplateError::new(format!(
                        "the content type is JSON but the {} sample renders invalid JSON \
                         (output line {}, column {}: {e})",
                        sample["event"].as_str().unwrap_or_default(),
                        e.line(),
                        e.column()
                    )));
                }
            }
        }
        Ok(template)
    }

    /// Renders one message. `context` is `{"event": "<kind name>", "body": <the webhook
    /// body as parsed JSON>, "scanhook_url": "…"}`.
    pub fn render(&self, context: &serde_json::Value) -> Result<TemplateOutput, TemplateError> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| TemplateError::from_jinja(&e))?;
        let mut out = Bounded {
            buf: Vec::new(),
            over: false,
        };
        if let Err(e) = template.render_captured_to(context, &mut out) {
            if out.over {
                return Err(TemplateError::new(format!(
                    "the output is over {} KiB",
                    MAX_OUTPUT / 1024
                )));
            }
            return Err(TemplateError::from_jinja(&e));
        }
        let body = String::from_utf8(out.buf)
            .map_err(|_| TemplateError::new("the output is not UTF-8"))?;
        Ok(TemplateOutput {
            content_type: self.content_type.clone(),
            body,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The context [`compile`](Template::compile) renders first: a `semgrep_scan` event.
    pub fn sample_context() -> serde_json::Value {
        sample_context()
    }
}

/// A content type: `type/subtype` (RFC 9110 tokens), optionally followed by `;` and
/// parameters of visible ASCII; no line breaks, at most [`MAX_CONTENT_TYPE`] bytes.
pub fn check_content_type(content_type: &str) -> Result<String, TemplateError> {
    let ct = content_type.trim();
    let refuse = |why: &str| {
        Err(TemplateError::new(format!(
            "the content type {why}: give a type/subtype such as application/json"
        )))
    };
    if ct.len() > MAX_CONTENT_TYPE {
        return refuse(&format!("is over {MAX_CONTENT_TYPE} bytes"));
    }
    let (essence, params) = ct.split_once(';').unwrap_or((ct, ""));
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    match essence.trim_end().split_once('/') {
        Some((t, sub)) if token(t) && token(sub) => {}
        _ => return refuse("is not a type/subtype"),
    }
    if !params
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    {
        return refuse("holds a control or non-ASCII character");
    }
    Ok(ct.to_string())
}

/// The sandbox: built-in filters, tests and functions, no loader, fuel, a recursion limit.
fn environment(json: bool) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(100);
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_keep_trailing_newline(true);
    let escape = if json {
        AutoEscape::Json
    } else {
        AutoEscape::None
    };
    env.set_auto_escape_callback(move |_| escape);
    env.set_formatter(|out, state, value| {
        // Text output: a missing or null value prints nothing (not "none").
        if state.auto_escape() == AutoEscape::None && (value.is_none() || value.is_undefined()) {
            return Ok(());
        }
        minijinja::escape_formatter(out, state, value)
    });
    env.add_filter("indent", indent);
    env.add_filter("tojson", tojson);
    env.add_filter("slice", slice);
    env.add_filter("batch", batch);
    env.add_filter("format", format);
    env
}

fn has_filter(env: &Environment<'static>, name: &str) -> bool {
    // minijinja looks filters up when they run; running one on `none` tells.
    let probe = format!("{{{{ none|{name} }}}}");
    match env.render_str(&probe, ()) {
        Ok(_) => true,
        Err(e) => e.kind() != ErrorKind::UnknownFilter,
    }
}

fn too_large(what: &str, n: usize) -> Result<(), Error> {
    if n > MAX_FILTER_SIZE {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("{what} {n} is over {MAX_FILTER_SIZE}"),
        ));
    }
    Ok(())
}

fn indent(
    value: StringInput<'_>,
    width: Option<usize>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: Kwargs,
) -> Result<JinjaValue, Error> {
    let w = match width {
        Some(w) => Some(w),
        None => kwargs.peek::<Option<usize>>("width")?,
    };
    too_large("the indent width", w.unwrap_or(0))?;
    minijinja::filters::indent(value, width, first, blank, kwargs)
}

fn tojson(
    value: &JinjaValue,
    indent: Option<JinjaValue>,
    kwargs: Kwargs,
) -> Result<JinjaValue, Error> {
    let i = match &indent {
        Some(i) => Some(i.clone()),
        None => kwargs.peek::<Option<JinjaValue>>("indent")?,
    };
    if let Some(n) = i.as_ref().and_then(JinjaValue::as_usize) {
        too_large("the JSON indent", n)?;
    }
    minijinja::filters::tojson(value, indent, kwargs)
}

fn slice(
    state: &State,
    value: JinjaValue,
    count: usize,
    fill: Option<JinjaValue>,
) -> Result<JinjaValue, Error> {
    too_large("the slice count", count)?;
    minijinja::filters::slice(state, value, count, fill)
}

fn batch(
    state: &State,
    value: JinjaValue,
    count: usize,
    fill: Option<JinjaValue>,
) -> Result<JinjaValue, Error> {
    too_large("the batch size", count)?;
    minijinja::filters::batch(state, value, count, fill)
}

fn format(state: &State, spec: &JinjaValue, args: Rest<JinjaValue>) -> Result<JinjaValue, Error> {
    if spec.as_str().is_some_and(wide_format) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "a format width or precision is over 999",
        ));
    }
    minijinja::filters::format(state, spec, args)
}

/// Whether a format string asks for a width or precision of four digits or more: after a
/// `%` (printf style) or the `:` of a `{…}` field, the flags, fill, alignment, width and
/// precision hold a run of more than three digits.
fn wide_format(spec: &str) -> bool {
    let chars: Vec<char> = spec.chars().collect();
    let mut in_field = false;
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '{' => in_field = true,
            '}' => in_field = false,
            _ => {}
        }
        if !(c == '%' || (c == ':' && in_field)) {
            continue;
        }
        let rest = &chars[i + 1..];
        // A fill character stands before an alignment: `{:x>9}`.
        let mut j = usize::from(rest.len() > 1 && matches!(rest[1], '<' | '>' | '^' | '='));
        let mut run = 0;
        while let Some(&c) = rest.get(j) {
            if c.is_ascii_digit() {
                run += 1;
                if run > 3 {
                    return true;
                }
            } else if "-+ #<>^=.,_".contains(c) {
                run = 0;
            } else {
                break;
            }
            j += 1;
        }
    }
    false
}

/// A writer that takes at most [`MAX_OUTPUT`] bytes, then fails the render.
struct Bounded {
    buf: Vec<u8>,
    over: bool,
}

impl Write for Bounded {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > MAX_OUTPUT {
            self.over = true;
            return Err(io::Error::other("output over the limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
