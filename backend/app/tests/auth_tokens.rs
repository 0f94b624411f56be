//! Access and refresh tokens, logout, API keys and failed-login limits through the real API.

mod common;

use std::sync::Arc;
use std::time::Duration;

use backend_app::auth::AuthConfig;
use backend_app::init;
use backend_app::repo::Repo;
use backend_store::{EmbeddedStore, Store};
use common::*;

async fn initialised_memory_store() -> Arc<dyn Store> {
    let store: Arc<dyn Store> = EmbeddedStore::in_memory().expect("in-memory store");
    init::initialize(&Repo::new(store.clone()), ADMIN.0, ADMIN.1)
        .await
        .expect("init");
    store
}

async fn login(tb: &TestBackend, user: (&str, &str)) -> serde_json::Value {
    let r = http("GET", &format!("{}/auth", tb.api), Some(user), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[tokio::test]
async fn expired_access_token_is_refused_refreshed_and_logout_revokes() {
    let auth = AuthConfig {
        access_token_ttl: Duration::from_secs(1),
        ..Default::default()
    };
    let (tb, _run) = start_on(initialised_memory_store().await, auth).await;
    let tokens = login(&tb, ADMIN).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    assert!(tokens["expires_at"].as_i64().unwrap() > 0);
    let namespaces = format!("{}/namespaces", tb.v2);

    let bearer = format!("Bearer {access}");
    let r = authed("GET", &namespaces, Some(&bearer), None).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The token lapses after its (one-second) lifetime: 401 with a reason.
    let expired = eventually(
        "the access token to expire",
        Duration::from_secs(10),
        || {
            let (url, bearer) = (namespaces.clone(), bearer.clone());
            async move {
                let r = authed("GET", &url, Some(&bearer), None).await;
                (r.status == 401).then_some(r)
            }
        },
    )
    .await;
    expired.assert_error(401, 5, "expired");

    // The expired access token and the refresh token buy a new access token.
    let body = serde_json::json!({ "refresh_token": refresh }).to_string();
    let r = authed(
        "POST",
        &format!("{}/auth/token", tb.api),
        Some(&bearer),
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let renewed = r.json();
    assert_eq!(renewed["refresh_token"], refresh.as_str());
    let fresh = format!("Bearer {}", renewed["access_token"].as_str().unwrap());
    assert_ne!(fresh, bearer);
    let r = authed("GET", &namespaces, Some(&fresh), None).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A refresh without a body, or with an unknown token, is refused.
    let r = authed(
        "POST",
        &format!("{}/auth/token", tb.api),
        Some(&fresh),
        Some("{}"),
    )
    .await;
    r.assert_error(400, 1, "refresh_token");
    let unknown = serde_json::json!({ "refresh_token": "0123" }).to_string();
    let r = authed(
        "POST",
        &format!("{}/auth/token", tb.api),
        Some(&fresh),
        Some(&unknown),
    )
    .await;
    r.assert_error(401, 5, "revoked");

    // Logout revokes the refresh token: refreshing fails afterwards.
    let r = authed(
        "POST",
        &format!("{}/auth/logout", tb.api),
        Some(&fresh),
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = authed(
        "POST",
        &format!("{}/auth/token", tb.api),
        Some(&fresh),
        Some(&body),
    )
    .await;
    r.assert_error(401, 5, "revoked");

    // A logout without a body revokes every refresh token of the user.
    let first = login(&tb, ADMIN).await;
    let second = login(&tb, ADMIN).await;
    let r = authed(
        "POST",
        &format!("{}/auth/logout", tb.api),
        Some(&format!(
            "Bearer {}",
            second["access_token"].as_str().unwrap()
        )),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for t in [&first, &second] {
        let body = serde_json::json!({ "refresh_token": t["refresh_token"] }).to_string();
        let r = authed(
            "POST",
            &format!("{}/auth/token", tb.api),
            Some(&format!("Bearer {}", t["access_token"].as_str().unwrap())),
            Some(&body),
        )
        .await;
        r.assert_error(401, 5, "revoked");
    }

    // A forged token (signed with another secret) is refused.
    let other = start().await;
    let foreign = login(&other, ADMIN).await;
    let r = authed(
        "GET",
        &namespaces,
        Some(&format!(
            "Bearer {}",
            foreign["access_token"].as_str().unwrap()
        )),
        None,
    )
    .await;
    r.assert_error(401, 5, "signature");
}

#[tokio::test]
async fn auth_test_and_bad_credentials() {
    let tb = start().await;
    let r = http("GET", &format!("{}/auth/test", tb.api), Some(ADMIN), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http(
        "GET",
        &format!("{}/auth/test", tb.api),
        Some((ADMIN.0, "wrong-password")),
        None,
    )
    .await;
    r.assert_error(401, 5, "bad username or password");
    let r = http("GET", &format!("{}/auth", tb.api), None, None).await;
    r.assert_error(401, 5, "Authorization");
    let r = authed(
        "GET",
        &format!("{}/namespaces", tb.v2),
        Some("Bearer x.y.z"),
        None,
    )
    .await;
    r.assert_error(401, 5, "invalid token");
}

#[tokio::test]
async fn failed_logins_are_limited_per_user_and_source() {
    let auth = AuthConfig {
        max_failed_logins: 3,
        login_window: Duration::from_secs(600),
        ..Default::default()
    };
    let (tb, _run) = start_on(initialised_memory_store().await, auth).await;
    let url = format!("{}/auth", tb.api);
    for _ in 0..3 {
        let r = http("GET", &url, Some((ADMIN.0, "guess-guess")), None).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    // Past the limit even the right password is refused, on every route taking Basic.
    let r = http("GET", &url, Some(ADMIN), None).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("too many failed logins")
    );
    assert!(r.header("Retry-After").is_some());
    let r = http("GET", &format!("{}/namespaces", tb.v2), Some(ADMIN), None).await;
    assert_eq!(r.status, 429, "{}", r.body);
    let metrics = http("GET", &format!("{}/metrics", tb.api), None, None)
        .await
        .body;
    assert!(
        metrics.contains("picket_login_rate_limited_total 2"),
        "{metrics}"
    );
    // Another user from the same address is not affected.
    let r = http(
        "GET",
        &format!("{}/auth/test", tb.api),
        Some(("agent", "P@ssw0rd!")),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

fn open_store(path: &std::path::Path) -> Option<Arc<dyn Store>> {
    EmbeddedStore::open(path).ok().map(|s| s as Arc<dyn Store>)
}

#[tokio::test]
async fn api_key_works_is_stored_hashed_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = open_store(&path).expect("open store");
    init::initialize(&Repo::new(store.clone()), ADMIN.0, ADMIN.1)
        .await
        .unwrap();
    let (tb, run) = start_on(store, AuthConfig::default()).await;

    let r = http(
        "POST",
        &format!("{}/apikeys", tb.v2),
        Some(ADMIN),
        Some(r#"{"username": "admin"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let location = r.header("Location").expect("Location").to_string();
    let key = location.rsplit('/').next().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&key).is_ok(), "{location}");
    let key_header = format!("Key {key}");

    let r = authed(
        "GET",
        &format!("{}/namespaces", tb.v2),
        Some(&key_header),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Lists show the digest, never the key.
    let r = http("GET", &format!("{}/apikeys", tb.v2), Some(ADMIN), None).await;
    assert_eq!(r.status, 200);
    assert!(!r.body.contains(&key), "{}", r.body);
    let listed = r.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["username"], "admin");
    let r = authed(
        "GET",
        &format!("{}/namespaces", tb.v2),
        Some("Key not-a-key"),
        None,
    )
    .await;
    r.assert_error(401, 5, "API key");

    // Restart on the same state: the key still works.
    tb.shutdown.cancel();
    run.await.unwrap();
    drop(tb);
    let store = eventually(
        "the store file to be released",
        Duration::from_secs(10),
        || {
            let p = path.clone();
            async move { open_store(&p) }
        },
    )
    .await;
    let (tb, _run) = start_on(store, AuthConfig::default()).await;
    let r = authed(
        "GET",
        &format!("{}/namespaces", tb.v2),
        Some(&key_header),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Deleted (by the key itself), it no longer works.
    let r = http(
        "DELETE",
        &format!("{}/apikeys/{key}", tb.v2),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = authed(
        "GET",
        &format!("{}/namespaces", tb.v2),
        Some(&key_header),
        None,
    )
    .await;
    r.assert_error(401, 5, "API key");
}

/// Two backends on one store: tokens signed by one are accepted by the other, a logout on
/// one is honoured by the other, and an RBAC change made through one reaches the other's
/// in-memory authorizer through the store watch.
#[tokio::test]
async fn backends_sharing_a_store_share_tokens_revocations_and_rbac() {
    let store = initialised_memory_store().await;
    let (a, _run_a) = start_on(store.clone(), AuthConfig::default()).await;
    let (b, _run_b) = start_on(store, AuthConfig::default()).await;

    let tokens = login(&a, ADMIN).await;
    let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    let r = authed("GET", &format!("{}/namespaces", b.v2), Some(&bearer), None).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let body = serde_json::json!({ "refresh_token": tokens["refresh_token"] }).to_string();
    let r = authed(
        "POST",
        &format!("{}/auth/logout", a.api),
        Some(&bearer),
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = authed(
        "POST",
        &format!("{}/auth/token", b.api),
        Some(&bearer),
        Some(&body),
    )
    .await;
    r.assert_error(401, 5, "revoked");

    // A user with no binding gets 403 on b until a binding made through a applies there.
    let r = http(
        "POST",
        &format!("{}/users", a.v2),
        Some(ADMIN),
        Some(r#"{"username": "late", "password": "late-password"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let late = ("late", "late-password");
    let checks = format!("{}/namespaces/default/checks", b.v2);
    let r = http("GET", &checks, Some(late), None).await;
    r.assert_error(403, 4, "permission denied");
    let r = http(
        "POST",
        &format!("{}/namespaces/default/rolebindings", a.v2),
        Some(ADMIN),
        Some(
            r#"{"metadata": {"name": "late-view", "namespace": "default"},
                "subjects": [{"type": "User", "name": "late"}],
                "role_ref": {"type": "ClusterRole", "name": "view"}}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    eventually(
        "b to apply the new binding",
        Duration::from_secs(10),
        || {
            let url = checks.clone();
            async move { (http("GET", &url, Some(late), None).await.status == 200).then_some(()) }
        },
    )
    .await;
}

fn ecdsa_fixture(private: &str, public: &str) -> backend_app::auth::EcdsaKeys {
    let read = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/jwt/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    backend_app::auth::EcdsaKeys::from_pem(&read(private), &read(public)).unwrap()
}

#[tokio::test]
async fn ecdsa_keys_sign_es256_tokens_and_hs256_ones_are_refused() {
    let auth = AuthConfig {
        ecdsa_keys: Some(Arc::new(ecdsa_fixture(
            "es256-private.pem",
            "es256-public.pem",
        ))),
        ..Default::default()
    };
    let store = initialised_memory_store().await;
    let (tb, _run) = start_on(store.clone(), auth.clone()).await;
    let tokens = login(&tb, ADMIN).await;
    let access = tokens["access_token"].as_str().unwrap();
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(access.split('.').next().unwrap())
        .unwrap();
    assert!(
        String::from_utf8(header).unwrap().contains("\"ES256\""),
        "{access}"
    );
    let namespaces = format!("{}/namespaces", tb.v2);
    let r = authed("GET", &namespaces, Some(&format!("Bearer {access}")), None).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A backend with the same keys (the same private key, here read from its SEC1 form)
    // accepts the token; an HS256 token of the same store does not pass.
    let same = AuthConfig {
        ecdsa_keys: Some(Arc::new(ecdsa_fixture(
            "es256-sec1.pem",
            "es256-public.pem",
        ))),
        ..Default::default()
    };
    let (peer, _run_peer) = start_on(store.clone(), same).await;
    let r = authed(
        "GET",
        &format!("{}/namespaces", peer.v2),
        Some(&format!("Bearer {access}")),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (hs, _run_hs) = start_on(store, AuthConfig::default()).await;
    let hs_tokens = login(&hs, ADMIN).await;
    let r = authed(
        "GET",
        &namespaces,
        Some(&format!(
            "Bearer {}",
            hs_tokens["access_token"].as_str().unwrap()
        )),
        None,
    )
    .await;
    r.assert_error(401, 5, "unsupported signing algorithm");
}
