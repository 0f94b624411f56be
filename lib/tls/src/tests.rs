//! Real handshakes on loopback between configurations built from generated PEM files.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::test_pki::TestCa;
use super::*;

struct Pki {
    dir: tempfile::TempDir,
    ca: TestCa,
    ca_file: PathBuf,
    server: CertKeyFiles,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Picket test CA");
    let ca_file = ca.write(dir.path(), "ca");
    let server = ca
        .server(&["localhost", "127.0.0.1"])
        .write(dir.path(), "server");
    Pki {
        dir,
        ca,
        ca_file,
        server,
    }
}

/// Serve one connection: complete the handshake, answer with the client's CN (or "-"), and
/// return the handshake error if there was one.
async fn serve_one(
    config: Arc<ServerConfig>,
) -> (u16, tokio::task::JoinHandle<Result<String, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = TlsAcceptor::from(config)
            .accept(tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut stream = ServerStream::from(tls);
        let cn = stream.peer_common_name().unwrap_or_else(|| "-".into());
        stream
            .write_all(cn.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        stream.shutdown().await.map_err(|e| e.to_string())?;
        Ok(cn)
    });
    (port, task)
}

async fn client_read(config: Arc<ClientConfig>, port: u16, name: &str) -> Result<String, String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from(name.to_string()).unwrap();
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = ClientStream::from(tls);
    let mut out = String::new();
    stream
        .read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    Ok(out)
}

#[tokio::test]
async fn server_is_verified_with_the_trusted_ca() {
    let p = pki();
    let server = server_config(&p.server, None).unwrap();
    for name in ["localhost", "127.0.0.1"] {
        let (port, task) = serve_one(server.clone()).await;
        let client = client_config(&ClientOptions {
            trusted_ca_file: Some(p.ca_file.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(client_read(client, port, name).await.unwrap(), "-");
        assert_eq!(task.await.unwrap().unwrap(), "-");
    }
}

#[tokio::test]
async fn another_ca_is_refused_unless_verification_is_skipped() {
    let p = pki();
    let other = TestCa::new("Someone else's CA");
    let other_file = other.write(p.dir.path(), "other-ca");
    let server = server_config(&p.server, None).unwrap();

    let (port, _task) = serve_one(server.clone()).await;
    let client = client_config(&ClientOptions {
        trusted_ca_file: Some(other_file),
        ..Default::default()
    })
    .unwrap();
    let err = client_read(client, port, "localhost").await.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");

    let (port, task) = serve_one(server).await;
    let insecure = client_config(&ClientOptions {
        insecure_skip_verify: true,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(client_read(insecure, port, "localhost").await.unwrap(), "-");
    assert!(task.await.unwrap().is_ok());
}

#[tokio::test]
async fn client_certificates_are_verified_and_named() {
    let p = pki();
    let server = server_config(&p.server, Some(&p.ca_file)).unwrap();
    let trusted = |client_cert: Option<CertKeyFiles>| {
        client_config(&ClientOptions {
            trusted_ca_file: Some(p.ca_file.clone()),
            insecure_skip_verify: false,
            client_cert,
        })
        .unwrap()
    };

    // A certificate of the client CA: the server sees its CN.
    let good = p.ca.client("web-01").write(p.dir.path(), "web-01");
    let (port, task) = serve_one(server.clone()).await;
    assert_eq!(
        client_read(trusted(Some(good)), port, "localhost")
            .await
            .unwrap(),
        "web-01"
    );
    assert_eq!(task.await.unwrap().unwrap(), "web-01");

    // No certificate: still accepted (the application authenticates it otherwise).
    let (port, task) = serve_one(server.clone()).await;
    assert_eq!(
        client_read(trusted(None), port, "localhost").await.unwrap(),
        "-"
    );
    assert_eq!(task.await.unwrap().unwrap(), "-");

    // A certificate of another CA: the handshake fails on the server.
    let rogue = TestCa::new("Rogue CA")
        .client("web-01")
        .write(p.dir.path(), "rogue");
    let (port, task) = serve_one(server).await;
    let _ = client_read(trusted(Some(rogue)), port, "localhost").await;
    let err = task.await.unwrap().unwrap_err();
    assert!(
        err.contains("UnknownIssuer") || err.contains("invalid peer certificate"),
        "{err}"
    );
}

#[test]
fn file_problems_name_the_file() {
    let p = pki();
    let missing = p.dir.path().join("missing.pem");
    let err = server_config(
        &CertKeyFiles {
            cert_file: missing.clone(),
            key_file: p.server.key_file.clone(),
        },
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("certificate file") && err.contains("missing.pem"),
        "{err}"
    );

    // A key file given where the certificate belongs, and the other way round.
    let swapped = CertKeyFiles {
        cert_file: p.server.key_file.clone(),
        key_file: p.server.cert_file.clone(),
    };
    let err = server_config(&swapped, None).unwrap_err().to_string();
    assert!(err.contains("holds no certificate"), "{err}");

    // A key that does not belong to the certificate.
    let other = p.ca.server(&["localhost"]).write(p.dir.path(), "other");
    let mismatched = CertKeyFiles {
        cert_file: p.server.cert_file.clone(),
        key_file: other.key_file,
    };
    assert!(server_config(&mismatched, None).is_err());

    let err = client_config(&ClientOptions {
        trusted_ca_file: Some(missing),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("trusted CA file"), "{err}");
}
