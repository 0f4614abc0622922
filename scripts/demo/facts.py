"""The facts the demo's agents learned, on real crates and tools. build.py turns each into one
or more memories (paraphrases of one fact are near-duplicates that should merge)."""

# (crate, symptom, fix): an error an agent hit and how it was fixed.
ERROR_FIXES = [
    ("sqlx", "pool acquire timeouts under load", "raising max_connections from 10 to 20 and releasing connections before awaiting HTTP calls"),
    ("sqlx", "compile errors from the query! macro in CI", "committing the .sqlx offline data and setting SQLX_OFFLINE=true"),
    ("tokio", "a runtime panic 'cannot start a runtime from within a runtime'", "calling the async function with .await instead of block_on inside the handler"),
    ("tokio", "stalled request handling while a CPU-heavy parse ran", "moving the parse into spawn_blocking"),
    ("axum", "handlers rejected with 415 Unsupported Media Type", "sending the Content-Type: application/json header from the client"),
    ("axum", "a trait bound error on the handler function", "putting the Json extractor last among the handler arguments"),
    ("serde", "missing field errors when reading old config files", "adding #[serde(default)] to the new optional fields"),
    ("serde_json", "floats written as integers breaking the TypeScript client", "serializing the amounts as strings with a custom serializer"),
    ("reqwest", "TLS handshake failures inside the Alpine container", "enabling the rustls-tls feature instead of native-tls"),
    ("reqwest", "connections hanging forever on a dead upstream", "setting connect_timeout to 5 seconds and a 30 second request timeout on the client"),
    ("clap", "the --verbose flag being ignored when set through the environment", "adding env = \"VERBOSE\" to the argument and enabling clap's env feature"),
    ("tracing", "no log output at all from the worker", "installing the tracing_subscriber fmt layer before spawning the runtime tasks"),
    ("hyper", "'connection closed before message completed' on keep-alive requests", "lowering the client's pool idle timeout below the server's keep-alive timeout"),
    ("async-nats", "JetStream messages being redelivered while a long job was still running", "sending in-progress acks every ten seconds during the job"),
    ("async-nats", "the consumer receiving no messages after a restart", "creating the durable consumer with deliver policy All and the same filter subject"),
    ("diesel", "migrations failing with 'relation already exists'", "marking the hand-applied migration as run in __diesel_schema_migrations"),
    ("cargo", "a linker crash from running out of memory on the 2-core CI runner", "setting CARGO_BUILD_JOBS=1 and using the mold linker"),
    ("cargo", "a feature-unification error when two crates enabled different tokio features", "enabling the features explicitly in the workspace Cargo.toml"),
    ("rustls", "'UnknownIssuer' errors against the internal API", "adding the company root certificate to the RootCertStore"),
    ("chrono", "timestamps off by one hour after the DST change", "storing times as DateTime<Utc> and converting to local time only for display"),
    ("uuid", "duplicate ids appearing in the import", "generating uuid v5 from the source key instead of v4 on each retry"),
    ("rayon", "the web server freezing during a batch job", "giving the batch job its own ThreadPool with two threads"),
    ("postgres", "deadlocks between two workers updating the same rows", "locking the rows in id order with SELECT ... FOR UPDATE"),
    ("postgres", "slow project listing once the table passed a million rows", "adding an index on (project_id, created_at DESC)"),
    ("docker", "the image growing to 2 GB", "using a multi-stage build and copying only the release binary into debian-slim"),
    ("github-actions", "caches never being restored between runs", "keying the cache on the hash of Cargo.lock instead of the run number"),
    ("openssl", "'could not find openssl via pkg-config' on the build server", "installing libssl-dev and pkg-config in the build image"),
    ("tonic", "gRPC calls failing with 'h2 protocol error'", "enabling HTTP/2 on the load balancer's backend connection"),
    ("redis", "cache entries never expiring", "setting the TTL with SET key value EX 3600 in one command instead of a separate EXPIRE"),
    ("serde_yaml", "config keys silently ignored after a typo", "adding #[serde(deny_unknown_fields)] to the config struct"),
    ("tokio-postgres", "'prepared statement does not exist' behind PgBouncer", "switching PgBouncer to session pooling for the service"),
    ("jsonwebtoken", "tokens rejected with InvalidAudience", "setting the expected audience on the Validation to the API's client id"),
    ("tower-http", "CORS preflight requests failing from the admin page", "adding a CorsLayer that allows the Authorization header"),
    ("prometheus", "the metrics endpoint timing out with 50,000 series", "dropping the per-user label from the request counter"),
    ("indicatif", "progress bars garbling the log output", "printing log lines through ProgressBar::println"),
    ("nginx", "Server-Sent Events arriving in bursts", "setting proxy_buffering off for the events location"),
    ("systemd", "the service not restarting after a crash", "adding Restart=on-failure and RestartSec=5 to the unit"),
    ("webpack", "the production bundle still containing source maps", "setting devtool to false in the production config"),
    ("pytest", "fixtures leaking database rows between tests", "wrapping each test in a transaction that the fixture rolls back"),
    ("wasm-bindgen", "'unreachable executed' in the browser build", "enabling console_error_panic_hook to see the real panic and fixing the out-of-bounds index"),
]

