//! keepalived: entity registration, liveness and keepalive failure (sensu-compat 2.2, 2.7).
//!
//! Liveness is a switch per agent (`switchset`), `/sensu.io/switchsets/keepalived/<ns>/<entity>`,
//! leased for the agent's keepalive warning timeout: each keepalive renews the lease (one lease
//! per agent, reused; never a lease per keepalive). When it lapses, the backend that wins the
//! re-arm raises the failure event; the re-armed switch lapses again after another timeout, so
//! the failure repeats (escalating to critical) until the agent returns or the entity is
//! deleted.

use std::sync::Arc;

use backend_store::{Compare, Op, StoreError, Txn};
use proto_spec::ObjectMeta;
use proto_spec::v2::entity::{ENTITY_CLASS_AGENT, MANAGED_BY_AGENT, MANAGED_BY_LABEL};
use proto_spec::v2::{Check, CheckConfig, Entity, EntityConfig, Event};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::entities::{self, EntityState};
use crate::eventd::Eventd;
use crate::keys;
use crate::metrics::Metrics;
use crate::repo::{RepoError, encode};
use crate::switchset::Switchset;
use crate::timefmt::{go_time_string_utc, now_unix};

pub const KEEPALIVE_CHECK: &str = "keepalive";
pub const REGISTRATION_CHECK: &str = "registration";
pub const DEREGISTRATION_CHECK: &str = "deregistration";
pub const DEFAULT_KEEPALIVE_HANDLER: &str = "keepalive";
pub const DEFAULT_WARNING_TIMEOUT: u32 = 120;

