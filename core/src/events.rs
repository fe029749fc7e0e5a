//! Bus events (issue 13), as wazo-bus builds them for the original, and their transactional
//! outbox (`auth_event_outbox`, migrations/V9): a change writes its events with [`record`] in
//! its own transaction, so an event exists if and only if its change commits. The publisher task
//! sends the rows to the AMQP exchange, adding `origin_uuid` and `timestamp`.
//!
//! What one event is made of, as wazo-bus computes it:
//! - `name` (also the `name` header);
//! - the routing key: the event's pattern filled with its values, each string value escaped
//!   (`.` `#` `*` become `__DOT__` `__HASH__` `__STAR__`);
//! - headers: `name`, `tenant_uuid`, `required_access` = `event.<name>`, `required_acl` =
//!   `events.<routing key>`, then `user_uuid:*: true` for a tenant-wide event, or
//!   `user_uuid:<uuid>: true` for a user's event when the user is known (nothing when it is
//!   not); session events also carry `session_uuid`;
//! - data: the event's content.
//!
//! The login hot path does not use [`Event::session_created`] but writes the same row from its
//! grouped statement (`crate::login_batch`), with no extra round trip.

use crate::sql::Db;
use serde_json::{json, Map, Value};

use crate::error::Result;

/// One bus event, ready for the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: &'static str,
    pub routing_key: String,
    /// The event's own headers (the publisher adds `origin_uuid` and `timestamp`).
    pub headers: Map<String, Value>,
    /// The content, sent as the body's `data`.
    pub data: Value,
}

/// A routing-key (or ACL) part as wazo-bus escapes it.
pub fn escape(part: &str) -> String {
    part.replace('.', "__DOT__")
        .replace('#', "__HASH__")
        .replace('*', "__STAR__")
}

/// The user of a login's `auth_id`, as the original decides it for `auth_session_created`: the
/// auth id itself when it is a UUID in canonical form (lower-case, hyphenated, version 4, RFC
/// 4122 variant), else none.
pub fn user_uuid_of(auth_id: &str) -> Option<&str> {
    let u = uuid::Uuid::parse_str(auth_id).ok()?;
    let canonical = u.get_version_num() == 4
        && u.get_variant() == uuid::Variant::RFC4122
        && u.hyphenated().to_string() == auth_id;
    canonical.then_some(auth_id)
}

/// The user of an event: empty counts as unknown (the original tests it for truth).
fn known(user: Option<&str>) -> Option<&str> {
    user.filter(|u| !u.is_empty())
}

impl Event {
    fn new(
        name: &'static str,
        routing_key: String,
        tenant_uuid: &str,
        target: Option<Option<&str>>,
        data: Value,
    ) -> Event {
        let mut headers = Map::new();
        headers.insert("name".into(), json!(name));
        headers.insert("tenant_uuid".into(), json!(tenant_uuid));
        match target {
            // A tenant event: every user of the tenant.
            None => {
                headers.insert("user_uuid:*".into(), json!(true));
            }
            Some(user) => {
                if let Some(u) = known(user) {
                    headers.insert(format!("user_uuid:{u}"), json!(true));
                }
            }
        }
        headers.insert("required_access".into(), json!(format!("event.{name}")));
        headers.insert(
            "required_acl".into(),
            json!(format!("events.{routing_key}")),
        );
        Event {
            name,
            routing_key,
            headers,
            data,
        }
    }

    /// A user's event: `user` is `None` when not known.
    fn user(
        name: &'static str,
        routing_key: String,
        tenant_uuid: &str,
        user: Option<&str>,
        data: Value,
    ) -> Event {
        Event::new(name, routing_key, tenant_uuid, Some(user), data)
    }

    fn with_header(mut self, key: &str, value: &str) -> Event {
        self.headers.insert(key.into(), json!(value));
        self
    }

    /// `auth_tenant_added` (POST /tenants): the tenant as created.
    pub fn tenant_added(
        uuid: &str,
        name: Option<&str>,
        slug: &str,
        domain_names: &[String],
    ) -> Event {
        Event::new(
            "auth_tenant_added",
            format!("auth.tenants.{}.created", escape(uuid)),
            uuid,
            None,
            json!({"uuid": uuid, "name": name, "slug": slug, "domain_names": domain_names}),
        )
    }

