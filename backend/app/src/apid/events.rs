//! Events: lists (per namespace, per entity, across namespaces), get, delete, and results
//! posted by external systems (sensu-compat 2.8): backup scripts, proxies, anything that
//! reports on behalf of an entity without an agent.

use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use proto_spec::v2::Event;
use proto_spec::v2::entity::ENTITY_CLASS_PROXY;

use super::authz::ListScope;
use super::{
    ApiError, ApiJson, ApiState, ListParams, list_response, require_namespace, single_response,
};
use crate::eventd::Work;
use crate::keepalived::KEEPALIVE_CHECK;
use crate::keys;
use crate::repo::Page;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/events", get(list_all_events))
        .route("/namespaces/{ns}/events", get(list_events).post(post_event))
        .route("/namespaces/{ns}/events/{entity}", get(list_entity_events))
        .route(
            "/namespaces/{ns}/events/{entity}/{check}",
            get(get_event)
                .delete(delete_event)
                .put(put_event_at)
                .post(put_event_at),
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
    Extension(scope): Extension<ListScope>,
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
        items: page
            .items
            .into_iter()
            .filter(|e| scope.allows(&e.metadata.namespace))
            .map(redact_event)
            .collect(),
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

/// `POST /namespaces/{ns}/events`: a result for the entity and check the body names.
async fn post_event(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
    ApiJson(event): ApiJson<Event>,
) -> Result<Response, ApiError> {
    accept_event(&state, &ns, None, event).await
}

/// `PUT|POST /namespaces/{ns}/events/{entity}/{check}`: the URL names the entity and check.
async fn put_event_at(
    State(state): State<ApiState>,
    Path((ns, entity, check)): Path<(String, String, String)>,
    ApiJson(event): ApiJson<Event>,
) -> Result<Response, ApiError> {
    accept_event(&state, &ns, Some((entity, check)), event).await
}

/// Fill what Sensu fills (namespace and names from the URL, entity class `proxy`, an id),
/// validate, and queue the event behind the entity's other results. 201 without a body once
/// queued; processing (history, proxy entity creation, TTL) follows at once.
async fn accept_event(
    state: &ApiState,
    ns: &str,
    names: Option<(String, String)>,
    mut event: Event,
) -> Result<Response, ApiError> {
    require_namespace(&state.repo, ns).await?;
    let given = &event.metadata.namespace;
    if !given.is_empty() && given != ns {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "metadata.namespace {given:?} does not match the namespace in the URL ({ns:?})"
            ),
        ));
    }
    event.metadata.namespace = ns.to_string();
    let entity = event.entity.get_or_insert_with(Default::default);
    let check = event.check.as_mut();
    if let Some((url_entity, url_check)) = &names {
        fill_or_match(
            "entity.metadata.name",
            &mut entity.metadata.name,
            url_entity,
        )?;
        match check {
            Some(check) => fill_or_match(
                "check.metadata.name",
                &mut check.config.metadata.name,
                url_check,
            )?,
            None => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "check: this route takes a check result",
                ));
            }
        }
    }
    entity.metadata.namespace = ns.to_string();
    if entity.entity_class.is_empty() {
        entity.entity_class = ENTITY_CLASS_PROXY.to_string();
    }
    if let Some(check) = event.check.as_mut() {
        check.config.metadata.namespace = ns.to_string();
        // Like the agent's events API: a result without a schedule is a one-off.
        if check.config.interval == 0 && check.config.cron.is_empty() {
            check.config.interval = 1;
        }
        if check.executed == 0 {
            check.executed = crate::timefmt::now_unix();
        }
    }
    if event.id.is_none() {
        event.id = Some(uuid::Uuid::new_v4());
    }
    event
        .validate()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let work = if event.check_name() == KEEPALIVE_CHECK {
        Work::Keepalive(Box::new(event))
    } else {
        Work::Event(Box::new(event))
    };
    if !state.dispatcher.submit(work).await {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the backend is shutting down",
        ));
    }
    Ok(StatusCode::CREATED.into_response())
}

fn fill_or_match(field: &str, value: &mut String, from_url: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        *value = from_url.to_string();
        Ok(())
    } else if value == from_url {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{field} {value:?} does not match the URL ({from_url:?})"),
        ))
    }
}