#[derive(Debug, thiserror::Error)]
pub enum KeepaliveError {
    #[error("keepalive has no entity")]
    NoEntity,
    #[error("keepalive from {0} has a zero timestamp")]
    ZeroTimestamp(String),
    #[error("namespace {0:?} does not exist")]
    UnknownNamespace(String),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl From<StoreError> for KeepaliveError {
    fn from(e: StoreError) -> Self {
        KeepaliveError::Repo(e.into())
    }
}

pub struct Keepalived {
    eventd: Eventd,
    switches: Arc<Switchset>,
}

/// Switch id of an agent: `<ns>/<entity>`.
fn switch_id(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

impl Keepalived {
    pub fn new(eventd: Eventd) -> Self {
        let switches = Arc::new(Switchset::new(
            eventd.repo.store.clone(),
            keys::keepalive_switches_prefix(),
        ));
        Keepalived { eventd, switches }
    }

    /// The event processor keepalives go through (the events API feeds it too).
    pub fn eventd(&self) -> &Eventd {
        &self.eventd
    }

    fn metrics(&self) -> &Metrics {
        &self.eventd.metrics
    }

    /// Process one keepalive from an agent session.
    pub async fn handle_keepalive(&self, mut event: Event) -> Result<(), KeepaliveError> {
        let mut entity = event.entity.take().ok_or(KeepaliveError::NoEntity)?;
        if event.timestamp == 0 {
            Metrics::inc(&self.metrics().keepalives_rejected_total);
            return Err(KeepaliveError::ZeroTimestamp(entity.metadata.name.clone()));
        }
        Metrics::inc(&self.metrics().keepalives_total);
        let repo = &self.eventd.repo;
        let ns = entity.metadata.namespace.clone();
        let name = entity.metadata.name.clone();
        if entity.entity_class.is_empty() {
            entity.entity_class = ENTITY_CLASS_AGENT.to_string();
        }
        entity.ensure_entity_subscription();
        entity.last_seen = event.timestamp;

        let config_key = keys::entity_config(&ns, &name);
        let stored: Option<EntityConfig> = repo.get(&config_key).await?;
        let agent_managed = entity
            .metadata
            .labels
            .get(MANAGED_BY_LABEL)
            .map(String::as_str)
            == Some(MANAGED_BY_AGENT);
        let config = match stored {
            None => {
                let config = EntityConfig::from_entity(&entity);
                let txn = Txn {
                    compares: vec![
                        Compare::absent(config_key.clone()),
                        Compare::present(keys::namespace(&ns)),
                    ],
                    success: vec![Op::put(config_key.clone(), encode(&config))],
                    failure: vec![],
                };
                if !repo.store.txn(txn).await?.succeeded {
                    // Either another backend registered it a moment ago, or the namespace is
                    // gone; re-read to tell which.
                    if !repo.exists(&keys::namespace(&ns)).await? {
                        return Err(KeepaliveError::UnknownNamespace(ns));
                    }
                    repo.get(&config_key).await?.unwrap_or(config)
                } else {
                    Metrics::inc(&self.metrics().registrations_total);
                    tracing::info!(namespace = %ns, entity = %name, "Entity registered");
                    self.publish_registration(&entity);
                    config
                }
            }
            Some(_) if agent_managed && event.sequence == 1 => {
                let config = EntityConfig::from_entity(&entity);
                repo.put(&config_key, &config).await?;
                config
            }
            Some(config) => config,
        };
        let state = EntityState::from_entity(&entity);
        // Batched with other hot-path writes (events, other agents' states).
        self.eventd
            .writer
            .write(
                vec![],
                vec![Op::put(keys::entity_state(&ns, &name), encode(&state))],
            )
            .await?;
        let entity = entities::compose(config, Some(state));

        let ka_check = event.check.take().unwrap_or_default();
        let warning = if ka_check.config.timeout == 0 {
            DEFAULT_WARNING_TIMEOUT
        } else {
            ka_check.config.timeout
        };
        self.switches
            .alive(&switch_id(&ns, &name), warning.into())
            .await?;

        let now = now_unix();
        let mut check = keepalive_check(&entity, &ka_check.config, now);
        check.status = 0;
        check.output = format!(
            "Keepalive last sent from {name} at {}",
            go_time_string_utc(entity.last_seen)
        );
        let out = Event {
            timestamp: now,
            entity: Some(entity),
            check: Some(check),
            metadata: event.metadata,
            id: Some(Uuid::new_v4()),
            sequence: event.sequence,
            pipelines: event.pipelines,
            metrics: None,
        };
        self.eventd.process(out).await?;
        Ok(())
    }

    /// Forget an agent's switch (its entity was deleted).
    pub async fn bury(&self, ns: &str, name: &str) -> Result<(), KeepaliveError> {
        Ok(self.switches.bury(&switch_id(ns, name)).await?)
    }

    fn publish_registration(&self, entity: &Entity) {
        let mut check = Check::from_config(CheckConfig {
            metadata: ObjectMeta::new(entity.metadata.namespace.clone(), REGISTRATION_CHECK),
            interval: 1,
            handlers: vec![REGISTRATION_CHECK.to_string()],
            ..Default::default()
        });
        check.status = 1;
        let now = now_unix();
        check.executed = now;
        check.issued = now;
        let event = Event {
            timestamp: now,
            entity: Some(entity.clone()),
            check: Some(check),
            id: Some(Uuid::new_v4()),
            ..Default::default()
        };
        let _ = self.eventd.bus.send(Arc::new(event));
    }

    /// Watch for lapsed keepalives until shutdown.
    pub async fn run_monitor(self: Arc<Self>, shutdown: CancellationToken) {
        let this = self.clone();
        self.switches
            .clone()
            .watch_expiries(shutdown, move |id| {
                let this = this.clone();
                async move {
                    let Some((ns, name)) = id.split_once('/') else { return };
                    if let Err(e) = this.handle_expiry(ns, name).await {
                        tracing::error!(error = %e, namespace = %ns, entity = %name, "Failed to handle a keepalive expiry");
                    }
                }
            })
            .await;
    }

    /// An agent's switch expired: deregister it, or raise (and re-arm) its keepalive failure.
    pub async fn handle_expiry(&self, ns: &str, name: &str) -> Result<(), KeepaliveError> {
        let repo = &self.eventd.repo;
        let Some(entity) = entities::get(repo, ns, name).await? else {
            return Ok(()); // deleted on purpose: nothing to report
        };
        let previous: Option<Event> = repo.get(&keys::event(ns, name, KEEPALIVE_CHECK)).await?;
        let ka_config = previous
            .as_ref()
            .and_then(|e| e.check.as_ref())
            .map(|c| c.config.clone())
            .unwrap_or_default();
        let warning = if ka_config.timeout == 0 {
            DEFAULT_WARNING_TIMEOUT
        } else {
            ka_config.timeout
        };
        let critical = u32::try_from(ka_config.ttl).unwrap_or(0);

        // Only the backend that re-arms the switch acts on this expiry.
        let Some(lease) = self
            .switches
            .lead_expiry(&switch_id(ns, name), warning.into())
            .await?
        else {
            return Ok(());
        };

        if entity.deregister {
            // The deregistration deletes the switch itself; revoking its lease first would
            // delete it early and look like a second expiry to the watchers.
            let result = self.deregister(entity).await;
            self.switches.release(lease).await;
            return result;
        }

        let now = now_unix();
        let silent_for = (now - entity.last_seen).max(i64::from(warning));
        let (status, threshold) = if critical != 0 && silent_for >= i64::from(critical) {
            (2, critical)
        } else {
            (1, warning)
        };
        let mut check = keepalive_check(&entity, &ka_config, now);
        check.status = status;
        check.output =
            format!("No keepalive sent from {name} for {silent_for} seconds (>= {threshold})");
        Metrics::inc(&self.metrics().keepalive_failures_total);
        tracing::warn!(namespace = %ns, entity = %name, status, silent_for, "Keepalive failure");
        let event = Event {
            timestamp: now,
            entity: Some(entity),
            check: Some(check),
            id: Some(Uuid::new_v4()),
            ..Default::default()
        };
        self.eventd.process(event).await?;
        Ok(())
    }

    /// Remove an entity whose agent stopped with `deregister: true`: its events are resolved
    /// and deleted, and a deregistration event goes to its deregistration handler.
    async fn deregister(&self, entity: Entity) -> Result<(), KeepaliveError> {
        let repo = &self.eventd.repo;
        let (ns, name) = (
            entity.metadata.namespace.clone(),
            entity.metadata.name.clone(),
        );
        let events: Vec<(String, Event)> = repo
            .list_all(&keys::entity_events_prefix(&ns, &name))
            .await?;
        let store = &repo.store;
        store
            .txn(Txn {
                compares: vec![],
                success: vec![
                    Op::delete(keys::entity_config(&ns, &name)),
                    Op::delete(keys::entity_state(&ns, &name)),
                    Op::DeletePrefix {
                        prefix: keys::entity_events_prefix(&ns, &name),
                    },
                    Op::delete(keys::keepalive_switch(&ns, &name)),
                ],
                failure: vec![],
            })
            .await?;
        Metrics::inc(&self.metrics().deregistrations_total);
        let now = now_unix();
        for (_, mut event) in events {
            if let Some(check) = event.check.as_mut() {
                check.status = 0;
                check.output = "Resolving due to entity deregistering".to_string();
                check.history = None;
                check.executed = now;
            }
            event.timestamp = now;
            let _ = self.eventd.bus.send(Arc::new(event));
        }
        if !entity.deregistration.handler.is_empty() {
            let mut check = Check::from_config(CheckConfig {
                metadata: ObjectMeta::new(ns.clone(), DEREGISTRATION_CHECK),
                interval: 1,
                handlers: vec![entity.deregistration.handler.clone()],
                ..Default::default()
            });
            check.status = 1;
            check.executed = now;
            check.issued = now;
            let event = Event {
                timestamp: now,
                entity: Some(entity),
                check: Some(check),
                id: Some(Uuid::new_v4()),
                ..Default::default()
            };
            let _ = self.eventd.bus.send(Arc::new(event));
        }
        tracing::info!(namespace = %ns, entity = %name, "Entity deregistered");
        Ok(())
    }
}

/// The keepalive check of an entity's events (sensu-compat 2.2).
fn keepalive_check(entity: &Entity, reported: &CheckConfig, now: i64) -> Check {
    let handlers = if entity.keepalive_handlers.is_empty() {
        vec![DEFAULT_KEEPALIVE_HANDLER.to_string()]
    } else {
        entity.keepalive_handlers.clone()
    };
    let mut check = Check::from_config(CheckConfig {
        metadata: ObjectMeta {
            labels: reported.metadata.labels.clone(),
            annotations: reported.metadata.annotations.clone(),
            ..ObjectMeta::new(entity.metadata.namespace.clone(), KEEPALIVE_CHECK)
        },
        interval: reported.interval,
        timeout: if reported.timeout == 0 {
            DEFAULT_WARNING_TIMEOUT
        } else {
            reported.timeout
        },
        ttl: reported.ttl,
        handlers,
        ..Default::default()
    });
    check.executed = now;
    check.issued = now;
    check.scheduler = "etcd".to_string();
    check
}
