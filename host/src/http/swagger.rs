//! The Swagger 2.0 form of the API description, as the original serves it at
//! `GET /0.1/api/api.yml` (Wazo's documentation tooling reads that form). It is derived from the
//! OpenAPI 3.0 description (`api.yml`, also served at `GET /0.1/api/openapi.yml`), so that there
//! is one description to keep in step with the routes.
//!
//! What OpenAPI 3.0 says that Swagger 2.0 cannot is carried by extensions: `nullable` becomes
//! `x-nullable`, `oneOf`/`anyOf` become `x-oneOf`/`x-anyOf` (the schema itself then accepts any
//! value), `deprecated` on a schema becomes `x-deprecated`.

use serde_yaml_ng::{Mapping, Value};

/// The original's identification of the service, read by Wazo's tooling.
const XIVO_PORT: u64 = 9497;
const XIVO_NAME: &str = "auth";

fn key(s: &str) -> Value {
    Value::String(s.to_string())
}

fn get<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.as_mapping().and_then(|m| m.get(k))
}

fn map_of(v: Option<&Value>) -> Mapping {
    v.and_then(Value::as_mapping).cloned().unwrap_or_default()
}

/// Converts an OpenAPI 3.0 document into Swagger 2.0. `script_name` is the request's
/// `X-Script-Name` (a reverse proxy's prefix): when present, `basePath` starts with it and the
/// scheme is `https`, as the original answers.
pub fn convert(openapi: &Value, script_name: Option<&str>) -> Value {
    let mut out = Mapping::new();
    out.insert(key("swagger"), key("2.0"));
    out.insert(
        key("info"),
        get(openapi, "info").cloned().unwrap_or(Value::Null),
    );
    out.insert(key("x-xivo-port"), Value::from(XIVO_PORT));
    out.insert(key("x-xivo-name"), key(XIVO_NAME));
    let base = get(openapi, "servers")
        .and_then(Value::as_sequence)
        .and_then(|s| s.first())
        .and_then(|s| get(s, "url"))
        .and_then(Value::as_str)
        .unwrap_or("/0.1");
    let (base, scheme) = match script_name.filter(|p| !p.is_empty()) {
        Some(prefix) => (format!("{prefix}{base}"), "https"),
        None => (base.to_string(), "http"),
    };
    out.insert(key("basePath"), Value::String(base));
    out.insert(key("schemes"), Value::Sequence(vec![key(scheme)]));
    out.insert(
        key("consumes"),
        Value::Sequence(vec![key("application/json")]),
    );
    out.insert(
        key("produces"),
        Value::Sequence(vec![key("application/json")]),
    );
    if let Some(tags) = get(openapi, "tags") {
        out.insert(key("tags"), tags.clone());
    }
    let components = get(openapi, "components");
    let components = components.cloned().unwrap_or(Value::Null);

    let mut security = Mapping::new();
    for (name, scheme) in map_of(get(&components, "securitySchemes")) {
        security.insert(name, security_scheme(&scheme));
    }
    out.insert(key("securityDefinitions"), Value::Mapping(security));

    let mut parameters = Mapping::new();
    for (name, p) in map_of(get(&components, "parameters")) {
        parameters.insert(name, parameter(&p));
    }
    out.insert(key("parameters"), Value::Mapping(parameters));

    let mut definitions = Mapping::new();
    for (name, s) in map_of(get(&components, "schemas")) {
        definitions.insert(name, schema(&s));
    }
    out.insert(key("definitions"), Value::Mapping(definitions));

    let mut responses = Mapping::new();
    for (name, r) in map_of(get(&components, "responses")) {
        responses.insert(name, response(&r).0);
    }
    out.insert(key("responses"), Value::Mapping(responses));

    let mut paths = Mapping::new();
    for (path, item) in map_of(get(openapi, "paths")) {
        paths.insert(path, path_item(&item));
    }
    out.insert(key("paths"), Value::Mapping(paths));
    for (k, v) in openapi.as_mapping().into_iter().flatten() {
        if k.as_str().is_some_and(|k| k.starts_with("x-")) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Mapping(out)
}

/// `#/components/<kind>/X` → the Swagger 2.0 location of the same object.
fn reference(r: &str) -> String {
    for (from, to) in [
        ("#/components/schemas/", "#/definitions/"),
        ("#/components/parameters/", "#/parameters/"),
        ("#/components/responses/", "#/responses/"),
    ] {
        if let Some(name) = r.strip_prefix(from) {
            return format!("{to}{name}");
        }
    }
    r.to_string()
}

fn security_scheme(s: &Value) -> Value {
    let mut out = Mapping::new();
    match get(s, "type").and_then(Value::as_str) {
        Some("http") => {
            out.insert(key("type"), key("basic"));
        }
        Some("apiKey") => {
            out.insert(key("type"), key("apiKey"));
            for k in ["name", "in"] {
                if let Some(v) = get(s, k) {
                    out.insert(key(k), v.clone());
                }
            }
        }
        _ => {
            out.insert(key("type"), key("basic"));
        }
    }
    if let Some(d) = get(s, "description") {
        out.insert(key("description"), d.clone());
    }
    Value::Mapping(out)
}

/// The keywords a Swagger 2.0 schema object may hold (beside `x-` extensions).
const SCHEMA_KEYS: &[&str] = &[
    "$ref",
    "format",
    "title",
    "description",
    "default",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "enum",
    "type",
    "items",
    "allOf",
    "properties",
    "additionalProperties",
    "discriminator",
    "readOnly",
    "xml",
    "externalDocs",
    "example",
];

fn schema(s: &Value) -> Value {
    let Some(m) = s.as_mapping() else {
        return s.clone();
    };
    let mut out = Mapping::new();
    for (k, v) in m {
        let Some(name) = k.as_str() else { continue };
        match name {
            "$ref" => {
                let r = v.as_str().map(reference).unwrap_or_default();
                out.insert(k.clone(), Value::String(r));
            }
            "items" | "additionalProperties" if v.is_mapping() => {
                out.insert(k.clone(), schema(v));
            }
            "properties" => {
                let props = map_of(Some(v))
                    .into_iter()
                    .map(|(pk, pv)| (pk, schema(&pv)))
                    .collect();
                out.insert(k.clone(), Value::Mapping(props));
            }
            "allOf" => {
                let parts = v
                    .as_sequence()
                    .map(|s| s.iter().map(schema).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Sequence(parts));
            }
            "oneOf" | "anyOf" => {
                let parts = v
                    .as_sequence()
                    .map(|s| s.iter().map(schema).collect())
                    .unwrap_or_default();
                out.insert(key(&format!("x-{name}")), Value::Sequence(parts));
            }
            "nullable" => {
                out.insert(key("x-nullable"), v.clone());
            }
            "deprecated" => {
                out.insert(key("x-deprecated"), v.clone());
            }
            // A single type in 2.0 (`type: [a, b]` does not exist in 3.0 either).
            "type" if v.is_sequence() => {
                out.insert(key("x-type"), v.clone());
            }
            _ if name.starts_with("x-") || SCHEMA_KEYS.contains(&name) => {
                out.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    // A `$ref` stands alone in 2.0.
    if let Some(r) = out.get("$ref").cloned() {
        let mut only = Mapping::new();
        only.insert(key("$ref"), r);
        return Value::Mapping(only);
    }
    Value::Mapping(out)
}

/// The keywords a Swagger 2.0 non-body parameter (or header, or items) takes from a schema.
const SIMPLE_KEYS: &[&str] = &[
    "type",
    "format",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "enum",
    "multipleOf",
];

/// The fields of a simple (non-body) value described by `s`: a type is required in 2.0.
fn simple_fields(s: &Value, out: &mut Mapping) {
    for k in SIMPLE_KEYS {
        if let Some(v) = get(s, k) {
            out.insert(key(k), v.clone());
        }
    }
    match get(s, "type").and_then(Value::as_str) {
        Some("array") => {
            let mut items = Mapping::new();
            simple_fields(get(s, "items").unwrap_or(&Value::Null), &mut items);
            out.insert(key("items"), Value::Mapping(items));
        }
        Some("object") | None => {
            out.insert(key("type"), key("string"));
        }
        Some(_) => {}
    }
}

fn parameter(p: &Value) -> Value {
    if let Some(r) = get(p, "$ref").and_then(Value::as_str) {
        let mut out = Mapping::new();
        out.insert(key("$ref"), Value::String(reference(r)));
        return Value::Mapping(out);
    }
    let mut out = Mapping::new();
    for k in ["name", "in", "description", "required"] {
        if let Some(v) = get(p, k) {
            out.insert(key(k), v.clone());
        }
    }
    if get(p, "in").and_then(Value::as_str) == Some("path") {
        out.insert(key("required"), Value::Bool(true));
    }
    let s = get(p, "schema").cloned().unwrap_or(Value::Null);
    simple_fields(&s, &mut out);
    if out.get("type").and_then(Value::as_str) == Some("array") {
        let explode = get(p, "explode").and_then(Value::as_bool).unwrap_or(true);
        out.insert(
            key("collectionFormat"),
            key(if explode { "multi" } else { "csv" }),
        );
    }
    for (k, v) in p.as_mapping().into_iter().flatten() {
        if k.as_str().is_some_and(|k| k.starts_with("x-")) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Mapping(out)
}

/// A response, and the media types it is described for.
fn response(r: &Value) -> (Value, Vec<String>) {
    if let Some(reference_to) = get(r, "$ref").and_then(Value::as_str) {
        let mut out = Mapping::new();
        out.insert(key("$ref"), Value::String(reference(reference_to)));
        return (Value::Mapping(out), Vec::new());
    }
    let mut out = Mapping::new();
    out.insert(
        key("description"),
        get(r, "description").cloned().unwrap_or_else(|| key("")),
    );
    let content = map_of(get(r, "content"));
    let types: Vec<String> = content
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    let chosen = content
        .get("application/json")
        .or_else(|| content.values().next());
    if let Some(media) = chosen {
        if let Some(s) = get(media, "schema") {
            out.insert(key("schema"), schema(s));
        }
        if let Some(example) = get(media, "example") {
            let mut examples = Mapping::new();
            let mime = types.first().cloned().unwrap_or_default();
            examples.insert(Value::String(mime), example.clone());
            out.insert(key("examples"), Value::Mapping(examples));
        }
    }
    let headers = map_of(get(r, "headers"));
    if !headers.is_empty() {
        let mut converted = Mapping::new();
        for (name, h) in headers {
            let mut header = Mapping::new();
            if let Some(d) = get(&h, "description") {
                header.insert(key("description"), d.clone());
            }
            simple_fields(get(&h, "schema").unwrap_or(&Value::Null), &mut header);
            converted.insert(name, Value::Mapping(header));
        }
        out.insert(key("headers"), Value::Mapping(converted));
    }
    (Value::Mapping(out), types)
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

fn path_item(item: &Value) -> Value {
    let mut out = Mapping::new();
    for (k, v) in item.as_mapping().into_iter().flatten() {
        let Some(name) = k.as_str() else { continue };
        if METHODS.contains(&name) {
            out.insert(k.clone(), operation(v));
        } else if name == "parameters" {
            let ps = v
                .as_sequence()
                .map(|s| s.iter().map(parameter).collect())
                .unwrap_or_default();
            out.insert(k.clone(), Value::Sequence(ps));
        } else if name.starts_with("x-") {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Mapping(out)
}

fn operation(op: &Value) -> Value {
    let mut out = Mapping::new();
    let mut parameters: Vec<Value> = get(op, "parameters")
        .and_then(Value::as_sequence)
        .map(|s| s.iter().map(parameter).collect())
        .unwrap_or_default();
    let mut consumes = Vec::new();
    if let Some(body) = get(op, "requestBody") {
        let content = map_of(get(body, "content"));
        consumes = content
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        let media = content
            .get("application/json")
            .or_else(|| content.values().next());
        let mut p = Mapping::new();
        p.insert(key("name"), key("body"));
        p.insert(key("in"), key("body"));
        if let Some(d) = get(body, "description") {
            p.insert(key("description"), d.clone());
        }
        p.insert(
            key("required"),
            get(body, "required").cloned().unwrap_or(Value::Bool(false)),
        );
        let s = media
            .and_then(|m| get(m, "schema"))
            .map(schema)
            .unwrap_or_else(|| Value::Mapping(Mapping::new()));
        p.insert(key("schema"), s);
        parameters.push(Value::Mapping(p));
    }
    let mut produces: Vec<String> = Vec::new();
    let mut responses = Mapping::new();
    for (code, r) in map_of(get(op, "responses")) {
        let (converted, types) = response(&r);
        for t in types {
            if !produces.contains(&t) {
                produces.push(t);
            }
        }
        responses.insert(code, converted);
    }
    for (k, v) in op.as_mapping().into_iter().flatten() {
        let Some(name) = k.as_str() else { continue };
        match name {
            "tags" | "summary" | "description" | "operationId" | "deprecated" | "security"
            | "externalDocs" => {
                out.insert(k.clone(), v.clone());
            }
            _ if name.starts_with("x-") => {
                out.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    if !parameters.is_empty() {
        out.insert(key("parameters"), Value::Sequence(parameters));
    }
    if !consumes.is_empty() && consumes != ["application/json"] {
        out.insert(
            key("consumes"),
            Value::Sequence(consumes.into_iter().map(Value::String).collect()),
        );
    }
    if !produces.is_empty() && produces != ["application/json"] {
        out.insert(
            key("produces"),
            Value::Sequence(produces.into_iter().map(Value::String).collect()),
        );
    }
    out.insert(key("responses"), Value::Mapping(responses));
    Value::Mapping(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn a_document_becomes_swagger_2() {
        let doc = yaml(
            r##"
openapi: 3.0.3
info: {title: wazo-auth, version: "0.1"}
servers: [{url: /0.1}]
components:
  securitySchemes:
    XAuthToken: {type: apiKey, in: header, name: X-Auth-Token}
    BasicAuth: {type: http, scheme: basic}
  parameters:
    Limit: {name: limit, in: query, schema: {type: integer, minimum: 0}}
  schemas:
    User:
      type: object
      properties:
        uuid: {type: string, format: uuid}
        firstname: {type: string, nullable: true}
        either: {oneOf: [{type: string}, {type: integer}]}
        tenant: {$ref: "#/components/schemas/Tenant", description: ignored}
    Tenant: {type: object}
  responses:
    NotFound:
      description: not found
      content: {application/json: {schema: {$ref: "#/components/schemas/User"}}}
paths:
  /users/{user_uuid}:
    parameters:
      - {name: user_uuid, in: path, required: true, schema: {type: string, format: uuid}}
    put:
      operationId: updateUser
      x-required-acl: auth.users.{user_uuid}.update
      parameters:
        - $ref: "#/components/parameters/Limit"
        - {name: ids, in: query, schema: {type: array, items: {type: string}}}
      requestBody:
        required: true
        content: {application/json: {schema: {$ref: "#/components/schemas/User"}}}
      responses:
        "200":
          description: ok
          headers: {X-Request-ID: {schema: {type: string}}}
          content: {application/json: {schema: {$ref: "#/components/schemas/User"}}}
        "404": {$ref: "#/components/responses/NotFound"}
  /api/api.yml:
    get:
      responses:
        "200":
          description: yaml
          content: {application/x-yaml: {schema: {type: object}}}
"##,
        );
        let s = convert(&doc, None);
        assert_eq!(s["swagger"], yaml("'2.0'"));
        assert_eq!(s["basePath"], yaml("/0.1"));
        assert_eq!(s["schemes"], yaml("[http]"));
        assert_eq!(s["securityDefinitions"]["BasicAuth"], yaml("{type: basic}"));
        assert_eq!(
            s["securityDefinitions"]["XAuthToken"],
            yaml("{type: apiKey, name: X-Auth-Token, in: header}")
        );
        assert_eq!(
            s["parameters"]["Limit"],
            yaml("{name: limit, in: query, type: integer, minimum: 0}")
        );
        let user = &s["definitions"]["User"]["properties"];
        assert_eq!(user["firstname"], yaml("{type: string, x-nullable: true}"));
        assert_eq!(
            user["either"],
            yaml("{x-oneOf: [{type: string}, {type: integer}]}")
        );
        assert_eq!(user["tenant"], yaml("{$ref: '#/definitions/Tenant'}"));
        let put = &s["paths"]["/users/{user_uuid}"]["put"];
        assert_eq!(put["x-required-acl"], yaml("auth.users.{user_uuid}.update"));
        let params = put["parameters"].as_sequence().unwrap();
        assert_eq!(params[0], yaml("{$ref: '#/parameters/Limit'}"));
        assert_eq!(
            params[1],
            yaml("{name: ids, in: query, type: array, items: {type: string}, collectionFormat: multi}")
        );
        assert_eq!(
            params[2],
            yaml("{name: body, in: body, required: true, schema: {$ref: '#/definitions/User'}}")
        );
        assert_eq!(
            put["responses"]["200"]["headers"]["X-Request-ID"],
            yaml("{type: string}")
        );
        assert_eq!(
            put["responses"]["404"],
            yaml("{$ref: '#/responses/NotFound'}")
        );
        assert_eq!(
            s["paths"]["/users/{user_uuid}"]["parameters"][0],
            yaml("{name: user_uuid, in: path, required: true, type: string, format: uuid}")
        );
        assert_eq!(
            s["paths"]["/api/api.yml"]["get"]["produces"],
            yaml("[application/x-yaml]")
        );
    }

    #[test]
    fn behind_a_reverse_proxy_the_base_path_has_its_prefix_and_https() {
        let doc = yaml(
            "openapi: 3.0.3\ninfo: {title: t, version: '1'}\nservers: [{url: /0.1}]\npaths: {}\n",
        );
        let s = convert(&doc, Some("/p"));
        assert_eq!(s["basePath"], yaml("/p/0.1"));
        assert_eq!(s["schemes"], yaml("[https]"));
        assert_eq!(convert(&doc, Some(""))["basePath"], yaml("/0.1"));
    }
}
