//! RBAC objects: Roles and RoleBindings (namespaced, the generic `crud` handlers) and
//! ClusterRoles and ClusterRoleBindings (cluster-wide: list, get, POST (409 if it exists),
//! PUT create-or-replace, PATCH merge patch, DELETE). `authz::gate` reloads the authorizer after each write.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use backend_store::{Compare, Op, Txn};
use proto_spec::ObjectMeta;
use proto_spec::v2::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use proto_spec::validate::ValidationError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::crud::{self, MergePatch, NamespacedResource};
use super::{ApiError, ApiJson, ApiState, AuthUser, ListParams, list_response, single_response};
use crate::keys;
use crate::repo::encode;

impl NamespacedResource for Role {
    const STORE_KIND: &'static str = keys::ROLES_KIND;
    const COLLECTION: &'static str = "roles";
    const SINGULAR: &'static str = "role";

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn validate_resource(&self) -> Result<(), ValidationError> {
        self.validate()
    }
}

impl NamespacedResource for RoleBinding {
    const STORE_KIND: &'static str = keys::ROLE_BINDINGS_KIND;
    const COLLECTION: &'static str = "rolebindings";
    const SINGULAR: &'static str = "role binding";

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn validate_resource(&self) -> Result<(), ValidationError> {
        self.validate()
    }
}

/// A cluster-wide resource with `metadata`, stored at `/sensu.io/<STORE_PREFIX><name>`.
pub trait ClusterResource: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// e.g. `rbac/clusterroles/`
    const STORE_PREFIX: &'static str;
    const COLLECTION: &'static str;
    const SINGULAR: &'static str;
    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
    fn validate_resource(&self) -> Result<(), ValidationError>;
}

impl ClusterResource for ClusterRole {
    const STORE_PREFIX: &'static str = "rbac/clusterroles/";
    const COLLECTION: &'static str = "clusterroles";
    const SINGULAR: &'static str = "cluster role";
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn validate_resource(&self) -> Result<(), ValidationError> {
        self.validate()
    }
}

impl ClusterResource for ClusterRoleBinding {
    const STORE_PREFIX: &'static str = "rbac/clusterrolebindings/";
    const COLLECTION: &'static str = "clusterrolebindings";
    const SINGULAR: &'static str = "cluster role binding";
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn validate_resource(&self) -> Result<(), ValidationError> {
        self.validate()
    }
}

pub(super) fn routes() -> Router<ApiState> {
    crud::routes::<Role>()
        .merge(crud::routes::<RoleBinding>())
        .merge(cluster_routes::<ClusterRole>())
        .merge(cluster_routes::<ClusterRoleBinding>())
}

fn cluster_routes<R: ClusterResource>() -> Router<ApiState> {
    let c = R::COLLECTION;
    Router::new()
        .route(&format!("/{c}"), get(list::<R>).post(create::<R>))
        .route(
            &format!("/{c}/{{name}}"),
            get(get_one::<R>)
                .put(put::<R>)
                .patch(patch::<R>)
                .delete(delete::<R>),
        )
}

/// A read-modify-write that lost a race is retried this many times before answering 409.
const UPDATE_ATTEMPTS: usize = 5;

fn key<R: ClusterResource>(name: &str) -> String {
    format!("{}/{}{name}", keys::ROOT, R::STORE_PREFIX)
}

fn invalid(e: ValidationError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

fn not_found<R: ClusterResource>(name: &str) -> ApiError {
    ApiError::not_found(format!("{} {name:?} not found", R::SINGULAR))
}

async fn list<R: ClusterResource>(
    State(state): State<ApiState>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let page = state
        .repo
        .list::<R>(
            &format!("{}/{}", keys::ROOT, R::STORE_PREFIX),
            p.limit()?,
            p.continue_token.as_deref(),
        )
        .await?;
    Ok(list_response(page))
}

async fn get_one<R: ClusterResource>(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let value: R = state
        .repo
        .get(&key::<R>(&name))
        .await?
        .ok_or_else(|| not_found::<R>(&name))?;
    Ok(single_response(&value))
}

async fn create<R: ClusterResource>(
    State(state): State<ApiState>,
    Extension(user): Extension<AuthUser>,
    ApiJson(mut value): ApiJson<R>,
) -> Result<Response, ApiError> {
    value.metadata_mut().created_by = user.0;
    value.validate_resource().map_err(invalid)?;
    let name = value.metadata().name.clone();
    let k = key::<R>(&name);
    if !state.repo.create(&k, &value).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{} {name:?} already exists", R::SINGULAR),
        ));
    }
    Ok(StatusCode::CREATED.into_response())
}

async fn put<R: ClusterResource>(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Extension(user): Extension<AuthUser>,
    ApiJson(mut value): ApiJson<R>,
) -> Result<Response, ApiError> {
    if value.metadata().name != name {
        return Err(ApiError::bad_request(format!(
            "metadata.name: the name in the body ({:?}) does not match the URL ({name:?})",
            value.metadata().name
        )));
    }
    value.metadata_mut().created_by = user.0;
    value.validate_resource().map_err(invalid)?;
    state.repo.put(&key::<R>(&name), &value).await?;
    Ok(StatusCode::CREATED.into_response())
}

/// JSON merge patch with `If-Match`/`If-None-Match`, as for namespaced resources; a write
/// that lost a race is retried on the new value.
async fn patch<R: ClusterResource>(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Extension(user): Extension<AuthUser>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let patch = MergePatch::from_request(&headers, &body)?;
    let k = key::<R>(&name);
    for _ in 0..UPDATE_ATTEMPTS {
        let (current, rev) = state
            .repo
            .get_with_revision::<R>(&k)
            .await?
            .ok_or_else(|| not_found::<R>(&name))?;
        let mut updated = patch.apply(&current, R::SINGULAR)?;
        if updated.metadata().name != name {
            return Err(ApiError::bad_request(format!(
                "metadata.name: a patch cannot rename a {} ({name:?})",
                R::SINGULAR
            )));
        }
        updated.metadata_mut().created_by = user.0.clone();
        updated.validate_resource().map_err(invalid)?;
        let done = state
            .repo
            .store
            .txn(Txn {
                compares: vec![Compare::mod_revision(k.clone(), rev)],
                success: vec![Op::put(k.clone(), encode(&updated))],
                failure: vec![],
            })
            .await?
            .succeeded;
        if done {
            return Ok(single_response(&updated));
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

async fn delete<R: ClusterResource>(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if state.repo.store.delete(&key::<R>(&name)).await? == 0 {
        return Err(not_found::<R>(&name));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
