//! The REST client: one blocking ureq agent, Sensu's token flow (Bearer, refreshed through
//! `POST /auth/token` once the access token has expired or is refused) or an API key
//! (`Authorization: Key`), and list pagination followed to the end.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::Value;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::Error;
use crate::config::{Cluster, Store};

/// Error and list bodies are read up to this size.
const BODY_LIMIT: u64 = 64 * 1024 * 1024;

/// Refresh this long before the recorded expiry, so a token does not lapse in flight.
const EXPIRY_MARGIN_SECS: i64 = 10;

pub struct Reply {
    pub status: u16,
    pub body: String,
    pub continue_token: Option<String>,
    pub location: Option<String>,
}

pub struct Client {
    agent: ureq::Agent,
    pub base: String,
    cluster: Cluster,
    /// Where refreshed tokens are saved; `None` when credentials came from flags only.
    store: Option<Store>,
}

impl Client {
    pub fn new(
        base: &str,
        cluster: Cluster,
        timeout: Duration,
        store: Option<Store>,
    ) -> Result<Client, Error> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Config(format!(
                "API URL {base:?} must start with http:// or https://"
            )));
        }
        let mut tls = TlsConfig::builder();
        if !cluster.trusted_ca_file.is_empty() {
            let certs = read_ca_file(Path::new(&cluster.trusted_ca_file))?;
            tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
        }
        if cluster.insecure_skip_tls_verify {
            tls = tls.disable_verification(true);
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("picketctl/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Client {
            agent,
            base,
            cluster,
            store,
        })
    }

    /// `GET /auth` with Basic credentials: the token pair for `configure`.
    pub fn login(&self, username: &str, password: &str) -> Result<proto_spec::auth::Tokens, Error> {
        let reply = self.send("GET", "/auth", &basic(username, password), None)?;
        if reply.status == 401 {
            return Err(Error::Api {
                status: 401,
                message: "bad username or password".into(),
            });
        }
        let reply = check(reply)?;
        serde_json::from_str(&reply.body)
            .map_err(|e| Error::Protocol(format!("GET /auth answered unexpected JSON: {e}")))
    }

    /// `GET /auth/test`: whether the credentials are valid (401 is a clear error).
    pub fn test_credentials(&self, username: &str, password: &str) -> Result<(), Error> {
        let reply = self.send("GET", "/auth/test", &basic(username, password), None)?;
        if reply.status == 401 {
            return Err(Error::Api {
                status: 401,
                message: "bad username or password".into(),
            });
        }
        check(reply).map(|_| ())
    }

    /// `POST /auth/logout`: the refresh token stops working on the server too.
    pub fn logout(&mut self) -> Result<(), Error> {
        if self.cluster.refresh_token.is_empty() {
            return Ok(());
        }
        let body = serde_json::json!({ "refresh_token": self.cluster.refresh_token });
        let auth = format!("Bearer {}", self.cluster.access_token);
        check(self.send("POST", "/auth/logout", &auth, Some(&body))?).map(|_| ())
    }

    fn authorization(&mut self) -> Result<String, Error> {
        if !self.cluster.api_key.is_empty() {
            return Ok(format!("Key {}", self.cluster.api_key));
        }
        if self.cluster.access_token.is_empty() {
            return Err(Error::Config(
                "not logged in: run picketctl configure (or pass --api-key)".into(),
            ));
        }
        if self.cluster.expires_at != 0 && self.cluster.expires_at - EXPIRY_MARGIN_SECS <= now() {
            self.refresh()?;
        }
        Ok(format!("Bearer {}", self.cluster.access_token))
    }

    fn refresh(&mut self) -> Result<(), Error> {
        if self.cluster.refresh_token.is_empty() {
            return Err(Error::Config(
                "the access token expired and there is no refresh token: run picketctl configure"
                    .into(),
            ));
        }
        let body = serde_json::json!({ "refresh_token": self.cluster.refresh_token });
        let auth = format!("Bearer {}", self.cluster.access_token);
        let reply = self.send("POST", "/auth/token", &auth, Some(&body))?;
        let reply = check(reply).map_err(|e| match e {
            Error::Api { status, message } if status == 400 || status == 401 => Error::Api {
                status,
                message: format!(
                    "the session cannot be refreshed ({message}): run picketctl configure to log in again"
                ),
            },
            other => other,
        })?;
        let tokens: proto_spec::auth::Tokens = serde_json::from_str(&reply.body)
            .map_err(|e| Error::Protocol(format!("POST /auth/token answered {e}")))?;
        self.cluster.access_token = tokens.access_token;
        self.cluster.expires_at = tokens.expires_at;
        if !tokens.refresh_token.is_empty() {
            self.cluster.refresh_token = tokens.refresh_token;
        }
        if let Some(store) = &self.store {
            store.save_cluster(&self.cluster)?;
        }
        Ok(())
    }

    /// An authenticated request; a 401 on a token that looked valid is retried once after a
    /// refresh (the backend may have restarted with a new signing key, or clocks differ).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Error> {
        let auth = self.authorization()?;
        let reply = self.send(method, path, &auth, body)?;
        if reply.status == 401
            && self.cluster.api_key.is_empty()
            && !self.cluster.refresh_token.is_empty()
        {
            self.refresh()?;
            let auth = self.authorization()?;
            return self.send(method, path, &auth, body);
        }
        Ok(reply)
    }

    /// Like [`Client::request`], but anything other than 2xx is an error with the API's
    /// message.
    pub fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> Result<Reply, Error> {
        check(self.request(method, path, body)?)
    }

    pub fn get_json(&mut self, path: &str) -> Result<Value, Error> {
        let reply = self.call("GET", path, None)?;
        serde_json::from_str(&reply.body)
            .map_err(|e| Error::Protocol(format!("GET {path} answered invalid JSON: {e}")))
    }

    /// Every item of a list, following `Sensu-Continue` with `limit=chunk` pages when `chunk`
    /// is given.
    pub fn list(&mut self, path: &str, chunk: Option<u32>) -> Result<Vec<Value>, Error> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = Vec::new();
            if let Some(n) = chunk {
                query.push(format!("limit={n}"));
            }
            if let Some(t) = &token {
                query.push(format!("continue={}", query_escape(t)));
            }
            let url = if query.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", query.join("&"))
            };
            let reply = self.call("GET", &url, None)?;
            match serde_json::from_str::<Value>(&reply.body) {
                Ok(Value::Array(page)) => items.extend(page),
                Ok(Value::Null) => {}
                _ => {
                    return Err(Error::Protocol(format!(
                        "GET {path} did not answer a JSON array"
                    )));
                }
            }
            match reply.continue_token.filter(|t| !t.is_empty()) {
                Some(t) if chunk.is_some() => token = Some(t),
                _ => return Ok(items),
            }
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        authorization: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Error> {
        let url = format!("{}{path}", self.base);
        let builder = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", authorization);
        let transport = |e: ureq::Error| Error::Transport {
            url: self.base.clone(),
            message: e.to_string(),
        };
        let bad_request = |e: ureq::http::Error| Error::Config(format!("request {url}: {e}"));
        let mut resp = match body {
            Some(b) => {
                let req = builder
                    .header("Content-Type", "application/json")
                    .body(serde_json::to_vec(b).expect("JSON encodes"))
                    .map_err(bad_request)?;
                self.agent.run(req).map_err(transport)?
            }
            None => {
                let req = builder.body(()).map_err(bad_request)?;
                self.agent.run(req).map_err(transport)?
            }
        };
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let continue_token = header("Sensu-Continue");
        let location = header("Location");
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_string()
            .map_err(transport)?;
        Ok(Reply {
            status,
            body,
            continue_token,
            location,
        })
    }
}

/// A non-2xx reply becomes the API's own message.
fn check(reply: Reply) -> Result<Reply, Error> {
    if (200..300).contains(&reply.status) {
        return Ok(reply);
    }
    let message = serde_json::from_str::<Value>(&reply.body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            let text = reply.body.trim();
            if text.is_empty() {
                format!("HTTP {}", reply.status)
            } else {
                text.chars().take(300).collect()
            }
        });
    Err(Error::Api {
        status: reply.status,
        message,
    })
}

fn basic(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Percent-encode a path segment or query value (RFC 3986 unreserved characters pass).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn read_ca_file(path: &Path) -> Result<Vec<Certificate<'static>>, Error> {
    let pem = std::fs::read(path).map_err(|e| Error::Io(path.display().to_string(), e))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c.to_owned()),
            Ok(_) => {}
            Err(e) => return Err(Error::Config(format!("{}: {e}", path.display()))),
        }
    }
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}
