//! The agent's entity and its keepalive event (sensu-compat 1.3, 2.2).
//!
//! The configurable part of the entity is a core/v3 `EntityConfig`: first built from the local
//! flags, then replaced by what the backend sends in `entity_config` messages (unless the
//! entity is agent-managed). The state part (system facts, `last_seen`, version) is added when
//! a keepalive is built.

use proto_spec::ObjectMeta;
use proto_spec::meta::ResourceReference;
use proto_spec::v2::entity::{ENTITY_CLASS_AGENT, MANAGED_BY_AGENT, MANAGED_BY_LABEL};
use proto_spec::v2::entity_config::ENTITY_CONFIG_NOT_FOUND;
use proto_spec::v2::{Check, CheckConfig, Deregistration, Entity, EntityConfig, Event, System};

use crate::config::{Config, VERSION};

/// Name of the keepalive check.
pub const KEEPALIVE_CHECK: &str = "keepalive";

/// The entity configuration the local flags describe.
pub fn local_entity_config(cfg: &Config) -> EntityConfig {
    let mut labels = cfg.labels.clone();
    if cfg.agent_managed_entity {
        labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY_AGENT.to_string());
    }
    EntityConfig {
        metadata: ObjectMeta {
            name: cfg.name.clone(),
            namespace: cfg.namespace.clone(),
            labels,
            annotations: cfg.annotations.clone(),
            created_by: String::new(),
        },
        entity_class: ENTITY_CLASS_AGENT.to_string(),
        user: cfg.user.clone(),
        subscriptions: Some(cfg.subscriptions.clone()),
        deregister: cfg.deregister,
        deregistration: Deregistration {
            handler: cfg.deregistration_handler.clone(),
        },
        keepalive_handlers: cfg.keepalive.handlers.clone(),
        redact: cfg.redact.clone(),
    }
}

/// What an incoming `entity_config` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigUpdate {
    /// The backend has no stored config (`not found`): the local one stays.
    KeptLocal,
    /// `--agent-managed-entity`: the agent's own config wins.
    IgnoredAgentManaged,
    Adopted,
}

/// Apply a backend `entity_config` to the current one. The identity (name, namespace, class)
/// always stays the agent's own: a config for another name cannot rename the agent.
pub fn apply_entity_config(
    current: &mut EntityConfig,
    incoming: EntityConfig,
    agent_managed: bool,
) -> ConfigUpdate {
    if incoming.metadata.name == ENTITY_CONFIG_NOT_FOUND {
        return ConfigUpdate::KeptLocal;
    }
    if agent_managed {
        return ConfigUpdate::IgnoredAgentManaged;
    }
    let name = std::mem::take(&mut current.metadata.name);
    let namespace = std::mem::take(&mut current.metadata.namespace);
    let user = std::mem::take(&mut current.user);
    *current = EntityConfig {
        metadata: ObjectMeta {
            name,
            namespace,
            created_by: incoming.metadata.created_by,
            labels: incoming.metadata.labels,
            annotations: incoming.metadata.annotations,
        },
        entity_class: ENTITY_CLASS_AGENT.to_string(),
        // An empty user in a stored config means "unchanged", not "no user".
        user: if incoming.user.is_empty() {
            user
        } else {
            incoming.user
        },
        ..incoming
    };
    ConfigUpdate::Adopted
}

/// The subscriptions to announce in the handshake: the current ones, without the
/// `entity:<name>` subscription the backend adds by itself.
pub fn handshake_subscriptions(cfg: &EntityConfig) -> Vec<String> {
    cfg.subscriptions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|s| !s.starts_with("entity:"))
        .cloned()
        .collect()
}

/// The full entity (config + state) at time `now` (Unix seconds).
pub fn build_entity(cfg: &EntityConfig, system: System, now: i64) -> Entity {
    let mut entity = Entity {
        entity_class: ENTITY_CLASS_AGENT.to_string(),
        system,
        subscriptions: Some(cfg.subscriptions.clone().unwrap_or_default()),
        last_seen: now,
        deregister: cfg.deregister,
        deregistration: cfg.deregistration.clone(),
        user: cfg.user.clone(),
        redact: cfg.redact.clone(),
        metadata: cfg.metadata.clone(),
        sensu_agent_version: VERSION.to_string(),
        keepalive_handlers: cfg.keepalive_handlers.clone(),
    };
    entity.ensure_entity_subscription();
    entity
}

