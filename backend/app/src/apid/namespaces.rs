//! Namespaces: list (filtered to what the caller may use), get, create (POST),
//! create-or-replace (PUT), and delete, refused (409, naming what is left) while the namespace
//! still holds resources.

use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use backend_store::{Compare, Op, Txn};
use proto_spec::v2::Namespace;
use proto_spec::validate::validate_name;

use super::authz::ListScope;
use super::{ApiError, ApiJson, ApiState, ListParams, list_response, single_response};
use crate::keys;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/namespaces", get(list_namespaces).post(create_namespace))
        .route(
            "/namespaces/{ns}",
            get(get_namespace)
                .put(put_namespace)
                .delete(delete_namespace),
        )
}

async fn list_namespaces(
    State(state): State<ApiState>,
    Extension(scope): Extension<ListScope>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let mut page = state
        .repo
        .list::<Namespace>(
            &keys::namespaces_prefix(),
            p.limit()?,
            p.continue_token.as_deref(),
        )
        .await?;
    page.items.retain(|n: &Namespace| scope.allows(&n.name));
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
    if !state.repo.create(&key, &n).await? {
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

/// What a namespace can hold: store kind and the plural noun of its message.
const CONTENTS: &[(&str, &str)] = &[
    ("assets", "assets"),
    ("checks", "checks"),
    ("entity_configs", "entities"),
    ("events", "events"),
    ("event-filters", "filters"),
    ("handlers", "handlers"),
    ("hooks", "hooks"),
    ("mutators", "mutators"),
    ("pipelines", "pipelines"),
    ("silenced", "silenced entries"),
    (keys::ROLES_KIND, "roles"),
    (keys::ROLE_BINDINGS_KIND, "role bindings"),
];

/// `DELETE /namespaces/{ns}`: 204 when empty; 409 naming what is left otherwise.
///
/// The emptiness check and the deletion are two steps: a resource created between them
/// outlives the namespace (every namespaced write is guarded by the namespace key, so nothing
/// can be created after the deletion).
async fn delete_namespace(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    let key = keys::namespace(&ns);
    if !state.repo.exists(&key).await? {
        return Err(ApiError::not_found(format!("namespace {ns:?} not found")));
    }
    let mut left = Vec::new();
    for (kind, noun) in CONTENTS {
        let found = state
            .repo
            .store
            .range(backend_store::RangeRequest {
                prefix: keys::resources_prefix(kind, Some(&ns)),
                start: None,
                limit: 0,
            })
            .await?
            .kvs
            .len();
        if found > 0 {
            left.push(format!("{found} {noun}"));
        }
    }
    if !left.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "namespace {ns:?} is not empty: {} left; delete them first",
                left.join(", ")
            ),
        ));
    }
    let deleted = state
        .repo
        .store
        .txn(Txn {
            compares: vec![Compare::present(key.clone())],
            success: vec![Op::delete(key)],
            failure: vec![],
        })
        .await?
        .succeeded;
    if !deleted {
        return Err(ApiError::not_found(format!("namespace {ns:?} not found")));
    }
    tracing::info!(namespace = %ns, "Namespace deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
