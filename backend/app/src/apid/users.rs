//! Users (sensu-compat 1.13, 6.2). Answers never carry `password` or `password_hash`.
//!
//! | route | answer |
//! |---|---|
//! | `GET /users`, `GET /users/{u}` | the users without their hashes |
//! | `POST /users` | 201; 409 if it exists; `password` (plaintext, ≥ 8) or `password_hash` (bcrypt) |
//! | `PUT /users/{u}` | create or replace; the stored hash is kept when neither is given |
//! | `DELETE /users/{u}` | disables (Sensu keeps users); `PUT /users/{u}/reinstate` enables |
//! | `PUT /users/{u}/password` | `{"password": current, "password_hash": new bcrypt}` (or `"new_password"` plaintext); the current password is required |
//! | `PUT /users/{u}/reset_password` | `{"password_hash"}` (or `"password"` plaintext, the new one): no current password |
//! | `PUT`/`DELETE /users/{u}/groups/{g}`, `DELETE /users/{u}/groups` | add, remove one, remove all groups |

use crate::listener::PeerInfo;
use axum::Router;

use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use backend_store::{Compare, Op, Txn};
use proto_spec::v2::User;
use proto_spec::validate::validate_no_blank;
use serde::Deserialize;

use super::{ApiError, ApiJson, ApiState, ListParams, list_response, single_response};
use crate::auth::{AuthError, hash_password, is_bcrypt_hash};
use crate::keys;
use crate::repo::{Page, encode};

/// A read-modify-write that lost a race is retried this many times before answering 409.
const UPDATE_ATTEMPTS: usize = 5;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route(
            "/users/{user}",
            get(get_user).put(put_user).delete(disable_user),
        )
        .route("/users/{user}/reinstate", put(reinstate_user))
        .route("/users/{user}/password", put(change_password))
        .route("/users/{user}/reset_password", put(reset_password))
        .route("/users/{user}/groups", delete(remove_all_groups))
        .route(
            "/users/{user}/groups/{group}",
            put(add_group).delete(remove_group),
        )
}

fn public(mut user: User) -> User {
    user.password.clear();
    user.password_hash.clear();
    user
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("user {name:?} not found"))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// The hash to store for `user` as given: from `password` (hashed here) or `password_hash`
/// (checked to be bcrypt); `None` when neither is given.
async fn hash_of(password: &str, password_hash: &str) -> Result<Option<String>, ApiError> {
    if !password.is_empty() {
        if password.chars().count() < proto_spec::v2::user::MIN_PASSWORD_LEN {
            return Err(bad(format!(
                "password must be at least {} characters",
                proto_spec::v2::user::MIN_PASSWORD_LEN
            )));
        }
        let pw = password.to_string();
        let hash = tokio::task::spawn_blocking(move || hash_password(&pw))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        return Ok(Some(hash));
    }
    if !password_hash.is_empty() {
        if !is_bcrypt_hash(password_hash) {
            return Err(bad("password_hash must be a bcrypt hash ($2a$/$2b$/$2y$)"));
        }
        return Ok(Some(password_hash.to_string()));
    }
    Ok(None)
}

async fn list_users(
    State(state): State<ApiState>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let page = state
        .repo
        .list::<User>(
            &keys::users_prefix(),
            p.limit()?,
            p.continue_token.as_deref(),
        )
        .await?;
    Ok(list_response(Page {
        items: page.items.into_iter().map(public).collect(),
        ..page
    }))
}

async fn get_user(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let user: User = state
        .repo
        .get(&keys::user(&name))
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok(single_response(&public(user)))
}

async fn create_user(
    State(state): State<ApiState>,
    ApiJson(mut user): ApiJson<User>,
) -> Result<Response, ApiError> {
    user.validate().map_err(|e| bad(e.to_string()))?;
    let hash = hash_of(&user.password, &user.password_hash)
        .await?
        .ok_or_else(|| bad("password must be set"))?;
    user.password.clear();
    user.password_hash = hash;
    let k = keys::user(&user.username);
    if !state.repo.create(&k, &user).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("user {:?} already exists", user.username),
        ));
    }
    tracing::info!(user = %user.username, "User created");
    Ok(StatusCode::CREATED.into_response())
}

async fn put_user(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ApiJson(mut user): ApiJson<User>,
) -> Result<Response, ApiError> {
    if user.username != name {
        return Err(bad(format!(
            "username: the name in the body ({:?}) does not match the URL ({name:?})",
            user.username
        )));
    }
    user.validate().map_err(|e| bad(e.to_string()))?;
    let given = hash_of(&user.password, &user.password_hash).await?;
    user.password.clear();
    let k = keys::user(&name);
    for _ in 0..UPDATE_ATTEMPTS {
        let current = state.repo.get_with_revision::<User>(&k).await?;
        user.password_hash = match (&given, &current) {
            (Some(h), _) => h.clone(),
            (None, Some((stored, _))) => stored.password_hash.clone(),
            (None, None) => return Err(bad("password must be set for a new user")),
        };
        let guard = match &current {
            Some((_, rev)) => Compare::mod_revision(k.clone(), *rev),
            None => Compare::absent(k.clone()),
        };
        let done = state
            .repo
            .store
            .txn(Txn {
                compares: vec![guard],
                success: vec![Op::put(k.clone(), encode(&user))],
                failure: vec![],
            })
            .await?
            .succeeded;
        if done {
            return Ok(StatusCode::CREATED.into_response());
        }
    }
    Err(conflict(&name))
}

