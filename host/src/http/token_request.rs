//! Validation of the `POST /0.1/token` body (spec core §1.2), marshmallow-compatible.

use serde_json::{Map, Value};

/// Maximum token lifetime accepted in a request: 10 years.
pub const MAX_EXPIRATION: i64 = 315_360_000;

/// A validated token request body.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TokenRequest {
    pub backend: Option<String>,
    pub expiration: Option<i64>,
    pub offline: bool,
    pub client_id: Option<String>,
    pub refresh_token: Option<String>,
    pub saml_session_id: Option<String>,
    pub tenant_id: Option<String>,
    pub domain_name: Option<String>,
}

type Errors = Vec<(String, String)>;

/// How a string field holding NUL is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nul {
    /// "Not a valid string." (PostgreSQL text cannot hold NUL; nothing stored or named holds it).
    Refused,
    /// Kept: a credential (a refresh token and the client id that goes with it, a SAML session)
    /// holding NUL matches nothing, and fails as any wrong credential does; a choice
    /// (`access_type`) refuses it as any other value it does not list.
    Kept,
}

fn string_field(
    body: &Map<String, Value>,
    name: &str,
    len: Option<(usize, usize)>,
    nul: Nul,
    errors: &mut Errors,
) -> Option<String> {
    match body.get(name) {
        None => None,
        Some(Value::Null) => {
            errors.push((name.into(), "Field may not be null.".into()));
            None
        }
        Some(Value::String(s)) if nul == Nul::Refused && s.contains('\0') => {
            errors.push((name.into(), "Not a valid string.".into()));
            None
        }
        Some(Value::String(s)) => {
            if let Some((min, max)) = len {
                let n = s.chars().count();
                if n < min || n > max {
                    errors.push((
                        name.into(),
                        format!("Length must be between {min} and {max}."),
                    ));
                    return None;
                }
            }
            Some(s.clone())
        }
        Some(_) => {
            errors.push((name.into(), "Not a valid string.".into()));
            None
        }
    }
}

/// Marshmallow's non-strict Integer: JSON integers, floats (truncated) and strings holding an
/// integer; booleans and other strings are rejected.
fn integer_value(v: &Value) -> Result<i128, ()> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Ok(i128::from(u))
            } else {
                let f = n.as_f64().ok_or(())?;
                if !f.is_finite() {
                    return Err(());
                }
                let t = f.trunc();
                if t.abs() > 1e30 {
                    Ok(if t > 0.0 { i128::MAX } else { i128::MIN })
                } else {
                    Ok(t as i128)
                }
            }
        }
        Value::String(s) => {
            let t = s.trim();
            let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            // Too long to fit: saturate; the range check rejects it.
            Ok(t.parse::<i128>().unwrap_or(if t.starts_with('-') {
                i128::MIN
            } else {
                i128::MAX
            }))
        }
        _ => Err(()),
    }
}

