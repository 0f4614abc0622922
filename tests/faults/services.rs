//! Servers of the fault suite's own: a PostgreSQL cluster and a nats-server on free loopback
//! ports, and the service's processes, each of which the suite may kill and start again
//! without touching the machine's services.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn pg_bin(tool: &str) -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL is installed under /usr/lib/postgresql");
    let mut found: Vec<PathBuf> = versions.filter_map(|v| v.ok()).map(|v| v.path().join("bin").join(tool)).collect();
    found.sort();
    found.pop().expect("a PostgreSQL version")
}

/// Runs a PostgreSQL tool as the `postgres` user when this process is root (initdb refuses root).
fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn as_postgres(tool: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(pg_bin(tool));
        command
    } else {
        Command::new(pg_bin(tool))
    }
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|error| panic!("{what}: {error}"));
    assert!(output.status.success(), "{what} failed: {}", String::from_utf8_lossy(&output.stderr));
}

pub struct Postgres {
    pub port: u16,
    data: PathBuf,
}

impl Postgres {
    pub fn start(root: &Path) -> Self {
        let data = root.join("pg");
        std::fs::create_dir_all(&data).expect("pg dir");
        if is_root() {
            run(Command::new("chown").arg("-R").arg("postgres").arg(root), "chown");
        }
        let mut init = as_postgres("initdb");
        init.args(["-A", "trust", "-U", "postgres", "-D"]).arg(&data).stdout(Stdio::null());
        run(&mut init, "initdb");
        let pg = Self { port: free_port(), data };
        pg.start_again();
        pg
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn start_again(&self) {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.data.display());
        let mut start = as_postgres("pg_ctl");
        start.args(["-w", "-D"]).arg(&self.data).args(["-o", &options, "-l"]).arg(self.data.join("log")).arg("start");
        run(start.stdout(Stdio::null()), "pg_ctl start");
    }

    /// Like a crash: no checkpoint, every connection cut.
    pub fn stop_immediate(&self) {
        let mut stop = as_postgres("pg_ctl");
        stop.args(["-w", "-m", "immediate", "-D"]).arg(&self.data).arg("stop");
        run(stop.stdout(Stdio::null()), "pg_ctl stop");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut stop = as_postgres("pg_ctl");
        stop.args(["-m", "immediate", "-D"]).arg(&self.data).arg("stop").stdout(Stdio::null()).stderr(Stdio::null());
        let _ = stop.status();
    }
}

pub struct Nats {
    pub port: u16,
    /// The server's name (`--name`), as JetStream reports a stream's leader.
    pub name: String,
    store: PathBuf,
    cluster_args: Vec<String>,
    child: Option<Child>,
}

impl Nats {
    pub fn start(root: &Path) -> Self {
        let mut nats = Self::new(root, "single".into(), Vec::new());
        nats.start_again();
        nats
    }

    fn new(root: &Path, name: String, cluster_args: Vec<String>) -> Self {
        Self { port: free_port(), store: root.join(format!("nats-{name}")), name, cluster_args, child: None }
    }

    /// Three servers on loopback routed into one JetStream cluster.
    pub fn start_cluster(root: &Path) -> Vec<Self> {
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = cluster_ports.iter().map(|port| format!("nats://127.0.0.1:{port}")).collect::<Vec<_>>().join(",");
        let mut nodes: Vec<Self> = cluster_ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let args = vec![
                    "--cluster_name".to_owned(),
                    "faults".to_owned(),
                    "--cluster".to_owned(),
                    format!("nats://127.0.0.1:{port}"),
                    "--routes".to_owned(),
                    routes.clone(),
                ];
                Self::new(root, format!("n{i}"), args)
            })
            .collect();
        for node in &mut nodes {
            node.start_again();
        }
        nodes
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn start_again(&mut self) {
        let child = Command::new("/usr/sbin/nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-n", &self.name, "-js", "-sd"])
            .arg(&self.store)
            .args(&self.cluster_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on port {port}");
}

/// One process of the service (`worker` or `scheduler`), its output in a log file.
pub struct Process {
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Process {
    pub fn spawn(args: &[&str], env: &[(String, String)], log: PathBuf) -> Self {
        // A scenario's log starts empty; a restart within it appends.
        let _ = std::fs::File::create(&log);
        let mut process =
            Self { args: args.iter().map(|a| a.to_string()).collect(), env: env.to_vec(), log, child: None };
        process.start_again();
        process
    }

    pub fn start_again(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_consolidator"))
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the service starts");
        self.child = Some(child);
    }

    /// How the process ended, if it ended by itself.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|child| child.try_wait().ok().flatten())
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The service's gateway process, and an administrator's client of its HTTP API.
pub struct Gateway {
    process: Process,
    client: GatewayClient,
}

#[derive(Clone)]
pub struct GatewayClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

const GATEWAY_SECRET: &str = "the fault suite's gateway secret, 32+ bytes";

impl Gateway {
    /// Starts `consolidator gateway` on a free port and waits until it answers ready.
    pub async fn start(env: &[(String, String)], log: PathBuf) -> Result<Self, String> {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut env = env.to_vec();
        env.push(("HTTP_ADDR".to_owned(), addr.clone()));
        env.push(("JWT_SECRET".to_owned(), GATEWAY_SECRET.to_owned()));
        let process = Process::spawn(&["gateway"], &env, log);
        let claims = consolidator::gateway::auth::Claims::admin("fault-suite", vec!["*".to_owned()], 3600);
        let token = consolidator::gateway::auth::mint(GATEWAY_SECRET, &claims).map_err(|e| e.to_string())?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().map_err(|e| e.to_string())?;
        let client = GatewayClient { http, base: format!("http://{addr}"), token };
        for _ in 0..300 {
            let ready = client.http.get(format!("{}/readyz", client.base)).send().await;
            if ready.is_ok_and(|response| response.status().is_success()) {
                return Ok(Self { process, client });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("the gateway on {addr} was not ready within 30 s (see {})", process.log().display()))
    }

    pub fn client(&self) -> GatewayClient {
        self.client.clone()
    }

    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }
}

impl GatewayClient {
    /// `POST /api/v1/consolidation/trigger`: Ok on 202, the status and body otherwise.
    pub async fn trigger(&self, project_id: uuid::Uuid) -> Result<(), String> {
        let response = self
            .http
            .post(format!("{}/api/v1/consolidation/trigger", self.base))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "project_id": project_id }))
            .send()
            .await
            .map_err(|error| format!("project {project_id}: {error}"))?;
        let status = response.status();
        if status == reqwest::StatusCode::ACCEPTED {
            return Ok(());
        }
        Err(format!("project {project_id}: {status} {}", response.text().await.unwrap_or_default()))
    }
}
