//! Body validation as the original's marshmallow schemas answer it (spec management §1.4): one
//! set of field readers for every resource. Each reader returns the field's value or the
//! [`Invalid`] of the first failing rule; `Invalid::into_error(resource)` is the 400
//! `invalid-data` answer.
//!
//! PostgreSQL text cannot hold NUL: a string holding one is refused here, as a type error,
//! instead of failing later in the database.

use serde_json::{json, Map, Value};

use super::error::ApiError;

/// The key of marshmallow's schema-level errors.
const SCHEMA: &str = "_schema";

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// The field's path (`"address.state"` for a nested field).
    pub field: String,
    pub message: String,
    pub constraint_id: &'static str,
    pub constraint: Value,
}

impl Invalid {
    pub fn new(
        field: impl Into<String>,
        message: impl Into<String>,
        constraint_id: &'static str,
        constraint: Value,
    ) -> Invalid {
        Invalid {
            field: field.into(),
            message: message.into(),
            constraint_id,
            constraint,
        }
    }

    pub fn required(field: impl Into<String>) -> Invalid {
        Invalid::new(
            field,
            "Missing data for required field.",
            "required",
            json!("required"),
        )
    }

    pub fn not_null(field: impl Into<String>) -> Invalid {
        Invalid::new(
            field,
            "Field may not be null.",
            "not_null",
            json!("not_null"),
        )
    }

    pub fn not_string(field: impl Into<String>) -> Invalid {
        Invalid::new(field, "Not a valid string.", "type", json!("string"))
    }

    pub fn not_list(field: impl Into<String>) -> Invalid {
        Invalid::new(field, "Not a valid list.", "type", json!("list"))
    }

    pub fn not_boolean(field: impl Into<String>) -> Invalid {
        Invalid::new(field, "Not a valid boolean.", "type", json!("boolean"))
    }

    pub fn not_uuid(field: impl Into<String>) -> Invalid {
        Invalid::new(field, "Not a valid UUID.", "type", json!("uuid"))
    }

    /// marshmallow's `Length(min, max)` message.
    pub fn length(field: impl Into<String>, min: usize, max: Option<usize>) -> Invalid {
        let message = match max {
            Some(m) => format!("Length must be between {min} and {m}."),
            None => format!("Shorter than minimum length {min}."),
        };
        Invalid::new(field, message, "length", json!({"min": min, "max": max}))
    }

    /// marshmallow's `Regexp` message.
    pub fn regex(field: impl Into<String>, pattern: &str) -> Invalid {
        Invalid::new(
            field,
            "String does not match expected pattern.",
            "regex",
            json!(pattern),
        )
    }

    /// marshmallow's `Equal` message.
    pub fn equal(field: impl Into<String>, must_be: &str) -> Invalid {
        Invalid::new(
            field,
            format!("Must be equal to {must_be}."),
            "equal",
            json!({ "must_be": must_be }),
        )
    }

    /// marshmallow's `OneOf` message.
    pub fn one_of(field: impl Into<String>, choices: &[&str]) -> Invalid {
        Invalid::new(
            field,
            format!("Must be one of: {}.", choices.join(", ")),
            "enum",
            json!({ "choices": choices }),
        )
    }

    /// The token-service shape (shape A) of the older resources (policies): 400
    /// `Invalid value supplied for field: <field>`, the field alone, without the rule.
    pub fn into_field_error(self) -> ApiError {
        field_error(&self.field)
    }

    /// A string holding NUL, with its own message (the tenants' one; see [`Nul::Refused`]).
    pub fn nul(field: impl Into<String>) -> Invalid {
        Invalid::new(
            field,
            "String must not contain NUL characters.",
            "type",
            json!("string"),
        )
    }

    /// A nested object field holding a value that is not an object: the schema-level error of
    /// the nested schema, at `{field}._schema` (its detail carries the message only).
    pub fn input_type(field: &str) -> Invalid {
        Invalid::new(
            format!("{field}.{SCHEMA}"),
            "Invalid input type.",
            "type",
            json!("object"),
        )
    }

    /// The same error for a field of the nested object `parent` (`state` → `address.state`).
    pub fn under(mut self, parent: &str) -> Invalid {
        self.field = format!("{parent}.{}", self.field);
        self
    }

