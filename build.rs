//! Marks whether the PostgreSQL test server is configured, so that the PostgreSQL tests
//! show up as *ignored* (with the reason) when it is not, never as passed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(pg_tests)");
    println!("cargo::rerun-if-env-changed=SCANHOOK_TEST_PG_URL");
    if std::env::var("SCANHOOK_TEST_PG_URL").is_ok_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=pg_tests");
    }
}
