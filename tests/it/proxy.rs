//! A stand-in forward proxy on 127.0.0.1:0: it records every connection and the first
//! line of what was asked, and answers 200 itself, so a test can tell whether scanhook
//! sent a delivery through it (and what the Test action would have read back).

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the proxy answers: a body a read-SSRF would leak.
pub const ANSWER: &str = "from behind the proxy";

#[derive(Clone)]
pub struct RecordingProxy {
    /// `http://127.0.0.1:PORT`, as a proxy variable or `--outbound-proxy` takes it.
    pub url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    pub async fn start() -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                // Recorded on accept: a connection counts even if nothing readable follows.
                let at = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(String::new());
                    seen.len() - 1
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head);
                    seen.lock().unwrap()[at] = text.lines().next().unwrap_or("").to_string();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ANSWER}",
                        ANSWER.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        RecordingProxy { url, requests }
    }

    /// The request line of every connection so far (empty if none was read yet).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}