    /// Whether this is a schema-level error (`_schema`, top-level or nested).
    fn is_schema_level(&self) -> bool {
        self.field.rsplit('.').next() == Some(SCHEMA)
    }

    /// The 400 `invalid-data` answer.
    pub fn into_error(self, resource: &'static str) -> ApiError {
        if self.is_schema_level() {
            return ApiError::invalid_schema(resource, &self.field, &self.message);
        }
        ApiError::invalid_data(
            resource,
            &self.field,
            &self.message,
            self.constraint_id,
            self.constraint,
        )
    }
}

/// 400 `Invalid value supplied for field: <field>` (shape A; see [`Invalid::into_field_error`]).
pub fn field_error(field: &str) -> ApiError {
    ApiError::token(
        actix_web::http::StatusCode::BAD_REQUEST,
        format!("Invalid value supplied for field: {field}"),
    )
}

/// Decodes a request body as the original does ("force JSON", Content-Type ignored): an empty
/// or non-JSON body is a 400 `{"message": "Failed to decode JSON object: ..."}`; an object, or a
/// Python-falsy value (`null`, `{}`, `[]`, `0`, `false`, `""`, read as `{}`), is `Some`; any
/// other value is `None`, for the caller to answer in its resource's error shape.
pub fn decode(body: &[u8]) -> Result<Option<Map<String, Value>>, ApiError> {
    Ok(match json(body)? {
        Value::Object(m) => Some(m),
        v if is_falsy(&v) => Some(Map::new()),
        _ => None,
    })
}

/// Parses a request body as JSON, whatever its value ("force JSON", Content-Type ignored): an
/// empty or non-JSON body is a 400 `{"message": "Failed to decode JSON object: ..."}`.
pub fn json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::plain(
            actix_web::http::StatusCode::BAD_REQUEST,
            format!("Failed to decode JSON object: {e}"),
        )
    })
}

/// [`decode`] for the resources of the newer API: a non-object is a 400 `invalid-data` with
/// `details = {"_schema": {"message": "Invalid input type."}}`.
pub fn object(body: &[u8], resource: &'static str) -> Result<Map<String, Value>, ApiError> {
    decode(body)?.ok_or_else(|| ApiError::invalid_input_type(resource))
}

/// [`decode`] for the resources answering in shape A (tokens, external auth): a non-object is a
/// 400 `{"reason": ["{'_schema': ['Invalid input type.']}"], ...}`.
pub fn token_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    decode(body)?.ok_or_else(|| {
        ApiError::token(
            actix_web::http::StatusCode::BAD_REQUEST,
            super::error::marshmallow_repr(&[("_schema".into(), "Invalid input type.".into())]),
        )
    })
}

/// Python's truth value of a JSON value is false.
pub fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// A field as present in the body.
#[derive(Debug, Clone, Copy)]
pub enum Raw<'a> {
    Missing,
    Null,
    Value(&'a Value),
}

pub fn raw<'a>(body: &'a Map<String, Value>, name: &str) -> Raw<'a> {
    match body.get(name) {
        None => Raw::Missing,
        Some(Value::Null) => Raw::Null,
        Some(v) => Raw::Value(v),
    }
}

/// A string value; one holding NUL is not a valid string.
pub fn as_string(field: &str, v: &Value) -> Result<String, Invalid> {
    match v {
        Value::String(s) if !s.contains('\0') => Ok(s.clone()),
        _ => Err(Invalid::not_string(field)),
    }
}

/// marshmallow's `Length(min, max)` on a string (length in code points).
pub fn check_length(field: &str, s: &str, min: usize, max: Option<usize>) -> Result<(), Invalid> {
    let n = s.chars().count();
    if n >= min && max.is_none_or(|m| n <= m) {
        Ok(())
    } else {
        Err(Invalid::length(field, min, max))
    }
}

/// How a string field may be absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Missing: `required`; null: `not_null`.
    Required,
    /// Missing: `None`; null: `not_null`.
    Optional,
    /// Missing or null: `None`.
    Nullable,
}