# (crate, lesson): something an agent learned about a library.
LEARNINGS = [
    ("tokio", "A tokio Mutex is only needed when the lock is held across an .await; a std Mutex is faster otherwise."),
    ("tokio", "tokio::select! drops the branches that lose, so any work inside them must be cancellation safe."),
    ("serde", "serde's rename_all = \"snake_case\" on an enum changes the JSON names of every variant at once."),
    ("sqlx", "sqlx transactions roll back when dropped unless commit is called explicitly."),
    ("axum", "axum's State extractor needs the state type to implement Clone, so shared data goes behind an Arc."),
    ("reqwest", "A reqwest Client holds a connection pool, so one client should be built once and reused."),
    ("tracing", "#[tracing::instrument(skip_all)] keeps large arguments out of the span fields."),
    ("thiserror", "thiserror's #[from] attribute derives the From conversion that lets ? convert the error."),
    ("anyhow", "anyhow's context() adds a message to the error chain without losing the original cause."),
    ("clap", "clap's derive API reads doc comments on fields as the help text of each flag."),
    ("rayon", "par_iter keeps the order of results when collecting into a Vec."),
    ("criterion", "criterion needs harness = false on the bench target in Cargo.toml."),
    ("proptest", "proptest writes failing cases to proptest-regressions, which should be committed."),
    ("cargo", "cargo test runs the tests of one binary in parallel threads, so tests must not share global state."),
    ("git", "git worktree lets two branches be checked out side by side without a second clone."),
    ("postgres", "PostgreSQL's EXPLAIN (ANALYZE, BUFFERS) shows whether a query read from the cache or from disk."),
    ("nats", "A JetStream work-queue stream deletes each message once a consumer acks it."),
    ("hyper-util", "hyper-util's legacy Client needs an executor such as TokioExecutor to spawn connection tasks."),
    ("sqlx", "sqlx's PgListener receives NOTIFY messages only while its connection stays open."),
    ("serde", "#[serde(flatten)] does not work together with deny_unknown_fields."),
    ("axum", "axum runs middleware added with .layer in reverse order of the calls."),
    ("kubernetes", "A readiness probe failure removes the pod from the service endpoints but does not restart it."),
]

# (topic, choice, reason): a decision the team took.
DECISIONS = [
    ("the job queue", "use NATS JetStream work-queue streams", "they give durable at-least-once delivery without running a separate broker cluster"),
    ("embeddings storage", "store embeddings as bytea of little-endian f32", "reading them is seven times faster than real[]"),
    ("the HTTP API", "version every route under /api/v1", "clients can then migrate one version at a time"),
    ("error handling", "use thiserror in the library and anyhow only in main", "callers can then match on the library's error variants"),
    ("configuration", "read every setting from an environment variable with a flag of the same name", "containers and local runs then share one mechanism"),
    ("the release build", "build static musl binaries", "the image then needs no libc at all"),
    ("authentication", "accept only HS256 secrets of at least 32 bytes or RS256 public keys", "short secrets can be brute-forced offline"),
    ("time zones", "keep every timestamp in UTC in the database", "daylight saving changes then never reorder events"),
    ("logging", "log JSON lines in production and plain text locally", "the log shipper parses JSON without custom rules"),
    ("testing", "give every integration test its own database", "the tests then run in parallel without interfering"),
    ("the frontend", "ship plain JavaScript modules without a bundler", "the console then builds offline and has no node_modules"),
]

# (crate, warning): a gotcha worth warning about.
WARNINGS = [
    ("serde_json", "serde_json::Value loses integer precision above 2^53 when the JSON is read by JavaScript."),
    ("tokio", "Holding a std::sync::MutexGuard across an .await makes the future non-Send and can deadlock the runtime."),
    ("sqlx", "sqlx::query! checks queries against the database at compile time, so the build fails without DATABASE_URL or offline data."),
    ("postgres", "ALTER TABLE ... ADD COLUMN with a volatile default rewrites the whole table under an exclusive lock."),
    ("cargo", "cargo update without --precise can pull a new minor version that raises the minimum Rust version."),
    ("docker", "COPY . . before installing dependencies invalidates the dependency layer cache on every code change."),
    ("hyper", "hyper 1.0 moved the client into hyper-util, so old examples with hyper::Client no longer compile."),
    ("nats", "A JetStream consumer with max_deliver reached stops redelivering silently unless its advisory is watched."),
    ("chrono", "chrono's Local::now() depends on the TZ of the machine, so tests using it fail in other time zones."),
    ("git", "git stash does not include untracked files unless -u is given."),
]

