//! DPoP proof verification (RFC 9449) for Sign-In's `POST /v1/token`: the
//! ES256 JWT botocore and the AWS CLI put in the `DPoP` header, checked
//! against the public key it carries, and the RFC 7638 thumbprint of that
//! key, to which a login session's refresh tokens are bound.
//!
//! The signature check is RustCrypto's `p256`; the JWT around it is three
//! base64url parts and two small JSON objects, parsed here because a JOSE
//! crate would bring a second key type for a single fixed algorithm.
//! Replay (`jti`) is the caller's business: it needs the sandbox's memory.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// How far a proof's `iat` may be from the real wall clock, either way.
pub const MAX_SKEW_SECS: i64 = 300;

/// A proof that passed every check but replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 thumbprint of the proof's public key.
    pub thumbprint: String,
    pub jti: String,
    pub iat: i64,
}

/// Why a proof was refused; the texts name the failed check, never the proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    #[error("the DPoP proof is not a JWT")]
    Malformed,
    #[error("the DPoP proof header must have typ dpop+jwt and alg ES256")]
    Header,
    #[error("the DPoP proof's jwk must be a public EC P-256 key")]
    Key,
    #[error("the DPoP proof's signature does not verify")]
    Signature,
    #[error("the DPoP proof's htm must be POST")]
    Method,
    #[error("the DPoP proof's htu does not name this endpoint")]
    Url,
    #[error("the DPoP proof's iat is more than 5 minutes from now")]
    Stale,
    #[error("the DPoP proof has no jti")]
    MissingJti,
}

#[derive(Deserialize)]
struct Header {
    typ: String,
    alg: String,
    jwk: Jwk,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: String,
    x: String,
    y: String,
    /// Present only if a client leaked its private key into the proof.
    d: Option<String>,
}

#[derive(Deserialize)]
struct Payload {
    htm: String,
    htu: String,
    iat: i64,
    jti: String,
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str, error: DpopError) -> Result<T, DpopError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| DpopError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| error)
}

/// A coordinate: exactly 32 bytes of base64url.
fn coordinate(text: &str) -> Result<[u8; 32], DpopError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or(DpopError::Key)
}

