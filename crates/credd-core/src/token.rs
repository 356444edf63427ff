//! Client tokens for the container endpoint.
//!
//! A token is `credd_<id>_<secret>`: a public 16-hex-digit id used to find
//! the record, and 256 random bits (64 hex digits). Only the SHA-256 of the
//! secret is stored; presented secrets are hashed and compared in constant
//! time (`subtle`), so neither length nor prefix leaks through timing.

use crate::credentials::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

pub const PREFIX: &str = "credd_";

/// A stored token: never the secret, only its digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    /// Hex SHA-256 of the secret part.
    pub sha256: String,
    pub profiles: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires: Option<OffsetDateTime>,
    #[serde(default)]
    pub label: String,
    /// Set for a container's token (`credd docker run`/`args`): revoked when
    /// the container is removed. Optional, so older versions read the file
    /// (they ignore the field) and this one reads theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerBinding>,
    /// `sha256` decoded, the first time it is needed.
    #[serde(skip)]
    pub decoded: DigestCache,
}

/// Ties a token to a docker container: the container carries the label
/// `credd.token=<id>`, and the daemon watching `engine` revokes the token
/// once no container with that label is left.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DockerBinding {
    /// The engine the container runs on, e.g. `unix:///var/run/docker.sock`.
    pub engine: String,
    /// The container's id, once the daemon has seen it created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// The binary form of a record's digest, decoded once instead of on every
/// request. A cache, not part of the value: it never makes two records
/// unequal.
#[derive(Debug, Clone, Default)]
pub struct DigestCache(std::sync::OnceLock<Option<[u8; 32]>>);

impl PartialEq for DigestCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for DigestCache {}

/// Makes a token from 40 random bytes (8 for the id, 32 for the secret).
pub fn mint(
    random: [u8; 40],
    profiles: Vec<String>,
    created: OffsetDateTime,
    expires: Option<OffsetDateTime>,
    label: String,
) -> (SecretString, TokenRecord) {
    let id = hex::encode(&random[..8]);
    let secret = hex::encode(&random[8..]);
    let digest = hex::encode(Sha256::digest(secret.as_bytes()));
    let token = SecretString::new(format!("{PREFIX}{id}_{secret}"));
    (
        token,
        TokenRecord {
            id,
            sha256: digest,
            profiles,
            created,
            expires,
            label,
            docker: None,
            decoded: DigestCache::default(),
        },
    )
}

/// A presented token split into its id and the digest of its secret.
#[derive(Debug)]
pub struct Presented<'a> {
    pub id: &'a str,
    digest: [u8; 32],
}

/// Splits a presented `Authorization` value; `None` if it is not shaped like
/// a credd token (the caller answers 401 either way).
pub fn parse(presented: &str) -> Option<Presented<'_>> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(Presented {
        id,
        digest: Sha256::digest(secret.as_bytes()).into(),
    })
}

impl TokenRecord {
    /// Constant-time check of a presented secret's digest against this record.
    pub fn matches(&self, p: &Presented<'_>) -> bool {
        let stored = self.decoded.0.get_or_init(|| {
            let mut d = [0u8; 32];
            hex::decode_to_slice(&self.sha256, &mut d).ok().map(|()| d)
        });
        let Some(stored) = stored else { return false };
        // Four 64-bit constant-time comparisons rather than 32 byte-wise
        // ones: the same guarantee for an eighth of the work.
        let word = |d: &[u8; 32], i: usize| {
            u64::from_ne_bytes(d[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
        };
        let same = (0..4).fold(subtle::Choice::from(1), |acc, i| {
            acc & word(stored, i).ct_eq(&word(&p.digest, i))
        });
        p.id == self.id && bool::from(same)
    }
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
    pub fn allows(&self, profile: &str) -> bool {
        self.profiles.iter().any(|p| p == profile || p == "*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn minted() -> (SecretString, TokenRecord) {
        let mut r = [0u8; 40];
        for (i, b) in r.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7);
        }
        mint(
            r,
            vec!["dev".into()],
            datetime!(2026-11-23 09:00 UTC),
            Some(datetime!(2026-11-23 10:00 UTC)),
            "test".into(),
        )
    }

    #[test]
    fn round_trip_and_refusals() {
        let (tok, rec) = minted();
        assert_eq!(tok.expose().len(), PREFIX.len() + 16 + 1 + 64);
        assert!(rec.matches(&parse(tok.expose()).unwrap()));
        assert!(
            !rec.sha256.contains(&tok.expose()[23..]),
            "only the digest is stored"
        );
        // Wrong secret, prefix of it, empty secret, wrong id, junk: all refused.
        let t = tok.expose();
        let wrong_last = format!(
            "{}{}",
            &t[..t.len() - 1],
            if t.ends_with('0') { '1' } else { '0' }
        );
        assert!(!rec.matches(&parse(&wrong_last).unwrap()));
        assert!(!rec.matches(&parse(&t[..t.len() - 10]).unwrap()));
        assert!(!rec.matches(&parse(&t[..23]).unwrap()));
        assert!(parse("").is_none());
        assert!(parse("Bearer x").is_none());
        assert!(parse("credd_zz_abc").is_none());
        let other_id = format!("credd_{}{}", "0".repeat(16), &t[22..]);
        assert!(!rec.matches(&parse(&other_id).unwrap()));
    }

    #[test]
    fn every_byte_of_the_digest_counts() {
        let (tok, rec) = minted();
        let good = parse(tok.expose()).unwrap();
        assert!(rec.matches(&good));
        for i in 0..32 {
            let mut digest = good.digest;
            digest[i] ^= 0x01;
            let p = Presented {
                id: good.id,
                digest,
            };
            assert!(!rec.matches(&p), "byte {i} ignored");
        }
        // A stored digest that is not hex never matches.
        let mut broken = rec.clone();
        broken.sha256 = "zz".repeat(32);
        broken.decoded = DigestCache::default();
        assert!(!broken.matches(&good));
        // The cache never makes two records unequal.
        let mut fresh = broken.clone();
        fresh.decoded = DigestCache::default();
        assert_eq!(broken, fresh);
    }

    #[test]
    fn records_without_a_docker_binding_read_and_write_as_before() {
        let (_, rec) = minted();
        let text = serde_json::to_string(&rec).unwrap();
        assert!(!text.contains("docker"), "{text}");
        let back: TokenRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, rec);
        let mut bound = rec.clone();
        bound.docker = Some(DockerBinding {
            engine: "unix:///var/run/docker.sock".into(),
            container: None,
        });
        let text = serde_json::to_string(&bound).unwrap();
        // What an older version (no such field) does with it: ignores it.
        #[derive(Deserialize)]
        struct Older {
            id: String,
        }
        assert_eq!(serde_json::from_str::<Older>(&text).unwrap().id, rec.id);
        assert_eq!(serde_json::from_str::<TokenRecord>(&text).unwrap(), bound);
    }

    #[test]
    fn scope_and_expiry() {
        let (_, rec) = minted();
        assert!(rec.allows("dev") && !rec.allows("prod"));
        assert!(!rec.expired(datetime!(2026-11-23 09:59 UTC)));
        assert!(rec.expired(datetime!(2026-11-23 10:00 UTC)));
    }
}
