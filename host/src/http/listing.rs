//! List query parameters (spec management §1.6): `limit`, `offset`, `order`, `direction`,
//! `search`, `recurse` and exact-match field filters, validated as the original's `ListSchema`.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::HttpRequest;
use serde_json::{json, Map, Value};

use super::error::ApiError;

/// Validated list parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub offset: i64,
    /// A column from the endpoint's whitelist.
    pub order: String,
    /// `true` for `desc`.
    pub descending: bool,
    /// `ILIKE` pattern built from the search words (`%w1%w2%`), when given.
    pub search: Option<String>,
    pub recurse: bool,
    /// Every other query parameter (first value), for the endpoint's exact filters.
    pub filters: BTreeMap<String, String>,
    /// Every value of repeatable parameters (e.g. `uuids`).
    pub all_values: BTreeMap<String, Vec<String>>,
}

impl ListParams {
    pub fn filter(&self, name: &str) -> Option<&str> {
        self.filters.get(name).map(String::as_str)
    }

    /// A boolean filter (`true`/`false`, as marshmallow's Boolean reads them).
    pub fn bool_filter(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.filter(name) {
            None => Ok(None),
            Some(v) => parse_bool(v)
                .map(Some)
                .ok_or_else(|| invalid_list_param(name, "Not a valid boolean.")),
        }
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "t" | "yes" | "y" | "on" => Some(true),
        "false" | "0" | "f" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// `400 invalid-list-param`: the message is the marshmallow error dict (an object) and the
/// resource is always "users", as in the original.
pub fn invalid_list_param(field: &str, message: &str) -> ApiError {
    let mut m = Map::new();
    m.insert(field.to_string(), json!([message]));
    ApiError::api(
        StatusCode::BAD_REQUEST,
        Value::Object(m),
        "invalid-list-param",
        json!({}),
        Some("users"),
    )
}

/// The search pattern of the original: words split on spaces joined with `%`, wrapped in `%`.
pub fn search_pattern(search: &str) -> String {
    let words: Vec<&str> = search.split(' ').filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        "%".to_string()
    } else {
        format!("%{}%", words.join("%"))
    }
}

/// Parses and validates the list parameters of `req`. `sortable` lists the accepted `order`
/// values; `default_order` is used when `order` is absent.
pub fn parse(
    req: &HttpRequest,
    sortable: &[&str],
    default_order: &str,
) -> Result<ListParams, ApiError> {
    let mut all: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        all.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    let first = |k: &str| all.get(k).and_then(|v| v.first()).cloned();

    let int = |name: &str, v: &str| -> Result<i64, ApiError> {
        let t = v.trim();
        let n: i64 = t
            .parse()
            .map_err(|_| invalid_list_param(name, "Not a valid integer."))?;
        if n < 0 {
            return Err(invalid_list_param(
                name,
                "Must be greater than or equal to 0.",
            ));
        }
        Ok(n)
    };
    let limit = match first("limit") {
        None => None,
        Some(v) => Some(int("limit", &v)?),
    };
    let offset = match first("offset") {
        None => 0,
        Some(v) => int("offset", &v)?,
    };
    let order = match first("order") {
        None => default_order.to_string(),
        Some(o) if sortable.contains(&o.as_str()) => o,
        Some(_) => {
            return Err(invalid_list_param(
                "order",
                &format!("Must be one of: {}.", sortable.join(", ")),
            ))
        }
    };
    let descending = match first("direction").as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            return Err(invalid_list_param(
                "direction",
                "Must be one of: asc, desc.",
            ))
        }
    };
    let recurse = match first("recurse") {
        None => false,
        Some(v) => {
            parse_bool(&v).ok_or_else(|| invalid_list_param("recurse", "Not a valid boolean."))?
        }
    };
    let search = first("search").map(|s| search_pattern(&s));
    let mut filters = BTreeMap::new();
    for (k, v) in &all {
        if !matches!(
            k.as_str(),
            "limit" | "offset" | "order" | "direction" | "recurse" | "search"
        ) {
            if let Some(first) = v.first() {
                filters.insert(k.clone(), first.clone());
            }
        }
    }
    Ok(ListParams {
        limit,
        offset,
        order,
        descending,
        search,
        recurse,
        filters,
        all_values: all,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn p(q: &str) -> Result<ListParams, ApiError> {
        let req = TestRequest::get().uri(&format!("/x?{q}")).to_http_request();
        parse(&req, &["username", "firstname"], "username")
    }

    #[test]
    fn valid_parameters() {
        let l = p("limit=5&offset=2&order=firstname&direction=desc&search=ba%20z&recurse=true&purpose=user").unwrap();
        assert_eq!(l.limit, Some(5));
        assert_eq!(l.offset, 2);
        assert_eq!(l.order, "firstname");
        assert!(l.descending);
        assert_eq!(l.search.as_deref(), Some("%ba%z%"));
        assert!(l.recurse);
        assert_eq!(l.filter("purpose"), Some("user"));
        let d = p("").unwrap();
        assert_eq!(
            (d.limit, d.offset, d.order.as_str(), d.descending),
            (None, 0, "username", false)
        );
        assert_eq!(p("search=").unwrap().search.as_deref(), Some("%"));
    }

    #[test]
    fn invalid_parameters_are_400() {
        for q in [
            "limit=not%20a%20number",
            "offset=-1",
            "direction=up",
            "order=lol",
            "limit=1.5",
            "recurse=maybe",
            "limit=99999999999999999999999",
        ] {
            let r = p(q).unwrap_err();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
        }
    }
}
