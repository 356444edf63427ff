//! [`DpopKey`]: the P-256 key of an `aws login` session (the cache file's
//! `dpopKey`) and the DPoP proofs (RFC 9449) AWS Sign-In asks for with every
//! `CreateOAuth2Token` call.
//!
//! The key is read and written as the AWS CLI keeps it (a SEC1
//! `EC PRIVATE KEY` PEM, 64-character lines, trailing newline); PKCS#8 is
//! accepted too. A proof is the compact ES256 JWT botocore's
//! `_build_dpop_header` builds: header `{"typ","alg","jwk"}`, payload
//! `{"htm","htu","iat","jti"}`, both serialized without spaces, signed with
//! the raw `r||s` signature. The crypto is RustCrypto's `p256`; only the
//! JWT's assembly (three base64url parts) is written here, as it is a few
//! lines and a JOSE crate would add far more than it saves.
//!
//! The private key never leaves this type except to be written back to its
//! 0600 cache file ([`DpopKey::to_pem`]); `Debug` shows only the public
//! key's thumbprint.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use credd_core::SecretString;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::DecodePrivateKey as _;
use p256::SecretKey;
use sha2::{Digest, Sha256};
use std::fmt;

/// A DPoP key that cannot be loaded. Never carries the PEM's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the login session's DPoP key (dpopKey) is not a P-256 private key in PEM form")]
pub struct DpopKeyError;

/// An `aws login` session's proof-of-possession key.
#[derive(Clone)]
pub struct DpopKey {
    key: SecretKey,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("thumbprint", &self.jwk_thumbprint())
            .finish_non_exhaustive()
    }
}

impl PartialEq for DpopKey {
    fn eq(&self, other: &Self) -> bool {
        // Comparing the public halves says the same and touches no secret
        // in a way that could leak through timing.
        self.jwk_thumbprint() == other.jwk_thumbprint()
    }
}
impl Eq for DpopKey {}

impl DpopKey {
    /// A new random key (`credd login`), as the CLI's `EC.new_generate(P_256)`.
    pub fn generate() -> Self {
        Self {
            key: SecretKey::random(&mut rand::rngs::OsRng),
        }
    }

    /// Reads the cache file's `dpopKey`: SEC1 (`EC PRIVATE KEY`, what the
    /// CLI writes) or PKCS#8 (`PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, DpopKeyError> {
        let pem = pem.trim();
        SecretKey::from_sec1_pem(pem)
            .or_else(|_| SecretKey::from_pkcs8_pem(pem))
            .map(|key| Self { key })
            .map_err(|_| DpopKeyError)
    }

    /// The key as the CLI writes it: SEC1 DER, base64 in 64-character lines,
    /// between `EC PRIVATE KEY` armour, with a trailing newline.
    pub fn to_pem(&self) -> SecretString {
        use p256::pkcs8::AssociatedOid as _;
        use sec1::der::Encode as _;
        let private_key = zeroize::Zeroizing::new(self.key.to_bytes());
        let public_key = self.key.public_key().to_encoded_point(false);
        // p256's own `to_sec1_pem` leaves out the curve's name (the optional
        // `parameters`), which OpenSSL and awscrt write: built here with
        // them so the file is what the CLI would have written.
        let der = zeroize::Zeroizing::new(
            sec1::EcPrivateKey {
                private_key: &private_key,
                parameters: Some(sec1::EcParameters::NamedCurve(p256::NistP256::OID)),
                public_key: Some(public_key.as_bytes()),
            }
            .to_der()
            // A valid P-256 key always encodes.
            .expect("a P-256 key encodes as SEC1"),
        );
        let pem =
            sec1::der::pem::encode_string("EC PRIVATE KEY", sec1::der::pem::LineEnding::LF, &der)
                .expect("SEC1 DER encodes as PEM");
        let pem = zeroize::Zeroizing::new(pem);
        SecretString::new(pem.as_str())
    }

    /// The public key as a JWK (`kty`, `x`, `y`, `crv`, botocore's order).
    fn jwk(&self) -> (String, String) {
        let point = self.key.public_key().to_encoded_point(false);
        // An uncompressed point always has both coordinates.
        let x = URL_SAFE_NO_PAD.encode(point.x().expect("uncompressed point"));
        let y = URL_SAFE_NO_PAD.encode(point.y().expect("uncompressed point"));
        (x, y)
    }

    /// The RFC 7638 thumbprint of the public key (base64url SHA-256 of the
    /// canonical JWK): names a key in logs and `Debug` without revealing it.
    pub fn jwk_thumbprint(&self) -> String {
        let (x, y) = self.jwk();
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// A DPoP proof for one request: `htm` the method, `htu` the full
    /// request URL, `iat` the Unix time in seconds; `jti` is a fresh random
    /// UUID, so no two proofs are alike.
    pub fn proof(&self, htm: &str, htu: &str, iat: i64) -> String {
        self.proof_with_jti(htm, htu, iat, &uuid::Uuid::new_v4().to_string())
    }

    fn proof_with_jti(&self, htm: &str, htu: &str, iat: i64, jti: &str) -> String {
        let (x, y) = self.jwk();
        let header = serde_json::json!({
            "typ": "dpop+jwt",
            "alg": "ES256",
            "jwk": {"kty": "EC", "x": x, "y": y, "crv": "P-256"},
        });
        let payload = serde_json::json!({"htm": htm, "htu": htu, "iat": iat, "jti": jti});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(compact(&header, &["typ", "alg", "jwk"])),
            URL_SAFE_NO_PAD.encode(compact(&payload, &["htm", "htu", "iat", "jti"]))
        );
        let signature: Signature = SigningKey::from(&self.key).sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }
}