/// The value of a field, or `None` when absent as `presence` allows.
fn present<'a>(
    body: &'a Map<String, Value>,
    field: &str,
    presence: Presence,
) -> Result<Option<&'a Value>, Invalid> {
    match (raw(body, field), presence) {
        (Raw::Missing, Presence::Required) => Err(Invalid::required(field)),
        (Raw::Missing, _) | (Raw::Null, Presence::Nullable) => Ok(None),
        (Raw::Null, _) => Err(Invalid::not_null(field)),
        (Raw::Value(v), _) => Ok(Some(v)),
    }
}

/// How a string field holding NUL (which PostgreSQL text cannot hold) is answered, once its
/// length is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nul {
    /// "Not a valid string." (`type`/`string`), as most resources answer.
    NotAString,
    /// "String must not contain NUL characters." (`type`/`string`), as tenants answer.
    Refused,
    /// Accepted here: a later rule of the field refuses it (a pattern or a list of choices that
    /// NUL never matches), with that rule's answer.
    Kept,
    /// "Not a valid string." (`type`/`string`) before the length is checked, as users answer.
    NotAStringFirst,
}

/// A string field of `min..=max` characters (`max` `None`: no upper bound); one holding NUL is
/// not a valid string.
pub fn string(
    body: &Map<String, Value>,
    field: &str,
    presence: Presence,
    min: usize,
    max: Option<usize>,
) -> Result<Option<String>, Invalid> {
    string_with(body, field, presence, min, max, Nul::NotAString)
}

/// [`string`], with the answer to NUL of the resource.
pub fn string_with(
    body: &Map<String, Value>,
    field: &str,
    presence: Presence,
    min: usize,
    max: Option<usize>,
    nul: Nul,
) -> Result<Option<String>, Invalid> {
    let Some(v) = present(body, field, presence)? else {
        return Ok(None);
    };
    let Value::String(s) = v else {
        return Err(Invalid::not_string(field));
    };
    if nul == Nul::NotAStringFirst && s.contains('\0') {
        return Err(Invalid::not_string(field));
    }
    check_length(field, s, min, max)?;
    if s.contains('\0') {
        match nul {
            Nul::NotAString => return Err(Invalid::not_string(field)),
            Nul::Refused => return Err(Invalid::nul(field)),
            Nul::Kept | Nul::NotAStringFirst => {}
        }
    }
    Ok(Some(s.clone()))
}

/// A list of strings (marshmallow's `List(String)`), each without NUL. A bad item is reported
/// on the list's field (`Not a valid string.`).
pub fn string_list(
    body: &Map<String, Value>,
    field: &str,
    presence: Presence,
) -> Result<Option<Vec<String>>, Invalid> {
    let v = match (raw(body, field), presence) {
        (Raw::Missing, Presence::Required) => return Err(Invalid::required(field)),
        (Raw::Missing, _) | (Raw::Null, Presence::Nullable) => return Ok(None),
        (Raw::Null, _) => return Err(Invalid::not_null(field)),
        (Raw::Value(v), _) => v,
    };
    let Value::Array(items) = v else {
        return Err(Invalid::not_list(field));
    };
    items
        .iter()
        .map(|item| as_string(field, item))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A boolean field, read as marshmallow's `Boolean` does (see [`parse_bool`]).
pub fn boolean(
    body: &Map<String, Value>,
    field: &str,
    presence: Presence,
) -> Result<Option<bool>, Invalid> {
    match (raw(body, field), presence) {
        (Raw::Missing, Presence::Required) => Err(Invalid::required(field)),
        (Raw::Missing, _) | (Raw::Null, Presence::Nullable) => Ok(None),
        (Raw::Null, _) => Err(Invalid::not_null(field)),
        (Raw::Value(v), _) => parse_bool(v)
            .map(Some)
            .ok_or_else(|| Invalid::not_boolean(field)),
    }
}

/// An integer field, read as marshmallow's `Integer` (not strict) does: `int(value)` of a JSON
/// number (a fraction truncated toward zero) or of a string (`" 42 "`, `"+4_2"`); booleans and
/// anything else are "Not a valid integer.". A value outside `i64` is not valid either.
pub fn integer(
    body: &Map<String, Value>,
    field: &str,
    presence: Presence,
) -> Result<Option<i64>, Invalid> {
    let invalid = || Invalid::new(field, "Not a valid integer.", "type", json!("integer"));
    match present(body, field, presence)? {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.is_finite() && f.trunc().abs() < 9.2e18 => {
                Ok(Some(f.trunc() as i64))
            }
            _ => Err(invalid()),
        },
        Some(Value::String(s)) => python_int(s).map(Some).ok_or_else(invalid),
        Some(_) => Err(invalid()),
    }
}

