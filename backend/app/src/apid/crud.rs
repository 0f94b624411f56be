//! Generic REST handlers for namespaced core/v2 resources (sensu-compat 6.2), written once:
//! a resource type implements [`NamespacedResource`] and its module merges
//! [`routes::<T>()`](routes). The helpers below are public within `apid` for resource-specific
//! routes (read-modify-write with [`update`], guarded writes with [`put_guarded`]).
//!
//! | route | answer |
//! |---|---|
//! | `GET /{collection}` | every namespace's items the caller may list; `limit`/`continue` pagination (a page can come out short: it is filtered after reading) |
//! | `GET /namespaces/{ns}/{collection}` | one namespace's items; 404 for an unknown namespace |
//! | `POST /namespaces/{ns}/{collection}` | 201, empty body; 409 if it exists |
//! | `GET /namespaces/{ns}/{collection}/{name}` | 200 + `ETag` |
//! | `PUT /namespaces/{ns}/{collection}/{name}` | create or replace: 201, empty body |
//! | `PATCH /namespaces/{ns}/{collection}/{name}` | JSON merge patch (RFC 7396); `If-Match`/`If-None-Match`; 200 + result |
//! | `DELETE /namespaces/{ns}/{collection}/{name}` | 204; 404 if absent |
//!
//! Every write is one store transaction guarded by the namespace key, so a resource cannot
//! outlive (or be created in) a deleted namespace. The body's `metadata.namespace` and `name`
//! must equal the URL's; `metadata.created_by` is set to the authenticated user.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use backend_store::{Compare, Op, Revision, Txn};
use proto_spec::ObjectMeta;
use proto_spec::validate::ValidationError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::authz::ListScope;
use super::{
    ApiError, ApiJson, ApiState, AuthUser, ListParams, fnv1a, list_response, require_namespace,
    single_response,
};
use crate::keys;
use crate::repo::{Repo, encode};

/// A read-modify-write that lost a race is retried this many times before answering 409.
const UPDATE_ATTEMPTS: usize = 5;

pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// A namespaced core/v2 resource served by the generic handlers.
pub trait NamespacedResource: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// Store prefix under `/sensu.io/` (sensu-compat 6.4), e.g. `checks`, `event-filters`.
    const STORE_KIND: &'static str;
    /// URL collection, e.g. `checks`, `filters`.
    const COLLECTION: &'static str;
    /// Singular noun for messages, e.g. `check`.
    const SINGULAR: &'static str;

    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
    /// Every rule a stored definition must meet; the error names the field.
    fn validate_resource(&self) -> Result<(), ValidationError>;

    /// Fill what the backend derives on create and update (before validation), e.g. a
    /// silenced entry's name and expiry instant. `now` is Unix seconds.
    fn prepare(&mut self, _now: i64) {}

    /// Adjust a stored value for an answer, e.g. a silenced entry's remaining `expire`.
    fn present(&mut self, _now: i64) {}
}

/// The standard routes of `R`.
pub fn routes<R: NamespacedResource>() -> Router<ApiState> {
    let c = R::COLLECTION;
    Router::new()
        .route(&format!("/{c}"), get(list_all::<R>))
        .route(
            &format!("/namespaces/{{ns}}/{c}"),
            get(list::<R>).post(create::<R>),
        )
        .route(
            &format!("/namespaces/{{ns}}/{c}/{{name}}"),
            get(get_one::<R>)
                .put(put::<R>)
                .patch(patch::<R>)
                .delete(delete::<R>),
        )
}

pub fn key<R: NamespacedResource>(ns: &str, name: &str) -> String {
    keys::resource(R::STORE_KIND, ns, name)
}

/// The `ETag` of a resource: what `GET` sends, so `If-Match` can echo it.
pub fn etag<T: Serialize>(value: &T) -> String {
    format!("\"{:016x}\"", fnv1a(&encode(value)))
}

fn not_found<R: NamespacedResource>(ns: &str, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "{} {name:?} not found in namespace {ns:?}",
        R::SINGULAR
    ))
}