/// `json.dumps(obj, separators=(',', ':'))` of a flat object whose keys come
/// in `order` (serde_json's map is sorted, Python keeps insertion order).
/// Nested objects are the JWK, whose order is fixed below.
fn compact(v: &serde_json::Value, order: &[&str]) -> String {
    let parts: Vec<String> = order
        .iter()
        .map(|k| {
            let value = &v[*k];
            let text = if k == &"jwk" {
                let parts: Vec<String> = ["kty", "x", "y", "crv"]
                    .iter()
                    .map(|j| format!("{}:{}", serde_json::json!(j), value[*j]))
                    .collect();
                format!("{{{}}}", parts.join(","))
            } else {
                value.to_string()
            };
            format!("{}:{text}", serde_json::json!(k))
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier as _;
    use p256::ecdsa::VerifyingKey;

    /// Generated by awscrt 0.38.0 (`EC.new_generate(ECType.P_256)`,
    /// exported SEC1 and wrapped as the CLI's `_serialize_to_pem` does),
    /// with the public coordinates it reported.
    const AWSCRT_PEM: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIDobQY1QyurtyWhlO8uxgk5K9x/yfxbJHMkeLhjoZBsBoAoGCCqGSM49
AwEHoUQDQgAE/OdtF6yP0bSlDD0VKxepFQhVtMSQsg0ViRQ3Src6Ky31vXbDhS2d
fD8FiAMAVi+UGMAak2z4DlfIkhtEkHBx1g==
-----END EC PRIVATE KEY-----
";
    const AWSCRT_X: &str = "_OdtF6yP0bSlDD0VKxepFQhVtMSQsg0ViRQ3Src6Ky0";
    const AWSCRT_Y: &str = "9b12w4UtnXw_BYgDAFYvlBjAGpNs-A5XyJIbRJBwcdY";

    fn part(jwt: &str, i: usize) -> Vec<u8> {
        URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(i).unwrap())
            .unwrap()
    }

    #[test]
    fn a_key_written_by_awscrt_loads_and_is_written_back_byte_for_byte() {
        let key = DpopKey::from_pem(AWSCRT_PEM).unwrap();
        assert_eq!(key.jwk(), (AWSCRT_X.to_string(), AWSCRT_Y.to_string()));
        assert_eq!(key.to_pem().expose(), AWSCRT_PEM);
    }

    #[test]
    fn generated_keys_round_trip_in_the_clis_shape() {
        let key = DpopKey::generate();
        let pem = key.to_pem();
        let text = pem.expose();
        assert!(
            text.starts_with("-----BEGIN EC PRIVATE KEY-----\n"),
            "{text}"
        );
        assert!(text.ends_with("\n-----END EC PRIVATE KEY-----\n"));
        let body: Vec<&str> = text.lines().skip(1).collect();
        let body = &body[..body.len() - 1];
        assert!(body[..body.len() - 1].iter().all(|l| l.len() == 64));
        assert!(body.last().unwrap().len() <= 64);
        assert_eq!(DpopKey::from_pem(text).unwrap(), key);
        assert_ne!(DpopKey::generate(), key);
    }

    #[test]
    fn pkcs8_is_accepted_and_garbage_is_refused_without_echoing_it() {
        use p256::pkcs8::EncodePrivateKey as _;
        let key = DpopKey::from_pem(AWSCRT_PEM).unwrap();
        let pkcs8 = key.key.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap();
        assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(DpopKey::from_pem(&pkcs8).unwrap(), key);
        let bad = AWSCRT_PEM.replace("MHcC", "MHcD");
        let err = DpopKey::from_pem(&bad).unwrap_err().to_string();
        assert!(!err.contains("MHc"), "{err}");
        assert!(DpopKey::from_pem("").is_err());
    }

    #[test]
    fn debug_shows_the_thumbprint_never_the_key() {
        let key = DpopKey::from_pem(AWSCRT_PEM).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains(&key.jwk_thumbprint()), "{debug}");
        assert!(
            !debug.contains("MHcC") && !debug.contains(AWSCRT_X),
            "{debug}"
        );
    }

    #[test]
    fn a_proof_is_botocores_jwt_and_verifies_with_the_public_key() {
        let key = DpopKey::from_pem(AWSCRT_PEM).unwrap();
        let htu = "https://us-east-1.signin.aws.amazon.com/v1/token";
        let jwt = key.proof_with_jti("POST", htu, 1_764_763_200, "fixed-jti");
        // Header and payload byte for byte as botocore's json.dumps with
        // separators=(',', ':') writes them.
        assert_eq!(
            String::from_utf8(part(&jwt, 0)).unwrap(),
            format!(
                r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{{"kty":"EC","x":"{AWSCRT_X}","y":"{AWSCRT_Y}","crv":"P-256"}}}}"#
            )
        );
        assert_eq!(
            String::from_utf8(part(&jwt, 1)).unwrap(),
            format!(r#"{{"htm":"POST","htu":"{htu}","iat":1764763200,"jti":"fixed-jti"}}"#)
        );
        // The signature is raw r||s over the first two parts, and verifies
        // with the key named in the header.
        let sig = part(&jwt, 2);
        assert_eq!(sig.len(), 64);
        let signature = Signature::from_slice(&sig).unwrap();
        let verifying = VerifyingKey::from(&SigningKey::from(&key.key));
        let (input, _) = jwt.rsplit_once('.').unwrap();
        verifying.verify(input.as_bytes(), &signature).unwrap();
        // Any change to the signed part breaks it.
        let tampered = input.replace("eyJ0", "eyJ1");
        assert!(verifying.verify(tampered.as_bytes(), &signature).is_err());
        // And another key's public half does not verify it.
        let other = DpopKey::generate();
        assert!(VerifyingKey::from(&SigningKey::from(&other.key))
            .verify(input.as_bytes(), &signature)
            .is_err());
    }

    #[test]
    fn every_proof_has_a_fresh_uuid4_jti() {
        let key = DpopKey::generate();
        let jti = |jwt: String| {
            let payload: serde_json::Value = serde_json::from_slice(&part(&jwt, 1)).unwrap();
            payload["jti"].as_str().unwrap().to_string()
        };
        let a = jti(key.proof("POST", "http://127.0.0.1:1/v1/token", 1));
        let b = jti(key.proof("POST", "http://127.0.0.1:1/v1/token", 1));
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }
}