/// Validates the body. On failure returns the marshmallow-style error list.
pub fn parse(body: &Map<String, Value>) -> Result<TokenRequest, Errors> {
    let mut errors = Errors::new();
    // With a refresh token, the client id is half of the credential.
    let client_id_nul = if body.contains_key("refresh_token") {
        Nul::Kept
    } else {
        Nul::Refused
    };
    let mut req = TokenRequest {
        backend: string_field(body, "backend", None, Nul::Refused, &mut errors),
        ..Default::default()
    };
    match body.get("expiration") {
        None => {}
        Some(Value::Null) => errors.push(("expiration".into(), "Field may not be null.".into())),
        Some(v) => match integer_value(v) {
            Err(()) => errors.push(("expiration".into(), "Not a valid integer.".into())),
            Ok(n) if n < 1 || n > i128::from(MAX_EXPIRATION) => errors.push((
                "expiration".into(),
                format!(
                    "Must be greater than or equal to 1 and less than or equal to {MAX_EXPIRATION}."
                ),
            )),
            Ok(n) => req.expiration = Some(n as i64),
        },
    }
    match string_field(body, "access_type", None, Nul::Kept, &mut errors).as_deref() {
        None => {}
        Some("online") => {}
        Some("offline") => req.offline = true,
        Some(_) => errors.push((
            "access_type".into(),
            "Must be one of: online, offline.".into(),
        )),
    }
    req.client_id = string_field(
        body,
        "client_id",
        Some((1, 1024)),
        client_id_nul,
        &mut errors,
    );
    req.refresh_token = string_field(body, "refresh_token", None, Nul::Kept, &mut errors);
    req.saml_session_id = string_field(
        body,
        "saml_session_id",
        Some((1, 1024)),
        Nul::Kept,
        &mut errors,
    );
    req.tenant_id = string_field(body, "tenant_id", None, Nul::Refused, &mut errors);
    req.domain_name = string_field(body, "domain_name", None, Nul::Refused, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    // Cross-field rules (run only when every field is valid, as marshmallow does).
    let schema = |m: &str| vec![("_schema".to_string(), m.to_string())];
    if req.offline && req.refresh_token.is_some() {
        return Err(schema(
            "cannot use the \"offline\" access_type when using a refresh token",
        ));
    }
    if req.offline && req.client_id.is_none() {
        return Err(schema(
            "the \"client_id\" field is required when using the \"offline\" access_type",
        ));
    }
    if req.refresh_token.is_some() && req.client_id.is_none() {
        return Err(schema(
            "the \"client_id\" field is required when using a refresh token",
        ));
    }
    if req.tenant_id.is_some() && req.domain_name.is_some() {
        return Err(schema(
            "\"tenant_id\" and \"domain_name\" cannot be used together",
        ));
    }
    if req.saml_session_id.is_some() && req.refresh_token.is_some() {
        return Err(schema(
            "\"saml_session_id\" and \"refresh_token\" cannot be used together",
        ));
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Result<TokenRequest, Errors> {
        parse(v.as_object().unwrap())
    }

    #[test]
    fn expiration_rules() {
        assert_eq!(p(json!({"expiration": 10})).unwrap().expiration, Some(10));
        assert_eq!(p(json!({"expiration": "10"})).unwrap().expiration, Some(10));
        assert_eq!(p(json!({"expiration": 1.5})).unwrap().expiration, Some(1));
        assert!(p(json!({"expiration": "1.5"})).is_err());
        assert!(p(json!({"expiration": true})).is_err());
        assert!(p(json!({"expiration": "string"})).is_err());
        assert!(p(json!({"expiration": -1})).is_err());
        assert!(p(json!({"expiration": 0})).is_err());
        assert!(p(json!({"expiration": 0.5})).is_err());
        assert!(p(json!({"expiration": null})).is_err());
        assert!(p(json!({"expiration": 315360000})).is_ok());
        assert!(p(json!({"expiration": 315360001})).is_err());
        let huge: Value =
            serde_json::from_str(r#"{"expiration": 9999999999999999999999}"#).unwrap();
        assert!(p(huge).is_err());
        assert!(p(json!({"expiration": "99999999999999999999999999999999999999999"})).is_err());
        assert!(p(json!({"expiration": 1e300})).is_err());
    }

    #[test]
    fn nul_is_refused_except_in_credentials() {
        for field in ["backend", "client_id", "tenant_id", "domain_name"] {
            let errors = p(json!({ field: "a\u{0}" })).unwrap_err();
            assert_eq!(
                errors,
                vec![(field.to_string(), "Not a valid string.".to_string())]
            );
        }
        let errors = p(json!({"access_type": "offline", "client_id": "\u{0}"})).unwrap_err();
        assert_eq!(errors[0].0, "client_id");
        // The choices refuse it (naming the field).
        let errors = p(json!({"access_type": "\u{0}"})).unwrap_err();
        assert_eq!(errors[0].0, "access_type");
        // A refresh token (and its client id) or a SAML session holding NUL is a credential
        // that matches nothing.
        let r = p(json!({"refresh_token": "a\u{0}", "client_id": "c\u{0}"})).unwrap();
        assert_eq!(r.client_id.as_deref(), Some("c\u{0}"));
        assert!(p(json!({"saml_session_id": "s\u{0}"})).is_ok());
    }

    #[test]
    fn cross_field_rules() {
        assert!(p(json!({"access_type": "offline"})).is_err());
        assert!(
            p(json!({"access_type": "offline", "client_id": "x"}))
                .unwrap()
                .offline
        );
        assert!(p(json!({"refresh_token": "r"})).is_err());
        assert!(
            p(json!({"refresh_token": "r", "client_id": "c", "access_type": "offline"})).is_err()
        );
        assert!(p(json!({"tenant_id": "t", "domain_name": "d"})).is_err());
        assert!(
            p(json!({"saml_session_id": "s", "refresh_token": "r", "client_id": "c"})).is_err()
        );
        assert!(p(json!({"access_type": "sometimes"})).is_err());
        assert!(p(json!({"client_id": ""})).is_err());
        assert!(p(json!({"client_id": "x".repeat(1025)})).is_err());
        assert!(p(json!({"backend": 3})).is_err());
        // unknown fields are ignored
        assert_eq!(
            p(json!({"whatever": [1, 2]})).unwrap(),
            TokenRequest::default()
        );
    }
}
