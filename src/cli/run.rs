//! What each subcommand does: start components, migrate, import and export, demo, watch, token.

use anyhow::Context;
use consolidator::{
    app::{self, Components},
    bus,
    config::{self, DatabaseConfig},
    demo,
    domain::JobEventKind,
    gateway::auth,
    interchange, store, watch,
};

use super::{Cli, Command, MigrateAction};

/// How long `demo` and `watch` wait for the streams a worker creates.
const BIND_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        let cli = self;
        match cli.command {
            Command::Gateway { database, nats, gateway, embedding, retention } => {
                let components =
                    Components { gateway: Some(gateway), worker: None, scheduler: None, retention, embedding };
                app::run(database, nats, components).await
            }
            Command::Worker { database, nats, worker, retention } => {
                let embedding = worker.embedding.clone();
                let components =
                    Components { gateway: None, worker: Some(worker), scheduler: None, retention, embedding };
                app::run(database, nats, components).await
            }
            Command::Scheduler { database, nats, scheduler, retention } => {
                let components = Components {
                    gateway: None,
                    worker: None,
                    scheduler: Some(scheduler),
                    retention,
                    embedding: Default::default(),
                };
                app::run(database, nats, components).await
            }
            Command::All { database, nats, mut gateway, worker, scheduler, local_secret, retention } => {
                if let Some(access) = app::local_development_access(&mut gateway, &local_secret)? {
                    eprintln!("{}", access.announcement());
                }
                // One EMBEDDING_* for both: the worker's.
                let embedding = worker.embedding.clone();
                let components = Components {
                    gateway: Some(gateway),
                    worker: Some(worker),
                    scheduler: Some(scheduler),
                    retention,
                    embedding,
                };
                app::run(database, nats, components).await
            }
            Command::Setup { database, nats } => {
                app::connect_database(&database).await?;
                let bus = app::connect_bus(&nats, "consolidator-setup", app::StreamAccess::Manage).await?;
                eprintln!(
                    "migrations applied; streams {} and {} ready",
                    bus.prefix.commands_stream(),
                    bus.prefix.events_stream()
                );
                Ok(())
            }
            Command::Migrate { database, action } => migrate(database, action).await,
            Command::Asyncapi { prefix, out } => {
                let prefix = consolidator::domain::Prefix::new(&prefix)
                    .map_err(|message| anyhow::anyhow!("invalid --prefix: {message}"))?;
                let text =
                    bus::asyncapi::to_text(&bus::asyncapi::document(&bus::asyncapi::Layout::with_defaults(prefix)));
                match out {
                    Some(path) => std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?,
                    None => {
                        use std::io::Write;
                        std::io::stdout().lock().write_all(text.as_bytes()).context("writing the document")?;
                    }
                }
                Ok(())
            }
            Command::Import { database, embedding, project, file } => {
                embedding.validate()?;
                let db = app::connect_database(&database).await?;
                let reader = std::io::BufReader::new(
                    std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?,
                );
                let embedder = consolidator::llm::TextEmbedder::from_config(&embedding);
                let imported = interchange::import_embedding(&db, project, reader, embedder.as_ref()).await?;
                eprintln!(
                    "imported {} memories into project {project} ({} embedded by {})",
                    imported.count,
                    imported.embedded,
                    consolidator::llm::texts::SETTING
                );
                if let Some(warning) = imported.warning {
                    eprintln!("warning: {warning}");
                }
                Ok(())
            }
            Command::Export { database, project, out } => {
                let db = app::connect_database(&database).await?;
                let count = match out {
                    Some(path) => {
                        let file =
                            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                        interchange::export(&db, project, std::io::BufWriter::new(file)).await?
                    }
                    None => interchange::export(&db, project, std::io::stdout().lock()).await?,
                };
                eprintln!("exported {count} memories of project {project}");
                Ok(())
            }
            Command::Demo { database, nats, dry_run, gateway_url, http_addr, timeout_secs } => {
                let db = app::connect_database(&database).await?;
                let bus = app::connect_bus(&nats, "consolidator-demo", app::StreamAccess::Bind(BIND_PATIENCE)).await?;
                let base_url = gateway_url.unwrap_or_else(|| config::local_url(http_addr));
                let base_url = base_url.trim_end_matches('/').to_owned();
                let options = demo::DemoOptions {
                    dry_run,
                    progress_bar: true,
                    patience: std::time::Duration::from_secs(timeout_secs),
                };
                eprintln!("loading {} memories into a new project and triggering a job...", demo::DATA.lines().count());
                let run = demo::run(&db, &bus, &options).await?;
                println!("\n{}", run.report);
                let program = std::env::args().next().unwrap_or_else(|| "consolidator".to_owned());
                println!("{}", run.next_steps(&base_url, &program));
                Ok(())
            }
            Command::Watch { nats, job_id, json, timeout_secs } => {
                let bus =
                    app::connect_bus(&nats, "consolidator-watch", app::StreamAccess::BindEvents(BIND_PATIENCE)).await?;
                let patience = timeout_secs.map(std::time::Duration::from_secs);
                let end = match watch::run(&bus, job_id, json, patience, &mut std::io::stdout().lock()).await {
                    // The reader went away (`watch --json ID | head`): nothing left to tell.
                    Err(watch::WatchError::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                        return Ok(());
                    }
                    ended => ended?,
                };
                if end.event != JobEventKind::Completed {
                    anyhow::bail!("{}", watch::summary(&end));
                }
                Ok(())
            }
            #[cfg(feature = "bench")]
            Command::Bench { kind } => super::bench::run(kind).await,
            #[cfg(not(feature = "bench"))]
            Command::Bench { .. } => anyhow::bail!(
                "this binary was built without the benchmarks: build it with `cargo build --release --features bench`"
            ),
            Command::Token { jwt_secret, local_secret, sub, projects, role, ttl_secs, issuer, audience } => {
                let secret = app::token_secret(jwt_secret, &local_secret)?;
                let claims = auth::Claims {
                    role: Some(role),
                    iss: issuer,
                    aud: audience.map(serde_json::Value::String),
                    ..auth::Claims::admin(&sub, projects, ttl_secs)
                };
                println!("{}", auth::mint(&secret, &claims).context("signing the token")?);
                Ok(())
            }
        }
    }
}

async fn migrate(database: DatabaseConfig, action: MigrateAction) -> anyhow::Result<()> {
    if matches!(action, MigrateAction::Up) {
        store::db::create_database_if_missing(&database.database_url).await.context("creating the database")?;
    }
    let pool = store::connect(&database.database_url, 2).await.context("connecting to PostgreSQL (DATABASE_URL)")?;
    match action {
        MigrateAction::Up => store::db::migrate_up(&pool).await.context("applying migrations")?,
        MigrateAction::Down { to } => store::db::migrate_down(&pool, to).await.context("reverting migrations")?,
        MigrateAction::Status => {}
    }
    for migration in store::db::migration_status(&pool).await? {
        let state = if migration.applied { "applied" } else { "pending" };
        println!("{:>16} {state:8} {}", migration.version, migration.description);
    }
    Ok(())
}