fn invalid(e: ValidationError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// The body must name the resource the URL names (an empty value is a mismatch).
pub fn check_url(meta: &ObjectMeta, ns: &str, name: Option<&str>) -> Result<(), ApiError> {
    if meta.namespace != ns {
        return Err(ApiError::bad_request(format!(
            "metadata.namespace: the namespace in the body ({:?}) does not match the URL ({ns:?})",
            meta.namespace
        )));
    }
    if let Some(name) = name
        && meta.name != name
    {
        return Err(ApiError::bad_request(format!(
            "metadata.name: the name in the body ({:?}) does not match the URL ({name:?})",
            meta.name
        )));
    }
    Ok(())
}

/// Read one resource with the revision it was last written at.
pub async fn load<R: NamespacedResource>(
    repo: &Repo,
    ns: &str,
    name: &str,
) -> Result<Option<(R, Revision)>, ApiError> {
    Ok(repo.get_with_revision::<R>(&key::<R>(ns, name)).await?)
}

/// Write `value` at its key in one transaction guarded by the namespace key and `extra`
/// compares. `Ok(false)` when an `extra` compare failed; 404 when the namespace is missing.
pub async fn put_guarded<R: NamespacedResource>(
    repo: &Repo,
    value: &R,
    extra: Vec<Compare>,
) -> Result<bool, ApiError> {
    let meta = value.metadata();
    let ns_key = keys::namespace(&meta.namespace);
    let mut compares = vec![Compare::present(ns_key.clone())];
    compares.extend(extra);
    let resp = repo
        .store
        .txn(Txn {
            compares,
            success: vec![Op::put(
                key::<R>(&meta.namespace, &meta.name),
                encode(value),
            )],
            // Tells a missing namespace from a failed `extra` compare in the same round trip.
            failure: vec![Op::Get { key: ns_key }],
        })
        .await?;
    if resp.succeeded {
        return Ok(true);
    }
    match resp.results.first() {
        Some(backend_store::OpResult::Get { kv: Some(_) }) => Ok(false),
        _ => Err(ApiError::not_found(format!(
            "namespace {:?} not found",
            meta.namespace
        ))),
    }
}

/// Read-modify-write of an existing resource with optimistic concurrency: `change` is
/// applied to the current value and may refuse (its error is returned as is); the result is
/// re-validated and stored only if nobody wrote the key meanwhile, else the whole step
/// repeats on the new value.
pub async fn update<R, F>(
    repo: &Repo,
    ns: &str,
    name: &str,
    user: &str,
    mut change: F,
) -> Result<R, ApiError>
where
    R: NamespacedResource,
    F: FnMut(&R) -> Result<R, ApiError>,
{
    for _ in 0..UPDATE_ATTEMPTS {
        require_namespace(repo, ns).await?;
        let (current, rev) = load::<R>(repo, ns, name)
            .await?
            .ok_or_else(|| not_found::<R>(ns, name))?;
        let mut updated = change(&current)?;
        updated.metadata_mut().created_by = user.to_string();
        updated.prepare(crate::timefmt::now_unix());
        check_url(updated.metadata(), ns, Some(name))?;
        updated.validate_resource().map_err(invalid)?;
        if put_guarded(
            repo,
            &updated,
            vec![Compare::mod_revision(key::<R>(ns, name), rev)],
        )
        .await?
        {
            return Ok(updated);
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "{} {name:?} kept changing while being updated; retry",
            R::SINGULAR
        ),
    ))
}

/// Every namespace's items the caller may list (`scope`, from `authz::gate`).
async fn list_all<R: NamespacedResource>(
    State(state): State<ApiState>,
    Extension(scope): Extension<ListScope>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let mut page = state
        .repo
        .list::<R>(
            &keys::resources_prefix(R::STORE_KIND, None),
            p.limit()?,
            p.continue_token.as_deref(),
        )
        .await?;
    page.items
        .retain(|item| scope.allows(&item.metadata().namespace));
    Ok(list_response(presented(page)))
}

fn presented<R: NamespacedResource>(mut page: crate::repo::Page<R>) -> crate::repo::Page<R> {
    let now = crate::timefmt::now_unix();
    page.items.iter_mut().for_each(|item| item.present(now));
    page
}

async fn list<R: NamespacedResource>(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    require_namespace(&state.repo, &ns).await?;
    let page = state
        .repo
        .list::<R>(
            &keys::resources_prefix(R::STORE_KIND, Some(&ns)),
            p.limit()?,
            p.continue_token.as_deref(),
        )
        .await?;
    Ok(list_response(presented(page)))
}

async fn get_one<R: NamespacedResource>(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    require_namespace(&state.repo, &ns).await?;
    let (mut value, _) = load::<R>(&state.repo, &ns, &name)
        .await?
        .ok_or_else(|| not_found::<R>(&ns, &name))?;
    value.present(crate::timefmt::now_unix());
    Ok(single_response(&value))
}

async fn create<R: NamespacedResource>(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
    Extension(user): Extension<AuthUser>,
    ApiJson(mut value): ApiJson<R>,
) -> Result<Response, ApiError> {
    value.metadata_mut().created_by = user.0;
    value.prepare(crate::timefmt::now_unix());
    check_url(value.metadata(), &ns, None)?;
    value.validate_resource().map_err(invalid)?;
    let name = value.metadata().name.clone();
    if !put_guarded(
        &state.repo,
        &value,
        vec![Compare::absent(key::<R>(&ns, &name))],
    )
    .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "{} {name:?} already exists in namespace {ns:?}",
                R::SINGULAR
            ),
        ));
    }
    Ok(StatusCode::CREATED.into_response())
}

