//! Request parsing shared by the resources: JSON bodies as the original reads them, HTTP Basic
//! credentials, the client address.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use serde_json::{Map, Value};

use actix_web::web;
use futures_util::StreamExt;

use super::errors::{marshmallow_repr, plain_error, token_error};

/// Reads a request body of at most `limit` bytes; a larger one is a 413 with a JSON body.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, HttpResponse> {
    let too_large = || {
        plain_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body too large (limit {limit} bytes)"),
        )
    };
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            plain_error(
                StatusCode::BAD_REQUEST,
                format!("Invalid request body: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Decodes a request body as the original does ("force JSON", Content-Type ignored): an empty or
/// non-JSON body is a 400 `{"message": "Failed to decode JSON object: ..."}`; an object, or a
/// Python-falsy value (`null`, `{}`, `[]`, `0`, `false`, `""`, read as `{}`), is `Some`; any other
/// value is `None`, for the caller to answer in its resource's error shape.
pub fn decode_json_body(body: &[u8]) -> Result<Option<Map<String, Value>>, HttpResponse> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        plain_error(
            StatusCode::BAD_REQUEST,
            format!("Failed to decode JSON object: {e}"),
        )
    })?;
    Ok(match value {
        Value::Object(m) => Some(m),
        Value::Null | Value::Bool(false) => Some(Map::new()),
        Value::Array(a) if a.is_empty() => Some(Map::new()),
        Value::String(s) if s.is_empty() => Some(Map::new()),
        Value::Number(n) if n.as_f64() == Some(0.0) => Some(Map::new()),
        _ => None,
    })
}

/// The 400 `invalid-data` answer to a body that is not an object (resources of the newer API).
pub fn invalid_input_type(resource: &str) -> HttpResponse {
    super::errors::api_error(
        StatusCode::BAD_REQUEST,
        "Invalid input type.",
        "invalid-data",
        serde_json::json!({"_schema": {"message": "Invalid input type."}}),
        Some(resource),
    )
}

/// [`decode_json_body`] for the token resources: a non-object is a 400 in shape A.
pub fn json_object_body(body: &[u8]) -> Result<Map<String, Value>, HttpResponse> {
    decode_json_body(body)?.ok_or_else(|| {
        token_error(
            StatusCode::BAD_REQUEST,
            marshmallow_repr(&[("_schema".into(), "Invalid input type.".into())]),
        )
    })
}

/// Result of reading `Authorization: Basic ...`.
#[derive(Debug, PartialEq, Eq)]
pub enum BasicAuth {
    /// No usable credentials (header absent, not `Basic `, no `:`, or an empty half).
    Missing,
    /// The header is present but its base64 is invalid (the original answers 500: we 401).
    Invalid,
    Credentials {
        login: String,
        password: String,
    },
}

/// Decodes base64 as Python's non-validating `b64decode`: characters outside the alphabet are
/// discarded, data ends at the first `=`, padding must be sufficient, extra padding is ignored.
fn lenient_base64(input: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    );
    let kept: Vec<u8> = input
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        .collect();
    let data_len = kept.iter().position(|&b| b == b'=').unwrap_or(kept.len());
    let (data, padding) = kept.split_at(data_len);
    let needed = match data.len() % 4 {
        0 => 0,
        1 => return None,
        r => 4 - r,
    };
    if padding.len() < needed {
        return None;
    }
    ENGINE.decode(data).ok()
}

/// Parses Basic credentials as the original: the exact prefix `Basic `, base64, UTF-8 else
/// Latin-1, split on the first `:`, both halves non-empty.
pub fn basic_auth(header: Option<&[u8]>) -> BasicAuth {
    let Some(raw) = header else {
        return BasicAuth::Missing;
    };
    let Some(encoded) = raw.strip_prefix(b"Basic ") else {
        return BasicAuth::Missing;
    };
    let Some(decoded) = lenient_base64(encoded) else {
        return BasicAuth::Invalid;
    };
    let text = match String::from_utf8(decoded) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    };
    let Some((login, password)) = text.split_once(':') else {
        return BasicAuth::Missing;
    };
    if login.is_empty() || password.is_empty() {
        return BasicAuth::Missing;
    }
    BasicAuth::Credentials {
        login: login.to_string(),
        password: password.to_string(),
    }
}

/// The client address: with `num_proxies` = N > 0 and an `X-Forwarded-For` header, the N-th
/// address from the right (as Werkzeug's ProxyFix); else the peer address.
pub fn client_addr(req: &HttpRequest, num_proxies: u32) -> String {
    if num_proxies > 0 {
        if let Some(xff) = req
            .headers()
            .get("X-Forwarded-For")
            .and_then(|v| v.to_str().ok())
        {
            let hops: Vec<&str> = xff
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if hops.len() >= num_proxies as usize {
                return hops[hops.len() - num_proxies as usize].to_string();
            }
        }
    }
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}

