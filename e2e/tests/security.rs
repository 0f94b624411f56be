//! The security flags of the real `picket-backend` binary.

use std::process::Command;
use std::time::Duration;

use e2e::{Api, Proc, binary, eventually, free_port};

fn run(args: &[&str], state: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(binary("picket-backend"))
        .args(args)
        .args(["--config-file", "/dev/null", "--state-dir"])
        .arg(state)
        .output()
        .expect("run picket-backend");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn init_api_key_and_ecdsa_token_keys() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let admin = [
        "init",
        "--cluster-admin-username",
        "ops",
        "--cluster-admin-password",
        "long-enough-pw",
    ];
    let (code, out) = run(
        &[&admin[..], &["--cluster-admin-api-key", "not a name!"]].concat(),
        &state,
    );
    assert_eq!(code, Some(64), "{out}");
    let key = "3b2f5c41-6f0c-4a53-9b84-bb5f2e0f7f10";
    let (code, out) = run(
        &[&admin[..], &["--cluster-admin-api-key", key]].concat(),
        &state,
    );
    assert_eq!(code, Some(0), "{out}");

    // ECDSA token keys: both files, a P-256 pair that belongs together.
    let fixture = |name: &str| {
        format!(
            "{}/../backend/app/tests/fixtures/jwt/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    };
    let private = fixture("es256-private.pem");
    for (args, says) in [
        (
            vec!["--jwt-private-key-file", private.as_str()],
            "must be given together",
        ),
        (
            vec![
                "--jwt-private-key-file",
                private.as_str(),
                "--jwt-public-key-file",
                "/nonexistent/public.pem",
            ],
            "cannot read",
        ),
        (
            vec![
                "--jwt-private-key-file",
                &fixture("es384-private.pem"),
                "--jwt-public-key-file",
                &fixture("es256-public.pem"),
            ],
            "P-256",
        ),
        (
            vec![
                "--jwt-private-key-file",
                private.as_str(),
                "--jwt-public-key-file",
                &fixture("other-public.pem"),
            ],
            "does not belong",
        ),
    ] {
        let (code, out) = run(&[&["start"][..], &args].concat(), &state);
        assert!(
            code == Some(64) || code == Some(1),
            "{args:?}: {code:?} {out}"
        );
        assert!(out.contains(says), "{args:?}: {out}");
    }

    let port = free_port();
    let mut cmd = Command::new(binary("picket-backend"));
    cmd.args(["start", "--config-file", "/dev/null", "--state-dir"])
        .arg(&state)
        .args(["--api-listen-address", &format!("127.0.0.1:{port}")])
        .args([
            "--agent-host",
            "127.0.0.1",
            "--agent-port",
            &free_port().to_string(),
        ])
        .args(["--jwt-private-key-file", &fixture("es256-sec1.pem")])
        .args(["--jwt-public-key-file", &fixture("es256-public.pem")]);
    let mut backend = Proc::spawn("picket-backend", cmd, dir.path().join("backend.log"));
    let base = format!("http://127.0.0.1:{port}");
    let with_key = Api::with_authorization(base.clone(), &format!("Key {key}"));
    let namespaces = eventually(
        "the API with the init API key",
        Duration::from_secs(30),
        || with_key.get_json("/api/core/v2/namespaces"),
    );
    assert_eq!(namespaces, serde_json::json!([{"name": "default"}]));
    let wrong = Api::with_authorization(base.clone(), "Key 3b2f5c41-0000-0000-0000-bb5f2e0f7f10");
    assert_eq!(wrong.get("/api/core/v2/namespaces").unwrap().status, 401);
    // Logged in with the password, the access token is ES256 and works.
    let basic = Api::new(base.clone(), "ops", "long-enough-pw");
    let tokens = basic.get_json("/auth").expect("GET /auth");
    let access = tokens["access_token"].as_str().unwrap();
    assert!(
        access.starts_with("eyJhbGciOiJFUzI1NiI"),
        "an ES256 header: {access}"
    );
    let bearer = Api::with_authorization(base, &format!("Bearer {access}"));
    assert_eq!(bearer.get("/api/core/v2/namespaces").unwrap().status, 200);
    assert_eq!(backend.terminate(Duration::from_secs(15)), Some(0));
}