/// The RFC 7638 JWK thumbprint of an EC key: base64url(sha256) of the
/// required members in lexicographic order, without whitespace.
pub fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The URL a proof names, without query and fragment (RFC 9449 4.3).
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Verifies `proof` for a POST to `expected_htu` at `now_unix` (real wall
/// clock seconds): header, key, signature, `htm`, `htu`, `iat` and the
/// presence of `jti`.
pub fn verify(proof: &str, expected_htu: &str, now_unix: i64) -> Result<Proof, DpopError> {
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DpopError::Malformed);
    };
    let header: Header = decode_json(header_b64, DpopError::Header)?;
    if header.typ != "dpop+jwt" || header.alg != "ES256" {
        return Err(DpopError::Header);
    }
    let jwk = header.jwk;
    if jwk.kty != "EC" || jwk.crv != "P-256" || jwk.d.is_some() {
        return Err(DpopError::Key);
    }
    let (x, y) = (coordinate(&jwk.x)?, coordinate(&jwk.y)?);
    let point = p256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
    let key = VerifyingKey::from_encoded_point(&point).map_err(|_| DpopError::Key)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .ok()
        .and_then(|raw| Signature::from_slice(&raw).ok())
        .ok_or(DpopError::Signature)?;
    let signing_input = &proof[..header_b64.len() + 1 + payload_b64.len()];
    key.verify(signing_input.as_bytes(), &signature)
        .map_err(|_| DpopError::Signature)?;

    let payload: Payload = decode_json(payload_b64, DpopError::Malformed)?;
    if payload.htm != "POST" {
        return Err(DpopError::Method);
    }
    if without_query(&payload.htu) != expected_htu {
        return Err(DpopError::Url);
    }
    if (now_unix - payload.iat).abs() > MAX_SKEW_SECS {
        return Err(DpopError::Stale);
    }
    if payload.jti.is_empty() {
        return Err(DpopError::MissingJti);
    }
    Ok(Proof {
        thumbprint: thumbprint(&jwk.x, &jwk.y),
        jti: payload.jti,
        iat: payload.iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::SigningKey;

    const HTU: &str = "http://127.0.0.1:1/v1/token";

    fn b64(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn proof_with(
        key: &SigningKey,
        header: serde_json::Value,
        payload: serde_json::Value,
    ) -> String {
        let input = format!("{}.{}", b64(&header), b64(&payload));
        let signature: Signature = key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    fn jwk(key: &SigningKey) -> serde_json::Value {
        let point = key.verifying_key().to_encoded_point(false);
        serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        })
    }

    fn proof(key: &SigningKey, htm: &str, htu: &str, iat: i64) -> String {
        proof_with(
            key,
            serde_json::json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": jwk(key) }),
            serde_json::json!({ "htm": htm, "htu": htu, "iat": iat, "jti": "j-1" }),
        )
    }

    #[test]
    fn a_good_proof_verifies_and_yields_the_keys_thumbprint() {
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let verified = verify(&proof(&key, "POST", HTU, 1000), HTU, 1010).unwrap();
        let j = jwk(&key);
        let expected = thumbprint(j["x"].as_str().unwrap(), j["y"].as_str().unwrap());
        assert_eq!(verified.thumbprint, expected);
        assert_eq!((verified.jti.as_str(), verified.iat), ("j-1", 1000));
    }

    #[test]
    fn a_high_s_signature_verifies_as_awscrt_may_sign_one() {
        // awscrt (botocore, the AWS CLI) does not normalize s; both halves
        // of the curve order are valid ES256 signatures.
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let good = proof(&key, "POST", HTU, 1000);
        let (input, sig_b64) = good.rsplit_once('.').unwrap();
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig_b64).unwrap()).unwrap();
        let (r, s) = sig.split_scalars();
        let flipped = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert_ne!(flipped, sig);
        let high = format!("{input}.{}", URL_SAFE_NO_PAD.encode(flipped.to_bytes()));
        assert!(verify(&high, HTU, 1000).is_ok());
    }

    #[test]
    fn thumbprint_matches_rfc_7638_canonical_form() {
        // The canonical JSON's digest, computed independently of thumbprint().
        let digest = Sha256::digest(br#"{"crv":"P-256","kty":"EC","x":"AA","y":"BB"}"#);
        assert_eq!(thumbprint("AA", "BB"), URL_SAFE_NO_PAD.encode(digest));
    }

    #[test]
    fn each_check_refuses_its_own_failure() {
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let other = SigningKey::random(&mut rand::rngs::OsRng);
        assert_eq!(
            verify(&proof(&key, "GET", HTU, 1000), HTU, 1000),
            Err(DpopError::Method)
        );
        assert_eq!(
            verify(
                &proof(&key, "POST", "http://127.0.0.1:2/v1/token", 1000),
                HTU,
                1000
            ),
            Err(DpopError::Url)
        );
        assert_eq!(
            verify(&proof(&key, "POST", HTU, 1000), HTU, 1301),
            Err(DpopError::Stale)
        );
        assert_eq!(
            verify(&proof(&key, "POST", HTU, 1400), HTU, 1000),
            Err(DpopError::Stale)
        );
        // Signed by one key, carrying another's public key.
        let forged = proof_with(
            &other,
            serde_json::json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": jwk(&key) }),
            serde_json::json!({ "htm": "POST", "htu": HTU, "iat": 1000, "jti": "j" }),
        );
        assert_eq!(verify(&forged, HTU, 1000), Err(DpopError::Signature));
        let wrong_typ = proof_with(
            &key,
            serde_json::json!({ "typ": "JWT", "alg": "ES256", "jwk": jwk(&key) }),
            serde_json::json!({ "htm": "POST", "htu": HTU, "iat": 1000, "jti": "j" }),
        );
        assert_eq!(verify(&wrong_typ, HTU, 1000), Err(DpopError::Header));
        assert_eq!(verify("a.b", HTU, 1000), Err(DpopError::Malformed));
    }
}
