//! The fault suite: 32 projects in flight through the service's real processes while a fault
//! hits (worker kill -9, nats-server kill -9, NATS and PostgreSQL outages, a PostgreSQL
//! immediate restart), on servers of its own. Each scenario checks from the database that every
//! job completed exactly once and left what a fault-free reference run left, that no project is
//! blocked, and reports the time from recovery to all-terminal as one JSON line.
//!
//! `cargo test --test faults` runs the short form (CI, shortened maintenance intervals);
//! `cargo test --test faults -- --long` the long one (a 60 s NATS outage, 90 s and 5 min
//! PostgreSQL outages, the default maintenance settings). `--only <scenario>` runs the reference
//! and that one scenario of the chosen form.

mod services;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use consolidator::domain::Prefix;
use consolidator::{
    bus::{
        Bus, CommandKind,
        messages::{SCHEMA_VERSION, TriggerCommand},
        streams::ConsumerSettings,
    },
    config::NatsConfig,
    store::{
        self,
        jobs::{self, NewJob, TriggerType},
        memories,
        projects::{self, NewProject},
    },
    synthetic::synthetic_memories,
};
use services::{Gateway, Nats, Postgres, Process};
use uuid::Uuid;

const PROJECTS: usize = 32;
const MEMORIES_PER_PROJECT: usize = 300;
const DIMENSION: usize = 64;
/// Triggers are published one after another over this long, so the fault meets work in flight.
const PUBLISH_SPREAD: Duration = Duration::from_secs(4);
const FAULT_AT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    WorkerKill,
    NatsKill,
    NatsOutage(Duration),
    PostgresRestart,
    PostgresOutage(Duration),
    /// On a three-node cluster with R3 streams: kill -9 of the commands stream leader's node.
    ClusterLeaderKill,
    /// On the cluster: kill -9 of the node the workers are connected to.
    ClusterWorkerNodeKill,
}

impl Fault {
    fn name(self) -> String {
        match self {
            Fault::None => "reference".into(),
            Fault::WorkerKill => "worker_kill_9".into(),
            Fault::NatsKill => "nats_kill_9_restart".into(),
            Fault::NatsOutage(d) => format!("nats_outage_{}s", d.as_secs()),
            Fault::PostgresRestart => "postgres_immediate_restart".into(),
            Fault::PostgresOutage(d) => format!("postgres_outage_{}s", d.as_secs()),
            Fault::ClusterLeaderKill => "cluster_stream_leader_kill_9".into(),
            Fault::ClusterWorkerNodeKill => "cluster_worker_node_kill_9".into(),
        }
    }

    fn clustered(self) -> bool {
        matches!(self, Fault::ClusterLeaderKill | Fault::ClusterWorkerNodeKill)
    }
}

/// How long a killed cluster node stays down before it is started again.
const NODE_DOWN: Duration = Duration::from_secs(5);

/// What one project's job left, comparable across runs (ids differ, texts do not).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProjectOutcome {
    jobs: Vec<(String, i32, i32, i32, i32, Option<i32>)>,
    audit_rows_by_operation: BTreeMap<String, i64>,
    active_texts: Vec<String>,
    active_job: bool,
}

struct Stack {
    postgres: Postgres,
    nats: Nats,
    /// Started for the first clustered scenario.
    cluster: Option<Vec<Nats>>,
    root: tempdir::Root,
}

impl Stack {
    /// The servers a scenario's clients use: every server, the one the workers are given (a
    /// seed from which they learn the others), and the stream replicas.
    fn nats_for(&mut self, fault: Fault) -> (String, String, usize) {
        if !fault.clustered() {
            return (self.nats.url(), self.nats.url(), 1);
        }
        let root = self.root.0.clone();
        let nodes = self.cluster.get_or_insert_with(|| Nats::start_cluster(&root));
        let all = nodes.iter().map(Nats::url).collect::<Vec<_>>().join(",");
        (all, nodes[1].url(), 3)
    }
}

