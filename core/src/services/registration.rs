//! User registration (spec management §5): a new tenant under the top tenant, named after the
//! username, with a user of its own and an unconfirmed address, whose confirmation mail must be
//! accepted by the SMTP server before anything is kept.

use std::fmt;
use std::future::Future;

use crate::defaults::{self, TenantDefaults};
use crate::error::Error;
use crate::events::{self, Event};
use crate::password::Scheme;
use crate::services::emails::{confirmation_acl, MailedToken};
use crate::services::users::{create_user_in, hash_password, CreateUserError};
use crate::storage::Storage;
use crate::tenants::{self, NewTenant, TenantError, TenantFields};
use crate::tokens;
use crate::users::{NewUser, User};

/// What a client registers.
#[derive(Debug, Clone)]
pub struct Registration {
    pub username: String,
    /// In clear: hashed here.
    pub password: String,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub email_address: String,
}

/// Why nothing was registered.
#[derive(Debug)]
pub enum RegisterError<E> {
    /// The username or the address is already a login (see [`CreateUserError::Conflict`]).
    Conflict {
        field: &'static str,
        value: String,
    },
    /// The confirmation mail was not sent.
    Mail(E),
    Tenant(TenantError),
    Hashing(String),
    Storage(Error),
}

impl<E: fmt::Display> fmt::Display for RegisterError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::Conflict { field, value } => {
                write!(f, "the {field} {value:?} is already used")
            }
            RegisterError::Mail(e) => write!(f, "confirmation mail not sent: {e}"),
            RegisterError::Tenant(e) => e.fmt(f),
            RegisterError::Hashing(e) => write!(f, "password hashing failed: {e}"),
            RegisterError::Storage(e) => e.fmt(f),
        }
    }
}

impl<E> From<Error> for RegisterError<E> {
    fn from(e: Error) -> Self {
        RegisterError::Storage(e)
    }
}

impl<E> From<tokio_postgres::Error> for RegisterError<E> {
    fn from(e: tokio_postgres::Error) -> Self {
        RegisterError::Storage(e.into())
    }
}

impl<E> From<TenantError> for RegisterError<E> {
    fn from(e: TenantError) -> Self {
        RegisterError::Tenant(e)
    }
}

impl<E> From<CreateUserError> for RegisterError<E> {
    fn from(e: CreateUserError) -> Self {
        match e {
            CreateUserError::Conflict { field, value } => RegisterError::Conflict { field, value },
            CreateUserError::Hashing(e) => RegisterError::Hashing(e),
            CreateUserError::Storage(e) => RegisterError::Storage(e),
        }
    }
}

/// `POST /users/register`, in ONE transaction: the tenant (a child of the top tenant named after
/// the username, with its defaults and its `auth_tenant_added` event), the user (purpose
/// `user`, method `default`, enabled, in the all-users group) with its unconfirmed main
/// address, and the confirmation token (valid `lifetime` seconds). `send` mails the token while
/// the transaction is open; the transaction commits only if it succeeds, so a mail that cannot
/// be sent leaves nothing behind (and a conflict neither).
pub async fn register<F, Fut, E>(
    storage: &Storage,
    registration: Registration,
    tenant_defaults: &TenantDefaults,
    scheme: Scheme,
    lifetime: i64,
    send: F,
) -> Result<User, RegisterError<E>>
where
    F: FnOnce(MailedToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let password = hash_password(registration.password, scheme).await?;
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    let top = tenants::top_tenant(&tx)
        .await?
        .ok_or_else(|| Error::Corrupt("no top tenant".into()))?;
    let new_tenant = NewTenant {
        uuid: None,
        slug: None,
        fields: TenantFields {
            name: Some(registration.username.clone()),
            ..TenantFields::default()
        },
    };
    let tenant_uuid = tenants::create(&tx, &top, &new_tenant).await?;
    defaults::apply_tenant_defaults(&tx, &tenant_uuid, tenant_defaults).await?;
    let tenant = tenants::get(&tx, &tenant_uuid)
        .await?
        .ok_or_else(|| Error::Corrupt(format!("created tenant {tenant_uuid} not found")))?;
    let added = Event::tenant_added(
        &tenant.uuid,
        tenant.name.as_deref(),
        &tenant.slug,
        &tenant.domain_names,
    );
    events::record(&tx, &[added]).await?;
    let new_user = NewUser {
        uuid: None,
        username: Some(registration.username),
        firstname: registration.firstname,
        lastname: registration.lastname,
        purpose: "user".into(),
        enabled: true,
        tenant_uuid: tenant_uuid.clone(),
        authentication_method: "default".into(),
        password: Some(password),
        email_address: Some(registration.email_address),
        email_confirmed: false,
    };
    let user = create_user_in(&tx, &new_user).await?;
    let Some(email) = user.emails.first() else {
        return Err(Error::Corrupt(format!("registered user {} has no address", user.uuid)).into());
    };
    let token =
        tokens::insert_mail_token(&tx, &confirmation_acl(&email.uuid), lifetime, &tenant_uuid)
            .await?;
    let mailed = MailedToken {
        token,
        user_uuid: user.uuid.clone(),
        username: user.username.clone(),
        email_uuid: email.uuid.clone(),
        address: email.address.clone(),
    };
    send(mailed).await.map_err(RegisterError::Mail)?;
    let committed = tx.commit().await;
    storage.tenants_changed();
    committed?;
    Ok(user)
}
