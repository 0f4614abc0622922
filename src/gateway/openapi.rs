//! `/openapi.json`: built from the handlers' own annotations (see [`super::api`]), then every
//! admin operation gets the bearer requirement and its 401/403 answers in one place.

use std::sync::Arc;

use axum::{Extension, Json};
use utoipa::{
    OpenApi,
    openapi::{
        self, ContentBuilder, RefOr, ResponseBuilder,
        security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
    },
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{API_PREFIX, AppState, error::ErrorBody};

const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "consolidator",
        description = "Admin API of the task-memory consolidation service: trigger and follow jobs, \
                       read their audit trail, roll them back, configure projects, ingest and search memories.",
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "consolidation", description = "Jobs: trigger, status, live events, history, changes"),
        (name = "rollback", description = "Undo a completed job"),
        (name = "projects", description = "Projects and their consolidation settings"),
        (name = "memories", description = "Ingest, list, search, archive, restore, count reuse"),
        (name = "reviews", description = "The value guard's review queue: possible updates to approve or reject"),
        (name = "health", description = "Liveness, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

pub fn base() -> openapi::OpenApi {
    ApiDoc::openapi()
}

/// Adds the bearer scheme, and to every admin operation its requirement and 401/403 answers.
pub fn finish(mut spec: openapi::OpenApi) -> openapi::OpenApi {
    let scheme = SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some("HS256 or RS256 token with role `admin` and a `projects` claim (ids or `*`)"))
            .build(),
    );
    spec.components.get_or_insert_with(Default::default).add_security_scheme(BEARER, scheme);
    let error = |description: &str| -> RefOr<openapi::Response> {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(openapi::Ref::from_schema_name("ErrorBody"))).build(),
            )
            .build()
            .into()
    };
    for (path, item) in spec.paths.paths.iter_mut() {
        if !path.starts_with(API_PREFIX) {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            operation.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
            let responses = &mut operation.responses.responses;
            responses.entry("401".to_owned()).or_insert_with(|| error("Missing, malformed, expired or invalid token"));
            responses
                .entry("403".to_owned())
                .or_insert_with(|| error("The token lacks the admin role or access to this project"));
        }
    }
    spec
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document of every route", body = Object)))]
pub async fn openapi_json(Extension(spec): Extension<Arc<openapi::OpenApi>>) -> Json<openapi::OpenApi> {
    Json(spec.as_ref().clone())
}
