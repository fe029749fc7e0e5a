//! Checking: the typing of a configuration layer with readable error messages (the dotted key,
//! what was expected and what was found, the closest known key), and the rules that involve
//! several keys.

use serde_json::Value;

use super::layering::{origin_of, value_at, Source};
use super::schema::{Config, STRUCT_SECTIONS};
use super::ConfigError;

/// A problem found while typing a value, with the path of the key.
pub(super) struct Detail {
    pub(super) path: Vec<String>,
    pub(super) message: String,
}

fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if segment.parse::<usize>().is_ok() && !out.is_empty() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// Deserializes `value` into [`Config`], with readable errors.
pub(super) fn typed(value: &Value) -> Result<Config, Detail> {
    for section in STRUCT_SECTIONS {
        let path: Vec<String> = section.iter().map(|s| s.to_string()).collect();
        if let Some(found @ Value::Array(_)) = value_at(value, &path) {
            return Err(Detail {
                message: format!(
                    "\"{}\": expected a mapping, got {}",
                    dotted(&path),
                    describe_value(found)
                ),
                path,
            });
        }
    }
    serde_path_to_error::deserialize::<_, Config>(value).map_err(|error| {
        let path: Vec<String> = error
            .path()
            .iter()
            .map(|segment| match segment {
                serde_path_to_error::Segment::Seq { index } => index.to_string(),
                serde_path_to_error::Segment::Map { key } => key.clone(),
                serde_path_to_error::Segment::Enum { variant } => variant.clone(),
                serde_path_to_error::Segment::Unknown => "?".to_string(),
            })
            .collect();
        let inner = error.inner().to_string();
        let message = describe_serde_error(&inner, &path, value_at(value, &path));
        Detail { path, message }
    })
}

fn describe_serde_error(inner: &str, path: &[String], found: Option<&Value>) -> String {
    let key = dotted(path);
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        let candidates: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        let field = rest.split('`').next().unwrap_or_default();
        let mut message = format!("unknown key \"{key}\"");
        if let Some(best) = closest(field, &candidates) {
            message.push_str(&format!(" (did you mean \"{best}\"?)"));
        }
        return message;
    }
    let Some(position) = inner.rfind(", expected ") else {
        return format!("\"{key}\": {inner}");
    };
    let expected_raw = &inner[position + ", expected ".len()..];
    let (Some(found), Some(expected)) = (found, describe_expected(expected_raw)) else {
        return format!("\"{key}\": {inner}");
    };
    // an integer of the wrong range, e.g. a port of 70000 or a negative count
    if let (Some(range), Value::Number(number)) = (integer_range(expected_raw), found) {
        if number.is_i64() || number.is_u64() {
            return format!("\"{key}\": expected {range}, got {number}");
        }
    }
    format!(
        "\"{key}\": expected {expected}, got {}",
        describe_value(found)
    )
}

fn describe_expected(raw: &str) -> Option<&'static str> {
    Some(match raw {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64" | "i128"
        | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "a boolean" => "a boolean",
        "a string" | "a borrowed string" | "path string" | "a character" => "a string",
        "a sequence" => "a list",
        "a map" => "a mapping",
        _ if raw.starts_with("struct ") => "a mapping",
        _ => return None,
    })
}

fn integer_range(raw: &str) -> Option<&'static str> {
    Some(match raw {
        "u8" => "an integer between 0 and 255",
        "u16" => "an integer between 0 and 65535",
        "u32" => "an integer between 0 and 4294967295",
        "u64" | "u128" | "usize" => "a non-negative integer",
        _ => return None,
    })
}

