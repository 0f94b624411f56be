//! Namespaces: list, get, create (POST) and create-or-replace (PUT).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use backend_store::{Compare, Op, Txn};
use proto_spec::v2::Namespace;
use proto_spec::validate::validate_name;

use super::{ApiError, ApiJson, ApiState, ListParams, list_response, single_response};
use crate::keys;
use crate::repo::encode;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/namespaces", get(list_namespaces).post(create_namespace))
        .route("/namespaces/{ns}", get(get_namespace).put(put_namespace))
}

async fn list_namespaces(
    State(state): State<ApiState>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let page = state
        .repo
        .list::<Namespace>(
            &keys::namespaces_prefix(),
            p.limit()?,
            p.continue_token.as_deref(),
        )
        .await?;
    Ok(list_response(page))
}

async fn get_namespace(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    let n: Namespace = state
        .repo
        .get(&keys::namespace(&ns))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("namespace {ns:?} not found")))?;
    Ok(single_response(&n))
}

async fn create_namespace(
    State(state): State<ApiState>,
    ApiJson(n): ApiJson<Namespace>,
) -> Result<Response, ApiError> {
    validate_name("name", &n.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let key = keys::namespace(&n.name);
    let created = state
        .repo
        .store
        .txn(Txn {
            compares: vec![Compare::absent(key.clone())],
            success: vec![Op::put(key, encode(&n))],
            failure: vec![],
        })
        .await?
        .succeeded;
    if !created {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("namespace {:?} already exists", n.name),
        ));
    }
    Ok(StatusCode::CREATED.into_response())
}

async fn put_namespace(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
    ApiJson(n): ApiJson<Namespace>,
) -> Result<Response, ApiError> {
    if n.name != ns {
        return Err(ApiError::bad_request(format!(
            "the namespace name in the body ({:?}) does not match the URL ({ns:?})",
            n.name
        )));
    }
    validate_name("name", &n.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    state.repo.put(&keys::namespace(&ns), &n).await?;
    Ok(StatusCode::CREATED.into_response())
}