/// First value of a query parameter (percent-decoded; invalid UTF-8 replaced).
pub fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A path segment that must be a canonical hyphenated UUID (any case), as Flask's `uuid`
/// converter accepts. Returns it lower-cased.
pub fn path_uuid(segment: &str) -> Option<uuid::Uuid> {
    if segment.len() != 36 {
        return None;
    }
    let bytes = segment.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        let dash = matches!(i, 8 | 13 | 18 | 23);
        if dash != (*b == b'-') || (!dash && !b.is_ascii_hexdigit()) {
            return None;
        }
    }
    uuid::Uuid::parse_str(segment).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> Vec<u8> {
        let mut v = b"Basic ".to_vec();
        v.extend(
            base64::engine::general_purpose::STANDARD
                .encode(s)
                .into_bytes(),
        );
        v
    }

    #[test]
    fn basic_auth_rules() {
        assert_eq!(basic_auth(None), BasicAuth::Missing);
        assert_eq!(
            basic_auth(Some(&b64(b"alice:pa:ss"))),
            BasicAuth::Credentials {
                login: "alice".into(),
                password: "pa:ss".into()
            }
        );
        // prefix is case-sensitive
        let mut lower = b64(b"a:b");
        lower[0] = b'b';
        assert_eq!(basic_auth(Some(&lower)), BasicAuth::Missing);
        assert_eq!(basic_auth(Some(&b64(b"nocolon"))), BasicAuth::Missing);
        assert_eq!(basic_auth(Some(&b64(b":pw"))), BasicAuth::Missing);
        assert_eq!(basic_auth(Some(&b64(b"user:"))), BasicAuth::Missing);
        assert_eq!(basic_auth(Some(b"Basic !!!notbase64")), BasicAuth::Invalid);
        assert_eq!(basic_auth(Some(b"Basic ====")), BasicAuth::Missing);
        // Lenient like Python's b64decode: extra padding and stray characters are ignored...
        assert_eq!(
            basic_auth(Some(b"Basic YWxpY2U6cHc=====")),
            BasicAuth::Credentials {
                login: "alice".into(),
                password: "pw".into()
            }
        );
        assert_eq!(
            basic_auth(Some(b"Basic YWxp*Y2U6!cHc=")),
            BasicAuth::Credentials {
                login: "alice".into(),
                password: "pw".into()
            }
        );
        // ...but missing padding is not.
        assert_eq!(basic_auth(Some(b"Basic YWxpY2U6cHc")), BasicAuth::Invalid);
        // UTF-8 first
        assert_eq!(
            basic_auth(Some(&b64("éric:pépé€".as_bytes()))),
            BasicAuth::Credentials {
                login: "éric".into(),
                password: "pépé€".into()
            }
        );
        // then Latin-1
        assert_eq!(
            basic_auth(Some(&b64(b"\xe9ric:p\xe9p\xe9"))),
            BasicAuth::Credentials {
                login: "éric".into(),
                password: "pépé".into()
            }
        );
    }

    #[test]
    fn uuid_segments() {
        assert!(path_uuid("0123abcd-1111-2222-3333-444455556666").is_some());
        assert!(path_uuid("0123ABCD-1111-2222-3333-444455556666").is_some());
        assert!(path_uuid("0123abcd111122223333444455556666").is_none());
        assert!(path_uuid("{0123abcd-1111-2222-3333-444455556666}").is_none());
        assert!(path_uuid("not-a-uuid").is_none());
        assert!(path_uuid("0123abcd-1111-2222-3333-44445555666g").is_none());
    }

    #[test]
    fn bodies() {
        assert!(json_object_body(b"").is_err());
        assert!(json_object_body(b"{not json").is_err());
        assert!(json_object_body(b"null").unwrap().is_empty());
        assert!(json_object_body(b"[]").unwrap().is_empty());
        assert!(json_object_body(b"[1]").is_err());
        assert!(json_object_body(b"42").is_err());
        assert_eq!(json_object_body(b"{\"a\":1}").unwrap().len(), 1);
    }
}

#[cfg(test)]
mod robustness {
    //! Random-input robustness (a bounded, deterministic stand-in for fuzzing): the parsers of
    //! untrusted input never panic, whatever the bytes.
    use super::*;

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, max: usize, alphabet: &[u8]) -> Vec<u8> {
            let len = (self.next() as usize) % max;
            (0..len)
                .map(|_| {
                    let r = self.next() as usize;
                    if alphabet.is_empty() || r.is_multiple_of(4) {
                        (r >> 8) as u8
                    } else {
                        alphabet[(r >> 8) % alphabet.len()]
                    }
                })
                .collect()
        }
    }

    #[test]
    fn parsers_never_panic_on_random_input() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let json_alphabet = br#"{}[]":,0123456789.eE+-truefalsnl \"\\u0041expiration backend access_type offline client_id refresh_token"#;
        let b64_alphabet =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=: Basic";
        for _ in 0..20_000 {
            let body = rng.bytes(200, json_alphabet);
            if let Ok(obj) = json_object_body(&body) {
                let _ = super::super::token_request::parse(&obj);
            }
            let header = rng.bytes(120, b64_alphabet);
            let _ = basic_auth(Some(&header));
            let mut with_prefix = b"Basic ".to_vec();
            with_prefix.extend(rng.bytes(120, b64_alphabet));
            let _ = basic_auth(Some(&with_prefix));
            let segment =
                String::from_utf8_lossy(&rng.bytes(48, b"0123456789abcdef-ABCDEF{}")).into_owned();
            let _ = path_uuid(&segment);
        }
    }
}
