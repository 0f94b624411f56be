//! Events: lists (per namespace, per entity, across namespaces), get, delete.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use proto_spec::v2::Event;

use super::{ApiError, ApiState, ListParams, list_response, require_namespace, single_response};
use crate::keys;
use crate::repo::Page;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/events", get(list_all_events))
        .route("/namespaces/{ns}/events", get(list_events))
        .route("/namespaces/{ns}/events/{entity}", get(list_entity_events))
        .route(
            "/namespaces/{ns}/events/{entity}/{check}",
            get(get_event).delete(delete_event),
        )
}

pub(super) fn redact_event(mut event: Event) -> Event {
    if let Some(e) = event.entity.as_mut() {
        *e = e.redacted();
    }
    event
}

async fn list_all_events(
    State(state): State<ApiState>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let page = state
        .repo
        .list::<Event>(
            &keys::events_prefix(None),
            p.limit()?,
            p.continue_token.as_deref(),
        )
        .await?;
    Ok(list_response(Page {
        items: page.items.into_iter().map(redact_event).collect(),
        ..page
    }))
}

async fn list_events(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    require_namespace(&state.repo, &ns).await?;
    let page = state
        .repo
        .list::<Event>(
            &keys::events_prefix(Some(&ns)),
            p.limit()?,
            p.continue_token.as_deref(),
        )
        .await?;
    Ok(list_response(Page {
        items: page.items.into_iter().map(redact_event).collect(),
        ..page
    }))
}

async fn list_entity_events(
    State(state): State<ApiState>,
    Path((ns, entity)): Path<(String, String)>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    require_namespace(&state.repo, &ns).await?;
    let page = state
        .repo
        .list::<Event>(
            &keys::entity_events_prefix(&ns, &entity),
            p.limit()?,
            p.continue_token.as_deref(),
        )
        .await?;
    Ok(list_response(Page {
        items: page.items.into_iter().map(redact_event).collect(),
        ..page
    }))
}

async fn get_event(
    State(state): State<ApiState>,
    Path((ns, entity, check)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    require_namespace(&state.repo, &ns).await?;
    let event: Event = state
        .repo
        .get(&keys::event(&ns, &entity, &check))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "event {entity}/{check} not found in namespace {ns:?}"
            ))
        })?;
    Ok(single_response(&redact_event(event)))
}

async fn delete_event(
    State(state): State<ApiState>,
    Path((ns, entity, check)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    require_namespace(&state.repo, &ns).await?;
    if state
        .repo
        .store
        .delete(&keys::event(&ns, &entity, &check))
        .await?
        == 0
    {
        return Err(ApiError::not_found(format!(
            "event {entity}/{check} not found in namespace {ns:?}"
        )));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
