//! Entities: lists (per namespace and across namespaces), get, delete. Answers are redacted.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use backend_store::{Compare, Op, Txn};
use proto_spec::v2::Entity;

use super::{ApiError, ApiState, ListParams, list_response, require_namespace, single_response};
use crate::entities;
use crate::keys;
use crate::repo::Page;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/entities", get(list_all_entities))
        .route("/namespaces/{ns}/entities", get(list_entities))
        .route(
            "/namespaces/{ns}/entities/{name}",
            get(get_entity).delete(delete_entity),
        )
}

fn redact_all(mut page: Page<Entity>) -> Page<Entity> {
    page.items = page.items.iter().map(Entity::redacted).collect();
    page
}

async fn list_all_entities(
    State(state): State<ApiState>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let page = entities::list(&state.repo, None, p.limit()?, p.continue_token.as_deref()).await?;
    Ok(list_response(redact_all(page)))
}

async fn list_entities(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    require_namespace(&state.repo, &ns).await?;
    let page = entities::list(
        &state.repo,
        Some(&ns),
        p.limit()?,
        p.continue_token.as_deref(),
    )
    .await?;
    Ok(list_response(redact_all(page)))
}

async fn get_entity(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    require_namespace(&state.repo, &ns).await?;
    let entity = entities::get(&state.repo, &ns, &name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("entity {name:?} not found in namespace {ns:?}"))
        })?;
    Ok(single_response(&entity.redacted()))
}

/// Deleting an entity also deletes its events and stops its keepalive monitoring.
async fn delete_entity(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    require_namespace(&state.repo, &ns).await?;
    let resp = state
        .repo
        .store
        .txn(Txn {
            compares: vec![Compare::present(keys::entity_config(&ns, &name))],
            success: vec![
                Op::delete(keys::entity_config(&ns, &name)),
                Op::delete(keys::entity_state(&ns, &name)),
                Op::DeletePrefix {
                    prefix: keys::entity_events_prefix(&ns, &name),
                },
            ],
            failure: vec![],
        })
        .await?;
    if !resp.succeeded {
        return Err(ApiError::not_found(format!(
            "entity {name:?} not found in namespace {ns:?}"
        )));
    }
    if let Err(e) = state.keepalived.bury(&ns, &name).await {
        tracing::warn!(error = %e, namespace = %ns, entity = %name, "Could not remove the keepalive switch of a deleted entity");
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
