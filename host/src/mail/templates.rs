//! The mail templates: Jinja files named by the original's configuration keys, rendered with
//! `minijinja` (Jinja syntax, so an operator's existing files work unchanged) and the original's
//! variables. Each file is read when it is rendered, so an edited template takes effect without
//! a restart, as with the original.
//!
//! The defaults are the original's paths (`/var/lib/wazo-auth/templates/*.jinja`). When a
//! default path does not exist (a development run from the repository, a machine without the
//! package's files) the copy built into the binary is used: the files of `host/templates/`.

use std::path::{Path, PathBuf};

use minijinja::Environment;
use serde_json::{Map, Value};

use crate::config::Config;

/// The templates, by what they render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateKind {
    ConfirmationBody,
    ConfirmationSubject,
    /// The page of `GET /emails/{uuid}/confirm`.
    ConfirmationPage,
    ResetBody,
    ResetSubject,
}

impl TemplateKind {
    const ALL: [TemplateKind; 5] = [
        TemplateKind::ConfirmationBody,
        TemplateKind::ConfirmationSubject,
        TemplateKind::ConfirmationPage,
        TemplateKind::ResetBody,
        TemplateKind::ResetSubject,
    ];

    /// The configuration key naming its file.
    pub fn key(self) -> &'static str {
        match self {
            TemplateKind::ConfirmationBody => "email_confirmation_template",
            TemplateKind::ConfirmationSubject => "email_confirmation_subject_template",
            TemplateKind::ConfirmationPage => "email_confirmation_get_response_body_template",
            TemplateKind::ResetBody => "password_reset_email_template",
            TemplateKind::ResetSubject => "password_reset_email_subject_template",
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            TemplateKind::ConfirmationBody => "email_confirmation.jinja",
            TemplateKind::ConfirmationSubject => "email_confirmation_subject.jinja",
            TemplateKind::ConfirmationPage => "email_confirmation_get_body.jinja",
            TemplateKind::ResetBody => "password_reset_email.jinja",
            TemplateKind::ResetSubject => "password_reset_email_subject.jinja",
        }
    }

    /// The original's default path.
    pub fn default_path(self) -> PathBuf {
        Path::new(DEFAULT_DIR).join(self.file_name())
    }

    /// The built-in copy (`host/templates/`).
    fn built_in(self) -> &'static str {
        match self {
            TemplateKind::ConfirmationBody => {
                include_str!("../../templates/email_confirmation.jinja")
            }
            TemplateKind::ConfirmationSubject => {
                include_str!("../../templates/email_confirmation_subject.jinja")
            }
            TemplateKind::ConfirmationPage => {
                include_str!("../../templates/email_confirmation_get_body.jinja")
            }
            TemplateKind::ResetBody => include_str!("../../templates/password_reset_email.jinja"),
            TemplateKind::ResetSubject => {
                include_str!("../../templates/password_reset_email_subject.jinja")
            }
        }
    }
}

const DEFAULT_DIR: &str = "/var/lib/wazo-auth/templates";

/// Why a template could not be rendered.
#[derive(Debug)]
pub struct TemplateError(String);

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

/// The configured template files.
#[derive(Debug, Clone, PartialEq)]
pub struct Templates {
    paths: Vec<(TemplateKind, PathBuf)>,
}

impl Templates {
    pub fn from_config(cfg: &Config) -> Result<Templates, String> {
        let configured = |kind: TemplateKind| -> &Value {
            match kind {
                TemplateKind::ConfirmationBody => &cfg.email_confirmation_template,
                TemplateKind::ConfirmationSubject => &cfg.email_confirmation_subject_template,
                TemplateKind::ConfirmationPage => {
                    &cfg.email_confirmation_get_response_body_template
                }
                TemplateKind::ResetBody => &cfg.password_reset_email_template,
                TemplateKind::ResetSubject => &cfg.password_reset_email_subject_template,
            }
        };
        let mut paths = Vec::new();
        for kind in TemplateKind::ALL {
            match configured(kind) {
                Value::String(p) if !p.is_empty() => paths.push((kind, PathBuf::from(p))),
                _ => return Err(format!("\"{}\" must be a file path", kind.key())),
            }
        }
        Ok(Templates { paths })
    }

