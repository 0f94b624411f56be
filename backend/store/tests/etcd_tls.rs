//! The etcd store's TLS and user authentication against a real etcd (`/usr/bin/etcd`): a CA
//! made for the test signs the member's certificate, and etcdctl turns etcd's auth on.
#![cfg(feature = "etcd")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use backend_store::etcd::testing::{EtcdCluster, EtcdClusterOptions, EtcdServerTls};
use backend_store::{EtcdOptions, EtcdStore, Store, StoreError};
use tls::test_pki::TestCa;

/// A CA, the member's server certificate for 127.0.0.1, and a client certificate, as files.
struct Pki {
    _dir: tempfile::TempDir,
    server: EtcdServerTls,
}

fn pki(client_cert_auth: bool) -> Pki {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new("Picket etcd test CA");
    let ca_file = ca.write(dir.path(), "ca");
    let server = ca.server(&["127.0.0.1"]).write(dir.path(), "server");
    let client = ca.client("picket-backend").write(dir.path(), "client");
    Pki {
        server: EtcdServerTls {
            cert_file: server.cert_file,
            key_file: server.key_file,
            ca_file,
            client_cert_auth,
            client: Some((client.cert_file, client.key_file)),
        },
        _dir: dir,
    }
}

async fn tls_cluster(server: &EtcdServerTls) -> EtcdCluster {
    EtcdCluster::start(EtcdClusterOptions {
        tls: Some(server.clone()),
        ..Default::default()
    })
    .await
    .expect("etcd with TLS")
}

/// Options that give up quickly: every refusal below is final, so waiting on it only slows
/// the test down.
fn quick(mut opts: EtcdOptions) -> EtcdOptions {
    opts.request_timeout = Duration::from_secs(2);
    opts.connect_timeout = Duration::from_secs(1);
    opts
}

async fn put_get(store: &EtcdStore, key: &str) {
    let revision = store.put(key, b"over TLS".to_vec(), 0).await.expect("put");
    let kv = store
        .get(key)
        .await
        .expect("get")
        .expect("the key just written");
    assert_eq!(kv.value, b"over TLS");
    assert_eq!(kv.mod_revision, revision);
}

/// A request through `opts`, or the error that connecting or the request gave.
async fn try_read(opts: EtcdOptions) -> Result<(), StoreError> {
    let store = EtcdStore::connect(opts).await?;
    store.get("/probe").await.map(|_| ())
}

#[tokio::test]
async fn tls_with_the_right_ca_reads_and_writes() {
    let pki = pki(false);
    let cluster = tls_cluster(&pki.server).await;
    assert!(cluster.client_urls()[0].starts_with("https://127.0.0.1:"));
    let mut opts = cluster.store_options();
    // No client certificate: the member does not ask for one.
    opts.cert_file = None;
    opts.key_file = None;
    let store = EtcdStore::connect(opts).await.expect("connect");
    put_get(&store, "/tls/key").await;
}

#[tokio::test]
async fn tls_with_another_ca_is_refused_clearly() {
    let pki = pki(false);
    let cluster = tls_cluster(&pki.server).await;
    let other = tempfile::tempdir().expect("temp dir");
    let mut opts = quick(cluster.store_options());
    opts.trusted_ca_file = Some(TestCa::new("Some other CA").write(other.path(), "other-ca"));
    let err = try_read(opts)
        .await
        .expect_err("a server certificate from an unknown CA");
    let message = err.to_string();
    assert!(
        matches!(err, StoreError::Unavailable(_)) && message.contains("certificate"),
        "unclear error: {message}"
    );

    // Plain HTTP to a TLS port is refused too (not answered as if it were etcd).
    let mut plain = quick(EtcdOptions::new(
        cluster
            .client_urls()
            .iter()
            .map(|u| u.replacen("https://", "http://", 1))
            .collect(),
    ));
    plain.trusted_ca_file = None;
    try_read(plain).await.expect_err("plain HTTP on a TLS port");
}

