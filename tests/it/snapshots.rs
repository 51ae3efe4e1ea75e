//! Snapshots of what users see: the two webhook objects built from the captured
//! `semgrep ci` bodies (ids and times redacted), and a finding in the v1 API.

use crate::harness::{fixture, Db, TestApp};
use crate::on_both;
use serde_json::Value;

/// Drives the captured create/results/complete bodies; returns the scan id.
async fn drive(app: &TestApp, scans: &str, results: &str, complete: &str) -> i64 {
    let v = app.ci_post("/api/cli/v2/scans", &fixture(scans)).await;
    let id = v["info"]["id"].as_i64().unwrap();
    app.ci_post(&format!("/api/agent/scans/{id}/results"), &fixture(results))
        .await;
    app.ci_post(
        &format!("/api/agent/scans/{id}/complete"),
        &fixture(complete),
    )
    .await;
    id
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

async fn webhook_objects_of_a_full_scan(db: Db) {
    let app = TestApp::spawn(db).await;
    let id = drive(
        &app,
        "01-post-scans.request.json",
        "03-post-results.request.json",
        "04-post-complete.request.json",
    )
    .await;
    let hooks = app.webhooks(id).await;
    assert_eq!(
        keys(&hooks["semgrep_scan"]["semgrep_scan"]),
        scanhook::domain::payload::SCAN_FIELDS
    );
    for f in hooks["semgrep_finding"].as_array().unwrap() {
        assert_eq!(
            keys(&f["semgrep_finding"]),
            scanhook::domain::payload::FINDING_FIELDS
        );
    }
    insta::assert_json_snapshot!("full_scan_webhooks", hooks, {
        ".semgrep_scan.semgrep_scan.id" => "[public_id]",
        ".semgrep_scan.semgrep_scan.started_at" => "[time]",
        ".semgrep_scan.semgrep_scan.completed_at" => "[time]",
        ".semgrep_finding[].semgrep_finding.start_date" => "[time]",
        ".semgrep_finding[].semgrep_finding.first_seen_scan_id" => "[public_id]",
    });
    app.stop().await;
}
on_both!(webhook_objects_of_a_full_scan);

async fn webhook_objects_of_a_diff_aware_pr_scan(db: Db) {
    let app = TestApp::spawn(db).await;
    let id = drive(
        &app,
        "diff-pr-block.post-scans.request.json",
        "diff-pr-block.post-results.request.json",
        "diff-pr-block.post-complete.request.json",
    )
    .await;
    let hooks = app.webhooks(id).await;
    insta::assert_json_snapshot!("diff_pr_scan_webhooks", hooks, {
        ".semgrep_scan.semgrep_scan.id" => "[public_id]",
        ".semgrep_scan.semgrep_scan.started_at" => "[time]",
        ".semgrep_scan.semgrep_scan.completed_at" => "[time]",
        ".semgrep_finding[].semgrep_finding.start_date" => "[time]",
        ".semgrep_finding[].semgrep_finding.first_seen_scan_id" => "[public_id]",
    });
    let findings = app.findings("").await;
    insta::assert_json_snapshot!("v1_finding", findings[0], {
        ".first_seen_scan_id" => "[public_id]",
        ".created_at" => "[time]",
        ".relevant_since" => "[time]",
        ".state_updated_at" => "[time]",
        ".id" => "[id]",
    });
    app.stop().await;
}
on_both!(webhook_objects_of_a_diff_aware_pr_scan);
