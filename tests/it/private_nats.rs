//! A NATS server of one test's own, so the test can restart it without disturbing the others.

use std::{process::Stdio, time::Duration};

use tokio::process::{Child, Command};

const NATS_SERVER: &str = "/usr/sbin/nats-server";

pub struct PrivateNats {
    pub url: String,
    port: u16,
    store: std::path::PathBuf,
    child: Child,
}

impl PrivateNats {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let store = std::env::temp_dir().join(format!("consolidator-nats-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&store).unwrap();
        let child = spawn(port, &store).await;
        Self { url: format!("nats://127.0.0.1:{port}"), port, store, child }
    }

    /// Stops the server, waits a moment with it down, and starts it again on the same port and store.
    pub async fn restart(mut self) -> Self {
        self.child.kill().await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.child = spawn(self.port, &self.store).await;
        self
    }
}

async fn spawn(port: u16, store: &std::path::Path) -> Child {
    let child = Command::new(NATS_SERVER)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nats-server starts");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("private nats-server did not listen on {port}");
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
