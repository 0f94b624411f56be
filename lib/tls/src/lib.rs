//! TLS for Picket's listeners and clients, and the only workspace crate that names rustls.
//!
//! - [`server_config`]: a certificate and key (PEM files) for a listener, optionally with a
//!   CA whose client certificates are verified when a client presents one (mutual TLS).
//! - [`client_config`]: the trust of a client: a CA bundle file, else the system's roots;
//!   `insecure_skip_verify` for tests; an optional client certificate.
//! - [`common_name`]: the subject CN of a (verified) certificate, the identity mutual TLS
//!   gives a peer.
//! - [`Stream`]: one type for plain and TLS connections ([`ClientStream`], [`ServerStream`]),
//!   so servers and clients keep one code path for both.
//!
//! Everything runs on rustls' `ring` provider: aws-lc-rs, rustls' default, would roughly
//! double the size of the static agent and needs a C toolchain and cmake for every cross
//! target. FIPS mode is therefore not available.

mod stream;
#[cfg(any(test, feature = "test-pki"))]
pub mod test_pki;
mod x509;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

pub use rustls::{ClientConfig, ServerConfig};
pub use rustls_pki_types::ServerName;
pub use stream::{ClientStream, ServerStream, Stream};
pub use tokio_rustls::{TlsAcceptor, TlsConnector};
pub use x509::common_name;

/// A TLS file or configuration problem, naming the file and the setting it came from.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {what} {} is not valid PEM: {reason}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the {what} {} holds no certificate", path.display())]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("the {what} {} holds no usable CA certificate: {reason}", path.display())]
    BadCa {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("no trusted CA certificates: the system has none ({0}); set --trusted-ca-file")]
    NoSystemRoots(String),
    /// rustls refused the combination (a key that does not match its certificate, ...).
    #[error("{context}: {reason}")]
    Config {
        context: &'static str,
        reason: String,
    },
}

/// The crypto provider of every configuration this crate builds.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate of a PEM file, in order (a leaf first, then its chain).
pub fn load_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn load_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(what, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason: match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no private key (PKCS#8, PKCS#1 or SEC1 PEM block) found".to_string()
            }
            other => other.to_string(),
        },
    })
}

/// A root store of every CA certificate in a PEM bundle; an unusable certificate is an error
/// rather than silently skipped, so a wrong file cannot leave a verifier trusting nothing.
pub fn load_roots(what: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(what, path)? {
        roots.add(cert).map_err(|e| TlsError::BadCa {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// Files of a certificate and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertKeyFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// A listener's configuration. With `client_ca_file`, a client that presents a certificate
/// must present one issued by that CA (the handshake fails otherwise); a client that presents
/// none is still accepted, and the application authenticates it some other way.
pub fn server_config(
    identity: &CertKeyFiles,
    client_ca_file: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs("certificate file", &identity.cert_file)?;
    let key = load_key("key file", &identity.key_file)?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("TLS protocol versions", e))?;
    let builder = match client_ca_file {
        Some(ca) => {
            let roots = Arc::new(load_roots("client CA file", ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| config_error("client certificate verifier", e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| config_error("certificate and key", e))?;
    Ok(Arc::new(config))
}

/// How a client trusts servers and, optionally, identifies itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// PEM bundle of the CAs to trust instead of the system's roots.
    pub trusted_ca_file: Option<PathBuf>,
    /// Accept any server certificate (tests only: it gives up authenticating the server).
    pub insecure_skip_verify: bool,
    /// Client certificate and key for mutual TLS.
    pub client_cert: Option<CertKeyFiles>,
}

/// A client's configuration from [`ClientOptions`].
pub fn client_config(options: &ClientOptions) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("TLS protocol versions", e))?;
    let builder = if options.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServer { provider }))
    } else {
        let roots = match &options.trusted_ca_file {
            Some(path) => load_roots("trusted CA file", path)?,
            None => system_roots()?,
        };
        builder.with_root_certificates(roots)
    };
    let config = match &options.client_cert {
        Some(files) => builder
            .with_client_auth_cert(
                load_certs("certificate file", &files.cert_file)?,
                load_key("key file", &files.key_file)?,
            )
            .map_err(|e| config_error("client certificate and key", e))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The operating system's CA certificates (as Go's `SystemCertPool`, which Sensu uses).
fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no CA certificates found".to_string());
        return Err(TlsError::NoSystemRoots(why));
    }
    Ok(roots)
}

fn config_error(context: &'static str, e: impl std::fmt::Display) -> TlsError {
    TlsError::Config {
        context,
        reason: e.to_string(),
    }
}

/// `--insecure-skip-tls-verify`: any certificate and name are accepted, but the handshake
/// signatures are still checked, so the session is at least bound to the key the server
/// presented.
#[derive(Debug)]
struct AcceptAnyServer {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests;
