//! apid: the REST API (`/api/core/v2/...`, `/health`, `/version`, `/metrics`, `/ready`).
//!
//! Errors always have Sensu's body `{"message": "...", "code": N}`; JSON rejections and unknown
//! routes use it too. Every `/api/core/v2` route goes through `authz::gate` (authentication
//! by Basic credentials, access token or API key, then RBAC); `/auth/*` (`auth_routes`) hands
//! out and revokes tokens; `/health`, `/version`, `/metrics` and `/ready` are open, as in
//! Sensu.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

mod apikeys;
mod assets;
mod auth_routes;
pub mod authz;
mod checks;
pub mod crud;
mod entities;
mod events;
mod filters;
mod handlers;
mod hooks;
mod mutators;
mod namespaces;
mod pipelines;
mod rbac;
mod silenced;
mod users;

use crate::auth::Authenticator;
use crate::eventd::Dispatcher;
use crate::keepalived::Keepalived;
use crate::keys;
use crate::metrics::Metrics;
use crate::rbac::Authorizer;
use crate::repo::{Page, Repo, RepoError, encode};
use crate::schedulerd::Publisher;

#[derive(Clone)]
pub struct ApiState {
    pub repo: Repo,
    pub auth: Arc<Authenticator>,
    /// RBAC decisions, from the in-memory role set.
    pub authz: Arc<Authorizer>,
    pub keepalived: Arc<Keepalived>,
    /// Events posted through the API join the agents' results in the same shard queues, so
    /// the results of one entity stay in order whatever their source.
    pub dispatcher: Dispatcher,
    pub metrics: Arc<Metrics>,
    /// Adhoc check executions publish through the scheduler's publisher.
    pub publisher: Arc<Publisher>,
    pub serve_after: Instant,
    pub version: &'static str,
}

/// The authenticated user of an `/api/` request (request extension set by `authz::gate`, next
/// to the caller's `auth::Identity`); handlers record it as `metadata.created_by`.
#[derive(Debug, Clone)]
pub struct AuthUser(pub String);

pub fn router(state: ApiState, body_limit: usize) -> Router {
    let api = Router::new()
        .merge(namespaces::routes())
        .merge(entities::routes())
        .merge(events::routes())
        .merge(checks::routes())
        .merge(hooks::routes())
        .merge(silenced::routes())
        .merge(handlers::routes())
        .merge(filters::routes())
        .merge(mutators::routes())
        .merge(pipelines::routes())
        .merge(assets::routes())
        .merge(rbac::routes())
        .merge(users::routes())
        .merge(apikeys::routes())
        .layer(middleware::from_fn_with_state(state.clone(), authz::gate));
    Router::new()
        .nest("/api/core/v2", api)
        .merge(auth_routes::routes())
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/ready", get(ready))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_and_gate,
        ))
        .layer(middleware::map_response(json_payload_too_large))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Bodies over `--api-request-limit` are refused by whichever extractor reads them; those
/// that read raw bytes (merge patches, adhoc requests) answer in plain text, so every 413 is
/// given the API's JSON error body here.
async fn json_payload_too_large(resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if resp.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return resp;
    }
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body exceeds the API's size limit (--api-request-limit)",
    )
    .into_response()
}

// === errors ===

/// An API failure, rendered as Sensu's error body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

