//! The adhoc queue: `POST .../checks/{check}/execute` stores the execution under
//! `queue/adhoc/`, and every backend watching that prefix publishes it to its own agents, so
//! an adhoc request reaches agents wherever they are connected (sensu-compat 4, "Adhoc").
//!
//! Each entry is leased for `ENTRY_TTL` and so removes itself; a backend that was not
//! watching when it was written (restarting) misses it, as Sensu's 60 s queue would time out.

use std::sync::Arc;
use std::time::Duration;

use backend_store::{Op, Txn, WatchEvent};
use proto_spec::v2::CheckConfig;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::publish::Publisher;
use crate::keys;
use crate::repo::{Repo, RepoResult, encode};

/// How long an adhoc entry stays in the store.
const ENTRY_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    issued: i64,
    check: CheckConfig,
}

fn prefix() -> String {
    format!("{}/queue/adhoc/", keys::ROOT)
}

/// Queue one execution of `check` (subscriptions already overridden) for every backend.
pub async fn enqueue(repo: &Repo, check: CheckConfig, issued: i64) -> RepoResult<()> {
    let key = format!("{}{}", prefix(), uuid::Uuid::new_v4());
    let lease = repo.store.grant_lease(ENTRY_TTL).await?;
    repo.store
        .txn(Txn {
            success: vec![Op::put_with_lease(
                key,
                encode(&Entry { issued, check }),
                lease,
            )],
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// Publish every queued execution to this backend's agents until shutdown.
pub async fn run(repo: Repo, publisher: Arc<Publisher>, shutdown: CancellationToken) {
    crate::repo::follow(repo.store.clone(), prefix(), shutdown, |change| {
        let publisher = publisher.clone();
        async move {
            let WatchEvent::Put(kv) = change else { return };
            let entry: Entry = match serde_json::from_slice(&kv.value) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(key = %kv.key, error = %e, "Ignoring an unreadable adhoc entry");
                    return;
                }
            };
            // Off the watch loop: a proxy check's splay may take a while.
            tokio::spawn(async move {
                match publisher.execute(&entry.check, entry.issued).await {
                    Ok(p) => tracing::info!(
                        check = %entry.check.metadata.name,
                        namespace = %entry.check.metadata.namespace,
                        sessions = p.sessions,
                        "Adhoc execution published"
                    ),
                    Err(e) => tracing::warn!(error = %e, "Adhoc execution failed"),
                }
            });
        }
    })
    .await;
}
