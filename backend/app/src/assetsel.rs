//! Asset build selection for an agent, where a check request meets the agent's session.
//!
//! One published request reaches every agent of a subscription, whatever their platform, so
//! the choice of build (sensu-compat 5.9: the first build whose filters all hold for the
//! entity) is made per session, just before the frame leaves, against the stored entity
//! (what the agent's keepalives reported; read only for requests that need a choice, so an
//! idle session keeps no copy of it). Requests whose assets have no builds and no filters,
//! the common case, pass through untouched.

use std::sync::Arc;

use proto_spec::tokens;
use proto_spec::v2::CheckRequest;

use crate::agentd::AgentdState;
use crate::entities;

pub async fn for_agent(
    state: &AgentdState,
    namespace: &str,
    agent: &str,
    request: Arc<CheckRequest>,
) -> Arc<CheckRequest> {
    if !backend_pipeline::assets::needs_selection(&request) {
        return request;
    }
    let entity = entities::get(&state.repo, namespace, agent)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(agent, error = %e, "Cannot read the entity to choose asset builds");
            None
        });
    let data = entity
        .as_ref()
        .map(tokens::synthesize_entity)
        .unwrap_or(serde_json::Value::Null);
    Arc::new(backend_pipeline::assets::select_request_blocking(request, data).await)
}
