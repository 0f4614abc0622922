//! Bearer JWT: HS256 secret or RS256 public key; `exp` always checked, `iss`/`aud` when
//! configured; the `admin` role required; the `projects` claim (ids, or `*`) limits scope.

use axum::{extract::FromRequestParts, http::request::Parts};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AppState, error::ApiError};
use crate::{
    bus::messages::MAX_ACTOR_CHARS,
    config::{ConfigError, GatewayConfig},
};

pub const ADMIN_ROLE: &str = "admin";
pub const ALL_PROJECTS: &str = "*";
/// The shortest HS256 secret accepted: RFC 7518 asks for a key as long as the hash (256 bits).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub projects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// One audience or several (RFC 7519 allows both); checked by the library when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
}

impl Claims {
    /// An admin token's claims for `projects`, expiring `ttl_secs` from now.
    pub fn admin(sub: &str, projects: Vec<String>, ttl_secs: u64) -> Self {
        Self {
            sub: sub.to_owned(),
            exp: chrono::Utc::now().timestamp().max(0) as u64 + ttl_secs,
            role: Some(ADMIN_ROLE.to_owned()),
            roles: Vec::new(),
            projects,
            iss: None,
            aud: None,
        }
    }

    fn is_admin(&self) -> bool {
        self.role.as_deref() == Some(ADMIN_ROLE) || self.roles.iter().any(|role| role == ADMIN_ROLE)
    }
}

#[derive(Clone)]
pub struct Auth {
    key: DecodingKey,
    validation: Validation,
}

impl Auth {
    pub fn from_config(config: &GatewayConfig) -> Result<Self, ConfigError> {
        let secret = config.jwt_secret.as_deref().filter(|secret| !secret.is_empty());
        let public_key = config.jwt_public_key.as_deref().filter(|key| !key.is_empty());
        let (key, algorithm) = match (secret, public_key) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "JWT_SECRET",
                    "set JWT_SECRET (HS256) or JWT_PUBLIC_KEY (RS256), not both: which tokens to trust must be one choice",
                ));
            }
            (Some(secret), None) => {
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(ConfigError::new(
                        "JWT_SECRET",
                        format!(
                            "{} bytes is too short to sign admin tokens; use at least {MIN_SECRET_BYTES} random bytes \
                             (e.g. `openssl rand -hex 32`)",
                            secret.len()
                        ),
                    ));
                }
                (DecodingKey::from_secret(secret.as_bytes()), Algorithm::HS256)
            }
            (None, Some(public_key)) => {
                let pem = if public_key.contains("-----BEGIN") {
                    public_key.to_owned()
                } else {
                    std::fs::read_to_string(public_key).map_err(|error| {
                        ConfigError::new("JWT_PUBLIC_KEY", format!("cannot read {public_key}: {error}"))
                    })?
                };
                let key = DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|error| {
                    ConfigError::new("JWT_PUBLIC_KEY", format!("not an RSA public key in PEM: {error}"))
                })?;
                (key, Algorithm::RS256)
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "JWT_SECRET",
                    "the gateway needs JWT_SECRET (HS256, at least 32 bytes) or JWT_PUBLIC_KEY (RS256); there is no \
                     default (only `all` on a loopback HTTP_ADDR makes a development secret of its own)",
                ));
            }
        };
        let mut validation = Validation::new(algorithm);
        // A configured issuer or audience must be present, not merely match when present.
        let mut required = vec!["exp", "sub"];
        required.extend(config.jwt_issuer.as_ref().map(|_| "iss"));
        required.extend(config.jwt_audience.as_ref().map(|_| "aud"));
        validation.set_required_spec_claims(&required);
        validation.leeway = EXPIRY_LEEWAY_SECS;
        match &config.jwt_issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &config.jwt_audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Ok(Self { key, validation })
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| ApiError::Unauthorized(explain(&error)))
    }
}

/// Seconds a token is still accepted after its `exp` (clocks differ).
pub const EXPIRY_LEEWAY_SECS: u64 = 5;

const MINT: &str = "mint a new one with `consolidator token` (or your identity provider)";

