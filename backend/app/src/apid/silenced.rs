//! Silenced entries (sensu-compat 1.12, 2.5, 6.2): the generic CRUD with Sensu's derivations
//! (name `<subscription|*>:<check|*>`, `begin` 0 → now, `expire_at`, remaining `expire` on
//! reads) and the lookups by subscription and by check.

use axum::Router;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use proto_spec::ObjectMeta;
use proto_spec::ValidationError;
use proto_spec::v2::Silenced;

use super::authz::ListScope;
use super::crud::{self, NamespacedResource};
use super::{ApiError, ApiState, require_namespace};
use crate::keys;

impl NamespacedResource for Silenced {
    const STORE_KIND: &'static str = "silenced";
    const COLLECTION: &'static str = "silenced";
    const SINGULAR: &'static str = "silenced entry";

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn validate_resource(&self) -> Result<(), ValidationError> {
        self.validate()?;
        if self.metadata.name != self.derived_name() {
            return Err(ValidationError::new(
                "metadata.name",
                format!(
                    "a silenced entry is named after what it silences: {:?}",
                    self.derived_name()
                ),
            ));
        }
        Ok(())
    }

    fn prepare(&mut self, now: i64) {
        if self.metadata.name.is_empty() {
            self.fill_name();
        }
        if self.begin == 0 {
            self.begin = now;
        }
        self.expire_at = if self.expire > 0 {
            self.begin + self.expire
        } else {
            0
        };
        if self.creator.is_empty() {
            self.creator = self.metadata.created_by.clone();
        }
    }

    fn present(&mut self, now: i64) {
        self.expire = if self.expire_at > 0 {
            (self.expire_at - now).max(0)
        } else {
            -1
        };
    }
}

pub(super) fn routes() -> Router<ApiState> {
    crud::routes::<Silenced>()
        .route(
            "/namespaces/{ns}/silenced/subscriptions/{sub}",
            get(by_subscription),
        )
        .route("/namespaces/{ns}/silenced/checks/{check}", get(by_check))
        .route("/silenced/checks/{check}", get(by_check_everywhere))
}

/// Live entries of a namespace (or of all), expired ones left out.
async fn live(state: &ApiState, ns: Option<&str>) -> Result<Vec<Silenced>, ApiError> {
    let now = crate::timefmt::now_unix();
    let all = state
        .repo
        .list_all::<Silenced>(&keys::resources_prefix("silenced", ns))
        .await?;
    Ok(all
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| s.expire_at == 0 || s.expire_at > now)
        .map(|mut s| {
            s.present(now);
            s
        })
        .collect())
}

async fn by_subscription(
    State(state): State<ApiState>,
    Path((ns, sub)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    require_namespace(&state.repo, &ns).await?;
    let entries: Vec<Silenced> = live(&state, Some(&ns))
        .await?
        .into_iter()
        .filter(|s| s.subscription == sub)
        .collect();
    Ok(axum::Json(entries).into_response())
}

async fn by_check(
    State(state): State<ApiState>,
    Path((ns, check)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    require_namespace(&state.repo, &ns).await?;
    let entries: Vec<Silenced> = live(&state, Some(&ns))
        .await?
        .into_iter()
        .filter(|s| s.check == check)
        .collect();
    Ok(axum::Json(entries).into_response())
}

async fn by_check_everywhere(
    State(state): State<ApiState>,
    Extension(scope): Extension<ListScope>,
    Path(check): Path<String>,
) -> Result<Response, ApiError> {
    let entries: Vec<Silenced> = live(&state, None)
        .await?
        .into_iter()
        .filter(|s| s.check == check && scope.allows(&s.metadata.namespace))
        .collect();
    Ok(axum::Json(entries).into_response())
}
