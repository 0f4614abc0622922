//! A NATS server of one test's own, so the test can restart it without disturbing the others.

use std::{process::Stdio, time::Duration};

use tokio::process::{Child, Command};

const NATS_SERVER: &str = "/usr/sbin/nats-server";

pub struct PrivateNats {
    pub url: String,
    port: u16,
    store: std::path::PathBuf,
    child: Child,
    extra: Extra,
}

struct Extra {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn owned(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

impl PrivateNats {
    pub async fn start() -> Self {
        Self::start_with(&[], &[]).await
    }

    /// Started with extra arguments (`-c FILE`) and environment (the passwords a file names).
    pub async fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let store = std::env::temp_dir().join(format!("consolidator-nats-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&store).unwrap();
        let extra = Extra { args: args.iter().map(|a| a.to_string()).collect(), env: owned(env) };
        let child = spawn(port, &store, &extra).await;
        Self { url: format!("nats://127.0.0.1:{port}"), port, store, child, extra }
    }

    /// Stops the server, waits a moment with it down, and starts it again on the same port and store.
    pub async fn restart(mut self) -> Self {
        self.child.kill().await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.child = spawn(self.port, &self.store, &self.extra).await;
        self
    }
}

async fn spawn(port: u16, store: &std::path::Path, extra: &Extra) -> Child {
    let child = Command::new(NATS_SERVER)
        .args(&extra.args)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store)
        .envs(extra.env.iter().cloned())
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