mod tempdir {
    pub struct Root(pub std::path::PathBuf);
    impl Root {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!("consolidator-faults-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&path).expect("temp dir");
            Self(path)
        }
    }
    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// What `cargo test --test faults -- <args>` asks for. A bare argument is libtest's filter: a
/// scenario's name runs that one (like `--only`), a part of "faults" the suite, anything else
/// nothing.
struct Args {
    long: bool,
    only: Option<String>,
    run: bool,
}

fn parse_args() -> Args {
    let mut parsed = Args { long: false, only: None, run: true };
    let names: Vec<String> = faults(true).into_iter().chain(faults(false)).map(Fault::name).collect();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--long" => parsed.long = true,
            "--list" => parsed.run = false,
            "--only" => parsed.only = args.next(),
            "--skip" => parsed.run &= !args.next().is_some_and(|skipped| "faults".contains(&*skipped)),
            // libtest's options that take a value.
            "--test-threads" | "--format" | "--logfile" | "--color" | "-Z" => {
                args.next();
            }
            _ if arg.starts_with("--only=") => parsed.only = Some(arg["--only=".len()..].to_owned()),
            _ if arg.starts_with('-') => {}
            _ if names.contains(&arg) => parsed.only = Some(arg),
            _ if "faults".contains(&*arg) => {}
            _ => {
                eprintln!("fault suite: filtered out by {arg:?}");
                parsed.run = false;
            }
        }
    }
    parsed
}

fn faults(long: bool) -> Vec<Fault> {
    if long {
        vec![
            Fault::WorkerKill,
            Fault::NatsKill,
            Fault::NatsOutage(Duration::from_secs(60)),
            Fault::PostgresRestart,
            Fault::PostgresOutage(Duration::from_secs(90)),
            Fault::PostgresOutage(Duration::from_secs(300)),
            Fault::ClusterLeaderKill,
            Fault::ClusterWorkerNodeKill,
        ]
    } else {
        vec![
            Fault::WorkerKill,
            Fault::NatsKill,
            Fault::NatsOutage(Duration::from_secs(12)),
            Fault::PostgresRestart,
            Fault::PostgresOutage(Duration::from_secs(20)),
            Fault::ClusterLeaderKill,
            Fault::ClusterWorkerNodeKill,
        ]
    }
}