# (subject, fact): how this codebase is laid out.
CODEBASE = [
    ("the gateway", "The gateway's routes live in src/gateway, one file per resource, each exporting router()."),
    ("the worker", "The worker handles each command kind in its own file under src/worker and acks only after the commit."),
    ("migrations", "SQL migrations are in migrations/ as reversible up and down files applied at start."),
    ("the engine", "src/engine holds the pure planning logic with no I/O, so it is tested without a database."),
    ("the scheduler", "The scheduler publishes one sweep command per cron tick; every replica publishes and JetStream keeps one."),
    ("subjects", "Every NATS subject name is built in src/bus/subjects.rs and documented in subjects.md."),
    ("settings", "Every setting is declared in src/config.rs with its environment variable and default."),
    ("the benchmarks", "scripts/bench/gen_memories.py generates the benchmark data with a fixed seed."),
    ("the import", "consolidator import loads a JSON Lines file in one transaction, all or nothing."),
    ("the tests", "tests/common/mod.rs gives each integration test a fresh database and NATS subject prefix."),
    ("the console", "The admin console's HTML, CSS and JavaScript live in console/ and are compiled into the binary."),
    ("the playbook", "Promoted memories become playbook entries with a category, a priority and their supporting memories."),
]

# (crate, finding): something an agent discovered while working.
DISCOVERIES = [
    ("postgres", "The orders table has no index on customer_id, so the nightly report does a sequential scan."),
    ("nats", "The staging NATS server runs without JetStream file storage, so streams vanish on restart."),
    ("cargo", "Half of the build time goes into compiling the aws-sdk crates, which only the upload tool uses."),
    ("docker", "The base image still ships OpenSSL 1.1, which is out of support."),
    ("github-actions", "The integration job runs on every push to docs/, which changes no code."),
    ("tokio", "The worker spawns a task per message without a limit, so a burst of 10,000 messages spawns 10,000 tasks."),
    ("axum", "The health route is behind the auth middleware, so the load balancer's checks get 401."),
    ("redis", "The session cache keys have no prefix, so staging and production collide on the shared Redis."),
]

# (template, old value, new value): one fact whose value changed; both states are memories.
VALUE_CHANGES = [
    ("CI is green with tokio pinned to {v}; newer releases break the test runtime.", "1.38.0", "1.41.1"),
    ("The API's request timeout is {v} seconds; slower clients get a 503.", "30", "60"),
    ("The worker pool runs {v} worker replicas in production.", "4", "8"),
    ("The minimum supported Rust version of the service is {v}.", "1.75", "1.85"),
    ("The sqlx pool's max_connections is set to {v} in production.", "20", "40"),
    ("The nightly backup job starts at {v} UTC.", "02:00", "03:30"),
    ("The staging database listens on port {v}.", "5432", "6432"),
    ("Login rate limiting allows {v} attempts per minute per address.", "5", "10"),
]

# Three memories each: the first and second share one fact, the second and third another; the
# first and third have nothing in common and must not end up in one consolidated memory.
CHAINS = [
    (
        "Restart the worker after changing the NATS URL.",
        "Restart the worker after changing the NATS URL or the database URL.",
        "Restart the worker after changing the database URL.",
    ),
    (
        "Run cargo fmt before pushing to the main branch.",
        "Run cargo fmt and cargo clippy before pushing to the main branch.",
        "Run cargo clippy with -D warnings before pushing to the main branch.",
    ),
    (
        "axum's default body limit is 2 MB; uploads above it get 413 Payload Too Large.",
        "axum's default body limit is 2 MB and DefaultBodyLimit::max raises it for the upload route.",
        "DefaultBodyLimit::max(64 MB) on the upload route lets the large CSV imports through.",
    ),
]

# Memories nobody has reused for a long time: the archive step hides them.
STALE = [
    ("learning", "The old Jenkins pipeline needed a manual restart after every plugin update."),
    ("codebase_knowledge", "The legacy PHP admin panel lives in admin-old/ and is no longer deployed."),
    ("decision", "Decided in 2024 to keep Python 3.8 support for the import scripts."),
    ("error_fix", "Fixed the Travis CI build by pinning the bundler version to 1.17."),
    ("discovery", "The Heroku review apps ran out of free dyno hours at the end of each month."),
    ("warning", "Beware that the Vagrant box image is 12 GB and takes an hour to download."),
    ("learning", "The Grunt build watches only files that existed when it started."),
    ("codebase_knowledge", "The Bower packages were vendored into static/lib in 2019."),
    ("error_fix", "Fixed the flaky Selenium test by waiting for the jQuery animation to finish."),
    ("discovery", "The old Mesos cluster still runs one cron job that nobody owns."),
    ("learning", "Python 2 print statements in the migration scripts break under Python 3."),
    ("warning", "The CoffeeScript sources in assets/ are compiled only by the old build box."),
    ("error_fix", "Fixed the CentOS 6 build by installing devtoolset-8 for a newer GCC."),
    ("codebase_knowledge", "The SOAP endpoint for the billing partner is defined in legacy/billing.wsdl."),
    ("decision", "Decided to keep the AngularJS dashboard until the React rewrite ships."),
    ("discovery", "The FTP drop folder for partner files has not received a file since 2023."),
]
