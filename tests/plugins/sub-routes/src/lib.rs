//! Test plugin: an external auth `subroutes` with sub-routes (plugin-api 1.3), declared as the
//! original's mobile plugin declares `GET /users/{user_uuid}/external/mobile/sender_id` (the
//! name `mobile` itself is reserved for the built-in plugin, `plugins/mobile`):
//! - `GET sender_id` (ACL `auth.users.{user_uuid}.external.subroutes.sender_id.read`): the
//!   `fcm_sender_id` of the scoping tenant's `subroutes` configuration (404 without one);
//! - `POST echo`: answers what it was given (tenant, path, query, body);
//! - `GET boom`: panics; `GET nap`: sleeps 30 s.

use std::time::Duration;

use wazo_auth_plugin_api::serde_json::{json, Value};
use wazo_auth_plugin_api::{
    export_plugins, ErrorKind, ExternalAuth, ExternalRequest, Host, PluginError, Reply, SubRequest,
    SubRoute,
};

pub struct SubRoutes {
    host: Host,
}

impl ExternalAuth for SubRoutes {
    const SAFE_FIELDS: &'static [&'static str] = &["token"];

    fn load(host: &Host, _config: Value) -> Result<Self, PluginError> {
        Ok(SubRoutes { host: host.clone() })
    }
    fn create(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        self.host.external_create(&req.user_uuid, &req.body)?;
        Ok(Reply::json(201, req.body.clone()))
    }
    fn get(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        match self.host.external_get(&req.user_uuid)? {
            Some(d) => Ok(Reply::json(200, d)),
            None => Err(PluginError::new(ErrorKind::NOT_FOUND, "no data")),
        }
    }
    fn delete(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        self.host.external_delete(&req.user_uuid)?;
        Ok(Reply::no_content())
    }

    fn routes() -> Vec<SubRoute> {
        vec![
            SubRoute::new(
                "GET",
                "sender_id",
                "auth.users.{user_uuid}.external.subroutes.sender_id.read",
            ),
            SubRoute::new(
                "POST",
                "echo",
                "auth.users.{user_uuid}.external.subroutes.echo.create",
            ),
            SubRoute::new(
                "GET",
                "boom",
                "auth.users.{user_uuid}.external.subroutes.boom",
            ),
            SubRoute::new(
                "GET",
                "nap",
                "auth.users.{user_uuid}.external.subroutes.nap",
            ),
            // Refused by the host (not a literal path): never served.
            SubRoute::new("GET", "{x}", "auth.x"),
        ]
    }

    fn api_spec() -> Value {
        json!({
            "/users/{user_uuid}/external/subroutes/sender_id": {
                "get": {
                    "summary": "Get the sender ID of the mobile push notifications",
                    "description": "**Required ACL**: `auth.users.{user_uuid}.external.subroutes.sender_id.read`",
                    "tags": ["external"],
                    "operationId": "getUserSubroutesSenderId",
                    "security": [{"XAuthToken": []}],
                    "x-required-acl": "auth.users.{user_uuid}.external.subroutes.sender_id.read",
                    "parameters": [{"$ref": "#/components/parameters/UserUuid"}],
                    "responses": {
                        "200": {
                            "description": "The sender ID",
                            "content": {"application/json": {"schema": {
                                "type": "object",
                                "properties": {"sender_id": {"type": "string", "nullable": true}}
                            }}}
                        },
                        "401": {"$ref": "#/components/responses/Unauthorized"},
                        "404": {"$ref": "#/components/responses/NotFound"}
                    }
                }
            }
        })
    }

    fn handle(&self, req: &SubRequest) -> Result<Reply, PluginError> {
        match req.path.as_str() {
            "sender_id" => {
                let config = self
                    .host
                    .external_tenant_config(&req.tenant_uuid)?
                    .ok_or_else(|| PluginError::new(ErrorKind::NOT_FOUND, "no configuration"))?;
                Ok(Reply::json(
                    200,
                    json!({"sender_id": config.get("fcm_sender_id").cloned().unwrap_or(Value::Null)}),
                ))
            }
            "echo" => Ok(Reply::json(
                200,
                json!({"method": req.method, "path": req.path, "user_uuid": req.user_uuid,
                       "tenant_uuid": req.tenant_uuid, "query": req.query, "body": req.body}),
            )),
            "boom" => panic!("boom sub-route"),
            "nap" => {
                std::thread::sleep(Duration::from_secs(30));
                Ok(Reply::no_content())
            }
            _ => Ok(Reply::json(404, json!({"message": "unknown"}))),
        }
    }
}

export_plugins! { external_auths: ["subroutes" => SubRoutes] }