    fn path(&self, kind: TemplateKind) -> PathBuf {
        self.paths
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or_else(|| kind.default_path(), |(_, p)| p.clone())
    }

    /// The template's text: its file, or the built-in copy when the file is the missing default.
    pub fn source(&self, kind: TemplateKind) -> Result<String, TemplateError> {
        let path = self.path(kind);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path == kind.default_path() => {
                Ok(kind.built_in().to_string())
            }
            Err(e) => Err(TemplateError(format!(
                "template {} ({}): {e}",
                path.display(),
                kind.key()
            ))),
        }
    }

    /// Renders a template with `context` (Jinja semantics: an undefined variable renders
    /// empty, no HTML escaping, a single trailing newline dropped).
    pub fn render(
        &self,
        kind: TemplateKind,
        context: &Map<String, Value>,
    ) -> Result<String, TemplateError> {
        let source = self.source(kind)?;
        let env = Environment::new();
        env.render_str(&source, context)
            .map_err(|e| TemplateError(format!("template {}: {e}", kind.key())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn built_in_templates_render_the_original_variables() {
        let t = Templates::from_config(&Config::default()).unwrap();
        let body = t
            .render(
                TemplateKind::ConfirmationBody,
                &ctx(json!({
                    "hostname": "pbx.example.com", "port": 443, "prefix": "/api/auth",
                    "token": "TOK", "username": "bob", "email_uuid": "EU",
                    "email_address": "bob@example.com",
                })),
            )
            .unwrap();
        assert!(
            body.contains("https://pbx.example.com:443/api/auth/0.1/emails/EU/confirm?token=TOK"),
            "{body}"
        );
        let subject = t
            .render(
                TemplateKind::ConfirmationSubject,
                &ctx(json!({"username": "bob"})),
            )
            .unwrap();
        assert_eq!(subject, "Confirm the e-mail address of bob");
        let body = t
            .render(
                TemplateKind::ResetBody,
                &ctx(json!({"hostname": "h", "token": "T", "user_uuid": "U", "username": "bob"})),
            )
            .unwrap();
        assert!(body.contains("host=h&token=T&user_uuid=U"), "{body}");
        assert_eq!(
            t.render(TemplateKind::ConfirmationPage, &Map::new())
                .unwrap(),
            "Email address confirmed"
        );
    }

    #[test]
    fn a_configured_file_is_read_at_each_rendering() {
        let dir = std::env::temp_dir().join(format!("wazo-auth-templates-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("reset.jinja");
        std::fs::write(&file, "token: {{ token }}\n").unwrap();
        let cfg = Config {
            password_reset_email_template: json!(file.to_str().unwrap()),
            ..Config::default()
        };
        let t = Templates::from_config(&cfg).unwrap();
        let c = ctx(json!({"token": "abc", "username": "<b>"}));
        assert_eq!(t.render(TemplateKind::ResetBody, &c).unwrap(), "token: abc");
        std::fs::write(&file, "{{ username }}{{ missing }}").unwrap();
        assert_eq!(t.render(TemplateKind::ResetBody, &c).unwrap(), "<b>");
        std::fs::remove_file(&file).unwrap();
        // A configured file that is gone is an error (only a missing default falls back).
        assert!(t.render(TemplateKind::ResetBody, &c).is_err());
        std::fs::write(&file, "{% if %}").unwrap();
        assert!(t.render(TemplateKind::ResetBody, &c).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn template_keys_must_be_paths() {
        let cfg = Config {
            email_confirmation_template: json!(3),
            ..Config::default()
        };
        assert!(Templates::from_config(&cfg).is_err());
    }
}