async fn put<R: NamespacedResource>(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    Extension(user): Extension<AuthUser>,
    ApiJson(mut value): ApiJson<R>,
) -> Result<Response, ApiError> {
    value.metadata_mut().created_by = user.0;
    value.prepare(crate::timefmt::now_unix());
    check_url(value.metadata(), &ns, Some(&name))?;
    value.validate_resource().map_err(invalid)?;
    put_guarded(&state.repo, &value, Vec::new()).await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn patch<R: NamespacedResource>(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    Extension(user): Extension<AuthUser>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let patch = MergePatch::from_request(&headers, &body)?;
    let updated = update::<R, _>(&state.repo, &ns, &name, &user.0, |current| {
        patch.apply(current, R::SINGULAR)
    })
    .await?;
    Ok(single_response(&updated))
}

/// A PATCH request's JSON merge patch with its preconditions (`If-Match`, `If-None-Match`).
pub struct MergePatch {
    patch: Value,
    if_match: Option<String>,
    if_none_match: Option<String>,
}

impl MergePatch {
    /// 415 unless the body is `application/merge-patch+json`; 400 unless it is JSON.
    pub fn from_request(headers: &HeaderMap, body: &[u8]) -> Result<Self, ApiError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if media != MERGE_PATCH {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("PATCH needs Content-Type: {MERGE_PATCH} (got {content_type:?})"),
            ));
        }
        let patch: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the merge patch is not valid JSON: {e}"))
        })?;
        Ok(MergePatch {
            patch,
            if_match: header_str(headers, header::IF_MATCH),
            if_none_match: header_str(headers, header::IF_NONE_MATCH),
        })
    }

    /// `current` with the patch applied, if the preconditions hold for it (412 otherwise).
    pub fn apply<T: Serialize + DeserializeOwned>(
        &self,
        current: &T,
        singular: &str,
    ) -> Result<T, ApiError> {
        let tag = etag(current);
        if let Some(h) = &self.if_match
            && !etag_listed(h, &tag)
        {
            return Err(precondition_failed(format!(
                "If-Match {h} does not match the current ETag {tag}"
            )));
        }
        if let Some(h) = &self.if_none_match
            && etag_listed(h, &tag)
        {
            return Err(precondition_failed(format!(
                "If-None-Match {h} matches the current ETag {tag}"
            )));
        }
        let mut doc = serde_json::to_value(current).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding: {e}"))
        })?;
        merge_patch(&mut doc, &self.patch);
        serde_json::from_value::<T>(doc)
            .map_err(|e| ApiError::bad_request(format!("the patched {singular} is not valid: {e}")))
    }
}

async fn delete<R: NamespacedResource>(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let k = key::<R>(&ns, &name);
    let resp = state
        .repo
        .store
        .txn(Txn {
            compares: vec![Compare::present(k.clone())],
            success: vec![Op::delete(k)],
            failure: vec![],
        })
        .await?;
    if !resp.succeeded {
        require_namespace(&state.repo, &ns).await?;
        return Err(not_found::<R>(&ns, &name));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn precondition_failed(message: String) -> ApiError {
    ApiError::new(StatusCode::PRECONDITION_FAILED, message)
}

/// Whether an `If-Match`/`If-None-Match` value (`*` or a list of entity tags, weak or not)
/// names `tag`.
pub fn etag_listed(header_value: &str, tag: &str) -> bool {
    header_value.split(',').map(str::trim).any(|t| {
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t == tag
    })
}

/// RFC 7396 JSON merge patch: objects merge key by key, `null` removes, anything else
/// replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(fields) = target else {
        unreachable!("made an object above");
    };
    for (k, v) in changes {
        if v.is_null() {
            fields.remove(k);
        } else {
            merge_patch(fields.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        // The RFC's appendix A examples, a selection.
        for (target, patch, result) in [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ] {
            let mut t = target.clone();
            merge_patch(&mut t, &patch);
            assert_eq!(t, result, "{target} + {patch}");
        }
    }

    #[test]
    fn etag_lists() {
        assert!(etag_listed("\"abc\"", "\"abc\""));
        assert!(etag_listed("W/\"abc\"", "\"abc\""));
        assert!(etag_listed("\"x\", \"abc\"", "\"abc\""));
        assert!(etag_listed("*", "\"abc\""));
        assert!(!etag_listed("\"abd\"", "\"abc\""));
    }
}
