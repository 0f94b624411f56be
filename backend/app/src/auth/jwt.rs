//! Compact JWS (RFC 7515/7519) signed HS256 with the store's secret, or ES256 with the
//! operator's ECDSA P-256 keys (`--jwt-private-key-file`, `--jwt-public-key-file`). A token
//! must name the algorithm of the key in use: no `none`, no HS256 token checked against a
//! public key.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use proto_spec::auth::Claims;
use sha2::Sha256;

/// The key tokens are signed and verified with.
#[derive(Clone)]
pub enum TokenKey {
    Hs256(Arc<[u8]>),
    Es256(Arc<EcdsaKeys>),
}

impl TokenKey {
    fn alg(&self) -> &'static str {
        match self {
            TokenKey::Hs256(_) => "HS256",
            TokenKey::Es256(_) => "ES256",
        }
    }
}

/// An ECDSA P-256 key pair read from PEM files.
pub struct EcdsaKeys {
    signing: SigningKey,
    verifying: VerifyingKey,
}

impl std::fmt::Debug for EcdsaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EcdsaKeys(P-256)")
    }
}

impl EcdsaKeys {
    /// The private key as PKCS#8 (`BEGIN PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`) PEM,
    /// the public key as SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`) PEM; both P-256, and the
    /// public key must be the private key's.
    pub fn from_pem(private_pem: &str, public_pem: &str) -> Result<Self, String> {
        let only = "only ECDSA P-256 keys (ES256) are supported";
        let signing = if private_pem.contains("BEGIN EC PRIVATE KEY") {
            p256::SecretKey::from_sec1_pem(private_pem)
                .map(SigningKey::from)
                .map_err(|e| format!("private key: not a P-256 SEC1 key ({e}); {only}"))?
        } else {
            SigningKey::from_pkcs8_pem(private_pem)
                .map_err(|e| format!("private key: not a P-256 PKCS#8 key ({e}); {only}"))?
        };
        let verifying = VerifyingKey::from_public_key_pem(public_pem)
            .map_err(|e| format!("public key: not a P-256 public key ({e}); {only}"))?;
        if *signing.verifying_key() != verifying {
            return Err("the public key does not belong to the private key".to_string());
        }
        Ok(EcdsaKeys { signing, verifying })
    }
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length")
}

pub fn sign(claims: &Claims, key: &TokenKey) -> String {
    let header = format!(r#"{{"alg":"{}","typ":"JWT"}}"#, key.alg());
    let payload = serde_json::to_vec(claims).expect("claims encode to JSON");
    let signing_input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let sig: Vec<u8> = match key {
        TokenKey::Hs256(secret) => {
            let mut m = mac(secret);
            m.update(signing_input.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        // JWS ES256 signatures are r || s, 64 bytes (RFC 7518 3.4), not DER.
        TokenKey::Es256(keys) => {
            let sig: Signature = keys.signing.sign(signing_input.as_bytes());
            sig.to_bytes().to_vec()
        }
    };
    format!("{signing_input}.{}", B64.encode(sig))
}

/// The claims of a token that `key` signed; expiry is the caller's business.
pub fn verify(token: &str, key: &TokenKey) -> Result<Claims, &'static str> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT");
    };
    let header: serde_json::Value = B64
        .decode(h)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or("malformed header")?;
    if header.get("alg").and_then(|a| a.as_str()) != Some(key.alg()) {
        return Err("unsupported signing algorithm");
    }
    let sig = B64.decode(s).map_err(|_| "malformed signature")?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    match key {
        TokenKey::Hs256(secret) => {
            let mut m = mac(secret);
            m.update(signing_input.as_bytes());
            // Constant-time comparison.
            m.verify_slice(&sig).map_err(|_| "bad signature")?;
        }
        TokenKey::Es256(keys) => {
            let sig = Signature::from_slice(&sig).map_err(|_| "malformed signature")?;
            keys.verifying
                .verify(signing_input.as_bytes(), &sig)
                .map_err(|_| "bad signature")?;
        }
    }
    let raw = B64.decode(p).map_err(|_| "malformed claims")?;
    serde_json::from_slice(&raw).map_err(|_| "malformed claims")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(k: &[u8]) -> TokenKey {
        TokenKey::Hs256(Arc::from(k))
    }

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn es256() -> TokenKey {
        let keys = EcdsaKeys::from_pem(&fixture("es256-private.pem"), &fixture("es256-public.pem"))
            .unwrap();
        TokenKey::Es256(Arc::new(keys))
    }

    #[test]
    fn hs256_signs_and_verifies() {
        let claims = Claims {
            sub: "demo".into(),
            exp: 10,
            ..Default::default()
        };
        let t = sign(&claims, &hs(b"k1"));
        assert_eq!(verify(&t, &hs(b"k1")).unwrap(), claims);
        assert_eq!(verify(&t, &hs(b"k2")), Err("bad signature"));
        // An unsigned token naming alg none is refused before any signature check.
        let none = format!(
            "{}.{}.",
            B64.encode(r#"{"alg":"none"}"#),
            B64.encode(r#"{"sub":"admin"}"#)
        );
        assert_eq!(
            verify(&none, &hs(b"k1")),
            Err("unsupported signing algorithm")
        );
        assert_eq!(verify("a.b", &hs(b"k1")), Err("not a JWT"));
    }

    #[test]
    fn hs256_signature_is_the_hmac_of_the_signing_input() {
        let claims = Claims {
            sub: "x".into(),
            ..Default::default()
        };
        let t = sign(&claims, &hs(b"secret"));
        let (input, sig) = t.rsplit_once('.').unwrap();
        let mut m = mac(b"secret");
        m.update(input.as_bytes());
        assert_eq!(B64.encode(m.finalize().into_bytes()), sig);
        assert_eq!(input.split('.').count(), 2);
    }

    #[test]
    fn es256_signs_verifies_and_refuses_algorithm_confusion() {
        let claims = Claims {
            sub: "demo".into(),
            ..Default::default()
        };
        let key = es256();
        let t = sign(&claims, &key);
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(t.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(B64.decode(t.rsplit('.').next().unwrap()).unwrap().len(), 64);
        assert_eq!(verify(&t, &key).unwrap(), claims);
        // An HS256 token is refused by an ES256 verifier, whatever its secret.
        let forged = sign(&claims, &hs(fixture("es256-public.pem").as_bytes()));
        assert_eq!(verify(&forged, &key), Err("unsupported signing algorithm"));
        // A changed signature does not verify.
        let (input, sig) = t.rsplit_once('.').unwrap();
        let mut sig = B64.decode(sig).unwrap();
        sig[10] ^= 1;
        let tampered = format!("{input}.{}", B64.encode(sig));
        assert_eq!(verify(&tampered, &key), Err("bad signature"));
    }

    #[test]
    fn ecdsa_keys_load_from_pkcs8_and_sec1_and_must_match() {
        let public = fixture("es256-public.pem");
        assert!(EcdsaKeys::from_pem(&fixture("es256-sec1.pem"), &public).is_ok());
        let e = EcdsaKeys::from_pem(&fixture("es256-private.pem"), &fixture("other-public.pem"))
            .unwrap_err();
        assert!(e.contains("does not belong"), "{e}");
        let e = EcdsaKeys::from_pem(&fixture("es384-private.pem"), &public).unwrap_err();
        assert!(e.contains("P-256"), "{e}");
        let e = EcdsaKeys::from_pem("not a key", &public).unwrap_err();
        assert!(e.contains("private key"), "{e}");
    }
}
