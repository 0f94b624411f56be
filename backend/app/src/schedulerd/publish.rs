//! Turning one execution of a check into check requests on this backend's bus: the path shared
//! by scheduled and adhoc executions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use proto_spec::tokens;
use proto_spec::v2::{Asset, AssetList, CheckConfig, CheckRequest, HookConfig, ProxyRequests};

use super::cron::CronSchedule;
use crate::bus::CheckBus;
use crate::entities;
use crate::keys;
use crate::repo::{Repo, RepoError};

/// `splay_coverage` 0 means this much of the period (sensu-compat 1.4).
const DEFAULT_SPLAY_COVERAGE: u32 = 90;

/// Chooses the agent that runs one round-robin execution within a subscription.
///
/// `LocalRing` (here) rotates over the sessions connected to this backend; `ClusterRing`
/// (`ring.rs`) rotates cluster-wide through store keys and delivers on `entity:<agent>`, which
/// is why the interface is async.
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
#[derive(Clone)]
pub struct Publisher {
    repo: Repo,
    bus: Arc<CheckBus>,
    ring: Arc<dyn RoundRobinRing>,
    /// Evaluates `proxy_requests.entity_attributes`; compiled expressions are cached inside.
    /// Created on first use (most installations have no proxy checks) and only ever used
    /// from the blocking pool, because evaluation is synchronous and time-limited.
    js: Arc<Mutex<Option<jsexpr::Engine>>>,
}

impl Publisher {
    pub fn new(repo: Repo, bus: Arc<CheckBus>) -> Self {
        let ring = Arc::new(LocalRing::new(bus.clone()));
        Publisher {
            repo,
            bus,
            ring,
            js: Arc::new(Mutex::new(None)),
        }
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
        if let Some(pr) = &check.proxy_requests {
            return self.execute_proxy(check, pr, issued).await;
        }
        if check.subscriptions.is_empty() {
            tracing::debug!(check = %check.metadata.name, "Check has no subscriptions; nothing to publish");
            return Ok(Published::default());
        }
        let request = Arc::new(self.build_request(check, issued).await?);
        Ok(self.publish(check, request).await)
    }

    /// Deliver one request to the check's subscriptions (one agent each when round robin).
    async fn publish(&self, check: &CheckConfig, request: Arc<CheckRequest>) -> Published {
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
        Published { sessions }
    }

    /// A proxy check (sensu-compat 4): one request per entity of the namespace that matches
    /// every `entity_attributes` expression (an empty list matches nothing, as in Sensu),
    /// with the check's tokens substituted against that entity and `proxy_entity_name` set.
    /// With `splay`, the requests are spread over `splay_coverage` percent of the period
    /// instead of all leaving at once.
    async fn execute_proxy(
        &self,
        check: &CheckConfig,
        pr: &ProxyRequests,
        issued: i64,
    ) -> Result<Published, RepoError> {
        let expressions = pr.entity_attributes.clone().unwrap_or_default();
        if expressions.is_empty() || check.subscriptions.is_empty() {
            return Ok(Published::default());
        }
        let ns = &check.metadata.namespace;
        let candidates = entities::list(&self.repo, Some(ns), 0, None).await?.items;
        let data: Vec<serde_json::Value> =
            candidates.iter().map(tokens::synthesize_entity).collect();
        let js = self.js.clone();
        let check_name = check.metadata.name.clone();
        let matched: Vec<usize> = tokio::task::spawn_blocking(move || {
            let mut guard = js.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if guard.is_none() {
                match jsexpr::Engine::new(jsexpr::Limits::default()) {
                    Ok(engine) => *guard = Some(engine),
                    Err(e) => {
                        tracing::error!(error = %e, "Cannot start the JavaScript engine for proxy checks");
                        return Vec::new();
                    }
                }
            }
            let engine = guard.as_mut().expect("set above");
            let compiled: Vec<jsexpr::Expr> = match expressions
                .iter()
                .map(|e| engine.compile(e))
                .collect::<Result<_, _>>()
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(check = %check_name, error = %e, "Proxy check has an invalid entity attribute");
                    return Vec::new();
                }
            };
            (0..data.len())
                .filter(|i| {
                    compiled.iter().all(|expr| {
                        engine.eval_bool(expr, &[("entity", &data[*i])]).unwrap_or_else(|e| {
                            // Sensu skips an expression that errors; the entity does not match.
                            tracing::debug!(check = %check_name, error = %e, "Entity attribute failed");
                            false
                        })
                    })
                })
                .collect()
        })
        .await
        .unwrap_or_default();
        if matched.is_empty() {
            tracing::debug!(check = %check.metadata.name, namespace = %ns, "Proxy check matched no entity");
            return Ok(Published::default());
        }

        let mut requests = Vec::with_capacity(matched.len());
        for i in matched {
            let entity = &candidates[i];
            let mut config = match tokens::substitute_check(
                check,
                &tokens::synthesize_entity(entity),
            ) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(check = %check.metadata.name, entity = %entity.metadata.name, error = %e, "Cannot substitute tokens for a proxy entity; skipped");
                    continue;
                }
            };
            config.proxy_entity_name = entity.metadata.name.clone();
            requests.push((
                config.clone(),
                Arc::new(self.build_request(&config, issued).await?),
            ));
        }
        let gap = if pr.splay && requests.len() > 1 {
            splay_gap(check, pr.splay_coverage, requests.len())
        } else {
            Duration::ZERO
        };
        if gap.is_zero() {
            let mut total = Published::default();
            for (config, request) in requests {
                total.sessions += self.publish(&config, request).await.sessions;
            }
            return Ok(total);
        }
        // Spread over the period without holding up the check's own timer.
        let me = self.clone();
        tokio::spawn(async move {
            for (n, (config, request)) in requests.into_iter().enumerate() {
                if n > 0 {
                    tokio::time::sleep(gap).await;
                }
                me.publish(&config, request).await;
            }
        });
        Ok(Published::default())
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

/// Time between two proxy requests with splay: `period × coverage / 100 / matched`, where the
/// period is the interval, or the time until the next cron firing.
fn splay_gap(check: &CheckConfig, coverage: u32, matched: usize) -> Duration {
    let coverage = if coverage == 0 {
        DEFAULT_SPLAY_COVERAGE
    } else {
        coverage.min(100)
    };
    let period = if check.interval > 0 {
        Duration::from_secs(check.interval.into())
    } else {
        let now = jiff::Timestamp::now();
        CronSchedule::parse(&check.cron)
            .ok()
            .and_then(|s| s.next(now))
            .and_then(|next| Duration::try_from(next.duration_since(now)).ok())
            .unwrap_or_default()
    };
    period.mul_f64(f64::from(coverage) / 100.0) / matched as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splay_spreads_requests_over_the_covered_period() {
        let check = CheckConfig {
            interval: 60,
            ..Default::default()
        };
        // 60 s × 50 % over 10 entities: one every 3 s.
        assert_eq!(splay_gap(&check, 50, 10), Duration::from_secs(3));
        // Coverage 0 means 90 %.
        assert_eq!(splay_gap(&check, 0, 9), Duration::from_secs(6));
        let cron = CheckConfig {
            cron: "@every 30s".to_string(),
            ..Default::default()
        };
        let gap = splay_gap(&cron, 100, 1);
        assert!(
            gap > Duration::ZERO && gap <= Duration::from_secs(30),
            "{gap:?}"
        );
    }
}