    /// `auth_tenant_updated` (PUT /tenants/{uuid}): its name after the update.
    pub fn tenant_updated(uuid: &str, name: Option<&str>) -> Event {
        Event::new(
            "auth_tenant_updated",
            format!("auth.tenants.{}.updated", escape(uuid)),
            uuid,
            None,
            json!({"uuid": uuid, "name": name}),
        )
    }

    /// `auth_tenant_deleted` (DELETE /tenants/{uuid}).
    pub fn tenant_deleted(uuid: &str) -> Event {
        Event::new(
            "auth_tenant_deleted",
            format!("auth.tenants.{}.deleted", escape(uuid)),
            uuid,
            None,
            json!({"uuid": uuid}),
        )
    }

    /// `auth_session_created` (every login). `user_uuid`: see [`user_uuid_of`].
    pub fn session_created(
        session_uuid: &str,
        mobile: bool,
        tenant_uuid: &str,
        user_uuid: Option<&str>,
    ) -> Event {
        Event::user(
            "auth_session_created",
            format!("auth.sessions.{}.created", escape(session_uuid)),
            tenant_uuid,
            user_uuid,
            json!({
                "uuid": session_uuid,
                "tenant_uuid": tenant_uuid,
                "user_uuid": user_uuid,
                "mobile": mobile,
            }),
        )
        .with_header("session_uuid", session_uuid)
    }

    /// `auth_session_deleted` (every path that ends a session). `user_uuid` is the auth id of
    /// the session's token as it is (the original does not check it is a UUID there).
    pub fn session_deleted(
        session_uuid: &str,
        tenant_uuid: &str,
        user_uuid: Option<&str>,
    ) -> Event {
        Event::user(
            "auth_session_deleted",
            format!("auth.sessions.{}.deleted", escape(session_uuid)),
            tenant_uuid,
            user_uuid,
            json!({"uuid": session_uuid, "user_uuid": user_uuid, "tenant_uuid": tenant_uuid}),
        )
        .with_header("session_uuid", session_uuid)
    }

    /// `auth_session_expire_soon` (the cleanup task, for sessions expiring within one
    /// `token_cleanup_interval`). `user_uuid` as in [`Event::session_deleted`]; an unknown user
    /// is written `None` in the routing key, as the original formats it.
    pub fn session_expire_soon(
        session_uuid: &str,
        tenant_uuid: &str,
        user_uuid: Option<&str>,
    ) -> Event {
        Event::user(
            "auth_session_expire_soon",
            format!(
                "auth.users.{}.sessions.{}.expire_soon",
                known(user_uuid).map_or_else(|| "None".to_string(), escape),
                escape(session_uuid)
            ),
            tenant_uuid,
            user_uuid,
            json!({"uuid": session_uuid, "user_uuid": user_uuid, "tenant_uuid": tenant_uuid}),
        )
        .with_header("session_uuid", session_uuid)
    }

    fn refresh_token(
        name: &'static str,
        action: &str,
        client_id: &str,
        mobile: bool,
        tenant_uuid: &str,
        user_uuid: &str,
    ) -> Event {
        Event::user(
            name,
            format!(
                "auth.users.{}.tokens.{}.{action}",
                escape(user_uuid),
                escape(client_id)
            ),
            tenant_uuid,
            Some(user_uuid),
            json!({
                "client_id": client_id,
                "mobile": mobile,
                "user_uuid": user_uuid,
                "tenant_uuid": tenant_uuid,
            }),
        )
    }

    /// `auth_refresh_token_created` (an offline login that creates a refresh token, not one
    /// that reuses it).
    pub fn refresh_token_created(
        client_id: &str,
        mobile: bool,
        tenant_uuid: &str,
        user_uuid: &str,
    ) -> Event {
        Event::refresh_token(
            "auth_refresh_token_created",
            "created",
            client_id,
            mobile,
            tenant_uuid,
            user_uuid,
        )
    }

    /// `auth_refresh_token_deleted` (every deletion of a refresh token).
    pub fn refresh_token_deleted(
        client_id: &str,
        mobile: bool,
        tenant_uuid: &str,
        user_uuid: &str,
    ) -> Event {
        Event::refresh_token(
            "auth_refresh_token_deleted",
            "deleted",
            client_id,
            mobile,
            tenant_uuid,
            user_uuid,
        )
    }

