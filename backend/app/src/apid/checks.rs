//! Checks (`/api/core/v2/namespaces/{ns}/checks`): the generic CRUD and PATCH of `crud`, adhoc
//! execution, and editing a check's `check_hooks`.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post, put};
use proto_spec::ObjectMeta;
use proto_spec::v2::{AdhocRequest, CheckConfig, HookList};
use proto_spec::validate::{
    ValidationError, validate_check_hook_type, validate_name, validate_no_blank,
};

use super::crud::{self, NamespacedResource};
use super::{ApiError, ApiJson, ApiState, AuthUser, require_namespace};
use crate::schedulerd::CronSchedule;

impl NamespacedResource for CheckConfig {
    const STORE_KIND: &'static str = "checks";
    const COLLECTION: &'static str = "checks";
    const SINGULAR: &'static str = "check";

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn validate_resource(&self) -> Result<(), ValidationError> {
        self.validate()?;
        // proto-spec checks the cron syntax only; the zone must also exist here, where the
        // check is scheduled, or it would be stored and then never run.
        if !self.cron.is_empty() {
            CronSchedule::parse(&self.cron).map_err(|e| ValidationError::new("cron", e.0))?;
        }
        // Entity attributes are JavaScript evaluated at every execution: refuse what does
        // not compile now rather than skip the check silently later.
        if let Some(pr) = &self.proxy_requests {
            for (i, expr) in pr
                .entity_attributes
                .as_deref()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                jsexpr::check_syntax(expr).map_err(|e| {
                    ValidationError::new(
                        format!("proxy_requests.entity_attributes[{i}]"),
                        e.to_string(),
                    )
                })?;
            }
        }
        Ok(())
    }
}

pub(super) fn routes() -> Router<ApiState> {
    crud::routes::<CheckConfig>()
        .route("/namespaces/{ns}/checks/{name}/execute", post(execute))
        .route(
            "/namespaces/{ns}/checks/{name}/hooks/{type}",
            put(add_hooks),
        )
        .route(
            "/namespaces/{ns}/checks/{name}/hooks/{type}/hook/{hook}",
            delete(remove_hook),
        )
}

/// `POST .../checks/{check}/execute`: run the check once now, on its subscriptions or on the
/// request's when it names any, whatever `publish` says. As Sensu, the execution is queued in
/// the store and every backend publishes it to its own agents (`schedulerd::adhoc`).
async fn execute(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Only `subscriptions` is used; `check`, `reason` and `creator` are informational.
    let adhoc: AdhocRequest = if body.iter().all(u8::is_ascii_whitespace) {
        AdhocRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid adhoc request: {e}")))?
    };
    validate_no_blank("subscriptions", &adhoc.subscriptions)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    require_namespace(&state.repo, &ns).await?;
    let (mut check, _) = crud::load::<CheckConfig>(&state.repo, &ns, &name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("check {name:?} not found in namespace {ns:?}"))
        })?;
    if !adhoc.subscriptions.is_empty() {
        check.subscriptions = adhoc.subscriptions;
    }
    let issued = crate::timefmt::now_unix();
    crate::schedulerd::adhoc::enqueue(&state.repo, check, issued).await?;
    tracing::info!(
        check = %name, namespace = %ns, creator = %adhoc.creator, reason = %adhoc.reason,
        "Adhoc check execution queued"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "issued": issued })),
    )
        .into_response())
}

/// `PUT .../checks/{check}/hooks/{type}` with a hook list (`{"critical": ["h1"]}`): adds the
/// hooks to the check's list of that type (created if missing). 201, as other PUTs.
async fn add_hooks(
    State(state): State<ApiState>,
    Path((ns, name, type_)): Path<(String, String, String)>,
    Extension(user): Extension<AuthUser>,
    ApiJson(list): ApiJson<HookList>,
) -> Result<Response, ApiError> {
    if list.type_ != type_ {
        return Err(ApiError::bad_request(format!(
            "the hook type in the body ({:?}) does not match the URL ({type_:?})",
            list.type_
        )));
    }
    validate_check_hook_type("type", &type_).map_err(|e| ApiError::bad_request(e.to_string()))?;
    for (i, h) in list.hooks().iter().enumerate() {
        validate_name(&format!("hooks[{i}]"), h)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    crud::update::<CheckConfig, _>(&state.repo, &ns, &name, &user.0, |current| {
        let mut check = current.clone();
        let lists = check.check_hooks.get_or_insert_with(Vec::new);
        let entry = match lists.iter_mut().position(|l| l.type_ == type_) {
            Some(i) => &mut lists[i],
            None => {
                lists.push(HookList {
                    type_: type_.clone(),
                    hooks: Some(Vec::new()),
                });
                lists.last_mut().expect("just pushed")
            }
        };
        let hooks = entry.hooks.get_or_insert_with(Vec::new);
        for h in list.hooks() {
            if !hooks.contains(h) {
                hooks.push(h.clone());
            }
        }
        Ok(check)
    })
    .await?;
    Ok(StatusCode::CREATED.into_response())
}

/// `DELETE .../checks/{check}/hooks/{type}/hook/{hook}`: removes one hook from the check's
/// list of that type (and the list once empty). 404 when the check does not name it.
async fn remove_hook(
    State(state): State<ApiState>,
    Path((ns, name, type_, hook)): Path<(String, String, String, String)>,
    Extension(user): Extension<AuthUser>,
) -> Result<Response, ApiError> {
    crud::update::<CheckConfig, _>(&state.repo, &ns, &name, &user.0, |current| {
        let mut check = current.clone();
        let lists = check.check_hooks.get_or_insert_with(Vec::new);
        let Some(i) = lists
            .iter()
            .position(|l| l.type_ == type_ && l.hooks().contains(&hook))
        else {
            return Err(ApiError::not_found(format!(
                "check {name:?} has no {type_:?} hook {hook:?}"
            )));
        };
        if let Some(hooks) = lists[i].hooks.as_mut() {
            hooks.retain(|h| h != &hook);
        }
        if lists[i].hooks().is_empty() {
            lists.remove(i);
        }
        Ok(check)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
