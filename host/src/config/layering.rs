//! The configuration sources and how they combine: the command line, the files of
//! `extra_config_files` (conf.d), the main file and the built-in defaults; YAML to JSON (merge
//! keys, `!exec`); deep merge, with lists accumulating across files.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::cli::{Cli, CLI_SOURCE};
use super::schema::{strip_obsolete, Config};
use super::validate::{describe_value, typed};
use super::{ConfigError, DEFAULT_EXTRA_CONFIG_FILES};

/// One configuration source.
pub(super) struct Source {
    pub(super) label: String,
    pub(super) value: Value,
}

/// Every source read, and their combination.
pub(super) struct Layers {
    /// The main file (read or not: the default one may be missing).
    pub(super) main_path: PathBuf,
    /// The files read, highest priority first.
    pub(super) files: Vec<PathBuf>,
    /// The command line, then the files, highest priority first.
    pub(super) sources: Vec<Source>,
    /// The command line over the files over the built-in defaults.
    pub(super) merged: Value,
}

/// Reads the main file and the extra files (each checked against the schema on its own, so
/// that errors name the file), and merges them with the command line and the defaults.
pub(super) fn read(cli: &Cli) -> Result<Layers, ConfigError> {
    // --- main file
    let main_path = cli.config_file_path();
    let main_value = match std::fs::read_to_string(&main_path) {
        Ok(text) => Some(parse_file(&main_path, &text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && cli.config_file.is_none() => None,
        Err(e) => {
            return Err(ConfigError::new(
                None,
                format!(
                    "cannot read configuration file {}: {e}",
                    main_path.display()
                ),
            ))
        }
    };

    // --- extra files
    let extra_setting = main_value
        .as_ref()
        .and_then(|v| v.get("extra_config_files"))
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_EXTRA_CONFIG_FILES);
    let extra_dir = resolve_extra_dir(&main_path, extra_setting);
    let mut files: Vec<(PathBuf, Value)> = Vec::new();
    for path in list_extra_files(&extra_dir)? {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError::new(
                None,
                format!("cannot read configuration file {}: {e}", path.display()),
            )
        })?;
        let value = parse_file(&path, &text)?;
        files.push((path, value));
    }
    if let Some(main) = main_value {
        files.push((main_path.clone(), main));
    }

    // --- merge: files (lists accumulate), then command line over files over defaults
    let mut file_layer = Value::Object(Map::new());
    for (_, value) in &files {
        merge_under(&mut file_layer, value, true);
    }
    let defaults = serde_json::to_value(Config::default())
        .map_err(|e| ConfigError::new(None, format!("internal error: {e}")))?;
    let cli_layer = cli.overrides();
    let mut merged = cli_layer.clone();
    merge_under(&mut merged, &file_layer, false);
    merge_under(&mut merged, &defaults, false);

    let mut sources = vec![Source {
        label: CLI_SOURCE.into(),
        value: cli_layer,
    }];
    sources.extend(files.iter().map(|(path, value)| Source {
        label: path.display().to_string(),
        value: value.clone(),
    }));
    Ok(Layers {
        main_path,
        files: files.into_iter().map(|(path, _)| path).collect(),
        sources,
        merged,
    })
}

fn resolve_extra_dir(main_path: &Path, setting: &str) -> PathBuf {
    let setting = Path::new(setting);
    if setting.is_absolute() {
        return setting.to_path_buf();
    }
    match main_path.parent() {
        Some(parent) => parent.join(setting),
        None => setting.to_path_buf(),
    }
}

/// `*.yml` files of `dir` (no dot-files), sorted by name. A missing directory
/// is empty.
fn list_extra_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log::debug!("extra configuration directory {} not found", dir.display());
            return Ok(Vec::new());
        }
        Err(e) => {
            return Err(ConfigError::new(
                None,
                format!(
                    "cannot read extra configuration directory {}: {e}",
                    dir.display()
                ),
            ))
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            ConfigError::new(
                None,
                format!(
                    "cannot read extra configuration directory {}: {e}",
                    dir.display()
                ),
            )
        })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".yml") {
            continue;
        }
        names.push(name.to_string());
    }
    names.sort();
    Ok(names.into_iter().map(|name| dir.join(name)).collect())
}

/// Parses one file into a JSON mapping and checks it alone against the schema
/// (so that errors name this file).
fn parse_file(path: &Path, text: &str) -> Result<Value, ConfigError> {
    let label = path.display().to_string();
    let fail = |detail: String| ConfigError::new(Some(&label), detail);
    let value = yaml_to_json_document(text).map_err(fail)?;
    let value = match value {
        Value::Null => Value::Object(Map::new()),
        Value::Object(map) => Value::Object(map),
        other => {
            return Err(fail(format!(
                "the file must contain a mapping of keys, got {}",
                describe_value(&other)
            )))
        }
    };
    let mut alone = value.clone();
    strip_obsolete(&mut alone);
    typed(&alone).map_err(|detail| fail(detail.message))?;
    Ok(value)
}

