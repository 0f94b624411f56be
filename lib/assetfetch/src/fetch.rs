//! Downloading an asset: HTTP(S) GET with ureq over rustls (ring), the asset's headers sent,
//! redirects and size bounded, the SHA-512 computed while the bytes stream to a file.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha512};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::Error;

/// Where system trust stores live on the Linux distributions Picket ships for (the list Go's
/// crypto/x509 reads); the first that exists is used.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// How downloads are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchConfig {
    /// PEM bundle trusted in addition to the system's (`--trusted-ca-file`).
    pub trusted_ca_file: Option<PathBuf>,
    /// Skip certificate verification (`--insecure-skip-tls-verify`).
    pub insecure_skip_tls_verify: bool,
    /// Largest archive accepted, compressed as downloaded.
    pub max_download_bytes: u64,
    /// Whole request, connection to last byte.
    pub timeout: Duration,
    pub max_redirects: u32,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            trusted_ca_file: None,
            insecure_skip_tls_verify: false,
            max_download_bytes: 512 << 20,
            timeout: Duration::from_secs(300),
            max_redirects: 5,
        }
    }
}

/// A configured HTTP client; cheap to share.
#[derive(Debug, Clone)]
pub struct Fetcher {
    agent: ureq::Agent,
    max_bytes: u64,
}

impl Fetcher {
    /// The trusted CA file, when set, is readable and holds at least one certificate.
    pub fn check_trusted_ca_file(config: &FetchConfig) -> Result<(), Error> {
        if let Some(p) = &config.trusted_ca_file
            && read_pem_certs(p)?.is_empty()
        {
            return Err(Error::Config(format!(
                "trusted CA file {} holds no certificate",
                p.display()
            )));
        }
        Ok(())
    }

    /// Reads the system trust store and the trusted CA file.
    pub fn new(config: &FetchConfig) -> Result<Fetcher, Error> {
        let mut roots: Vec<Certificate<'static>> = Vec::new();
        let system = std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .into_iter()
            .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
            .find(|p| p.is_file());
        if let Some(p) = &system {
            // An unreadable system store is not fatal: the trusted CA file may be enough.
            match read_pem_certs(p) {
                Ok(c) => roots.extend(c),
                Err(e) => tracing::warn!(error = %e, "Cannot read the system trust store"),
            }
        }
        if let Some(p) = &config.trusted_ca_file {
            let certs = read_pem_certs(p)?;
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "trusted CA file {} holds no certificate",
                    p.display()
                )));
            }
            roots.extend(certs);
        }
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::new_with_certs(&roots))
            .disable_verification(config.insecure_skip_tls_verify)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .max_redirects(config.max_redirects)
            .timeout_global(Some(config.timeout))
            .timeout_connect(Some(config.timeout.min(Duration::from_secs(30))))
            .user_agent(concat!("picket/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Fetcher {
            agent,
            max_bytes: config.max_download_bytes,
        })
    }

    /// GET `url` into `out`, returning the lower-case hex SHA-512 of what was written.
    /// Blocking: callers on an async runtime use `spawn_blocking`.
    pub fn download(
        &self,
        url: &str,
        headers: &[(String, String)],
        out: &mut File,
    ) -> Result<String, Error> {
        let fetch_err = |message: String| Error::Fetch {
            url: url.to_string(),
            message,
        };
        let mut request = self.agent.get(url);
        for (k, v) in headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let response = request.call().map_err(|e| fetch_err(e.to_string()))?;
        if let Some(len) = response.body().content_length()
            && len > self.max_bytes
        {
            return Err(Error::TooLarge {
                url: url.to_string(),
                limit: self.max_bytes,
            });
        }
        let mut body = response
            .into_body()
            .into_with_config()
            .limit(self.max_bytes.saturating_add(1))
            .reader();
        let mut hasher = Sha512::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total: u64 = 0;
        loop {
            let n = body.read(&mut buf).map_err(|e| fetch_err(e.to_string()))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > self.max_bytes {
                return Err(Error::TooLarge {
                    url: url.to_string(),
                    limit: self.max_bytes,
                });
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| Error::Io(format!("cannot write the download: {e}")))?;
        }
        out.sync_all()
            .map_err(|e| Error::Io(format!("cannot write the download: {e}")))?;
        Ok(hex(&hasher.finalize()))
    }
}

fn read_pem_certs(path: &Path) -> Result<Vec<Certificate<'static>>, Error> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::Config(format!(
                    "cannot parse {}: {e}",
                    path.display()
                )));
            }
        }
    }
    Ok(certs)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// SHA-512 of a file, lower-case hex (for the allow list's `sha512` and the tooling).
pub fn sha512_file(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut hasher = Sha512::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}
