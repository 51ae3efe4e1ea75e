//! The server's connection limits, probed with raw TCP clients as an attacker would (a
//! security review found that half-sent headers and stalled bodies held connections open
//! indefinitely, and that nothing capped how many): the header timeout (also the idle
//! limit of a kept-alive connection), the body timeout and the rate floor, the connection
//! cap and the cap per address, and that ordinary traffic — kept-alive connections, slow
//! uploads that keep sending — still works. Every check waits for an event (an answer, a
//! close), never for a stretch of time: a bounded wait only turns a hang into a failure.

use crate::harness::{fixture, fixture_text, Db, TestApp};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Far longer than any limit these tests set. Not a timing goal: it only turns a server
/// that never answers or never closes into a failure instead of a hung test.
const PATIENCE: Duration = Duration::from_secs(5);

const SHORT: Duration = Duration::from_millis(300);

pub(crate) async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .expect("the listener takes the connection")
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: scanhook.test\r\n\r\n")
}

fn post_head(path: &str, token: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: scanhook.test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    )
}

/// Reads until the server closes the connection (a reset counts: the server closed it).
async fn read_to_eof(conn: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    match tokio::time::timeout(PATIENCE, conn.read_to_end(&mut got)).await {
        Ok(Ok(_)) => got,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => got,
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what}: the connection is still open after {PATIENCE:?}"),
    }
}

/// Reads one response (status line, headers, a `Content-Length` body) and leaves the
/// connection open for the next request.
pub(crate) async fn read_response(
    conn: &mut (impl tokio::io::AsyncRead + Unpin),
    what: &str,
) -> (u16, Value) {
    let mut got = Vec::new();
    let read = async {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut head = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = head.parse(&got).unwrap() {
                let body_len: usize = head
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                    .unwrap_or(0);
                if got.len() >= len + body_len {
                    let body = &got[len..len + body_len];
                    return (
                        head.code.unwrap(),
                        serde_json::from_slice(body).unwrap_or(Value::Null),
                    );
                }
            }
            let mut buf = [0u8; 8192];
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "{what}: closed before a whole response arrived");
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer after {PATIENCE:?}"))
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(answer).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_header_is_cut_off_at_the_header_timeout() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| c.header_read_timeout = SHORT).await;
    let mut conn = connect(&app).await;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: scanhook.test\r\nX-Slow: ")
        .await
        .unwrap();
    let answer = read_to_eof(&mut conn, "half a header").await;
    assert_ne!(
        status_of(&answer),
        Some(200),
        "a half request is not served"
    );
    // A connection that never sends a byte is closed too.
    let mut silent = connect(&app).await;
    read_to_eof(&mut silent, "a silent connection").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_serves_requests_in_a_row_then_idles_out() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| c.header_read_timeout = SHORT).await;
    let mut conn = connect(&app).await;
    let scan = fixture_text("01-post-scans.request.json");
    for round in 0..3 {
        conn.write_all(get("/healthz").as_bytes()).await.unwrap();
        let (status, _) = read_response(&mut conn, "GET /healthz").await;
        assert_eq!(status, 200, "round {round}");
        // A body on the same connection: the body timer wraps it and keep-alive survives.
        let request = post_head("/api/cli/v2/scans", &app.ci, scan.len()) + &scan;
        conn.write_all(request.as_bytes()).await.unwrap();
        let (status, v) = read_response(&mut conn, "POST /api/cli/v2/scans").await;
        assert_eq!(status, 200, "round {round}: {v}");
    }
    // No next request: the header timer runs from the last response, so the idle
    // connection is closed rather than held.
    let rest = read_to_eof(&mut conn, "an idle kept-alive connection").await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.body_read_timeout = SHORT;
        c.max_results_bytes = 256 * 1024 * 1024;
    })
    .await;
    let scan = app
        .ci_post("/api/cli/v2/scans", &fixture("01-post-scans.request.json"))
        .await["info"]["id"]
        .as_i64()
        .unwrap();
    let mut conn = connect(&app).await;
    // A valid CI token and scan, so the handler does read the body: 200 MB declared, one
    // byte sent.
    let head = post_head(
        &format!("/api/agent/scans/{scan}/results"),
        &app.ci,
        200_000_000,
    );
    conn.write_all(format!("{head}{{").as_bytes())
        .await
        .unwrap();
    let answer = read_to_eof(&mut conn, "a stalled body").await;
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(&answer), Some(408), "{text}");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    // The sign-in form reads its body before it knows who is asking: stalled without
    // credentials, it is cut off too.
    let mut conn = connect(&app).await;
    let head = "POST /login HTTP/1.1\r\nHost: scanhook.test\r\n\
        Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nt";
    conn.write_all(head.as_bytes()).await.unwrap();
    let answer = read_to_eof(&mut conn, "a stalled sign-in").await;
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(&answer), Some(408), "{text}");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    app.stop().await;
}