/// Python's `int(text)` in base 10: surrounding whitespace, an optional sign, digits with single
/// underscores between them.
fn python_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let (negative, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let n: i64 = digits.replace('_', "").parse().ok()?;
    Some(if negative { -n } else { n })
}

/// A UUID field, read as Python's `uuid.UUID(text)` (see [`python_uuid`]); anything else is
/// "Not a valid UUID.".
pub fn uuid(
    body: &Map<String, Value>,
    field: &str,
    presence: Presence,
) -> Result<Option<uuid::Uuid>, Invalid> {
    match present(body, field, presence)? {
        None => Ok(None),
        Some(Value::String(s)) => python_uuid(s)
            .map(Some)
            .ok_or_else(|| Invalid::not_uuid(field)),
        Some(_) => Err(Invalid::not_uuid(field)),
    }
}

/// A list field: its items, unchecked (an item's path is `{field}.{index}`).
pub fn list<'a>(
    body: &'a Map<String, Value>,
    field: &str,
    presence: Presence,
) -> Result<Option<&'a [Value]>, Invalid> {
    match present(body, field, presence)? {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(Invalid::not_list(field)),
    }
}

/// A nested object field (a nested schema): a Python-falsy value reads as `{}`, any other value
/// that is not an object is [`Invalid::input_type`]. Report its fields' errors with
/// [`Invalid::under`].
pub fn nested(
    body: &Map<String, Value>,
    field: &str,
    presence: Presence,
) -> Result<Option<Map<String, Value>>, Invalid> {
    match present(body, field, presence)? {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(v) if is_falsy(v) => Ok(Some(Map::new())),
        Some(_) => Err(Invalid::input_type(field)),
    }
}