    fn external(
        name: &'static str,
        action: &str,
        auth_type: &str,
        tenant_uuid: &str,
        user_uuid: &str,
    ) -> Event {
        Event::user(
            name,
            format!(
                "auth.users.{}.external.{}.{action}",
                escape(user_uuid),
                escape(auth_type)
            ),
            tenant_uuid,
            Some(user_uuid),
            json!({"user_uuid": user_uuid, "external_auth_name": auth_type}),
        )
    }

    /// `auth_user_external_auth_added`: a user's data for an external auth type created.
    pub fn external_auth_added(auth_type: &str, tenant_uuid: &str, user_uuid: &str) -> Event {
        Event::external(
            "auth_user_external_auth_added",
            "created",
            auth_type,
            tenant_uuid,
            user_uuid,
        )
    }

    /// `auth_user_external_auth_updated`: that data replaced.
    pub fn external_auth_updated(auth_type: &str, tenant_uuid: &str, user_uuid: &str) -> Event {
        Event::external(
            "auth_user_external_auth_updated",
            "updated",
            auth_type,
            tenant_uuid,
            user_uuid,
        )
    }

    /// `auth_user_external_auth_deleted`: that data deleted.
    pub fn external_auth_deleted(auth_type: &str, tenant_uuid: &str, user_uuid: &str) -> Event {
        Event::external(
            "auth_user_external_auth_deleted",
            "deleted",
            auth_type,
            tenant_uuid,
            user_uuid,
        )
    }

    /// `auth_user_external_auth_authorized`: the original's OAuth2 synchronisation completed
    /// (its websocket callback stored the user's data).
    pub fn external_auth_authorized(auth_type: &str, tenant_uuid: &str, user_uuid: &str) -> Event {
        Event::external(
            "auth_user_external_auth_authorized",
            "authorized",
            auth_type,
            tenant_uuid,
            user_uuid,
        )
    }
}

/// The outbox write of one event inside a data-modifying statement, as a `WITH` item named
/// `ev`: the event is written once per row of `source` (a `WITH` item of the same statement
/// returning one row per change), so no change means no event. Its four parameters start at
/// `$first`; pass [`Event::params`] there.
pub(crate) fn cte_per_row(source: &str, first: usize) -> String {
    let (a, b, c, d) = (first, first + 1, first + 2, first + 3);
    format!(
        "ev AS (INSERT INTO auth_event_outbox (name, routing_key, headers, data)
                SELECT ${a}::text, ${b}::text, ${c}::jsonb, ${d}::jsonb FROM {source})"
    )
}

impl Event {
    /// The parameters of [`cte_per_row`]: name, routing key, headers, data.
    pub(crate) fn params(&self) -> (&str, &str, Value, &Value) {
        (
            self.name,
            &self.routing_key,
            Value::Object(self.headers.clone()),
            &self.data,
        )
    }
}

