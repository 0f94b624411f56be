//! Which origins may post the UI's forms (`--ui-origin`), and when its cookies are `Secure`.
//!
//! By default a form post must name, in `Origin`, the host the request was sent to (`Host`).
//! Behind a reverse proxy that rewrites `Host` that comparison refuses every post, and
//! forwarded headers (`X-Forwarded-Host`) are whatever the client or a proxy wrote: so the
//! operator lists the origins browsers use instead, and only those are accepted.

/// The web UI's settings (`picket-backend start --ui-origin`).
#[derive(Debug, Clone, Default)]
pub struct UiConfig {
    /// Normalised `scheme://host[:port]`; empty: compare `Origin` with `Host`.
    origins: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("--ui-origin {given:?}: {why}")]
pub struct OriginError {
    given: String,
    why: &'static str,
}

impl UiConfig {
    /// The UI as served at each of `origins` (e.g. `https://picket.example.com`).
    pub fn with_origins<S: AsRef<str>>(origins: &[S]) -> Result<UiConfig, OriginError> {
        let mut out = Vec::new();
        for given in origins {
            let given = given.as_ref();
            let origin = normalize(given).map_err(|why| OriginError {
                given: given.to_string(),
                why,
            })?;
            if !out.contains(&origin) {
                out.push(origin);
            }
        }
        Ok(UiConfig { origins: out })
    }

    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// Cookies are `Secure` on a TLS connection, and when every configured origin is https
    /// (TLS ends at the proxy: the browser still only ever talks https).
    pub(crate) fn secure_cookies(&self, tls: bool) -> bool {
        tls || (!self.origins.is_empty() && self.origins.iter().all(|o| o.starts_with("https://")))
    }

    /// Whether a state-changing request with this `Origin` (and `Host`) comes from the UI.
    /// Requests without `Origin` (older browsers, scripts) rely on SameSite=Strict and the
    /// CSRF token alone. Without a list only the host is compared, not the scheme: behind a
    /// proxy that ends TLS but keeps `Host`, an https origin arrives on a plain connection.
    pub(crate) fn origin_allowed(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if !self.origins.is_empty() {
            return normalize(origin).is_ok_and(|o| self.origins.contains(&o));
        }
        let origin_host = origin.split_once("://").map(|(_, h)| h);
        matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
    }
}

/// `scheme://host[:port]` as browsers serialise `Origin`: lower case, no default port, no path.
fn normalize(raw: &str) -> Result<String, &'static str> {
    let (scheme, rest) = raw
        .trim()
        .split_once("://")
        .ok_or("expected scheme://host[:port], e.g. https://picket.example.com")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return Err("the scheme must be http or https"),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err("an origin has no path, query, fragment or user");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (inside, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err("invalid IPv6 address");
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or("invalid text after the IPv6 address")?,
            ),
        };
        (format!("[{}]", inside.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err("the host must be a DNS name or an IP address");
        }
        (host.to_ascii_lowercase(), port)
    };
    match port {
        None => Ok(format!("{scheme}://{host}")),
        Some(p) if p.parse::<u16>().is_ok_and(|n| n > 0) => {
            let p = p.trim_start_matches('0');
            if p == default_port {
                Ok(format!("{scheme}://{host}"))
            } else {
                Ok(format!("{scheme}://{host}:{p}"))
            }
        }
        Some(_) => Err("the port must be a number from 1 to 65535"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_as_browsers_send_them() {
        let c = UiConfig::with_origins(&[
            "HTTPS://Picket.Example.com/",
            "https://picket.example.com:443",
            "http://127.0.0.1:8080",
            "http://[::1]:80",
        ])
        .unwrap();
        assert_eq!(
            c.origins(),
            [
                "https://picket.example.com",
                "http://127.0.0.1:8080",
                "http://[::1]"
            ]
        );
        for bad in [
            "picket.example.com",
            "ftp://picket.example.com",
            "https://picket.example.com/ui",
            "https://user@picket.example.com",
            "https://picket.example.com:0",
            "https://picket.example.com:99999",
            "https://",
            "https://exa mple.com",
            "https://[::1",
        ] {
            let err = UiConfig::with_origins(&[bad]).unwrap_err().to_string();
            assert!(err.starts_with("--ui-origin"), "{bad}: {err}");
        }
    }

    #[test]
    fn default_compares_origin_with_host_and_configured_lists_replace_it() {
        let default = UiConfig::default();
        let host = Some("127.0.0.1:8080");
        assert!(default.origin_allowed(None, host));
        assert!(default.origin_allowed(Some("http://127.0.0.1:8080"), host));
        assert!(!default.origin_allowed(Some("https://picket.example.com"), host));
        assert!(!default.origin_allowed(Some("null"), host));

        let proxied = UiConfig::with_origins(&["https://picket.example.com"]).unwrap();
        assert!(proxied.origin_allowed(Some("https://picket.example.com"), host));
        assert!(proxied.origin_allowed(Some("https://PICKET.example.com:443"), host));
        assert!(!proxied.origin_allowed(Some("http://picket.example.com"), host));
        assert!(!proxied.origin_allowed(Some("https://evil.example"), host));
        // The list replaces the Host comparison: a forwarded or rewritten Host proves nothing.
        assert!(!proxied.origin_allowed(Some("http://127.0.0.1:8080"), host));
        assert!(!proxied.origin_allowed(Some("null"), host));
    }

    #[test]
    fn cookies_are_secure_over_tls_or_behind_https_origins_only() {
        let default = UiConfig::default();
        assert!(!default.secure_cookies(false));
        assert!(default.secure_cookies(true));
        let https = UiConfig::with_origins(&["https://a.example", "https://b.example"]).unwrap();
        assert!(https.secure_cookies(false));
        let mixed = UiConfig::with_origins(&["https://a.example", "http://10.0.0.1:8080"]).unwrap();
        assert!(!mixed.secure_cookies(false));
        assert!(mixed.secure_cookies(true));
    }
}
