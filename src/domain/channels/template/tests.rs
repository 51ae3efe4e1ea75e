use super::*;
use serde_json::json;

fn refused(source: &str, content_type: &str) -> TemplateError {
    Template::compile(source, content_type).expect_err("the template must be refused")
}

#[test]
fn a_sample_renders_for_every_event() {
    let source = r#"{"text": {{ "[" ~ event ~ "] " ~ (body.semgrep_scan.repository or body[0].semgrep_finding.check_id or body[0].finding_fixed.path or body[0].finding_reopened.reopened_at or body[0].finding_triaged.triage_state or body[0].text) }}, "url": {{ scanhook_url }}}"#;
    let t = Template::compile(source, "application/json").unwrap();
    assert_eq!(t.content_type(), "application/json");
    assert_eq!(t.source(), source);
    let out = t.render(&Template::sample_context()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out.body).unwrap();
    assert_eq!(v["text"], "[semgrep_scan] acme/api");
    assert_eq!(v["url"], SAMPLE_SCANHOOK_URL);
    let texts: Vec<String> = sample_contexts()
        .iter()
        .map(|c| {
            let body = t.render(c).unwrap().body;
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    insta::assert_debug_snapshot!(texts);
}

#[test]
fn json_escaping_keeps_hostile_values_inside_their_strings() {
    let t = Template::compile(
        r#"{"text": {{ body.x }}, "missing": {{ body.nope.deeper }}}"#,
        "application/json",
    )
    .unwrap();
    let hostile = "\"}, \"admin\": true, \"x\": \"\n<script>";
    let out = t
        .render(&json!({"event": "semgrep_scan", "body": {"x": hostile}}))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out.body).unwrap();
    assert_eq!(v["text"], hostile);
    assert_eq!(v["missing"], serde_json::Value::Null);
    assert_eq!(v.as_object().unwrap().len(), 2);
}

#[test]
fn text_output_prints_missing_and_null_as_nothing() {
    let t = Template::compile(
        "[{{ body.semgrep_scan.pull_request_id }}|{{ body.none.at.all }}]",
        "text/plain; charset=utf-8",
    )
    .unwrap();
    let out = t.render(&Template::sample_context()).unwrap();
    assert_eq!(out.body, "[|]");
    assert_eq!(out.content_type, "text/plain; charset=utf-8");
}

#[test]
fn compile_errors_carry_their_line() {
    let e = refused("line one\nline two\n{% for %}\n", "text/plain");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.to_string().starts_with("line 3: syntax error"), "{e}");
    // An unknown filter in a branch no sample takes.
    let e = refused(
        "a\n{% if event == \"nothing\" %}\n{{ body|lenght }}\n{% endif %}",
        "text/plain",
    );
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.contains("lenght"), "{e}");
    // A render error of a sample.
    let e = refused("ok\n{{ body.semgrep_scan.repository + 1 }}", "text/plain");
    assert_eq!(e.line, Some(2), "{e}");
    let e = refused("x\n{% include \"other\" %}", "text/plain");
    assert_eq!(
        (e.line, e.message.contains("include")),
        (Some(2), true),
        "{e}"
    );
    let e = refused("{% extends \"message\" %}", "text/plain");
    assert_eq!(e.line, Some(1), "{e}");
}

#[test]
fn fuel_stops_a_loop_that_runs_too_long() {
    let e = refused(
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "text/plain",
    );
    assert!(e.message.contains("fuel"), "{e}");
    assert_eq!(e.line, Some(1));
}

#[test]
fn output_over_the_limit_is_refused() {
    let e = refused("{{ 'x' * 300000 }}", "text/plain");
    assert!(e.message.contains("256 KiB"), "{e}");
    // Just under the limit renders.
    let t = Template::compile("{{ 'x' * 262144 }}", "text/plain").unwrap();
    assert_eq!(
        t.render(&Template::sample_context()).unwrap().body.len(),
        MAX_OUTPUT
    );
    let e = refused(&"x".repeat(MAX_SOURCE + 1), "text/plain");
    assert!(e.message.contains("65536"), "{e}");
}

#[test]
fn filters_that_allocate_by_argument_refuse_large_ones() {
    for source in [
        "{{ 'a'|indent(100000000000) }}",
        "{{ 'a'|indent(width=100000000000) }}",
        "{{ body|tojson(indent=100000000000) }}",
        "{{ [1]|slice(100000000000)|list }}",
        "{{ [1]|batch(100000000000)|list }}",
        "{{ '%100000000000s'|format('a') }}",
        "{{ '{:x>100000000000}'|format('a') }}",
    ] {
        let e = refused(source, "text/plain");
        assert!(e.message.contains("over"), "{source}: {e}");
    }
    let t = Template::compile(
        "{{ 'a\nb'|indent(2) }}|{{ '%5s'|format('a') }}|{{ [1,2]|tojson(indent=2)|length }}",
        "text/plain",
    )
    .unwrap();
    assert_eq!(t.render(&json!({})).unwrap().body, "a\n  b|    a|12");
}

#[test]
fn json_content_types_must_render_json() {
    let e = refused("not json {{ event }}", "application/json");
    assert!(e.message.contains("invalid JSON"), "{e}");
    // A text content type takes any text.
    Template::compile("not json {{ event }}", "text/plain").unwrap();
}

#[test]
fn content_types_are_a_type_and_subtype() {
    for good in [
        "application/json",
        "application/vnd.acme+json; charset=utf-8",
        "text/plain",
    ] {
        assert_eq!(check_content_type(good).as_deref(), Ok(good), "{good}");
    }
    for bad in [
        "",
        "json",
        "text/",
        "/plain",
        "text/plain\r\nX-Evil: 1",
        "text/plain; a=\u{7f}",
        "te xt/plain",
        "text/plaîn",
    ] {
        assert!(check_content_type(bad).is_err(), "{bad:?}");
    }
    assert!(check_content_type(&format!("text/{}", "a".repeat(200))).is_err());
}

#[test]
fn templates_can_be_shared_between_tasks() {
    fn shared<T: Send + Sync + Clone>() {}
    shared::<Template>();
}