/// Parses a YAML document (empty = null), applying merge keys and `!exec`.
fn yaml_to_json_document(text: &str) -> Result<Value, String> {
    let mut yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    yaml.apply_merge()
        .map_err(|e| format!("invalid YAML: {e}"))?;
    yaml_to_json(yaml, "")
}

fn join_path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn yaml_to_json(yaml: serde_yaml_ng::Value, path: &str) -> Result<Value, String> {
    use serde_yaml_ng::Value as Y;
    let at = |path: &str| {
        if path.is_empty() {
            String::new()
        } else {
            format!("\"{path}\": ")
        }
    };
    Ok(match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                match serde_json::Number::from_f64(f) {
                    Some(number) => Value::Number(number),
                    None => return Err(format!("{}unsupported number {n}", at(path))),
                }
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(mapping) => {
            let mut map = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".to_string(),
                    _ => return Err(format!("{}unsupported mapping key", at(path))),
                };
                let child = join_path(path, &key);
                let value = yaml_to_json(value, &child)?;
                map.insert(key, value);
            }
            Value::Object(map)
        }
        Y::Tagged(tagged) => {
            if tagged.tag == "exec" {
                exec_tag(tagged.value, path)?
            } else {
                return Err(format!("{}unsupported YAML tag {}", at(path), tagged.tag));
            }
        }
    })
}

/// xivo's `!exec {command: "prog arg ..."}`: the command's standard output,
/// parsed as YAML (the command is split on spaces, not run by a shell).
fn exec_tag(value: serde_yaml_ng::Value, path: &str) -> Result<Value, String> {
    let command = value
        .get("command")
        .and_then(serde_yaml_ng::Value::as_str)
        .map(str::to_string);
    let Some(command) = command else {
        return Ok(Value::Null);
    };
    let mut words = command.split(' ');
    let program = words.next().unwrap_or_default();
    let output = std::process::Command::new(program)
        .args(words)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("\"{path}\": !exec command {command:?} failed: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "\"{path}\": !exec command {command:?} failed: {}",
            output.status
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| format!("\"{path}\": output of !exec command {command:?}: {e}"))?;
    yaml.apply_merge()
        .map_err(|e| format!("\"{path}\": output of !exec command {command:?}: {e}"))?;
    if contains_tag(&yaml) {
        return Err(format!(
            "\"{path}\": output of !exec command {command:?} contains a YAML tag"
        ));
    }
    yaml_to_json(yaml, path)
}

fn contains_tag(yaml: &serde_yaml_ng::Value) -> bool {
    use serde_yaml_ng::Value as Y;
    match yaml {
        Y::Tagged(_) => true,
        Y::Sequence(items) => items.iter().any(contains_tag),
        Y::Mapping(mapping) => mapping.values().any(contains_tag),
        _ => false,
    }
}

/// xivo's ChainMap: keys of `lower` missing from `higher` are added; mappings
/// present in both are merged recursively; with `accumulate_lists`, lists
/// present in both are concatenated (higher first); otherwise `higher` wins.
fn merge_under(higher: &mut Value, lower: &Value, accumulate_lists: bool) {
    let (Value::Object(high), Value::Object(low)) = (higher, lower) else {
        return;
    };
    for (key, low_value) in low {
        match high.get_mut(key) {
            None => {
                high.insert(key.clone(), low_value.clone());
            }
            Some(high_value @ Value::Object(_)) if low_value.is_object() => {
                merge_under(high_value, low_value, accumulate_lists);
            }
            Some(Value::Array(items)) if accumulate_lists => {
                if let Value::Array(low_items) = low_value {
                    items.extend(low_items.iter().cloned());
                }
            }
            Some(_) => {}
        }
    }
}

