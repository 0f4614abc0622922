//! A scripted HTTP/1.1 server on 127.0.0.1:0 for the client tests: answers the i-th request
//! with the i-th reply (the last one repeats), each after its delay, and records every request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// How long the server waits before it answers (a slow model).
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: String) -> Reply {
        Reply { status: 200, body, delay: Duration::ZERO }
    }

    pub fn status(status: u16, body: &str) -> Reply {
        Reply { status, body: body.to_owned(), delay: Duration::ZERO }
    }

    pub fn after(self, delay: Duration) -> Reply {
        Reply { delay, ..self }
    }
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub head: String,
    pub body: String,
}

pub struct FakeServer {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

/// Connections served before the thread stops, so a test can never leave it running forever.
const MAX_CONNECTIONS: usize = 32;

impl FakeServer {
    pub fn start(replies: Vec<Reply>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        thread::spawn(move || {
            for (i, stream) in listener.incoming().take(MAX_CONNECTIONS).enumerate() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut content_length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_lowercase().strip_prefix("content-length:") {
                        content_length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0u8; content_length];
                let _ = reader.read_exact(&mut body);
                log.lock().unwrap().push(Recorded { head, body: String::from_utf8_lossy(&body).into_owned() });
                let reply = &replies[i.min(replies.len() - 1)];
                thread::sleep(reply.delay);
                let response = format!(
                    "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    reply.status,
                    reply.body.len(),
                    reply.body
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        FakeServer { addr, requests }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}