/// marshmallow's `Boolean`: JSON booleans, 0/1 and its truthy/falsy strings.
pub fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => {
            let x = n.as_f64()?;
            if x == 1.0 {
                Some(true)
            } else if x == 0.0 {
                Some(false)
            } else {
                None
            }
        }
        Value::String(s) => match s.as_str() {
            "t" | "T" | "true" | "True" | "TRUE" | "on" | "On" | "ON" | "y" | "Y" | "yes"
            | "Yes" | "YES" | "1" => Some(true),
            "f" | "F" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" | "n" | "N" | "no"
            | "No" | "NO" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Python's `uuid.UUID(text)`: `urn:`/`uuid:` prefixes, braces and hyphens are ignored, then 32
/// hex digits. Returns the canonical form.
pub fn python_uuid(text: &str) -> Option<uuid::Uuid> {
    let t = text.replace("urn:", "").replace("uuid:", "");
    let t = t.trim_matches(|c| c == '{' || c == '}').replace('-', "");
    if t.len() != 32 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    uuid::Uuid::parse_str(&t).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn integers_read_as_marshmallow_integer() {
        let b = obj(
            json!({"i": 42, "f": 2.9, "s": " +4_2 ", "neg": "-7", "t": true,
                           "bad": "4__2", "e": "", "l": [1], "n": null, "big": 1e300}),
        );
        let int = |k: &str| integer(&b, k, Presence::Optional);
        assert_eq!(int("i").unwrap(), Some(42));
        assert_eq!(int("f").unwrap(), Some(2));
        assert_eq!(int("s").unwrap(), Some(42));
        assert_eq!(int("neg").unwrap(), Some(-7));
        assert_eq!(int("missing").unwrap(), None);
        for bad in ["t", "bad", "e", "l", "big"] {
            assert_eq!(
                int(bad).unwrap_err().message,
                "Not a valid integer.",
                "{bad}"
            );
        }
        assert_eq!(int("n").unwrap_err().constraint_id, "not_null");
        assert_eq!(
            integer(&b, "missing", Presence::Required)
                .unwrap_err()
                .constraint_id,
            "required"
        );
    }

    #[test]
    fn strings() {
        let b = obj(json!({"a": "x", "n": null, "i": 3, "z": "a\u{0}b", "e": ""}));
        assert_eq!(
            string(&b, "a", Presence::Required, 1, Some(2)).unwrap(),
            Some("x".into())
        );
        let e = string(&b, "m", Presence::Required, 1, None).unwrap_err();
        assert_eq!(e.constraint_id, "required");
        assert_eq!(string(&b, "m", Presence::Optional, 1, None).unwrap(), None);
        let e = string(&b, "n", Presence::Optional, 1, None).unwrap_err();
        assert_eq!(e.constraint_id, "not_null");
        assert_eq!(string(&b, "n", Presence::Nullable, 1, None).unwrap(), None);
        let e = string(&b, "i", Presence::Nullable, 1, None).unwrap_err();
        assert_eq!(e.constraint, json!("string"));
        let e = string(&b, "z", Presence::Nullable, 1, None).unwrap_err();
        assert_eq!(e.constraint_id, "type");
        let e = string(&b, "e", Presence::Nullable, 1, Some(4)).unwrap_err();
        assert_eq!(e.message, "Length must be between 1 and 4.");
    }

    #[test]
    fn lists_and_booleans() {
        let b = obj(
            json!({"l": ["a", "b"], "n": null, "s": "a", "i": [1], "z": ["a\u{0}"],
                           "t": "yes", "f": 0, "x": 2}),
        );
        assert_eq!(
            string_list(&b, "l", Presence::Optional).unwrap(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(string_list(&b, "m", Presence::Optional).unwrap(), None);
        assert_eq!(
            string_list(&b, "m", Presence::Required)
                .unwrap_err()
                .constraint_id,
            "required"
        );
        assert_eq!(
            string_list(&b, "n", Presence::Optional)
                .unwrap_err()
                .constraint_id,
            "not_null"
        );
        assert_eq!(string_list(&b, "n", Presence::Nullable).unwrap(), None);
        let e = string_list(&b, "s", Presence::Optional).unwrap_err();
        assert_eq!(e.constraint, json!("list"));
        for bad in ["i", "z"] {
            let e = string_list(&b, bad, Presence::Optional).unwrap_err();
            assert_eq!((e.field.as_str(), e.constraint), (bad, json!("string")));
        }
        assert_eq!(boolean(&b, "t", Presence::Optional).unwrap(), Some(true));
        assert_eq!(boolean(&b, "f", Presence::Optional).unwrap(), Some(false));
        assert_eq!(boolean(&b, "m", Presence::Optional).unwrap(), None);
        assert_eq!(
            boolean(&b, "n", Presence::Optional)
                .unwrap_err()
                .constraint_id,
            "not_null"
        );
        assert_eq!(
            boolean(&b, "x", Presence::Optional).unwrap_err().constraint,
            json!("boolean")
        );
        let e = Invalid::not_list("acl").into_field_error().body();
        assert_eq!(
            e["reason"],
            json!(["Invalid value supplied for field: acl"])
        );
    }

    #[test]
    fn nul_answers() {
        let b = obj(json!({"z": "a\u{0}b"}));
        let read = |nul| string_with(&b, "z", Presence::Nullable, 1, Some(3), nul);
        assert_eq!(read(Nul::NotAString).unwrap_err(), Invalid::not_string("z"));
        let e = read(Nul::Refused).unwrap_err();
        assert_eq!(e.message, "String must not contain NUL characters.");
        assert_eq!((e.constraint_id, e.constraint), ("type", json!("string")));
        assert_eq!(read(Nul::Kept).unwrap(), Some("a\u{0}b".into()));
        // The length comes first...
        let e = string_with(&b, "z", Presence::Nullable, 1, Some(2), Nul::Refused).unwrap_err();
        assert_eq!(e.constraint_id, "length");
        // ...except where NUL is checked first.
        let e = string_with(
            &b,
            "z",
            Presence::Nullable,
            1,
            Some(2),
            Nul::NotAStringFirst,
        );
        assert_eq!(e.unwrap_err(), Invalid::not_string("z"));
        let long = obj(json!({"z": "abc"}));
        let e = string_with(
            &long,
            "z",
            Presence::Nullable,
            1,
            Some(2),
            Nul::NotAStringFirst,
        );
        assert_eq!(e.unwrap_err().constraint_id, "length");
    }

    #[test]
    fn uuids_lists_and_nested_objects() {
        let b = obj(json!({
            "u": "{0123ABCD111122223333444455556666}", "bad": "x", "i": 1, "n": null,
            "l": ["a", 1], "o": {"k": 1}, "f": false, "s": "x",
        }));
        let u = uuid(&b, "u", Presence::Nullable).unwrap().unwrap();
        assert_eq!(u.to_string(), "0123abcd-1111-2222-3333-444455556666");
        assert_eq!(uuid(&b, "n", Presence::Nullable).unwrap(), None);
        assert_eq!(uuid(&b, "m", Presence::Nullable).unwrap(), None);
        assert_eq!(
            uuid(&b, "bad", Presence::Nullable).unwrap_err(),
            Invalid::not_uuid("bad")
        );
        assert_eq!(
            uuid(&b, "i", Presence::Nullable).unwrap_err(),
            Invalid::not_uuid("i")
        );
        assert_eq!(list(&b, "l", Presence::Optional).unwrap().unwrap().len(), 2);
        assert_eq!(
            list(&b, "s", Presence::Optional).unwrap_err(),
            Invalid::not_list("s")
        );
        assert_eq!(
            list(&b, "n", Presence::Optional).unwrap_err(),
            Invalid::not_null("n")
        );
        assert_eq!(list(&b, "m", Presence::Optional).unwrap(), None);
        assert_eq!(
            nested(&b, "o", Presence::Optional).unwrap().unwrap().len(),
            1
        );
        assert!(nested(&b, "f", Presence::Optional)
            .unwrap()
            .unwrap()
            .is_empty());
        let e = nested(&b, "s", Presence::Optional).unwrap_err();
        assert_eq!(e.field, "s._schema");
        let e = e.into_error("tenants").body();
        assert_eq!(
            e["details"],
            json!({"s": {"_schema": {"message": "Invalid input type."}}})
        );
        let e = Invalid::not_string("state")
            .under("address")
            .into_error("tenants");
        assert_eq!(
            e.body()["details"]["address"]["state"]["message"],
            "Not a valid string."
        );
    }

    #[test]
    fn decoding() {
        assert!(decode(b"").is_err());
        assert!(decode(b"{not json").is_err());
        assert!(decode(b"null").unwrap().unwrap().is_empty());
        assert!(decode(b"[]").unwrap().unwrap().is_empty());
        assert!(decode(b"[1]").unwrap().is_none());
        assert!(decode(b"42").unwrap().is_none());
        assert_eq!(object(b"{\"a\":1}", "x").unwrap().len(), 1);
        let e = object(b"[1]", "groups").unwrap_err().body();
        assert_eq!(e["resource"], "groups");
        assert_eq!(token_object(b"null").unwrap().len(), 0);
        let e = token_object(b"[1]").unwrap_err().body();
        assert_eq!(e["reason"], json!(["{'_schema': ['Invalid input type.']}"]));
        assert_eq!(e["status_code"], 400);
    }

    #[test]
    fn python_uuids() {
        let u = python_uuid("{urn:uuid:0123ABCD111122223333444455556666}").unwrap();
        assert_eq!(u.to_string(), "0123abcd-1111-2222-3333-444455556666");
        assert!(python_uuid("0123").is_none());
        let c = "6668ca15-6d9e-4000-b2ec-731bc7316767";
        for ok in [
            c,
            "6668CA156D9E4000B2EC731BC7316767",
            "urn:uuid:6668ca15-6d9e-4000-b2ec-731bc7316767",
            "{6668ca15-6d9e-4000-b2ec-731bc7316767}",
        ] {
            assert_eq!(
                python_uuid(ok).map(|u| u.to_string()).as_deref(),
                Some(c),
                "{ok}"
            );
        }
        for bad in [
            "",
            "x",
            "6668ca15-6d9e-4000-b2ec-731bc731676",
            "' OR 1=1 --",
        ] {
            assert!(python_uuid(bad).is_none(), "{bad}");
        }
    }
}