/// The value at `path` (mapping keys and list indexes), if any.
pub(super) fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = value;
    for segment in path {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// The highest-priority source setting `path`.
pub(super) fn origin_of<'a>(sources: &'a [Source], path: &[String]) -> Option<&'a str> {
    sources
        .iter()
        .find(|source| value_at(&source.value, path).is_some())
        .map(|source| source.label.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;

    #[test]
    fn config_default_main_file_may_be_missing_but_explicit_may_not() {
        let dir = TempDir::new();
        let missing = dir.path("nope.yml");
        let message = error_of(load_with_env_uuid(
            &cli(&["-c", missing.to_str().unwrap()]),
            None,
        ));
        assert!(message.contains(missing.to_str().unwrap()), "{message}");

        let parsed = cli(&[]);
        assert_eq!(
            parsed.config_file_path(),
            PathBuf::from(DEFAULT_CONFIG_FILE)
        );
        if !Path::new(DEFAULT_CONFIG_FILE).exists() {
            let loaded = load_with_env_uuid(&parsed, None).unwrap();
            assert_eq!(loaded.default_token_lifetime, 7200);
        }
    }

    #[test]
    fn config_main_file_overrides_defaults() {
        let dir = dir_with_main(
            "default_token_lifetime: 60\nrest_api:\n  port: 9000\ndb_uri: postgresql://u:p@h/db\n",
        );
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.default_token_lifetime, 60);
        assert_eq!(c.rest_api.port, 9000);
        assert_eq!(c.rest_api.listen, "127.0.0.1");
        assert_eq!(c.db_uri.as_deref(), Some("postgresql://u:p@h/db"));
    }

    #[test]
    fn config_earlier_extra_file_wins() {
        let dir = dir_with_main("default_token_lifetime: 10\nmax_user_concurrent_sessions: 3\n");
        dir.write("conf.d/10-a.yml", "default_token_lifetime: 20\n");
        dir.write(
            "conf.d/20-b.yml",
            "default_token_lifetime: 30\ntoken_cleanup_batch_size: 7\n",
        );
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.default_token_lifetime, 20);
        assert_eq!(c.token_cleanup_batch_size, 7);
        assert_eq!(c.max_user_concurrent_sessions, 3);
        assert_eq!(
            c.loaded_files,
            vec![
                dir.path("conf.d/10-a.yml"),
                dir.path("conf.d/20-b.yml"),
                dir.path("config.yml")
            ]
        );
    }

    #[test]
    fn config_deep_merge_keeps_siblings() {
        let dir = dir_with_main(
            "rest_api:\n  listen: 0.0.0.0\n  cors:\n    enabled: false\namqp:\n  uri: amqp://a:b@x/\n",
        );
        dir.write(
            "conf.d/50.yml",
            "rest_api:\n  port: 1234\nenabled_backend_plugins:\n  foo: true\n",
        );
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.rest_api.listen, "0.0.0.0");
        assert_eq!(c.rest_api.port, 1234);
        assert!(!c.rest_api.cors.enabled);
        assert_eq!(c.rest_api.cors.allow_headers.len(), 5);
        assert_eq!(c.rest_api.max_threads, 25);
        assert_eq!(
            c.enabled_backend_plugins,
            bool_map(&["foo", "ldap_user", "wazo_user"])
        );
        assert_eq!(c.amqp.uri.as_deref(), Some("amqp://a:b@x/"));
        assert_eq!(c.amqp.exchange_name, "xivo");
    }

    #[test]
    fn config_lists_accumulate_across_files_and_replace_defaults() {
        let dir = dir_with_main("rest_api:\n  cors:\n    allow_headers: [A]\n");
        dir.write(
            "conf.d/a.yml",
            "rest_api:\n  cors:\n    allow_headers: [B]\n",
        );
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.rest_api.cors.allow_headers, vec!["B", "A"]);
    }

    #[test]
    fn config_ignores_dot_files_and_other_extensions() {
        let dir = dir_with_main("");
        dir.write("conf.d/.hidden.yml", "default_token_lifetime: 1\n");
        dir.write("conf.d/x.yaml", "default_token_lifetime: 2\n");
        dir.write("conf.d/y.yml.bak", "this is: [not yaml\n");
        dir.write("conf.d/z.yml", "default_token_lifetime: 3\n");
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.default_token_lifetime, 3);
    }

    #[test]
    fn config_relative_and_absolute_extra_dirs() {
        let dir = TempDir::new();
        let other = TempDir::new();
        other.write("a.yml", "default_token_lifetime: 42\n");
        dir.write(
            "config.yml",
            &format!("extra_config_files: {}\n", other.0.display()),
        );
        assert_eq!(load_dir(&dir, &[]).unwrap().default_token_lifetime, 42);

        let dir = TempDir::new();
        dir.write("sub/config.yml", "extra_config_files: more\n");
        dir.write("sub/more/a.yml", "default_token_lifetime: 43\n");
        let main = dir.path("sub/config.yml");
        let c = load_with_env_uuid(&cli(&["-c", main.to_str().unwrap()]), None).unwrap();
        assert_eq!(c.default_token_lifetime, 43);
    }

    #[test]
    fn config_yaml_features() {
        let dir = dir_with_main(
            "base: &base\n  enabled: false\nrest_api:\n  cors:\n    <<: *base\n    allow_headers: [X]\n",
        );
        // `base` is an unknown key
        assert!(error_of(load_dir(&dir, &[])).contains("unknown key \"base\""));

        let dir = dir_with_main("plugin_config:\n  base: &base {a: 1}\n  p: {<<: *base, b: 2}\n");
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.plugin_config["p"], json!({"a": 1, "b": 2}));

        let dir = dir_with_main("plugin_config:\n  p: !exec {command: 'echo x: 5'}\n");
        let c = load_dir(&dir, &[]).unwrap();
        assert_eq!(c.plugin_config["p"], json!({"x": 5}));

        let dir = dir_with_main("plugin_config:\n  p: !weird 3\n");
        assert!(error_of(load_dir(&dir, &[])).contains("unsupported YAML tag !weird"));
    }
}