pub(super) fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) if n.is_f64() => format!("a decimal number ({n})"),
        Value::Number(n) => format!("an integer ({n})"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// The candidate nearest to `word` (edit distance at most 2), if any.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (edit_distance(word, candidate), *candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The rules that involve several keys (each key's own range is checked by its type); the error
/// names the highest-priority source setting the key.
pub(super) fn validate(config: &Config, sources: &[Source]) -> Result<(), ConfigError> {
    let fail = |key: &str, detail: String| {
        let path: Vec<String> = key.split('.').map(str::to_string).collect();
        ConfigError::new(origin_of(sources, &path), format!("\"{key}\": {detail}"))
    };
    let c = config;

    if c.db_uri.as_deref().is_some_and(|uri| uri.trim().is_empty()) {
        return Err(fail(
            "db_uri",
            "must not be empty (remove it to use the managed database)".into(),
        ));
    }
    if let Some(uri) = &c.db_listen_uri {
        if uri.trim().is_empty() {
            return Err(fail(
                "db_listen_uri",
                "must not be empty (remove it to use db_uri)".into(),
            ));
        }
        if c.db_uri.is_none() {
            return Err(fail(
                "db_listen_uri",
                "needs db_uri (the managed database is reached directly)".into(),
            ));
        }
    }
    if c.db_pooler == super::schema::DbPooler::Transaction && c.db_listen_uri.is_none() {
        return Err(fail(
            "db_pooler",
            "transaction needs db_listen_uri: LISTEN and the advisory locks do not pass a \
             transaction pooler"
                .into(),
        ));
    }
    if let Some(uri) = &c.amqp.uri {
        if let Err(e) = crate::bus::parse_uri(uri) {
            return Err(fail("amqp.uri", format!("{e} (null disables the bus)")));
        }
    }
    if c.amqp.exchange_type.trim().is_empty() {
        return Err(fail(
            "amqp.exchange_type",
            "must not be empty (topic, direct, fanout, headers...)".into(),
        ));
    }
    if c.rest_api.cors.enabled {
        if let Err(e) = crate::http::cors::CorsPolicy::from_config(&c.rest_api.cors) {
            return Err(fail(&e.key, e.detail));
        }
    }
    // The mail keys (`crate::mail`): each message starts with the key, quoted.
    if let Err(e) = crate::mail::MailSettings::from_config(c) {
        let key = e.split('"').nth(1).unwrap_or("smtp");
        let path: Vec<String> = key.split('.').map(str::to_string).collect();
        return Err(ConfigError::new(origin_of(sources, &path), e));
    }
    if c.rest_api.listen.trim().is_empty() {
        return Err(fail("rest_api.listen", "must not be empty".into()));
    }
    match (&c.rest_api.certificate, &c.rest_api.private_key) {
        (Some(_), None) => {
            return Err(fail(
                "rest_api.certificate",
                "is set but rest_api.private_key is not".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(fail(
                "rest_api.private_key",
                "is set but rest_api.certificate is not".into(),
            ))
        }
        _ => {}
    }
    if c.bootstrap_user_on_startup {
        for (key, value) in [
            ("bootstrap_user_username", &c.bootstrap_user_username),
            ("bootstrap_user_password", &c.bootstrap_user_password),
        ] {
            if value.as_deref().is_none_or(str::is_empty) {
                return Err(fail(
                    "bootstrap_user_on_startup",
                    format!("is true but {key} is not set"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[test]
    fn config_unknown_key_names_file_and_path() {
        let dir = dir_with_main("");
        let file = dir.write("conf.d/10-x.yml", "rest_api:\n  prot: 9000\n");
        let message = error_of(load_dir(&dir, &[]));
        assert_eq!(
            message,
            format!(
                "configuration error in {}: unknown key \"rest_api.prot\" (did you mean \"port\"?)",
                file.display()
            )
        );

        let dir = dir_with_main("frobnicate: true\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(message.contains("config.yml"), "{message}");
        assert!(message.ends_with("unknown key \"frobnicate\""), "{message}");

        let dir = dir_with_main("managed_db:\n  data_dirr: x\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(
            message.contains("unknown key \"managed_db.data_dirr\""),
            "{message}"
        );
    }

    #[test]
    fn db_listen_uri_defaults_to_db_uri_and_needs_it() {
        let dir = dir_with_main("db_uri: postgresql://u@pooler:6432/db\n");
        let c = load_dir(&dir, &[]).expect("valid");
        assert_eq!(c.db_listen_uri, None);
        let dir = dir_with_main(
            "db_uri: postgresql://u@pooler:6432/db\ndb_listen_uri: postgresql://u@db:5432/db\n",
        );
        let c = load_dir(&dir, &[]).expect("valid");
        assert_eq!(
            c.db_listen_uri.as_deref(),
            Some("postgresql://u@db:5432/db")
        );

        let dir = dir_with_main("db_uri: postgresql://u@h/db\ndb_listen_uri: ' '\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(
            message.ends_with("\"db_listen_uri\": must not be empty (remove it to use db_uri)"),
            "{message}"
        );
        let dir = dir_with_main("db_uri: postgresql://u@pooler/db\ndb_pooler: transaction\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(
            message.contains("\"db_pooler\": transaction needs db_listen_uri"),
            "{message}"
        );
        let dir = dir_with_main(
            "db_uri: postgresql://u@pooler/db\ndb_listen_uri: postgresql://u@db/db\n\
             db_pooler: transaction\n",
        );
        let c = load_dir(&dir, &[]).expect("valid");
        assert_eq!(c.db_pooler, crate::config::DbPooler::Transaction);
        let dir = dir_with_main("db_pooler: session\n");
        assert!(error_of(load_dir(&dir, &[])).contains("db_pooler"));

        let dir = dir_with_main("db_listen_uri: postgresql://u@h/db\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(
            message.ends_with(
                "\"db_listen_uri\": needs db_uri (the managed database is reached directly)"
            ),
            "{message}"
        );
    }

    #[test]
    fn config_wrong_type_names_file_and_path() {
        let dir = dir_with_main("");
        let file = dir.write("conf.d/10-x.yml", "default_token_lifetime: two hours\n");
        let message = error_of(load_dir(&dir, &[]));
        assert_eq!(
            message,
            format!(
                "configuration error in {}: \"default_token_lifetime\": expected an integer, got a string",
                file.display()
            )
        );

        // masked by a higher-priority file: still an error
        dir.write("conf.d/05-ok.yml", "default_token_lifetime: 100\n");
        assert!(error_of(load_dir(&dir, &[])).contains("10-x.yml"));

        let dir = dir_with_main("rest_api:\n  port: 70000\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(
            message
                .ends_with("\"rest_api.port\": expected an integer between 0 and 65535, got 70000"),
            "{message}"
        );

        let dir = dir_with_main("enabled_backend_plugins:\n  wazo_user: maybe\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(
            message.ends_with(
                "\"enabled_backend_plugins.wazo_user\": expected a boolean, got a string"
            ),
            "{message}"
        );

        let dir = dir_with_main("rest_api: [1, 2]\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(
            message.ends_with("\"rest_api\": expected a mapping, got a list"),
            "{message}"
        );

        let dir = dir_with_main("rest_api:\n  cors:\n    allow_headers: [1]\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(
            message.ends_with(
                "\"rest_api.cors.allow_headers[0]\": expected a string, got an integer (1)"
            ),
            "{message}"
        );

        let dir = TempDir::new();
        dir.write("config.yml", "- a\n- b\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(message.contains("must contain a mapping"), "{message}");

        let dir = TempDir::new();
        dir.write("config.yml", "a: [1\n");
        let message = error_of(load_dir(&dir, &[]));
        assert!(message.contains("invalid YAML"), "{message}");
    }
}
