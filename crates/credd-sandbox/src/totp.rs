//! RFC 6238 time-based one-time passwords (HMAC-SHA1, 6 digits, 30 s steps)
//! and the base32 decoding of their secrets, so the fake STS can check MFA
//! codes and tests can compute them.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The length of one TOTP time step in seconds.
pub const STEP_SECONDS: u64 = 30;

/// A TOTP secret that is not valid base32.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TOTP secret is not valid base32 (invalid character {0:?})")]
pub struct InvalidSecret(pub char);

/// The 6-digit code for `secret_base32` at `unix_time` (seconds).
pub fn totp_code(secret_base32: &str, unix_time: u64) -> Result<String, InvalidSecret> {
    let key = decode_base32(secret_base32)?;
    Ok(code_at_step(&key, unix_time / STEP_SECONDS))
}

/// The code for one time step; HOTP (RFC 4226) with the step as counter.
pub(crate) fn code_at_step(key: &[u8], step: u64) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", binary % 1_000_000)
}

/// RFC 4648 base32, as authenticator apps print it: case-insensitive, with
/// optional padding and spaces.
pub(crate) fn decode_base32(text: &str) -> Result<Vec<u8>, InvalidSecret> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for c in text.chars() {
        if c == '=' || c == ' ' || c == '-' {
            continue;
        }
        let value = match c.to_ascii_uppercase() {
            u @ 'A'..='Z' => u as u32 - 'A' as u32,
            d @ '2'..='7' => d as u32 - '2' as u32 + 26,
            _ => return Err(InvalidSecret(c)),
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The SHA1 seed of RFC 6238 appendix B, "12345678901234567890", in base32.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn matches_rfc_6238_vectors_truncated_to_six_digits() {
        assert_eq!(totp_code(RFC_SECRET, 59).unwrap(), "287082");
        assert_eq!(totp_code(RFC_SECRET, 1_111_111_109).unwrap(), "081804");
        assert_eq!(totp_code(RFC_SECRET, 1_234_567_890).unwrap(), "005924");
        assert_eq!(totp_code(RFC_SECRET, 20_000_000_000).unwrap(), "353130");
    }

    #[test]
    fn base32_is_case_insensitive_and_rejects_junk() {
        assert_eq!(decode_base32("mzxw6===").unwrap(), b"foo");
        assert_eq!(decode_base32("MZXW6YTBOI").unwrap(), b"foobar");
        assert_eq!(decode_base32("MZ1W"), Err(InvalidSecret('1')));
    }
}
