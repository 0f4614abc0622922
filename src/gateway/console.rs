//! `GET /console`: the admin console (DESIGN.md §12), static files compiled into the binary
//! from the top-level `console/` folder. It holds no secret and no data: the page asks for a
//! token, keeps it in sessionStorage and calls the API with it as a bearer header, so these
//! routes need no authentication themselves.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::Path,
};

/// Same origin only, no inline script or style: the token a page holds cannot be read out by
/// injected markup, and nothing is fetched from elsewhere (the console works offline).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Every file of the console: its name under /console/ and its content type.
const FILES: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../../console/index.html")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../console/style.css")),
    ("app.js", JS, include_str!("../../console/app.js")),
    ("api.js", JS, include_str!("../../console/api.js")),
    ("dom.js", JS, include_str!("../../console/dom.js")),
    ("projects.js", JS, include_str!("../../console/projects.js")),
    ("project.js", JS, include_str!("../../console/project.js")),
    ("job.js", JS, include_str!("../../console/job.js")),
    ("memory.js", JS, include_str!("../../console/memory.js")),
    ("playbook.js", JS, include_str!("../../console/playbook.js")),
    ("actions.js", JS, include_str!("../../console/actions.js")),
    ("chart.js", JS, include_str!("../../console/chart.js")),
    ("health.js", JS, include_str!("../../console/health.js")),
    ("reviews.js", JS, include_str!("../../console/reviews.js")),
    ("audit.js", JS, include_str!("../../console/audit.js")),
    ("workers.js", JS, include_str!("../../console/workers.js")),
];
const JS: &str = "text/javascript; charset=utf-8";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(index)).routes(routes!(file))
}

/// The console's page. It asks for an admin token and keeps it in the browser's
/// sessionStorage; no token is ever part of a URL.
#[utoipa::path(get, path = "/console", tag = "console",
    responses((status = 200, description = "The console's HTML page", content_type = "text/html", body = String)))]
pub async fn index() -> Response {
    serve("index.html").unwrap_or_else(IntoResponse::into_response)
}

/// One of the console's files (its scripts and style sheet).
#[utoipa::path(get, path = "/console/{file}", tag = "console",
    params(("file" = String, Path, description = "A file name such as app.js")),
    responses(
        (status = 200, description = "The file", content_type = "text/javascript", body = String),
        (status = 404, description = "No such file", body = ErrorBody),
    ))]
pub async fn file(Path(name): Path<String>) -> Response {
    serve(&name).unwrap_or_else(IntoResponse::into_response)
}

fn serve(name: &str) -> Result<Response, ApiError> {
    let (_, content_type, body) = FILES
        .iter()
        .find(|(file, _, _)| *file == name)
        .ok_or_else(|| ApiError::NotFound(format!("the console has no file {name:?}")))?;
    let mut response = (*body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Compiled into the binary: a new build brings new files, so browsers ask again each time.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