fn conflict(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        format!("user {name:?} kept changing while being updated; retry"),
    )
}

/// Read-modify-write of a stored user with optimistic concurrency.
async fn update_user<F>(state: &ApiState, name: &str, mut change: F) -> Result<User, ApiError>
where
    F: FnMut(&mut User) -> Result<(), ApiError>,
{
    let k = keys::user(name);
    for _ in 0..UPDATE_ATTEMPTS {
        let (mut user, rev) = state
            .repo
            .get_with_revision::<User>(&k)
            .await?
            .ok_or_else(|| not_found(name))?;
        change(&mut user)?;
        let done = state
            .repo
            .store
            .txn(Txn {
                compares: vec![Compare::mod_revision(k.clone(), rev)],
                success: vec![Op::put(k.clone(), encode(&user))],
                failure: vec![],
            })
            .await?
            .succeeded;
        if done {
            return Ok(user);
        }
    }
    Err(conflict(name))
}

async fn disable_user(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    update_user(&state, &name, |u| {
        u.disabled = true;
        Ok(())
    })
    .await?;
    tracing::info!(user = %name, "User disabled");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn reinstate_user(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    update_user(&state, &name, |u| {
        u.disabled = false;
        Ok(())
    })
    .await?;
    tracing::info!(user = %name, "User reinstated");
    Ok(StatusCode::CREATED.into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PasswordChange {
    /// The current password (`/password`) or the new one in plaintext (`/reset_password`).
    password: String,
    password_hash: String,
    /// Picket extension: the new password in plaintext, hashed by the backend.
    new_password: String,
}

async fn change_password(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    connect: Option<Extension<ConnectInfo<PeerInfo>>>,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<Response, ApiError> {
    if body.password.is_empty() {
        return Err(bad("password (the current password) must be set"));
    }
    let new_hash = hash_of(&body.new_password, &body.password_hash)
        .await?
        .ok_or_else(|| bad("password_hash (or new_password) must be set"))?;
    // Checked as a login, so guessing the current password with a stolen token is limited
    // and logged like any other failed login.
    let source = connect.map(|c| c.0.0.addr.ip());
    let user = match state.auth.login(&name, &body.password, source).await {
        Ok(user) => user,
        Err(AuthError::BadCredentials) => {
            tracing::warn!(user = %name, "Password change refused: wrong current password");
            return Err(bad("the current password is wrong"));
        }
        Err(e @ AuthError::RateLimited { .. }) => {
            return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()));
        }
        Err(AuthError::Repo(e)) => return Err(e.into()),
        Err(e) => return Err(bad(e.to_string())),
    };
    let old_hash = user.password_hash.clone();
    update_user(&state, &name, |u| {
        // Someone else changed the password meanwhile: the current one was checked against
        // the old hash, so refuse rather than overwrite.
        if u.password_hash != old_hash {
            return Err(conflict(&name));
        }
        u.password_hash = new_hash.clone();
        Ok(())
    })
    .await?;
    tracing::info!(user = %name, "Password changed");
    Ok(StatusCode::CREATED.into_response())
}

async fn reset_password(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<Response, ApiError> {
    let plaintext = if body.new_password.is_empty() {
        &body.password
    } else {
        &body.new_password
    };
    let new_hash = hash_of(plaintext, &body.password_hash)
        .await?
        .ok_or_else(|| bad("password_hash (or password) must be set"))?;
    update_user(&state, &name, |u| {
        u.password_hash = new_hash.clone();
        Ok(())
    })
    .await?;
    tracing::info!(user = %name, "Password reset");
    Ok(StatusCode::CREATED.into_response())
}

async fn add_group(
    State(state): State<ApiState>,
    Path((name, group)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    validate_no_blank("groups", std::slice::from_ref(&group)).map_err(|e| bad(e.to_string()))?;
    update_user(&state, &name, |u| {
        if !u.groups.contains(&group) {
            u.groups.push(group.clone());
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn remove_group(
    State(state): State<ApiState>,
    Path((name, group)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    update_user(&state, &name, |u| {
        if !u.groups.contains(&group) {
            return Err(ApiError::not_found(format!(
                "user {name:?} is not in group {group:?}"
            )));
        }
        u.groups.retain(|g| g != &group);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn remove_all_groups(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    update_user(&state, &name, |u| {
        u.groups.clear();
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