#[tokio::test]
async fn client_certificate_auth_needs_a_certificate_from_the_ca() {
    let pki = pki(true);
    let cluster = tls_cluster(&pki.server).await;
    let store = cluster
        .connect()
        .await
        .expect("connect with a client certificate");
    put_get(&store, "/mtls/key").await;

    let mut without = quick(cluster.store_options());
    without.cert_file = None;
    without.key_file = None;
    let err = try_read(without).await.expect_err("no client certificate");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");

    let mut half = cluster.store_options();
    half.key_file = None;
    let err = try_read(half)
        .await
        .expect_err("certificate without its key");
    assert!(
        matches!(&err, StoreError::InvalidRequest(m) if m.contains("--etcd-key-file")),
        "{err}"
    );

    let mut missing = cluster.store_options();
    missing.cert_file = Some(Path::new("/nonexistent/client.pem").to_path_buf());
    let err = try_read(missing).await.expect_err("unreadable certificate");
    assert!(
        matches!(&err, StoreError::InvalidRequest(m) if m.contains("/nonexistent/client.pem")),
        "{err}"
    );
}

/// Run etcdctl against the cluster, failing the test with its output if it fails.
fn etcdctl(cluster: &EtcdCluster, tls: Option<&EtcdServerTls>, args: &[&str]) {
    let mut command = Command::new("etcdctl");
    command
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(cluster.client_urls_flag());
    if let Some(tls) = tls {
        command.arg("--cacert").arg(&tls.ca_file);
        if let Some((cert, key)) = &tls.client {
            command.arg("--cert").arg(cert).arg("--key").arg(key);
        }
    }
    let output = command.args(args).output().expect("run etcdctl");
    assert!(
        output.status.success(),
        "etcdctl {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// etcd's auth on, with `root` (password `root-secret`) and `picket` (password `s3cret`, a
/// role that may read and write everything).
fn enable_auth(cluster: &EtcdCluster, tls: Option<&EtcdServerTls>) {
    for args in [
        &["user", "add", "root:root-secret"][..],
        &["role", "add", "picket"],
        &[
            "role",
            "grant-permission",
            "picket",
            "--prefix=true",
            "readwrite",
            "",
        ],
        &["user", "add", "picket:s3cret"],
        &["user", "grant-role", "picket", "picket"],
        &["auth", "enable"],
    ] {
        etcdctl(cluster, tls, args);
    }
}

fn with_user(mut opts: EtcdOptions, user: &str, password: &str) -> EtcdOptions {
    opts.username = Some(user.to_string());
    opts.password = Some(password.to_string());
    opts
}

#[tokio::test]
async fn user_authentication_accepts_the_right_password_only() {
    let cluster = EtcdCluster::single().await.expect("etcd");
    enable_auth(&cluster, None);

    let store = EtcdStore::connect(with_user(cluster.store_options(), "picket", "s3cret"))
        .await
        .expect("connect as picket");
    put_get(&store, "/auth/key").await;
    let mut watch = store.watch("/auth/", 0).await.expect("watch as picket");
    store
        .put("/auth/watched", b"v".to_vec(), 0)
        .await
        .expect("put");
    let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("watch event in time")
        .expect("watch open")
        .expect("watch event");
    assert_eq!(event.kv().key, "/auth/watched");

    let err = try_read(quick(with_user(cluster.store_options(), "picket", "wrong")))
        .await
        .expect_err("wrong password");
    let message = err.to_string();
    assert!(
        !matches!(err, StoreError::Unavailable(_)) && message.contains("authentication failed"),
        "unclear or retryable error: {message}"
    );

    let err = try_read(quick(cluster.store_options()))
        .await
        .expect_err("no credentials");
    assert!(!matches!(err, StoreError::Unavailable(_)), "{err}");

    let mut half = cluster.store_options();
    half.username = Some("picket".to_string());
    let err = try_read(half).await.expect_err("a user without a password");
    assert!(matches!(err, StoreError::InvalidRequest(_)), "{err}");
}

#[tokio::test]
async fn user_authentication_over_tls() {
    let pki = pki(false);
    let cluster = tls_cluster(&pki.server).await;
    enable_auth(&cluster, Some(&pki.server));
    let store = EtcdStore::connect(with_user(cluster.store_options(), "root", "root-secret"))
        .await
        .expect("connect as root over TLS");
    put_get(&store, "/auth-tls/key").await;
    let err = try_read(quick(with_user(cluster.store_options(), "root", "s3cret")))
        .await
        .expect_err("wrong password");
    assert!(err.to_string().contains("authentication failed"), "{err}");
}
