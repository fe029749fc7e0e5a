//! Reading the API description (`host/src/http/api.yml`) in tests that are generated from it.

use serde_yaml_ng::Value as Yaml;

use crate::workspace_root;

/// The API description, parsed.
pub fn load() -> Yaml {
    let path = workspace_root().join("host/src/http/api.yml");
    let text = std::fs::read_to_string(&path).expect("api.yml is readable");
    serde_yaml_ng::from_str(&text).expect("api.yml is YAML")
}

/// The value of `key` in a mapping.
pub fn get<'a>(v: &'a Yaml, key: &str) -> Option<&'a Yaml> {
    v.as_mapping().and_then(|m| m.get(key))
}

/// The string value of `key` in a mapping.
pub fn str_of<'a>(v: &'a Yaml, key: &str) -> Option<&'a str> {
    get(v, key).and_then(Yaml::as_str)
}

/// Follows a local `$ref` (`#/a/b/c`) from the document root, as many times as it leads to
/// another; panics on a dangling or non-local reference.
pub fn resolve<'a>(root: &'a Yaml, v: &'a Yaml) -> &'a Yaml {
    let Some(r) = str_of(v, "$ref") else {
        return v;
    };
    let pointer = r
        .strip_prefix("#/")
        .unwrap_or_else(|| panic!("non-local $ref {r}"));
    let mut cur = root;
    for part in pointer.split('/') {
        cur = get(cur, part).unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    resolve(root, cur)
}