fn main() {
    let args = parse_args();
    if !args.run {
        return;
    }
    let faults: Vec<Fault> =
        faults(args.long).into_iter().filter(|f| args.only.as_ref().is_none_or(|name| *name == f.name())).collect();
    if faults.is_empty() {
        let names: Vec<String> = self::faults(args.long).into_iter().map(Fault::name).collect();
        eprintln!("fault suite: no scenario of this form is named {:?}; there are {names:?}", args.only);
        std::process::exit(1);
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let failures = runtime.block_on(suite(args.long, faults));
    if failures > 0 {
        eprintln!("fault suite: {failures} scenario(s) failed");
        std::process::exit(1);
    }
}

async fn suite(long: bool, faults: Vec<Fault>) -> usize {
    let root = tempdir::Root::new();
    let postgres = Postgres::start(&root.0);
    let nats = Nats::start(&root.0);
    let mut stack = Stack { postgres, nats, cluster: None, root };
    let reference = scenario(&mut stack, Fault::None, long).await.expect("the fault-free reference run");
    let mut failures = 0;
    for fault in faults {
        match scenario(&mut stack, fault, long).await {
            Ok(outcomes) if outcomes == reference => {}
            Ok(outcomes) => {
                failures += 1;
                let differing = outcomes.iter().zip(&reference).position(|(a, b)| a != b).unwrap_or(0);
                eprintln!(
                    "{}: project {differing} differs from the reference:\n  got      {:?}\n  expected {:?}",
                    fault.name(),
                    outcomes.get(differing),
                    reference.get(differing)
                );
            }
            Err(error) => {
                failures += 1;
                eprintln!("{}: {error}", fault.name());
            }
        }
    }
    failures
}

fn service_env(stack: &Stack, database: &str, prefix: &str, long: bool, nats: (&str, usize)) -> Vec<(String, String)> {
    let mut env = vec![
        ("DATABASE_URL", stack.postgres.url(database)),
        ("NATS_URL", nats.0.to_owned()),
        ("STREAM_REPLICAS", nats.1.to_string()),
        ("CONSOLIDATION_PREFIX", prefix.to_owned()),
        ("SKIP_MIGRATIONS", "true".to_owned()),
        ("RUST_LOG", std::env::var("FAULTS_RUST_LOG").unwrap_or_else(|_| "warn".to_owned())),
        // No sweep may add jobs of its own: once a year, and thresholds are far above the load.
        ("SCHEDULE", "0 0 3 1 1 *".to_owned()),
    ];
    if !long {
        for (name, value) in [
            ("MAINTENANCE_INTERVAL_SECS", "5"),
            ("PENDING_GRACE_SECS", "10"),
            ("ABANDONED_JOB_SECS", "20"),
            ("JOB_LEASE_SECS", "8"),
            ("ACK_WAIT_SECS", "10"),
        ] {
            env.push((name, value.to_owned()));
        }
    }
    env.into_iter().map(|(name, value)| (name.to_owned(), value)).collect()
}

async fn scenario(stack: &mut Stack, fault: Fault, long: bool) -> Result<Vec<ProjectOutcome>, String> {
    let name = fault.name();
    let database = format!("faults_{name}");
    let prefix = format!("f{}", &Uuid::new_v4().simple().to_string()[..10]);
    let url = stack.postgres.url(&database);
    store::db::create_database_if_missing(&url).await.map_err(|e| e.to_string())?;
    let db = store::connect(&url, 4).await.map_err(|e| e.to_string())?;
    store::db::migrate_up(&db).await.map_err(|e| e.to_string())?;
    let (all_servers, worker_server, replicas) = stack.nats_for(fault);
    let nats = NatsConfig {
        nats_url: all_servers.clone(),
        nats_creds: None,
        nats_user: None,
        nats_password: None,
        prefix: prefix.clone(),
        events_max_age_hours: 1,
        stream_replicas: replicas,
    };
    let bus = Bus::connect(&nats, Prefix::new(&prefix).map_err(|e| e.to_string())?, "fault-suite")
        .await
        .map_err(|e| e.to_string())?;
    if replicas > 1 {
        // A deployment that grows from one replica to three: the setup updates streams and
        // consumers in place (the workers, starting with STREAM_REPLICAS=3, update the consumers).
        let single = NatsConfig { stream_replicas: 1, ..nats.clone() };
        let grown_from = Bus::connect(&single, bus.prefix.clone(), "fault-suite").await.map_err(|e| e.to_string())?;
        ensure_streams(&grown_from).await?;
        let settings = ConsumerSettings { ack_wait: Duration::from_secs(30), max_deliver: 10, max_ack_pending: 64 };
        for kind in CommandKind::ALL {
            grown_from.command_consumer(kind, &settings).await.map_err(|e| e.to_string())?;
        }
    }
    ensure_streams(&bus).await?;

    // On the cluster half the triggers go through a gateway on the workers' node: it must ride
    // out that node's loss too. Their jobs are the gateway's to create.
    let mut job_ids: Vec<(Uuid, Option<Uuid>)> = Vec::new();
    for index in 0..PROJECTS {
        let project = projects::create(
            &db,
            &NewProject {
                id: Uuid::new_v4(),
                name: format!("project {index}"),
                consolidation_enabled: true,
                consolidation_threshold: 1_000_000,
                consolidation_options: serde_json::json!({}),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        let rows = synthetic_memories(MEMORIES_PER_PROJECT, DIMENSION, 1000 + index as u64);
        let mut conn = db.acquire().await.map_err(|e| e.to_string())?;
        memories::insert_batch(&mut conn, project.id, &rows).await.map_err(|e| e.to_string())?;
        if fault.clustered() && index % 2 == 0 {
            job_ids.push((project.id, None));
            continue;
        }
        let job = NewJob {
            id: Uuid::new_v4(),
            project_id: project.id,
            trigger_type: TriggerType::Manual,
            options: serde_json::json!({}),
            triggered_by: "fault-suite".into(),
            scheduled_for: None,
            plan_of: None,
        };
        jobs::create(&db, &job).await.map_err(|e| e.to_string())?;
        job_ids.push((project.id, Some(job.id)));
    }

    let env = service_env(stack, &database, &prefix, long, (&worker_server, replicas));
    let logs = std::env::temp_dir();
    let mut workers: Vec<Process> = (0..2)
        .map(|i| {
            let mut env = env.clone();
            env.push(("WORKER_ID".to_owned(), format!("fault-worker-{i}")));
            Process::spawn(&["worker"], &env, logs.join(format!("consolidator-faults-{name}-worker{i}.log")))
        })
        .collect();
    let mut scheduler =
        Process::spawn(&["scheduler"], &env, logs.join(format!("consolidator-faults-{name}-scheduler.log")));
    let mut gateway = match fault.clustered() {
        true => Some(Gateway::start(&env, logs.join(format!("consolidator-faults-{name}-gateway.log"))).await?),
        false => None,
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    let started = Instant::now();
    let publisher = tokio::spawn({
        let (bus, job_ids, gateway) = (bus.clone(), job_ids.clone(), gateway.as_ref().map(Gateway::client));
        async move {
            let pause = PUBLISH_SPREAD / PROJECTS as u32;
            let mut refused = Vec::new();
            for (project_id, job_id) in job_ids {
                match (job_id, &gateway) {
                    (Some(job_id), _) => {
                        let command = TriggerCommand {
                            schema_version: SCHEMA_VERSION,
                            job_id,
                            project_id,
                            options: None,
                            trigger_type: TriggerType::Manual,
                            triggered_by: "fault-suite".into(),
                            plan_of: None,
                        };
                        // Like another service: the publish retries within its budget (8 s),
                        // and one that still fails leaves the job pending, for maintenance.
                        let _ = bus.publish_command(CommandKind::Trigger, &job_id.to_string(), &command).await;
                    }
                    (None, Some(gateway)) => refused.extend(gateway.trigger(project_id).await.err()),
                    (None, None) => {}
                }
                tokio::time::sleep(pause).await;
            }
            refused
        }
    });
    tokio::time::sleep(FAULT_AT).await;
    let fault_started = Instant::now();
    inject(stack, &db, &bus, &mut workers, fault).await?;
    let recovered = Instant::now();
    let refused = publisher.await.map_err(|e| e.to_string())?;
    if !refused.is_empty() {
        return Err(format!("the gateway refused {} trigger(s): {refused:?}", refused.len()));
    }

    // DESIGN §4: every job terminal within two minutes of recovery.
    let limit = Duration::from_secs(120);
    let all_terminal = loop {
        let open: Option<i64> =
            sqlx::query_scalar("SELECT count(*) FROM consolidation_jobs WHERE status NOT IN ('completed', 'failed')")
                .fetch_one(&db)
                .await
                .ok();
        if open == Some(0) {
            break recovered.elapsed();
        }
        if recovered.elapsed() > limit {
            let open_jobs: Vec<(String, i32, bool)> = sqlx::query_as(
                "SELECT status, attempts, published_seq IS NOT NULL FROM consolidation_jobs
                  WHERE status NOT IN ('completed', 'failed') ORDER BY created_at",
            )
            .fetch_all(&db)
            .await
            .unwrap_or_default();
            let exited: Vec<String> = workers
                .iter_mut()
                .chain(std::iter::once(&mut scheduler))
                .chain(gateway.as_mut().map(Gateway::process))
                .filter_map(|process| {
                    let status = process.exited()?;
                    Some(format!("{} ({status})", process.log().display()))
                })
                .collect();
            return Err(format!(
                "jobs still not terminal {} s after recovery ({open:?} open; status, attempts, \
                 republished: {open_jobs:?}; processes that exited, see their logs: {exited:?})",
                limit.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    drop(workers);

    let mut outcomes = Vec::new();
    for (project_id, _) in &job_ids {
        outcomes.push(outcome(&db, *project_id).await.map_err(|e| e.to_string())?);
    }
    let completed = outcomes.iter().filter(|o| o.jobs.len() == 1 && o.jobs[0].0 == "completed").count();
    let taken_over: i64 = sqlx::query_scalar("SELECT count(*) FROM consolidation_jobs WHERE attempts > 1")
        .fetch_one(&db)
        .await
        .map_err(|e| e.to_string())?;
    let blocked = outcomes.iter().filter(|o| o.active_job).count();
    println!(
        "{}",
        serde_json::json!({
            "scenario": name,
            "projects": PROJECTS,
            "memories_per_project": MEMORIES_PER_PROJECT,
            "fault_at_s": (fault_started - started).as_secs_f64().round(),
            "fault_lasted_s": round((recovered - fault_started).as_secs_f64()),
            "recovery_to_all_terminal_s": round(all_terminal.as_secs_f64()),
            "fault_to_all_terminal_s": round((recovered - fault_started + all_terminal).as_secs_f64()),
            "projects_completed_exactly_once": completed,
            "projects_blocked": blocked,
            "jobs_claimed_more_than_once": taken_over,
        })
    );
    db.close().await;
    Ok(outcomes)
}

/// A cluster that just started is still forming (its routes connecting, its meta leader being
/// elected): the suite waits for it up to a minute.
async fn ensure_streams(bus: &Bus) -> Result<(), String> {
    let mut ensured = bus.ensure_streams(Duration::from_secs(3600)).await;
    for _ in 0..60 {
        if ensured.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        ensured = bus.ensure_streams(Duration::from_secs(3600)).await;
    }
    ensured.map_err(|e| e.to_string())
}

fn round(seconds: f64) -> f64 {
    (seconds * 10.0).round() / 10.0
}

async fn inject(
    stack: &mut Stack,
    db: &sqlx::PgPool,
    bus: &Bus,
    workers: &mut [Process],
    fault: Fault,
) -> Result<(), String> {
    match fault {
        Fault::None => {}
        Fault::WorkerKill => {
            // Mid-job: as soon as the first worker holds a running job.
            for _ in 0..200 {
                let holding: Option<i64> = sqlx::query_scalar(
                    "SELECT count(*) FROM consolidation_jobs WHERE status = 'running' AND worker_id = 'fault-worker-0'",
                )
                .fetch_one(db)
                .await
                .ok();
                if holding.is_some_and(|n| n > 0) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            workers[0].kill();
            tokio::time::sleep(Duration::from_secs(2)).await;
            workers[0].start_again();
        }
        Fault::NatsKill => {
            stack.nats.kill();
            stack.nats.start_again();
        }
        Fault::NatsOutage(length) => {
            stack.nats.kill();
            tokio::time::sleep(length).await;
            stack.nats.start_again();
        }
        Fault::PostgresRestart => {
            stack.postgres.stop_immediate();
            stack.postgres.start_again();
        }
        Fault::PostgresOutage(length) => {
            stack.postgres.stop_immediate();
            tokio::time::sleep(length).await;
            stack.postgres.start_again();
        }
        Fault::ClusterLeaderKill | Fault::ClusterWorkerNodeKill => {
            let leader = match bus.jetstream.get_stream(bus.prefix.commands_stream()).await {
                Ok(mut stream) => stream.info().await.ok().and_then(|info| info.cluster.clone()?.leader),
                Err(_) => None,
            };
            let Some(nodes) = stack.cluster.as_mut() else { return Err("no cluster is running".into()) };
            let victim = match fault {
                Fault::ClusterLeaderKill => nodes
                    .iter()
                    .position(|node| Some(&node.name) == leader.as_ref())
                    .ok_or_else(|| format!("the commands stream's leader is unknown ({leader:?})"))?,
                _ => 1,
            };
            eprintln!("{}: killing {} (stream leader {leader:?})", fault.name(), nodes[victim].name);
            nodes[victim].kill();
            tokio::time::sleep(NODE_DOWN).await;
            nodes[victim].start_again();
        }
    }
    Ok(())
}

async fn outcome(db: &sqlx::PgPool, project_id: Uuid) -> Result<ProjectOutcome, sqlx::Error> {
    let jobs: Vec<(String, i32, i32, i32, i32, Option<i32>)> = sqlx::query_as(
        "SELECT status, memories_merged, memories_archived, memories_promoted, summaries_created, memories_after
           FROM consolidation_jobs WHERE project_id = $1 ORDER BY created_at",
    )
    .bind(project_id)
    .fetch_all(db)
    .await?;
    let audit: Vec<(String, i64)> = sqlx::query_as(
        "SELECT operation, count(*) FROM consolidation_changes WHERE project_id = $1 GROUP BY 1 ORDER BY 1",
    )
    .bind(project_id)
    .fetch_all(db)
    .await?;
    let active_texts: Vec<String> = sqlx::query_scalar(
        "SELECT execution_summary FROM task_memories
          WHERE project_id = $1 AND NOT is_duplicate AND NOT is_archived ORDER BY execution_summary",
    )
    .bind(project_id)
    .fetch_all(db)
    .await?;
    let active_job = jobs::active_for_project(db, project_id).await.map_err(|e| match e {
        store::StoreError::Database(error) => error,
        other => sqlx::Error::Protocol(other.to_string()),
    })?;
    Ok(ProjectOutcome {
        jobs,
        audit_rows_by_operation: audit.into_iter().collect(),
        active_texts,
        active_job: active_job.is_some(),
    })
}
