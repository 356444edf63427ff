//! A profile name as one URL path segment (`/v1/credentials/{profile}`):
//! the encoding `credd env` and `credd exec` put in the URLs they hand to
//! SDKs, and the decoding the container endpoint applies. Both on the
//! `percent-encoding` crate; this module only fixes the rules: everything
//! but RFC 3986's unreserved characters is escaped (so `/` becomes `%2F`
//! and stays inside the segment), and a malformed escape or a result that
//! is not UTF-8 is refused rather than passed on literally.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::borrow::Cow;

/// What stays as it is: RFC 3986's unreserved set (`A-Z a-z 0-9 - . _ ~`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Encodes a profile name for a URL path segment (upper-case hex).
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Decodes `%XX` escapes in a path segment; `None` if an escape is
/// malformed or the result is not UTF-8. A segment without escapes is
/// borrowed, not copied. `+` is a literal plus: this is a path, not a form.
pub fn decode(s: &str) -> Option<Cow<'_, str>> {
    // The crate passes a malformed escape (`%zz`, a trailing `%4`) through
    // as literal text; a profile name that arrives like that was not made
    // by credd's encoder, so it is refused instead.
    let well_formed = s
        .split('%')
        .skip(1)
        .all(|rest| rest.len() >= 2 && rest.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit));
    if !well_formed {
        return None;
    }
    percent_decode_str(s).decode_utf8().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(encode("dev admin/x"), "dev%20admin%2Fx");
        assert_eq!(decode("dev%20admin%2Fx").unwrap(), "dev admin/x");
        for name in ["dev", "a b/c?d#e%f", "plus+sign", "ünï©ødé", "-._~", ""] {
            assert_eq!(decode(&encode(name)).unwrap(), name, "{name}");
        }
    }

    #[test]
    fn encodes_everything_but_the_unreserved_set_in_upper_case() {
        assert_eq!(encode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(encode("+"), "%2B");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(encode("a:b@c!"), "a%3Ab%40c%21");
    }

    #[test]
    fn decoding_refuses_malformed_escapes_and_non_utf8() {
        assert!(decode("%zz").is_none());
        assert!(decode("%4").is_none());
        assert!(decode("dev%").is_none());
        assert!(decode("%%41").is_none());
        assert!(decode("%g1").is_none());
        // A lone continuation byte and an overlong `/`.
        assert!(decode("%80").is_none());
        assert!(decode("%C0%AF").is_none());
    }

    #[test]
    fn decoding_keeps_plus_and_lower_case_hex_works() {
        assert_eq!(decode("a+b").unwrap(), "a+b");
        assert_eq!(decode("a%2fb").unwrap(), "a/b");
        assert_eq!(decode("%2F").unwrap(), "/");
        assert_eq!(decode("%41%42").unwrap(), "AB");
    }

    #[test]
    fn a_segment_without_escapes_is_borrowed() {
        assert!(matches!(
            decode("dev-admin"),
            Some(Cow::Borrowed("dev-admin"))
        ));
        assert!(matches!(decode("a%20b"), Some(Cow::Owned(_))));
    }
}