/// Why a token was refused, and what to do about it.
fn explain(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => {
            format!("the token has expired ({EXPIRY_LEEWAY_SECS} s of leeway for clock skew): {MINT}")
        }
        ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf` is in the future)".to_owned(),
        ErrorKind::InvalidSignature => format!(
            "the token's signature does not match this gateway's key (JWT_SECRET or JWT_PUBLIC_KEY): {MINT} \
             signed with the same key"
        ),
        ErrorKind::InvalidAlgorithm => {
            format!("the token is signed with another algorithm than this gateway's: {MINT}")
        }
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim: {MINT}"),
        ErrorKind::InvalidIssuer => format!("the token's `iss` is not this gateway's JWT_ISSUER: {MINT}"),
        ErrorKind::InvalidAudience => format!("the token's `aud` is not this gateway's JWT_AUDIENCE: {MINT}"),
        _ => format!("the token is malformed ({error}): send `Authorization: Bearer <token>` and {MINT}"),
    }
}

/// Mints an HS256 token (the `token` subcommand and tests).
pub fn mint(secret: &str, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
}

/// An authenticated administrator; extracting it answers 401 or 403 on its own.
#[derive(Debug, Clone)]
pub struct Admin(pub Claims);

impl Admin {
    pub fn subject(&self) -> &str {
        &self.0.sub
    }

    /// Whether the token's project list holds this project or `*`.
    pub fn may_see(&self, project_id: Uuid) -> bool {
        self.0
            .projects
            .iter()
            .any(|project| project == ALL_PROJECTS || project.parse::<Uuid>().ok() == Some(project_id))
    }

    /// 403 unless the token covers this project. For routes named by a project id, which the
    /// token's own claim decides before anything is read: the answer says nothing about what
    /// exists. Routes named by another id (job, memory, rollback) answer a foreign one as unknown.
    pub fn ensure_project(&self, project_id: Uuid) -> Result<(), ApiError> {
        if self.may_see(project_id) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("the token does not grant access to project {project_id}")))
        }
    }

    /// The projects the token may see: None for all (`*`), else the ids it names.
    pub fn project_scope(&self) -> Option<Vec<Uuid>> {
        if self.0.projects.iter().any(|project| project == ALL_PROJECTS) {
            return None;
        }
        Some(self.0.projects.iter().filter_map(|project| project.parse::<Uuid>().ok()).collect())
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthorized(
                "missing Authorization header: send `Authorization: Bearer <token>` (`consolidator token` mints one)"
                    .to_owned(),
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "Authorization must be `Bearer <token>` (`consolidator token` mints one)".to_owned(),
                )
            })?;
        let claims = state.auth.verify(token.trim())?;
        // The subject is recorded as who triggered or rolled back a job; it must say someone.
        if claims.sub.trim().is_empty() {
            return Err(ApiError::Unauthorized("the token's `sub` claim is empty".to_owned()));
        }
        // Stored as who triggered or changed something; PostgreSQL cannot store a NUL.
        if claims.sub.contains('\0') {
            return Err(ApiError::Unprocessable(super::nul::message("the token's sub claim")));
        }
        // It travels on the bus as `triggered_by` / `requested_by`, which are bounded there.
        if claims.sub.chars().count() > MAX_ACTOR_CHARS {
            return Err(ApiError::Unprocessable(format!(
                "the token's sub claim: at most {MAX_ACTOR_CHARS} characters"
            )));
        }
        if !claims.is_admin() {
            return Err(ApiError::Forbidden(format!("role {ADMIN_ROLE:?} required")));
        }
        Ok(Admin(claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "unit-secret-of-at-least-32-bytes-long";

    fn config() -> GatewayConfig {
        GatewayConfig {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            jwt_secret: Some(SECRET.to_owned()),
            jwt_public_key: None,
            jwt_issuer: None,
            jwt_audience: None,
            request_timeout_secs: 10,
            body_limit_bytes: 1024,
            rollback_wait_ms: 1000,
            ingest_max_batch: 10,
            sse_max_streams: 4,
            search_max_concurrent: 2,
            search_max_candidates: 1000,
            metrics_token: None,
        }
    }

    fn auth(issuer: Option<&str>, audience: Option<&str>) -> Auth {
        let config = GatewayConfig {
            jwt_issuer: issuer.map(str::to_owned),
            jwt_audience: audience.map(str::to_owned),
            ..config()
        };
        Auth::from_config(&config).unwrap()
    }

    #[test]
    fn a_missing_short_or_doubled_key_is_refused_naming_the_setting() {
        let refused = |config: GatewayConfig| Auth::from_config(&config).err().map(|error| error.name);
        assert_eq!(refused(GatewayConfig { jwt_secret: None, ..config() }), Some("JWT_SECRET"));
        assert_eq!(refused(GatewayConfig { jwt_secret: Some(String::new()), ..config() }), Some("JWT_SECRET"));
        assert_eq!(refused(GatewayConfig { jwt_secret: Some("x".repeat(31)), ..config() }), Some("JWT_SECRET"));
        assert!(refused(GatewayConfig { jwt_secret: Some("x".repeat(32)), ..config() }).is_none());
        let both = GatewayConfig { jwt_public_key: Some("/etc/key.pem".to_owned()), ..config() };
        let error = Auth::from_config(&both).err().expect("both refused");
        assert!(error.message.contains("not both"), "{error}");
    }

    fn token(iss: Option<&str>, aud: Option<serde_json::Value>) -> String {
        let claims = Claims {
            sub: "someone".into(),
            exp: (chrono::Utc::now().timestamp() + 600) as u64,
            role: Some(ADMIN_ROLE.into()),
            roles: vec![],
            projects: vec![ALL_PROJECTS.into()],
            iss: iss.map(str::to_owned),
            aud,
        };
        mint(SECRET, &claims).unwrap()
    }

    #[test]
    fn a_configured_issuer_and_audience_are_required_not_just_matched() {
        let strict = auth(Some("idp"), Some("consolidator"));
        let audience = Some(serde_json::json!("consolidator"));
        assert!(strict.verify(&token(Some("idp"), audience.clone())).is_ok());
        assert!(strict.verify(&token(None, audience.clone())).is_err(), "missing iss");
        assert!(strict.verify(&token(Some("idp"), None)).is_err(), "missing aud");
        assert!(strict.verify(&token(Some("other"), audience)).is_err(), "wrong iss");
        let several = Some(serde_json::json!(["another-api", "consolidator"]));
        assert!(strict.verify(&token(Some("idp"), several)).is_ok(), "an audience list holding ours");
        assert!(auth(None, None).verify(&token(None, None)).is_ok());
    }

    #[test]
    fn project_scope_compares_ids_not_spellings() {
        let id = Uuid::new_v4();
        let mut claims = auth(None, None).verify(&token(None, None)).unwrap();
        claims.projects = vec![id.to_string().to_uppercase()];
        assert!(Admin(claims.clone()).ensure_project(id).is_ok());
        assert!(Admin(claims).ensure_project(Uuid::new_v4()).is_err());
    }
}
