//! The OpenAPI document is served and every path it describes is a real route.

use crate::harness::{Db, TestApp};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let (status, doc) = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{}", paths.len());
    for (path, ops) in paths {
        let concrete = path
            .replace("{deployment}", &app.slug)
            .replace("{scan_id}", "1")
            .replace("{unique_id}", "u")
            .replace("{platform}", "x")
            .replace("{rule_id}", "r")
            .replace("{id}", "int_x")
            .replace("{mode}", "block")
            .replace("{msg_id}", "msg_x");
        for method in ops.as_object().unwrap().keys() {
            let m: Method = method.to_uppercase().parse().unwrap();
            let resp = app
                .http
                .request(m.clone(), format!("{}{}", app.base, concrete))
                .bearer_auth(&app.admin)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !text.contains("no such endpoint"),
                "{method} {path} is not routed"
            );
        }
    }
    app.stop().await;
}