/// A body that keeps arriving, but a trickle, is cut off by the rate floor: it had
/// `body_read_timeout` + its length at `min_body_rate_kib` (here 1 s + 1 KiB at 1 KiB/s),
/// while a byte every 100 ms never lets the stall timer (1 s) fire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickling_below_the_rate_floor_gets_408() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.body_read_timeout = Duration::from_secs(1);
        c.min_body_rate_kib = 1;
    })
    .await;
    let scan = app
        .ci_post("/api/cli/v2/scans", &fixture("01-post-scans.request.json"))
        .await["info"]["id"]
        .as_i64()
        .unwrap();
    let declared = 1024;
    let (mut rx, mut tx) = connect(&app).await.into_split();
    let head = post_head(
        &format!("/api/agent/scans/{scan}/results"),
        &app.ci,
        declared,
    );
    tx.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..declared {
            if tx.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let (status, v) = read_response(&mut rx, "a trickling body").await;
    trickle.abort();
    assert_eq!(status, 408, "{v}");
    assert_eq!(v["error"]["code"], "request_timeout", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("min_body_rate_kib"),
        "the rate floor, not the stall timer, ended it: {message}"
    );
    app.stop().await;
}

/// Binds a client to `source` (another loopback address is another client) and connects.
async fn connect_from(app: &TestApp, source: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket
        .connect(app.base.trim_start_matches("http://").parse().unwrap())
        .await
        .expect("the listener takes the connection")
}

