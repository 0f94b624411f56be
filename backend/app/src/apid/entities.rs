//! Entities: lists (per namespace and across namespaces), get, create, replace, delete.
//! Answers are redacted.

use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use backend_store::{Compare, Op, Txn};
use proto_spec::v2::entity::{MANAGED_BY_AGENT, MANAGED_BY_LABEL};
use proto_spec::v2::{Entity, EntityConfig};

use super::authz::ListScope;
use super::{
    ApiError, ApiJson, ApiState, ListParams, list_response, require_namespace, single_response,
};
use crate::entities::{self, EntityState};
use crate::keys;
use crate::repo::{Page, encode};

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/entities", get(list_all_entities))
        .route(
            "/namespaces/{ns}/entities",
            get(list_entities).post(create_entity),
        )
        .route(
            "/namespaces/{ns}/entities/{name}",
            get(get_entity).delete(delete_entity).put(put_entity),
        )
}

fn redact_all(mut page: Page<Entity>) -> Page<Entity> {
    page.items = page.items.iter().map(Entity::redacted).collect();
    page
}

async fn list_all_entities(
    State(state): State<ApiState>,
    Extension(scope): Extension<ListScope>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let mut page =
        entities::list(&state.repo, None, p.limit()?, p.continue_token.as_deref()).await?;
    page.items.retain(|e| scope.allows(&e.metadata.namespace));
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

/// `POST /namespaces/{ns}/entities`: create; 409 when it exists. Answers 200 with the entity,
/// as Sensu does for entities (other resources answer 201 without a body).
async fn create_entity(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
    ApiJson(entity): ApiJson<Entity>,
) -> Result<Response, ApiError> {
    let name = entity.metadata.name.clone();
    store_entity(&state, &ns, &name, entity, true).await
}

/// `PUT /namespaces/{ns}/entities/{name}`: create or replace, except entities their agent
/// manages (`sensu.io/managed_by: sensu-agent`), which only the agent may change (409).
async fn put_entity(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    ApiJson(entity): ApiJson<Entity>,
) -> Result<Response, ApiError> {
    store_entity(&state, &ns, &name, entity, false).await
}

async fn store_entity(
    state: &ApiState,
    ns: &str,
    name: &str,
    mut entity: Entity,
    create_only: bool,
) -> Result<Response, ApiError> {
    require_namespace(&state.repo, ns).await?;
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    if entity.metadata.namespace != ns {
        return Err(bad(format!(
            "metadata.namespace {:?} does not match the namespace in the URL ({ns:?})",
            entity.metadata.namespace
        )));
    }
    if entity.metadata.name != name {
        return Err(bad(format!(
            "metadata.name {:?} does not match the name in the URL ({name:?})",
            entity.metadata.name
        )));
    }
    entity.validate().map_err(|e| bad(e.to_string()))?;
    entity.ensure_entity_subscription();
    let config_key = keys::entity_config(ns, name);
    let stored: Option<EntityConfig> = state.repo.get(&config_key).await?;
    if let Some(stored) = &stored {
        if create_only {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("entity {name:?} already exists in namespace {ns:?}"),
            ));
        }
        if stored
            .metadata
            .labels
            .get(MANAGED_BY_LABEL)
            .map(String::as_str)
            == Some(MANAGED_BY_AGENT)
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "entity {name:?} is managed by its agent; change it in the agent's configuration"
                ),
            ));
        }
    }
    let config = EntityConfig::from_entity(&entity);
    let entity_state = EntityState::from_entity(&entity);
    let mut compares = vec![Compare::present(keys::namespace(ns))];
    compares.push(match &stored {
        None => Compare::absent(config_key.clone()),
        Some(_) => Compare::present(config_key.clone()),
    });
    let done = state
        .repo
        .store
        .txn(Txn {
            compares,
            success: vec![
                Op::put(config_key, encode(&config)),
                Op::put(keys::entity_state(ns, name), encode(&entity_state)),
            ],
            failure: vec![],
        })
        .await?
        .succeeded;
    if !done {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("entity {name:?} changed while it was being written; retry"),
        ));
    }
    Ok(single_response(&entity.redacted()))
}
