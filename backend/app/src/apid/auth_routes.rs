//! Token endpoints (sensu-compat 6.3), outside `/api/core/v2`:
//!
//! | route | answer |
//! |---|---|
//! | `GET /auth` (Basic) | 200 `{access_token, expires_at, refresh_token}`; 401; 429 past the failed-login limit |
//! | `GET /auth/test` (Basic) | 200 or 401 |
//! | `POST /auth/token` (Bearer, may be expired; body `{refresh_token}`) | 200 new access token, same refresh token; 400 without one; 401 revoked, unknown or another user's |
//! | `POST /auth/logout` (any credentials, an expired access token too; body `{refresh_token}`) | 200; that refresh token no longer refreshes; without a body, none of the user's do |

use axum::Router;
use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use proto_spec::auth::RefreshTokenRequest;

use super::authz::unauthenticated;
use super::{ApiError, ApiState};
use crate::auth::{AuthError, parse_basic};

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/auth", get(login))
        .route("/auth/test", get(test))
        .route("/auth/token", post(token))
        .route("/auth/logout", post(logout))
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// The `iss` claim: the URL the client reached this backend at.
fn issuer(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let (scheme, value) = authorization(headers)?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(value.trim())
}

type Connect = Option<Extension<ConnectInfo<SocketAddr>>>;

fn source(connect: &Connect) -> Option<std::net::IpAddr> {
    connect.as_ref().map(|c| c.0.0.ip())
}

async fn basic_user(
    state: &ApiState,
    headers: &HeaderMap,
    source: Option<std::net::IpAddr>,
) -> Result<proto_spec::v2::User, Response> {
    let Some((user, pass)) = authorization(headers).and_then(parse_basic) else {
        return Err(unauthenticated(state, AuthError::Missing));
    };
    state
        .auth
        .login(&user, &pass, source)
        .await
        .map_err(|e| unauthenticated(state, e))
}

async fn login(State(state): State<ApiState>, connect: Connect, headers: HeaderMap) -> Response {
    let user = match basic_user(&state, &headers, source(&connect)).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    match state.auth.issue_tokens(&user, &issuer(&headers)).await {
        Ok(tokens) => {
            tracing::info!(user = %user.username, "Access token issued");
            axum::Json(tokens).into_response()
        }
        Err(e) => unauthenticated(&state, e),
    }
}

async fn test(State(state): State<ApiState>, connect: Connect, headers: HeaderMap) -> Response {
    match basic_user(&state, &headers, source(&connect)).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(resp) => resp,
    }
}

fn refresh_request(body: &Bytes) -> Result<String, ApiError> {
    let r: RefreshTokenRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be {{\"refresh_token\": ...}}: {e}"),
        )
    })?;
    if r.refresh_token.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "refresh_token must be set",
        ));
    }
    Ok(r.refresh_token)
}

async fn token(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let refresh_token = match refresh_request(&body) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let Some(access) = bearer(&headers) else {
        return unauthenticated(&state, AuthError::Missing);
    };
    match state
        .auth
        .refresh(access, &refresh_token, &issuer(&headers))
        .await
    {
        Ok(tokens) => axum::Json(tokens).into_response(),
        Err(e) => unauthenticated(&state, e),
    }
}

async fn logout(
    State(state): State<ApiState>,
    connect: Connect,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Logging out with an expired access token is normal (an idle session), so the token's
    // signature names the user even past its expiry.
    let username = match bearer(&headers) {
        Some(token) => state
            .auth
            .verify_access_token(token, false)
            .await
            .map(|c| c.sub),
        None => state
            .auth
            .identify(authorization(&headers), source(&connect))
            .await
            .map(|who| who.username),
    };
    let username = match username {
        Ok(u) => u,
        Err(e) => return unauthenticated(&state, e),
    };
    // Without a body (or token), every refresh token of the user is revoked.
    let revoked = if body.iter().all(u8::is_ascii_whitespace) {
        state.auth.revoke_all(&username).await
    } else {
        match refresh_request(&body) {
            Ok(t) => state.auth.revoke(&username, &t).await.map(usize::from),
            Err(e) => return e.into_response(),
        }
    };
    match revoked {
        Ok(revoked) => {
            tracing::info!(user = %username, revoked, "Logout");
            StatusCode::OK.into_response()
        }
        Err(e) => unauthenticated(&state, e),
    }
}
