//! API keys (sensu-compat 1.13, 6.2): long-lived credentials (`Authorization: Key <key>`).
//!
//! The key (a UUIDv4) is shown once, in the `Location` header of the `POST` answer, as Sensu
//! does; the store keeps only its SHA-256, which is also the `metadata.name` lists show. `GET`
//! and `DELETE /apikeys/{name}` take that name or the key itself.

use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use proto_spec::ObjectMeta;
use proto_spec::v2::{APIKey, User};
use serde::Deserialize;

use super::{ApiError, ApiJson, ApiState, AuthUser, ListParams, list_response, single_response};
use crate::auth::digest_hex;
use crate::keys;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/apikeys", get(list_keys).post(create_key))
        .route("/apikeys/{name}", get(get_key).delete(delete_key))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewKey {
    username: String,
}

async fn list_keys(
    State(state): State<ApiState>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let page = state
        .repo
        .list::<APIKey>(
            &keys::api_keys_prefix(),
            p.limit()?,
            p.continue_token.as_deref(),
        )
        .await?;
    Ok(list_response(page))
}

async fn create_key(
    State(state): State<ApiState>,
    Extension(caller): Extension<AuthUser>,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<Response, ApiError> {
    if body.username.is_empty() {
        return Err(ApiError::bad_request("username must be set"));
    }
    if state
        .repo
        .get::<User>(&keys::user(&body.username))
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "user {:?} not found",
            body.username
        )));
    }
    let key = uuid::Uuid::new_v4().to_string();
    let digest = digest_hex(&key);
    let record = APIKey {
        metadata: ObjectMeta {
            name: digest.clone(),
            created_by: caller.0,
            ..Default::default()
        },
        username: body.username.clone(),
        created_at: crate::timefmt::now_unix(),
    };
    state.repo.put(&keys::api_key(&digest), &record).await?;
    tracing::info!(user = %body.username, name = %digest, "API key created");
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/core/v2/apikeys/{key}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// The stored key named `name`: its digest, or the key itself.
async fn find(state: &ApiState, name: &str) -> Result<(String, APIKey), ApiError> {
    for digest in [name.to_string(), digest_hex(name)] {
        if let Some(k) = state.repo.get::<APIKey>(&keys::api_key(&digest)).await? {
            return Ok((digest, k));
        }
    }
    Err(ApiError::not_found(format!("API key {name:?} not found")))
}

async fn get_key(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (_, key) = find(&state, &name).await?;
    Ok(single_response(&key))
}

async fn delete_key(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (digest, _) = find(&state, &name).await?;
    state.repo.store.delete(&keys::api_key(&digest)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
