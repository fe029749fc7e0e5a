//! Request bodies on arbitrary bytes: the JSON decoding shared by the resources
//! (`validate::decode`, `validate::token_object`), the token-request validation
//! (`token_request::parse`) and the body validators of users (and their password change),
//! policies, groups and tenants (`http::body_check`). Never panics, and:
//! - every refusal is a 400 answer;
//! - `token_object` succeeds exactly when `decode` gives an object;
//! - a refused token request has at least one error; an accepted one has its expiration within
//!   `1..=MAX_EXPIRATION`.
//!
//! Bad bytes, probed on every input that is a JSON object: each of its strings (values, list
//! items, strings of nested objects) in turn gets NUL, other control characters, or invalid
//! UTF-8 (the raw bytes 0xff 0xfe):
//! - every checker still answers only 400 when it refuses;
//! - invalid UTF-8 is refused by the decoding (400), so by every checker;
//! - NUL in a field that a checker reads is refused by that checker (PostgreSQL text cannot
//!   hold NUL: it never gets past the validation), except the credentials of a token request
//!   (a refresh token and its client id, a SAML session: they fail as wrong ones do).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use wazo_auth::http::body_check;
use wazo_auth::http::token_request::{self, MAX_EXPIRATION};
use wazo_auth::http::validate::{decode, token_object};

/// A body checker: a name and a validation of raw bytes.
type Checker = (&'static str, fn(&[u8]) -> Result<(), u16>);

fn status<T>(r: Result<T, wazo_auth::http::error::ApiError>) -> Result<(), u16> {
    r.map(drop).map_err(|e| e.status().as_u16())
}

/// Every checker, and the fields it reads (a NUL there must be refused). `token` reads
/// `client_id` as a credential when a refresh token is given: see [`token_reads`].
const CHECKERS: &[(Checker, &[&str])] = &[
    (
        ("user post", |b| status(body_check::user(b, true))),
        &[
            "username",
            "firstname",
            "lastname",
            "purpose",
            "authentication_method",
            "enabled",
            "uuid",
            "password",
            "email_address",
        ],
    ),
    (
        ("user put", |b| status(body_check::user(b, false))),
        &[
            "username",
            "firstname",
            "lastname",
            "purpose",
            "authentication_method",
            "enabled",
        ],
    ),
    (
        ("password change", |b| {
            status(body_check::password_change(b))
        }),
        &["old_password", "new_password"],
    ),
    (
        ("policy post", |b| status(body_check::policy(b, true))),
        &["name", "slug", "description", "acl", "shared"],
    ),
    (
        ("policy put", |b| status(body_check::policy(b, false))),
        &["name", "description", "acl"],
    ),
    (
        ("group post", |b| status(body_check::group(b, true))),
        &["name", "slug"],
    ),
    (
        ("group put", |b| status(body_check::group(b, false))),
        &["name"],
    ),
    // `default_authentication_method` is checked against the configured methods afterwards.
    (
        ("tenant post", |b| status(body_check::tenant(b, true))),
        &[
            "uuid",
            "name",
            "slug",
            "contact",
            "phone",
            "domain_names",
            "address.line_1",
            "address.line_2",
            "address.city",
            "address.state",
            "address.country",
            "address.zip_code",
        ],
    ),
    (
        ("tenant put", |b| status(body_check::tenant(b, false))),
        &[
            "uuid",
            "name",
            "contact",
            "phone",
            "domain_names",
            "address.line_1",
            "address.line_2",
            "address.city",
            "address.state",
            "address.country",
            "address.zip_code",
        ],
    ),
];

/// The token request as a checker: 400 when refused.
fn token_check(body: &[u8]) -> Result<(), u16> {
    let object = token_object(body).map_err(|e| e.status().as_u16())?;
    token_request::parse(&object).map(drop).map_err(|_| 400)
}

/// The fields of a token request that refuse NUL (the others are credentials, which fail as a
/// wrong credential does, or choices, which refuse it as any value they do not list).
fn token_reads(body: &Map<String, Value>) -> Vec<&'static str> {
    let mut fields = vec!["backend", "tenant_id", "domain_name", "access_type"];
    if !body.contains_key("refresh_token") {
        fields.push("client_id");
    }
    fields
}

/// Where a string sits in a body: its top-level field and, below it, a list index or a key.
#[derive(Clone)]
enum Below {
    Itself,
    Item(usize),
    Key(String),
}

