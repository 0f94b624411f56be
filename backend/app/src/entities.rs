//! Entities are stored split in two, as Sensu 6 does: the configuration operators (or the
//! agent, on registration) write, and the state every keepalive refreshes. A keepalive then
//! rewrites only the small state record, never the configuration.

use proto_spec::ObjectMeta;
use proto_spec::v2::{Entity, EntityConfig, System};
use serde::{Deserialize, Serialize};

use crate::keys;
use crate::repo::{Page, Repo, RepoResult};

/// The part of an entity that changes with every keepalive (core/v3 EntityState).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EntityState {
    pub metadata: ObjectMeta,
    pub system: System,
    pub last_seen: i64,
    pub sensu_agent_version: String,
}

impl EntityState {
    pub fn from_entity(e: &Entity) -> Self {
        EntityState {
            metadata: ObjectMeta::new(e.metadata.namespace.clone(), e.metadata.name.clone()),
            system: e.system.clone(),
            last_seen: e.last_seen,
            sensu_agent_version: e.sensu_agent_version.clone(),
        }
    }
}

/// Join a configuration and (if any) a state into the core/v2 Entity the API shows.
pub fn compose(config: EntityConfig, state: Option<EntityState>) -> Entity {
    let state = state.unwrap_or_default();
    Entity {
        entity_class: config.entity_class,
        system: state.system,
        subscriptions: config.subscriptions,
        last_seen: state.last_seen,
        deregister: config.deregister,
        deregistration: config.deregistration,
        user: config.user,
        redact: config.redact,
        metadata: config.metadata,
        sensu_agent_version: state.sensu_agent_version,
        keepalive_handlers: config.keepalive_handlers,
    }
}

pub async fn get(repo: &Repo, ns: &str, name: &str) -> RepoResult<Option<Entity>> {
    let Some(config) = repo
        .get::<EntityConfig>(&keys::entity_config(ns, name))
        .await?
    else {
        return Ok(None);
    };
    let state = repo
        .get::<EntityState>(&keys::entity_state(ns, name))
        .await?;
    Ok(Some(compose(config, state)))
}

/// One page of entities (of one namespace, or all when `ns` is `None`).
pub async fn list(
    repo: &Repo,
    ns: Option<&str>,
    limit: usize,
    continue_token: Option<&str>,
) -> RepoResult<Page<Entity>> {
    let page = repo
        .list::<EntityConfig>(&keys::entity_configs_prefix(ns), limit, continue_token)
        .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for config in page.items {
        let state = repo
            .get::<EntityState>(&keys::entity_state(
                &config.metadata.namespace,
                &config.metadata.name,
            ))
            .await?;
        items.push(compose(config, state));
    }
    Ok(Page {
        items,
        continue_token: page.continue_token,
    })
}