/// Writes `events` to the outbox, in order, with one statement (nothing for none). Call it on
/// the transaction of the change that causes them.
pub async fn record<C: Db>(client: &C, events: &[Event]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = events.iter().map(|e| e.name).collect();
    let keys: Vec<&str> = events.iter().map(|e| e.routing_key.as_str()).collect();
    let headers: Vec<Value> = events
        .iter()
        .map(|e| Value::Object(e.headers.clone()))
        .collect();
    let data: Vec<&Value> = events.iter().map(|e| &e.data).collect();
    let stmt = "INSERT INTO auth_event_outbox (name, routing_key, headers, data)
             SELECT name, routing_key, headers, data
             FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::jsonb[])
                  WITH ORDINALITY AS e(name, routing_key, headers, data, n)
             ORDER BY n";
    client
        .exec_cached(stmt, &[&names, &keys, &headers, &data])
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "11111111-1111-4111-8111-111111111111";
    const U: &str = "2222abcd-2222-4222-8222-222222222222";
    const S: &str = "33333333-3333-4333-8333-333333333333";

    fn headers(e: &Event) -> Value {
        Value::Object(e.headers.clone())
    }

    #[test]
    fn escape_as_wazo_bus() {
        assert_eq!(escape("a.b#c*d"), "a__DOT__b__HASH__c__STAR__d");
        assert_eq!(escape(T), T);
    }

    #[test]
    fn user_uuid_only_for_a_canonical_v4_uuid() {
        assert_eq!(user_uuid_of(U), Some(U));
        assert_eq!(user_uuid_of("alice"), None);
        assert_eq!(user_uuid_of(&U.to_uppercase()), None);
        assert_eq!(user_uuid_of(&U.replace('-', "")), None);
        // Version 1, and a non-RFC-4122 variant.
        assert_eq!(user_uuid_of("22222222-2222-1222-8222-222222222222"), None);
        assert_eq!(user_uuid_of("22222222-2222-4222-c222-222222222222"), None);
    }

    #[test]
    fn tenant_added() {
        let e = Event::tenant_added(T, Some("acme"), "acme", &["a.example".to_string()]);
        assert_eq!(e.name, "auth_tenant_added");
        assert_eq!(e.routing_key, format!("auth.tenants.{T}.created"));
        assert_eq!(
            headers(&e),
            json!({
                "name": "auth_tenant_added",
                "tenant_uuid": T,
                "user_uuid:*": true,
                "required_access": "event.auth_tenant_added",
                "required_acl": format!("events.auth.tenants.{T}.created"),
            })
        );
        assert_eq!(
            e.data,
            json!({"uuid": T, "name": "acme", "slug": "acme", "domain_names": ["a.example"]})
        );
    }

    #[test]
    fn tenant_updated_and_deleted() {
        let e = Event::tenant_updated(T, None);
        assert_eq!(e.name, "auth_tenant_updated");
        assert_eq!(e.routing_key, format!("auth.tenants.{T}.updated"));
        assert_eq!(e.headers["user_uuid:*"], json!(true));
        assert_eq!(e.headers["tenant_uuid"], json!(T));
        assert_eq!(
            e.headers["required_acl"],
            json!(format!("events.auth.tenants.{T}.updated"))
        );
        assert_eq!(e.data, json!({"uuid": T, "name": null}));
        let e = Event::tenant_deleted(T);
        assert_eq!(e.name, "auth_tenant_deleted");
        assert_eq!(e.routing_key, format!("auth.tenants.{T}.deleted"));
        assert_eq!(
            headers(&e),
            json!({
                "name": "auth_tenant_deleted",
                "tenant_uuid": T,
                "user_uuid:*": true,
                "required_access": "event.auth_tenant_deleted",
                "required_acl": format!("events.auth.tenants.{T}.deleted"),
            })
        );
        assert_eq!(e.data, json!({"uuid": T}));
    }

    #[test]
    fn session_created() {
        let e = Event::session_created(S, true, T, Some(U));
        assert_eq!(e.name, "auth_session_created");
        assert_eq!(e.routing_key, format!("auth.sessions.{S}.created"));
        assert_eq!(
            headers(&e),
            json!({
                "name": "auth_session_created",
                "tenant_uuid": T,
                "session_uuid": S,
                format!("user_uuid:{U}"): true,
                "required_access": "event.auth_session_created",
                "required_acl": format!("events.auth.sessions.{S}.created"),
            })
        );
        assert_eq!(
            e.data,
            json!({"uuid": S, "tenant_uuid": T, "user_uuid": U, "mobile": true})
        );
        // A login whose auth id is not a user: no user header, and a null user.
        let e = Event::session_created(S, false, T, None);
        assert_eq!(
            headers(&e),
            json!({
                "name": "auth_session_created",
                "tenant_uuid": T,
                "session_uuid": S,
                "required_access": "event.auth_session_created",
                "required_acl": format!("events.auth.sessions.{S}.created"),
            })
        );
        assert_eq!(
            e.data,
            json!({"uuid": S, "tenant_uuid": T, "user_uuid": null, "mobile": false})
        );
    }

    #[test]
    fn session_deleted() {
        let e = Event::session_deleted(S, T, Some(U));
        assert_eq!(e.name, "auth_session_deleted");
        assert_eq!(e.routing_key, format!("auth.sessions.{S}.deleted"));
        assert_eq!(
            headers(&e),
            json!({
                "name": "auth_session_deleted",
                "tenant_uuid": T,
                "session_uuid": S,
                format!("user_uuid:{U}"): true,
                "required_access": "event.auth_session_deleted",
                "required_acl": format!("events.auth.sessions.{S}.deleted"),
            })
        );
        assert_eq!(e.data, json!({"uuid": S, "user_uuid": U, "tenant_uuid": T}));
        // The auth id as it is, even when it is not a UUID.
        let e = Event::session_deleted(S, T, Some("alice"));
        assert_eq!(e.headers["user_uuid:alice"], json!(true));
        assert_eq!(e.data["user_uuid"], json!("alice"));
    }

    #[test]
    fn session_expire_soon() {
        let e = Event::session_expire_soon(S, T, Some(U));
        assert_eq!(e.name, "auth_session_expire_soon");
        assert_eq!(
            e.routing_key,
            format!("auth.users.{U}.sessions.{S}.expire_soon")
        );
        assert_eq!(
            headers(&e),
            json!({
                "name": "auth_session_expire_soon",
                "tenant_uuid": T,
                "session_uuid": S,
                format!("user_uuid:{U}"): true,
                "required_access": "event.auth_session_expire_soon",
                "required_acl": format!("events.auth.users.{U}.sessions.{S}.expire_soon"),
            })
        );
        assert_eq!(e.data, json!({"uuid": S, "user_uuid": U, "tenant_uuid": T}));
        let e = Event::session_expire_soon(S, T, Some("j.doe"));
        assert_eq!(
            e.routing_key,
            format!("auth.users.j__DOT__doe.sessions.{S}.expire_soon")
        );
        assert_eq!(e.headers["user_uuid:j.doe"], json!(true));
        let e = Event::session_expire_soon(S, T, Some(""));
        assert_eq!(
            e.routing_key,
            format!("auth.users.None.sessions.{S}.expire_soon")
        );
        assert!(!e.headers.keys().any(|k| k.starts_with("user_uuid")));
    }

    #[test]
    fn refresh_token_events() {
        let e = Event::refresh_token_created("my.app", true, T, U);
        assert_eq!(e.name, "auth_refresh_token_created");
        assert_eq!(
            e.routing_key,
            format!("auth.users.{U}.tokens.my__DOT__app.created")
        );
        assert_eq!(
            headers(&e),
            json!({
                "name": "auth_refresh_token_created",
                "tenant_uuid": T,
                format!("user_uuid:{U}"): true,
                "required_access": "event.auth_refresh_token_created",
                "required_acl": format!("events.auth.users.{U}.tokens.my__DOT__app.created"),
            })
        );
        assert_eq!(
            e.data,
            json!({"client_id": "my.app", "mobile": true, "user_uuid": U, "tenant_uuid": T})
        );
        let e = Event::refresh_token_deleted("app", false, T, U);
        assert_eq!(e.name, "auth_refresh_token_deleted");
        assert_eq!(e.routing_key, format!("auth.users.{U}.tokens.app.deleted"));
        assert_eq!(
            e.headers["required_acl"],
            json!(format!("events.auth.users.{U}.tokens.app.deleted"))
        );
        assert_eq!(
            e.data,
            json!({"client_id": "app", "mobile": false, "user_uuid": U, "tenant_uuid": T})
        );
    }

    #[test]
    fn external_auth_events() {
        let cases = [
            (Event::external_auth_added("bar", T, U), "added", "created"),
            (
                Event::external_auth_updated("bar", T, U),
                "updated",
                "updated",
            ),
            (
                Event::external_auth_deleted("bar", T, U),
                "deleted",
                "deleted",
            ),
            (
                Event::external_auth_authorized("bar", T, U),
                "authorized",
                "authorized",
            ),
        ];
        for (e, suffix, action) in cases {
            let name = format!("auth_user_external_auth_{suffix}");
            let key = format!("auth.users.{U}.external.bar.{action}");
            assert_eq!(e.name, name);
            assert_eq!(e.routing_key, key);
            assert_eq!(
                headers(&e),
                json!({
                    "name": name,
                    "tenant_uuid": T,
                    format!("user_uuid:{U}"): true,
                    "required_access": format!("event.{name}"),
                    "required_acl": format!("events.{key}"),
                })
            );
            assert_eq!(e.data, json!({"user_uuid": U, "external_auth_name": "bar"}));
        }
        let e = Event::external_auth_added("a.b", T, U);
        assert_eq!(
            e.routing_key,
            format!("auth.users.{U}.external.a__DOT__b.created")
        );
    }
}
