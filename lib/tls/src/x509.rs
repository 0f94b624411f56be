//! Just enough DER to read a certificate's subject common name: the identity mutual TLS gives
//! an agent. The certificate has already been verified by rustls when this runs, so this walks
//! the structure without judging it; malformed input yields `None`, never a panic.
//!
//! ```text
//! Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
//! TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
//!                               validity, subject, ... }
//! Name ::= SEQUENCE OF SET OF SEQUENCE { type OBJECT IDENTIFIER, value ANY }
//! ```

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const CONTEXT_0: u8 = 0xa0;
/// id-at-commonName, 2.5.4.3.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The subject CN of a DER certificate (the last one when there are several, as Go's
/// `pkix.Name` keeps); `None` when it has none or the DER is malformed.
pub fn common_name(cert_der: &[u8]) -> Option<String> {
    let (tag, cert, _) = tlv(cert_der)?;
    expect(tag, SEQUENCE)?;
    let (tag, tbs, _) = tlv(cert)?;
    expect(tag, SEQUENCE)?;
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    if tag == CONTEXT_0 {
        rest = after; // the explicit version
    }
    // serialNumber, signature, issuer, validity
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (tag, mut subject, _) = tlv(rest)?;
    expect(tag, SEQUENCE)?;
    let mut found = None;
    while !subject.is_empty() {
        let (tag, mut set, after) = tlv(subject)?;
        expect(tag, SET)?;
        subject = after;
        while !set.is_empty() {
            let (tag, attr, after) = tlv(set)?;
            expect(tag, SEQUENCE)?;
            set = after;
            let (tag, oid, value) = tlv(attr)?;
            expect(tag, OID)?;
            if oid == OID_COMMON_NAME {
                let (tag, bytes, _) = tlv(value)?;
                found = Some(decode_string(tag, bytes)?);
            }
        }
    }
    found
}

fn expect(tag: u8, want: u8) -> Option<()> {
    (tag == want).then_some(())
}

/// One tag-length-value: `(tag, content, rest)`. Only single-byte tags and definite lengths,
/// which is all DER certificates use.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tag
    }
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || input.len() < n {
            return None;
        }
        let (bytes, after) = input.split_at(n);
        input = after;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if input.len() < len {
        return None;
    }
    let (content, rest) = input.split_at(len);
    Some((tag, content, rest))
}

/// The directory string types a CN may use.
fn decode_string(tag: u8, bytes: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String
        0x0c | 0x13 | 0x16 => String::from_utf8(bytes.to_vec()).ok(),
        // TeletexString: Latin-1 in practice
        0x14 => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        // BMPString: UCS-2 big-endian
        0x1e if bytes.len().is_multiple_of(2) => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_truncation() {
        assert_eq!(
            tlv(&[0x04, 0x02, 0xaa, 0xbb, 0xcc]).unwrap().1,
            &[0xaa, 0xbb]
        );
        let long = [&[0x04, 0x81, 0x80][..], &[0u8; 0x80]].concat();
        assert_eq!(tlv(&long).unwrap().1.len(), 0x80);
        assert!(
            tlv(&[0x04, 0x05, 0x00]).is_none(),
            "content shorter than its length"
        );
        assert!(tlv(&[0x04, 0x80]).is_none(), "indefinite length");
        assert!(tlv(&[0x1f, 0x01, 0x00]).is_none(), "multi-byte tag");
        assert!(tlv(&[]).is_none());
    }

    #[test]
    fn string_types() {
        assert_eq!(
            decode_string(0x0c, "agent-é".as_bytes()).unwrap(),
            "agent-é"
        );
        assert_eq!(decode_string(0x1e, &[0, b'a', 0, b'1']).unwrap(), "a1");
        assert_eq!(decode_string(0x14, &[0xe9]).unwrap(), "é");
        assert!(
            decode_string(0x04, b"x").is_none(),
            "OCTET STRING is not a name"
        );
    }

    #[test]
    fn garbage_never_panics() {
        // Every prefix and a few corruptions of a real certificate.
        let ca = crate::test_pki::TestCa::new("Picket test CA");
        let der = ca.client("web-01").cert_der();
        assert_eq!(common_name(&der).as_deref(), Some("web-01"));
        for cut in 0..der.len() {
            let _ = common_name(&der[..cut]);
        }
        for i in 0..der.len() {
            let mut bad = der.clone();
            bad[i] ^= 0xff;
            let _ = common_name(&bad);
        }
        assert_eq!(common_name(b"not a certificate"), None);
    }
}
