//! The gateway served in-process for tests, its tokens, and assertions on its answers.

use std::time::Duration;

use consolidator::config::RetentionConfig;
use consolidator::{
    config::{EmbeddingConfig, GatewayConfig},
    gateway::{
        self, AppState,
        auth::{self, Claims},
    },
    store,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::env::TestEnv;

pub const SECRET: &str = "gateway-test-secret-of-32-bytes-at-least";

pub fn config() -> GatewayConfig {
    GatewayConfig {
        http_addr: "127.0.0.1:0".parse().expect("address"),
        jwt_secret: Some(SECRET.to_owned()),
        jwt_public_key: None,
        jwt_issuer: None,
        jwt_audience: None,
        request_timeout_secs: 30,
        body_limit_bytes: 1024 * 1024,
        rollback_wait_ms: 3000,
        ingest_max_batch: 100,
        sse_max_streams: 64,
        search_max_concurrent: 8,
        search_max_candidates: 10_000,
        metrics_token: None,
    }
}

/// A signed token for `projects` with `role`, valid for ten minutes.
pub fn token(projects: &[String], role: &str) -> String {
    token_with(projects, role, chrono::Utc::now().timestamp() + 600, SECRET)
}

pub fn token_with(projects: &[String], role: &str, exp: i64, secret: &str) -> String {
    let claims = Claims {
        sub: "tester@example.com".to_owned(),
        exp: exp.max(0) as u64,
        role: Some(role.to_owned()),
        roles: Vec::new(),
        projects: projects.to_vec(),
        iss: None,
        aud: None,
    };
    auth::mint(secret, &claims).expect("token signed")
}

/// The gateway served in-process on 127.0.0.1:0, over its own database and subject prefix.
pub struct TestGateway {
    pub env: TestEnv,
    /// The gateway's own pool (its statements time out with the request).
    pub requests_db: sqlx::PgPool,
    pub base: String,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<std::io::Result<std::net::SocketAddr>>,
    admin: String,
}

impl TestGateway {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut GatewayConfig)) -> Self {
        Self::on(TestEnv::new().await, configure).await
    }

    pub async fn on(env: TestEnv, configure: impl FnOnce(&mut GatewayConfig)) -> Self {
        Self::embedding_with(env, configure, &EmbeddingConfig::default()).await
    }

    /// A gateway that embeds texts with the endpoint `embedding` names.
    pub async fn embedding(embedding: &EmbeddingConfig) -> Self {
        Self::embedding_with(TestEnv::new().await, |_| {}, embedding).await
    }

    pub async fn embedding_with(
        env: TestEnv,
        configure: impl FnOnce(&mut GatewayConfig),
        embedding: &EmbeddingConfig,
    ) -> Self {
        let mut config = config();
        configure(&mut config);
        let timeout = Duration::from_secs(config.request_timeout_secs);
        let requests_db =
            store::db::connect_for_requests(&env.database_url(), 8, timeout).await.expect("the gateway's pool");
        let state = AppState::new(requests_db.clone(), env.bus.clone(), config, RetentionConfig::default())
            .and_then(|state| state.with_embedding(embedding))
            .expect("valid gateway config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("free port");
        let base = format!("http://{}", listener.local_addr().expect("bound address"));
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(gateway::serve_on(listener, state, shutdown.clone()));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("HTTP client");
        Self { env, requests_db, base, client, shutdown, handle, admin: token(&["*".to_owned()], "admin") }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the all-projects admin token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(&self.admin)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str, body: &Value) -> RequestBuilder {
        self.request(Method::POST, path).json(body)
    }

    pub fn put(&self, path: &str, body: &Value) -> RequestBuilder {
        self.request(Method::PUT, path).json(body)
    }

    /// A request with a token that covers only `project`.
    pub fn scoped(&self, method: Method, path: &str, project: Uuid) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(token(&[project.to_string()], "admin"))
    }

    /// Creates a project through the API and returns its id.
    pub async fn project(&self) -> Uuid {
        // Small fixtures made mostly of duplicates: without the blast-radius limit (its tests set it).
        let body = json!({"name": "gateway test", "consolidation_options": {"max_changed_share": 1.0}});
        let response = self.post("/api/v1/projects", &body).send().await.expect("sent");
        let body = ok(response, StatusCode::CREATED).await;
        body["id"].as_str().and_then(|id| id.parse().ok()).expect("project id")
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.handle).await;
    }
}

/// Asserts the status and returns the JSON body.
pub async fn ok(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body read");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Asserts an error answer: the status, the JSON error body, and returns its message.
pub async fn error(response: Response, status: StatusCode, code: &str) -> String {
    let body = ok(response, status).await;
    assert_eq!(body["error"], code, "error code in {body}");
    body["message"].as_str().expect("message in the error body").to_owned()
}