/// A keepalive event: `sequence` counts from 1 per connection, `now` is Unix seconds.
pub fn keepalive_event(cfg: &Config, entity: Entity, now: i64, sequence: i64) -> Event {
    let ka = &cfg.keepalive;
    let check = Check::from_config(CheckConfig {
        metadata: ObjectMeta::new(cfg.namespace.clone(), KEEPALIVE_CHECK),
        interval: ka.interval,
        timeout: ka.warning_timeout,
        ttl: i64::from(ka.critical_timeout),
        ..Default::default()
    });
    let pipelines = (!ka.pipelines.is_empty()).then(|| {
        ka.pipelines
            .iter()
            .map(|name| ResourceReference {
                name: name.clone(),
                type_: "Pipeline".to_string(),
                api_version: "core/v2".to_string(),
            })
            .collect()
    });
    Event {
        timestamp: now,
        entity: Some(entity),
        check: Some(check),
        metrics: None,
        metadata: ObjectMeta {
            name: String::new(),
            namespace: cfg.namespace.clone(),
            labels: ka.check_labels.clone(),
            annotations: ka.check_annotations.clone(),
            created_by: String::new(),
        },
        id: Some(uuid::Uuid::new_v4()),
        sequence,
        pipelines,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(extra: &[&str]) -> Config {
        let mut args = vec![
            "--name",
            "web-1",
            "--subscriptions",
            "linux,web",
            "--config-file",
            "",
        ];
        args.extend_from_slice(extra);
        Config::from_args(args, &HashMap::new()).unwrap()
    }

    #[test]
    fn local_config_and_entity() {
        let cfg = config(&["--labels", "team=ops", "--deregister"]);
        let ec = local_entity_config(&cfg);
        let e = build_entity(&ec, System::default(), 42);
        assert_eq!(e.metadata.name, "web-1");
        assert_eq!(e.metadata.namespace, "default");
        assert_eq!(e.subscriptions(), ["linux", "web", "entity:web-1"]);
        assert_eq!(
            e.metadata.labels.get("team").map(String::as_str),
            Some("ops")
        );
        assert!(e.deregister);
        assert_eq!(e.last_seen, 42);
        assert_eq!(e.user, "agent");
        assert_eq!(e.sensu_agent_version, VERSION);
        assert_eq!(handshake_subscriptions(&ec), ["linux", "web"]);
    }

    #[test]
    fn entity_config_updates() {
        let cfg = config(&[]);
        let mut ec = local_entity_config(&cfg);
        let not_found = EntityConfig {
            metadata: ObjectMeta::new("default", ENTITY_CONFIG_NOT_FOUND),
            ..Default::default()
        };
        assert_eq!(
            apply_entity_config(&mut ec, not_found, false),
            ConfigUpdate::KeptLocal
        );
        assert_eq!(ec, local_entity_config(&cfg));

        let stored = EntityConfig {
            metadata: ObjectMeta::new("default", "web-1"),
            subscriptions: Some(vec!["linux".into(), "db".into(), "entity:web-1".into()]),
            keepalive_handlers: vec!["pager".into()],
            deregister: true,
            ..Default::default()
        };
        assert_eq!(
            apply_entity_config(&mut ec.clone(), stored.clone(), true),
            ConfigUpdate::IgnoredAgentManaged
        );
        assert_eq!(
            apply_entity_config(&mut ec, stored, false),
            ConfigUpdate::Adopted
        );
        assert_eq!(
            ec.subscriptions.as_deref().unwrap(),
            ["linux", "db", "entity:web-1"]
        );
        assert_eq!(ec.user, "agent");
        assert_eq!(ec.entity_class, "agent");
        assert!(ec.deregister);
        let e = build_entity(&ec, System::default(), 1);
        // `entity:<name>` is not duplicated.
        assert_eq!(e.subscriptions(), ["linux", "db", "entity:web-1"]);
    }

    #[test]
    fn agent_managed_label() {
        let cfg = config(&["--agent-managed-entity"]);
        let ec = local_entity_config(&cfg);
        assert_eq!(
            ec.metadata.labels.get(MANAGED_BY_LABEL).map(String::as_str),
            Some(MANAGED_BY_AGENT)
        );
    }

    #[test]
    fn keepalive_shape() {
        let cfg = config(&[
            "--keepalive-interval",
            "10",
            "--keepalive-warning-timeout",
            "60",
            "--keepalive-critical-timeout",
            "90",
            "--keepalive-pipelines",
            "ka-pipe",
            "--keepalive-check-labels",
            "tier=1",
        ]);
        let entity = build_entity(&local_entity_config(&cfg), System::default(), 100);
        let ev = keepalive_event(&cfg, entity, 100, 3);
        let json: serde_json::Value = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["timestamp"], 100);
        assert_eq!(json["sequence"], 3);
        assert_eq!(json["check"]["metadata"]["name"], "keepalive");
        assert_eq!(json["check"]["metadata"]["namespace"], "default");
        assert_eq!(json["check"]["interval"], 10);
        assert_eq!(json["check"]["timeout"], 60);
        assert_eq!(json["check"]["ttl"], 90);
        assert_eq!(json["metadata"]["labels"]["tier"], "1");
        assert_eq!(
            json["pipelines"],
            serde_json::json!([{"name": "ka-pipe", "type": "Pipeline", "api_version": "core/v2"}])
        );
        assert!(ev.id.is_some());
        assert_eq!(json["entity"]["entity_class"], "agent");
    }
}
