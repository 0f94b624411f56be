//! Turning one execution of a check into check requests on this backend's bus: the path shared
//! by scheduled and adhoc executions.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use proto_spec::v2::{Asset, AssetList, CheckConfig, CheckRequest, HookConfig};

use crate::bus::CheckBus;
use crate::keys;
use crate::repo::{Repo, RepoError};

/// Chooses the agent that runs one round-robin execution within a subscription.
///
/// The implementation here rotates over the sessions connected to this backend. Sensu's
/// cluster-wide ring (`/sensu.io/rings/...`, a later issue) will implement the same interface
/// with etcd leases and deliver on `entity:<agent>`; it is async for that reason.
pub trait RoundRobinRing: Send + Sync {
    /// Hand `request` to one agent of `subscription`; false when no agent could take it.
    fn dispatch<'a>(
        &'a self,
        namespace: &'a str,
        subscription: &'a str,
        check: &'a str,
        request: Arc<CheckRequest>,
    ) -> BoxFuture<'a, bool>;
}

/// Round robin over this backend's own sessions (`CheckBus::publish_one`): a disconnected
/// agent's session is gone from the bus, so the next execution goes to a live one.
pub struct LocalRing {
    bus: Arc<CheckBus>,
}

impl LocalRing {
    pub fn new(bus: Arc<CheckBus>) -> Self {
        LocalRing { bus }
    }
}

impl RoundRobinRing for LocalRing {
    fn dispatch<'a>(
        &'a self,
        namespace: &'a str,
        subscription: &'a str,
        _check: &'a str,
        request: Arc<CheckRequest>,
    ) -> BoxFuture<'a, bool> {
        let delivered = self.bus.publish_one(namespace, subscription, request);
        Box::pin(std::future::ready(delivered))
    }
}

/// What one execution reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    /// Sessions that received the request.
    pub sessions: usize,
}

/// Builds check requests and publishes them: used by the scheduler's timers and by the
/// adhoc endpoint (`POST .../checks/{check}/execute`).
pub struct Publisher {
    repo: Repo,
    bus: Arc<CheckBus>,
    ring: Arc<dyn RoundRobinRing>,
}

impl Publisher {
    pub fn new(repo: Repo, bus: Arc<CheckBus>) -> Self {
        let ring = Arc::new(LocalRing::new(bus.clone()));
        Publisher { repo, bus, ring }
    }

    /// Replace the round-robin strategy (the cluster-wide ring, tests).
    pub fn with_ring(mut self, ring: Arc<dyn RoundRobinRing>) -> Self {
        self.ring = ring;
        self
    }

    /// Run one execution of `check` now: the one place where a check becomes requests, so
    /// proxy requests (entity_attributes matched per entity, another crate) slot in here.
    /// `check.subscriptions` are the targets (adhoc overrides them before calling). Ignores
    /// `publish`: the scheduler checks it, adhoc executions do not.
    pub async fn execute(&self, check: &CheckConfig, issued: i64) -> Result<Published, RepoError> {
        if check.proxy_requests.is_some() {
            tracing::warn!(
                check = %check.metadata.name,
                namespace = %check.metadata.namespace,
                "proxy_requests are not evaluated yet; the execution is skipped"
            );
            return Ok(Published::default());
        }
        if check.subscriptions.is_empty() {
            tracing::debug!(check = %check.metadata.name, "Check has no subscriptions; nothing to publish");
            return Ok(Published::default());
        }
        let request = Arc::new(self.build_request(check, issued).await?);
        let ns = &check.metadata.namespace;
        let mut sessions = 0;
        for sub in &check.subscriptions {
            if check.round_robin {
                if self
                    .ring
                    .dispatch(ns, sub, check.name(), request.clone())
                    .await
                {
                    sessions += 1;
                }
            } else {
                sessions += self.bus.publish(ns, sub, request.clone());
            }
        }
        tracing::debug!(check = %check.metadata.name, namespace = %ns, sessions, "Check request published");
        Ok(Published { sessions })
    }

    /// The request for one execution (sensu-compat 1.14): the definition, the hooks named in
    /// `check_hooks`, the namespace's assets whose names start with a `runtime_assets` entry
    /// (Sensu's prefix match) and the same per hook. Store reads happen only when the check
    /// names hooks or assets, so the common check costs none.
    pub async fn build_request(
        &self,
        check: &CheckConfig,
        issued: i64,
    ) -> Result<CheckRequest, RepoError> {
        let ns = &check.metadata.namespace;
        let mut hooks: Vec<HookConfig> = Vec::new();
        for list in check.check_hooks() {
            for name in list.hooks() {
                if hooks.iter().any(|h| &h.metadata.name == name) {
                    continue;
                }
                match self
                    .repo
                    .get::<HookConfig>(&keys::resource("hooks", ns, name))
                    .await?
                {
                    Some(h) => hooks.push(h),
                    // The agent reports a missing hook in the event (sensu-compat 4.1).
                    None => {
                        tracing::debug!(check = %check.metadata.name, hook = %name, "Hook named by a check does not exist")
                    }
                }
            }
        }
        let wants_assets = !check.runtime_assets().is_empty()
            || hooks
                .iter()
                .any(|h| !h.runtime_assets.as_deref().unwrap_or_default().is_empty());
        let all_assets: Vec<Asset> = if wants_assets {
            self.repo
                .list_all::<Asset>(&keys::resources_prefix("assets", Some(ns)))
                .await?
                .into_iter()
                .map(|(_, a)| a)
                .collect()
        } else {
            Vec::new()
        };
        let matching = |wanted: &[String]| -> Vec<Asset> {
            all_assets
                .iter()
                .filter(|a| {
                    wanted
                        .iter()
                        .any(|w| a.metadata.name.starts_with(w.as_str()))
                })
                .cloned()
                .collect()
        };
        let assets = matching(check.runtime_assets());
        let hook_assets: BTreeMap<String, AssetList> = hooks
            .iter()
            .filter_map(|h| {
                let wanted = h.runtime_assets.as_deref().unwrap_or_default();
                (!wanted.is_empty()).then(|| {
                    (
                        h.metadata.name.clone(),
                        AssetList {
                            assets: Some(matching(wanted)),
                        },
                    )
                })
            })
            .collect();
        Ok(CheckRequest {
            config: Some(check.clone()),
            assets: (!assets.is_empty()).then_some(assets),
            hooks: (!hooks.is_empty()).then_some(hooks),
            issued,
            hook_assets: (!hook_assets.is_empty()).then_some(hook_assets),
            secrets: Vec::new(),
        })
    }
}
