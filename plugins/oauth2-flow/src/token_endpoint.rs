//! Requests to the provider's token endpoint (RFC 6749 §4.1.3 and §6): a form POST with the
//! client's credentials in the body (`client_secret_post`, which Google and Microsoft accept),
//! bounded by `token_request_timeout`. Nothing secret is ever put into an error: neither the
//! client secret, nor codes, nor tokens, nor the provider's answer beyond its `error` code.

use std::time::Duration;

use wazo_auth_plugin_api::serde_json::{self, Value};

/// Why a token request failed.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenError {
    /// No answer: refused connection, DNS failure, timeout, TLS failure.
    Unreachable(String),
    /// An answer that is not a token: an error status (with the OAuth2 `error` code when the
    /// body has one), or a body without the token fields.
    Refused(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Unreachable(why) => write!(f, "token endpoint unreachable: {why}"),
            TokenError::Refused(why) => write!(f, "token endpoint refused the request: {why}"),
        }
    }
}

/// The fields of a token response the plugins keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Granted {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: i64,
    /// The granted scope (space-separated in the answer), when the answer names it.
    pub scope: Option<Vec<String>>,
}

pub struct TokenEndpoint {
    agent: ureq::Agent,
    url: String,
}

/// At most this much of an answer is read.
const MAX_ANSWER_BYTES: u64 = 1 << 20;

impl TokenEndpoint {
    pub fn new(url: &str, timeout: Duration) -> TokenEndpoint {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout)
            .timeout(timeout)
            .redirects(0)
            .user_agent("wazo-auth")
            .build();
        TokenEndpoint {
            agent,
            url: url.to_string(),
        }
    }

    /// Exchanges an authorization code.
    pub fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Granted, TokenError> {
        self.post(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
            ("client_secret", client_secret),
        ])
    }

    /// Gets a new access token with a refresh token.
    pub fn refresh(
        &self,
        refresh_token: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Granted, TokenError> {
        self.post(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
            ("client_secret", client_secret),
        ])
    }

    fn post(&self, form: &[(&str, &str)]) -> Result<Granted, TokenError> {
        let answer = self
            .agent
            .post(&self.url)
            .set("Accept", "application/json")
            .send_form(form);
        let response = match answer {
            Ok(r) => r,
            Err(ureq::Error::Status(status, r)) => {
                let code = read_json(r)
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(short))
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default();
                return Err(TokenError::Refused(format!("HTTP {status}{code}")));
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(TokenError::Unreachable(transport_kind(&t)));
            }
        };
        let body = read_json(response)?;
        parse_grant(&body)
    }
}

/// A transport error without its URL (which holds no secret, but is logged elsewhere) and
/// without anything the server sent.
fn transport_kind(t: &ureq::Transport) -> String {
    let kind = t.kind().to_string();
    match t.message() {
        Some(m) => format!("{kind}: {}", short(m)),
        None => kind,
    }
}

/// At most 100 characters of a provider-sent string, for logs and messages.
fn short(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(100).collect()
}

fn read_json(response: ureq::Response) -> Result<Value, TokenError> {
    use std::io::Read;
    let mut text = String::new();
    response
        .into_reader()
        .take(MAX_ANSWER_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| TokenError::Unreachable(format!("reading the answer failed: {}", e.kind())))?;
    serde_json::from_str(&text)
        .map_err(|_| TokenError::Refused("the answer is not a JSON object".to_string()))
}

/// The token fields of a successful answer.
pub fn parse_grant(body: &Value) -> Result<Granted, TokenError> {
    let refused = |what: &str| TokenError::Refused(format!("the answer has no valid {what}"));
    let obj = body
        .as_object()
        .ok_or_else(|| TokenError::Refused("the answer is not a JSON object".to_string()))?;
    let access_token = obj
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| refused("access_token"))?
        .to_string();
    let refresh_token = match obj.get("refresh_token") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => return Err(refused("refresh_token")),
    };
    // RFC 6749 makes it a number; some providers send it as a string.
    let expires_in = match obj.get("expires_in") {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .filter(|n| (0..=10 * 365 * 86_400).contains(n))
    .ok_or_else(|| refused("expires_in"))?;
    let scope = match obj.get("scope") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.split_whitespace().map(str::to_string).collect()),
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| refused("scope"))?,
        ),
        Some(_) => return Err(refused("scope")),
    };
    Ok(Granted {
        access_token,
        refresh_token,
        expires_in,
        scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wazo_auth_plugin_api::serde_json::json;

    #[test]
    fn grants_are_read_as_providers_send_them() {
        let g = parse_grant(&json!({"access_token": "a", "refresh_token": "r", "expires_in": 3599, "scope": "x y", "token_type": "Bearer"})).unwrap();
        assert_eq!(g.scope, Some(vec!["x".to_string(), "y".to_string()]));
        assert_eq!(g.expires_in, 3599);
        let g = parse_grant(&json!({"access_token": "a", "expires_in": "60"})).unwrap();
        assert_eq!((g.refresh_token, g.expires_in, g.scope), (None, 60, None));
        for bad in [
            json!([]),
            json!({"expires_in": 5}),
            json!({"access_token": "a"}),
            json!({"access_token": "a", "expires_in": -1}),
            json!({"access_token": "a", "expires_in": 1, "scope": 3}),
            json!({"access_token": 1, "expires_in": 1}),
        ] {
            assert!(
                matches!(parse_grant(&bad), Err(TokenError::Refused(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn provider_strings_are_shortened_and_cleaned() {
        assert_eq!(short(&"x".repeat(500)).len(), 100);
        assert_eq!(short("a\nb"), "ab");
    }
}
