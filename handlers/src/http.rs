//! The handlers' HTTP client: blocking ureq with rustls (ring provider), one overall timeout
//! per request, and either the Mozilla roots or a private CA bundle (`--ca-file`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::{Error, Result};

/// How much of an error response body is quoted in the error.
const BODY_EXCERPT: usize = 512;

/// The options every HTTP handler takes (`#[command(flatten)]` into its arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Seconds the request may take (connect, TLS, send, answer).
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// PEM file of the CA certificates to trust instead of the built-in roots.
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
}

impl HttpArgs {
    pub fn client(&self) -> Result<Client> {
        Client::new(Duration::from_secs(self.timeout), self.ca_file.as_deref())
    }
}

/// A client for one handler run.
pub struct Client {
    agent: ureq::Agent,
}

/// A 2xx answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Client {
    /// `timeout` bounds each request as a whole (connect, TLS, send, answer); `ca_file`, a PEM
    /// bundle, replaces the Mozilla roots when given.
    pub fn new(timeout: Duration, ca_file: Option<&Path>) -> Result<Client> {
        let roots = match ca_file {
            Some(path) => RootCerts::Specific(Arc::new(read_ca_file(path)?)),
            None => RootCerts::WebPki,
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Error bodies are part of the reason we report.
            .http_status_as_error(false)
            .user_agent(concat!("picket-handler/", env!("CARGO_PKG_VERSION")))
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .build()
            .into();
        Ok(Client { agent })
    }

    /// Send `body` with `method` to `url`; any answer but 2xx is an error quoting the body.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<Reply> {
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(body)
            .map_err(|e| Error::Config(format!("request to {url}: {e}")))?;
        let mut response = self.agent.run(request).map_err(|e| Error::Http {
            url: url.to_string(),
            source: Box::new(e),
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_string()
            .unwrap_or_default();
        if !(200..300).contains(&status) {
            let mut excerpt: String = body.chars().take(BODY_EXCERPT).collect();
            if excerpt.len() < body.len() {
                excerpt.push_str("...");
            }
            return Err(Error::Status {
                url: url.to_string(),
                status,
                body: excerpt.trim().to_string(),
            });
        }
        Ok(Reply { status, body })
    }

    /// POST a JSON body.
    pub fn post_json(&self, url: &str, body: &serde_json::Value) -> Result<Reply> {
        let headers = [("Content-Type".to_string(), "application/json".to_string())];
        self.send("POST", url, &headers, body.to_string().into_bytes())
    }
}

/// Every certificate in a PEM file; none is an error.
pub fn read_ca_file(path: &Path) -> Result<Vec<Certificate<'static>>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
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

/// `"Name: value"` → `("Name", "value")`, for `--header` flags.
pub fn parse_header(raw: &str) -> Result<(String, String)> {
    let (name, value) = raw
        .split_once(':')
        .ok_or_else(|| Error::Config(format!("header {raw:?} is not \"Name: value\"")))?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(Error::Config(format!("header {raw:?} has no valid name")));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// Percent-encode a query parameter value (RFC 3986 unreserved characters pass).
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

/// `Basic <base64(user:password)>`.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_query_values() {
        assert_eq!(
            parse_header("X-Token:  a:b ").unwrap(),
            ("X-Token".to_string(), "a:b".to_string())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
        assert_eq!(query_escape("my db&x=1/é"), "my%20db%26x%3D1%2F%C3%A9");
    }
}