/// One address may hold `max_connections_per_ip` connections; a further one is closed as it
/// is accepted, while other addresses are served, and a place comes back as soon as the
/// server closes one of the address's connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_address_cap_are_closed() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.max_connections_per_ip = 2;
        c.trusted_proxies = scanhook::domain::client::TrustedProxies::parse("127.0.0.3").unwrap();
        // The open connections must outlive the test, idle: only the cap closes one.
        c.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut conn = connect(&app).await;
        conn.write_all(get("/healthz").as_bytes()).await.unwrap();
        assert_eq!(read_response(&mut conn, "within the cap").await.0, 200);
        open.push(conn);
    }
    // Accepted by the kernel, then closed by the server without an answer.
    let mut third = connect(&app).await;
    let answer = read_to_eof(&mut third, "a third connection from one address").await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    // Another address is another client.
    let mut other = connect_from(&app, "127.0.0.2").await;
    other.write_all(get("/healthz").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut other, "another address").await.0, 200);
    // The server closes one of the two (the client asked it to): its place is free by the
    // time the client sees the end of it.
    open[0]
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: scanhook.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let last = read_to_eof(&mut open[0], "a connection closed after its answer").await;
    assert_eq!(status_of(&last), Some(200));
    let mut again = connect(&app).await;
    again.write_all(get("/healthz").as_bytes()).await.unwrap();
    assert_eq!(
        read_response(&mut again, "after a place came back").await.0,
        200
    );
    // The other one is still served.
    open[1].write_all(get("/healthz").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut open[1], "still open").await.0, 200);
    // A trusted proxy speaks for many clients: its connections are not capped per address.
    let mut proxied = Vec::new();
    for n in 0..3 {
        let mut conn = connect_from(&app, "127.0.0.3").await;
        conn.write_all(get("/healthz").as_bytes()).await.unwrap();
        assert_eq!(
            read_response(&mut conn, "from the proxy").await.0,
            200,
            "{n}"
        );
        proxied.push(conn);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_that_keeps_sending_is_not_cut_off() {
    let timeout = Duration::from_secs(1);
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.body_read_timeout = timeout;
        // The rate floor at its lowest: the body may take 1 s + 1 s per KiB (some 11 s).
        c.min_body_rate_kib = 1;
    })
    .await;
    let scan = app
        .ci_post("/api/cli/v2/scans", &fixture("01-post-scans.request.json"))
        .await;
    let id = scan["info"]["id"].as_i64().unwrap();
    let results = fixture_text("03-post-results.request.json");
    let mut conn = connect(&app).await;
    let head = post_head(
        &format!("/api/agent/scans/{id}/results"),
        &app.ci,
        results.len(),
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // The client's pace, not a wait for the server: each pause is well inside the body
    // timeout, the whole upload (14 pauses) well beyond it.
    let pieces = 15;
    let pause = timeout / 10;
    for piece in results.as_bytes().chunks(results.len().div_ceil(pieces)) {
        conn.write_all(piece).await.unwrap();
        tokio::time::sleep(pause).await;
    }
    let (status, v) = read_response(&mut conn, "a slow upload").await;
    assert_eq!(status, 200, "{v}");
    assert!(v["task_id"].is_string(), "{v}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.max_connections = 2;
        // The two open connections must outlive the test, idle.
        c.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    // Answered, so both are accepted and hold the two places.
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut conn = connect(&app).await;
        conn.write_all(get("/healthz").as_bytes()).await.unwrap();
        assert_eq!(read_response(&mut conn, "within the cap").await.0, 200);
        open.push(conn);
    }
    // The kernel completes the third handshake, but the server does not accept it.
    let mut third = connect(&app).await;
    third.write_all(get("/healthz").as_bytes()).await.unwrap();
    // Ordered, not timed: requests sent after the third's are answered on the open
    // connections, and still nothing has come back on the third. (A server without the
    // cap would have answered it by then; one with it cannot while the two stay open.)
    for round in 0..3 {
        for conn in open.iter_mut() {
            conn.write_all(get("/healthz").as_bytes()).await.unwrap();
            assert_eq!(read_response(conn, "a later request").await.0, 200);
        }
        let mut byte = [0u8; 1];
        match third.try_read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("round {round}: the connection beyond the cap was served: {other:?}"),
        }
    }
    drop(open.remove(0));
    let (status, _) = read_response(&mut third, "after one closed").await;
    assert_eq!(status, 200);
    // The one still open is still served.
    open[0].write_all(get("/healthz").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut open[0], "still open").await.0, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_closes_idle_connections() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.header_read_timeout = Duration::from_secs(60)
    })
    .await;
    let mut idle = connect(&app).await;
    idle.write_all(get("/healthz").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut idle, "before stop").await.0, 200);
    // Within PATIENCE, far below the 60 s idle limit and the 30 s drain: an idle
    // connection does not hold up a stop.
    tokio::time::timeout(PATIENCE, app.stop())
        .await
        .expect("stop waits for no idle connection");
    read_to_eof(&mut idle, "an idle connection at stop").await;
}

/// An answer given before its request's body was read to the end (refused for its
/// length, or for its token) says `Connection: close`, and the server closes: a client
/// told nothing would reuse the connection as it closes, and its next request would
/// fail (reqwest: `IncompleteMessage`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_body_is_read_closes_the_connection() {
    let app = TestApp::spawn(Db::Sqlite).await;
    for (what, path, token, status) in [
        ("a body over the limit", "/failure", app.ci.as_str(), 413),
        ("a wrong token", "/api/cli/v2/scans", "shk_wrong", 401),
    ] {
        let mut conn = connect(&app).await;
        conn.write_all(post_head(path, token, 1_000_000).as_bytes())
            .await
            .unwrap();
        conn.write_all(b"{").await.unwrap();
        let answer = read_to_eof(&mut conn, what).await;
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(status_of(&answer), Some(status), "{what}: {text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("\r\nconnection: close\r\n"),
            "{what}: {text}"
        );
    }
    // A body read to its end keeps the connection (the kept-alive test above posts on one).
    let scan = fixture_text("01-post-scans.request.json");
    let mut conn = connect(&app).await;
    let request = post_head("/api/cli/v2/scans", &app.ci, scan.len()) + &scan;
    conn.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut conn, "a body read whole").await.0, 200);
    conn.write_all(get("/healthz").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut conn, "the next request").await.0, 200);
    app.stop().await;
}
