//! `Authorization: Basic` parsing (`wazo_auth::http::request::basic_auth`) on arbitrary header
//! bytes, as sent and behind a `Basic ` prefix. Never panics, and:
//! - without the exact `Basic ` prefix there are no credentials;
//! - credentials have a non-empty login without `:` and a non-empty password;
//! - re-encoding the credentials (UTF-8, strict base64) decodes to the same credentials;
//! - a byte outside the base64 alphabet inserted after the prefix changes nothing (lenient
//!   decoding, as Python's `b64decode`).
#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use wazo_auth::http::request::{basic_auth, BasicAuth};

fn check(header: &[u8]) {
    let result = basic_auth(Some(header));
    let Some(encoded) = header.strip_prefix(b"Basic ") else {
        assert_eq!(result, BasicAuth::Missing, "no prefix: {header:?}");
        return;
    };
    if let BasicAuth::Credentials { login, password } = &result {
        assert!(!login.is_empty(), "empty login: {header:?}");
        assert!(!password.is_empty(), "empty password: {header:?}");
        assert!(!login.contains(':'), "login with a colon: {header:?}");
        let again = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"))
        );
        assert_eq!(
            basic_auth(Some(again.as_bytes())),
            result,
            "round trip: {header:?}"
        );
    }
    let at = if encoded.is_empty() {
        0
    } else {
        usize::from(encoded[0]) % (encoded.len() + 1)
    };
    for stray in [b'*', b' ', b'\n', 0xff] {
        let mut noisy = b"Basic ".to_vec();
        noisy.extend_from_slice(&encoded[..at]);
        noisy.push(stray);
        noisy.extend_from_slice(&encoded[at..]);
        assert_eq!(
            basic_auth(Some(&noisy)),
            result,
            "stray {stray:#x} at {at}: {header:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut prefixed = b"Basic ".to_vec();
    prefixed.extend_from_slice(data);
    check(&prefixed);
});