/// Every string of `body`, as (top-level field, where below it).
fn strings(body: &Map<String, Value>) -> Vec<(String, Below)> {
    let mut out = Vec::new();
    for (k, v) in body {
        match v {
            Value::String(_) => out.push((k.clone(), Below::Itself)),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if item.is_string() {
                        out.push((k.clone(), Below::Item(i)));
                    }
                }
            }
            Value::Object(m) => {
                for (nk, nv) in m {
                    if nv.is_string() {
                        out.push((k.clone(), Below::Key(nk.clone())));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn slot<'a>(body: &'a mut Map<String, Value>, field: &str, below: &Below) -> Option<&'a mut Value> {
    let v = body.get_mut(field)?;
    match below {
        Below::Itself => Some(v),
        Below::Item(i) => v.as_array_mut()?.get_mut(*i),
        Below::Key(k) => v.as_object_mut()?.get_mut(k),
    }
}

fn check_all(body: &[u8], what: &str) {
    if let Err(s) = token_check(body) {
        assert_eq!(s, 400, "token request ({what})");
    }
    for ((name, check), _) in CHECKERS {
        if let Err(s) = check(body) {
            assert_eq!(s, 400, "{name} ({what})");
        }
    }
}

/// The bad-bytes probes of an object body.
fn probe(body: &Map<String, Value>) {
    const MARKER: &str = "\u{1}bad-bytes-marker\u{1}";
    for (field, below) in strings(body) {
        // The name a checker reads it by (`address.city` for a nested field).
        // A top-level key that merely looks dotted (`"address.state"`) is not the nested
        // field: give it a name no checker reads.
        let name = match &below {
            Below::Key(k) => format!("{field}.{k}"),
            _ if field.contains('.') => format!("top-level {field:?}"),
            _ => field.clone(),
        };
        for bad in ["\u{0}", "a\u{0}b", "\u{1}", "\u{1f}", "\u{7f}"] {
            let mut variant = body.clone();
            let Some(Value::String(s)) = slot(&mut variant, &field, &below) else {
                continue;
            };
            s.push_str(bad);
            let bytes = Value::Object(variant.clone()).to_string().into_bytes();
            check_all(&bytes, "control characters");
            if !bad.contains('\u{0}') {
                continue;
            }
            if token_reads(&variant).contains(&name.as_str()) {
                assert_eq!(
                    token_check(&bytes),
                    Err(400),
                    "token request: NUL in {name}"
                );
            }
            for ((checker, check), reads) in CHECKERS {
                if reads.contains(&name.as_str()) {
                    assert_eq!(check(&bytes), Err(400), "{checker}: NUL in {name}");
                }
            }
        }
        // The same string as raw bytes that are not UTF-8.
        let mut variant = body.clone();
        if let Some(v) = slot(&mut variant, &field, &below) {
            *v = Value::String(MARKER.to_string());
        }
        let text = Value::Object(variant).to_string();
        let quoted = serde_json::to_string(MARKER).unwrap_or_default();
        if let Some(at) = text.find(&quoted) {
            let mut bytes = text.as_bytes()[..at + 1].to_vec();
            bytes.extend_from_slice(&[0xff, 0xfe]);
            bytes.extend_from_slice(&text.as_bytes()[at + quoted.len() - 1..]);
            assert!(decode(&bytes).is_err(), "invalid UTF-8 decoded");
            assert_eq!(
                token_check(&bytes),
                Err(400),
                "token request: invalid UTF-8"
            );
            for ((name, check), _) in CHECKERS {
                assert_eq!(check(&bytes), Err(400), "{name}: invalid UTF-8");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let decoded = match decode(data) {
        Ok(decoded) => decoded,
        Err(answer) => {
            assert_eq!(answer.status().as_u16(), 400, "decode");
            None
        }
    };
    match token_object(data) {
        Ok(object) => {
            assert_eq!(Some(&object), decoded.as_ref(), "token_object");
            match token_request::parse(&object) {
                Ok(request) => {
                    if let Some(expiration) = request.expiration {
                        assert!((1..=MAX_EXPIRATION).contains(&expiration), "{expiration}");
                    }
                }
                Err(errors) => assert!(!errors.is_empty(), "refused without an error"),
            }
        }
        Err(answer) => {
            assert!(decoded.is_none(), "token_object refused an object");
            assert_eq!(answer.status().as_u16(), 400, "token_object");
        }
    }
    check_all(data, "the input");
    if let Some(body) = &decoded {
        probe(body);
    }
});