/// Sensu's numeric error codes (sensu-compat 6.2).
fn sensu_code(status: StatusCode) -> u32 {
    match status {
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE => 1,
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => 2,
        StatusCode::CONFLICT => 3,
        StatusCode::FORBIDDEN => 4,
        StatusCode::UNAUTHORIZED => 5,
        StatusCode::PAYMENT_REQUIRED => 6,
        StatusCode::PRECONDITION_FAILED => 7,
        StatusCode::GATEWAY_TIMEOUT => 8,
        _ => 0,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message, "code": sensu_code(self.status) });
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 is temporary here (warming up, store unreachable): tell clients when.
            resp.headers_mut()
                .insert("Retry-After", HeaderValue::from_static("5"));
        }
        resp
    }
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::BadContinueToken => ApiError::bad_request("invalid continue token"),
            RepoError::Store(backend_store::StoreError::Unavailable(reason)) => {
                // etcd down or without quorum: say so, and let clients retry; nothing was
                // written, so nothing is corrupted.
                tracing::warn!(%reason, "Store unavailable while serving the API");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the store is unavailable, retry later: {reason}"),
                )
            }
            RepoError::Store(backend_store::StoreError::InvalidRequest(reason)) => {
                ApiError::bad_request(format!("the store refused the request: {reason}"))
            }
            other => {
                // Details go to the log, not to the client.
                tracing::error!(error = %other, "Store failure while serving the API");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error: the store failed; see the backend log",
                )
            }
        }
    }
}

impl From<backend_store::StoreError> for ApiError {
    fn from(e: backend_store::StoreError) -> Self {
        RepoError::from(e).into()
    }
}

/// `Json` whose rejections use the API's error body.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => {
                let status = match &rejection {
                    JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_) => {
                        StatusCode::BAD_REQUEST
                    }
                    other => other.status(),
                };
                Err(ApiError::new(status, rejection.body_text()))
            }
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("not found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

// === middleware ===

async fn count_and_gate(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    Metrics::inc(&state.metrics.api_requests_total);
    if Instant::now() < state.serve_after && req.uri().path() != "/health" {
        let mut resp = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "backend is starting, retry shortly",
        )
        .into_response();
        resp.headers_mut()
            .insert("Retry-After", HeaderValue::from_static("5"));
        return resp;
    }
    next.run(req).await
}

// === helpers ===

#[derive(Debug, Deserialize)]
pub struct ListParams {
    #[serde(default)]
    limit: Option<String>,
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

impl ListParams {
    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit.as_deref() {
            None | Some("") => Ok(0),
            Some(raw) => raw.parse::<usize>().map_err(|_| {
                ApiError::bad_request(format!("limit {raw:?} is not a non-negative integer"))
            }),
        }
    }
}

/// A list response: a JSON array plus `Sensu-Continue` when more remain.
fn list_response<T: Serialize>(page: Page<T>) -> Response {
    let mut resp = Json(page.items).into_response();
    if let Some(v) = page
        .continue_token
        .and_then(|t| HeaderValue::from_str(&t).ok())
    {
        resp.headers_mut().insert("Sensu-Continue", v);
    }
    resp
}

/// A single resource with its `ETag` (quoted hex of a hash of the body).
fn single_response<T: Serialize>(value: &T) -> Response {
    let body = encode(value);
    let etag = format!("\"{:016x}\"", fnv1a(&body));
    let mut resp = (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(axum::http::header::ETAG, v);
    }
    resp
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

async fn require_namespace(repo: &Repo, ns: &str) -> Result<(), ApiError> {
    if repo.exists(&keys::namespace(ns)).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("namespace {ns:?} not found")))
    }
}

// === open routes ===

async fn health(State(state): State<ApiState>) -> Response {
    let (healthy, err) = match state.repo.store.revision().await {
        Ok(_) => (true, String::new()),
        Err(e) => (false, e.to_string()),
    };
    // Sensu answers 200 whatever the health; the body says it.
    Json(serde_json::json!({
        "Alarms": null,
        "ClusterHealth": [{
            "MemberID": 1,
            "MemberIDHex": "1",
            "Name": "embedded",
            "Err": err,
            "Healthy": healthy,
        }],
        "Header": { "cluster_id": 0, "member_id": 1, "revision": 0, "raft_term": 0 },
    }))
    .into_response()
}

async fn version(State(state): State<ApiState>) -> Response {
    Json(serde_json::json!({
        "etcd": null,
        "sensu_backend": state.version,
        "picket_backend": state.version,
        "api_groups": { "core/v2": "v2" },
    }))
    .into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn ready(State(state): State<ApiState>) -> Response {
    match state.repo.store.revision().await {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}
