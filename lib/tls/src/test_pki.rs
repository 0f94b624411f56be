//! A throw-away PKI for tests (feature `test-pki`): a CA generated in memory that issues
//! server and client certificates, written as PEM files where a test needs paths.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::CertKeyFiles;

/// A certificate authority that exists only for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("self-signed CA"),
        }
    }

    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses), e.g.
    /// `["localhost", "127.0.0.1"]`.
    pub fn server(&self, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let cn = names.first().cloned().unwrap_or_default();
        self.issue(names, &cn, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate whose subject CN is `cn` (an agent's name under mutual TLS).
    pub fn client(&self, cn: &str) -> Issued {
        self.issue(Vec::new(), cn, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, sans: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose) -> Issued {
        let mut params = CertificateParams::new(sans).expect("certificate parameters");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signed certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Write the CA certificate to `<dir>/<stem>.pem`.
    pub fn write(&self, dir: &Path, stem: &str) -> PathBuf {
        let path = dir.join(format!("{stem}.pem"));
        std::fs::write(&path, self.cert_pem()).expect("write CA certificate");
        path
    }
}

impl Issued {
    /// The certificate's DER.
    pub fn cert_der(&self) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .expect("PEM written by rcgen")
            .to_vec()
    }

    /// Write `<dir>/<stem>.pem` and `<dir>/<stem>-key.pem`.
    pub fn write(&self, dir: &Path, stem: &str) -> CertKeyFiles {
        let cert_file = dir.join(format!("{stem}.pem"));
        let key_file = dir.join(format!("{stem}-key.pem"));
        std::fs::write(&cert_file, &self.cert_pem).expect("write certificate");
        std::fs::write(&key_file, &self.key_pem).expect("write key");
        CertKeyFiles {
            cert_file,
            key_file,
        }
    }
}
