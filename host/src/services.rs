//! The host services offered to plugins (plugin-api 1.2): user authentication and look-up, the
//! ACL of a user's policies. Plugins call them synchronously from the host's blocking pool, so
//! they run their database work on a small runtime of their own and block on it.

use std::cell::RefCell;
use std::future::Future;

use serde_json::json;
use wazo_auth_core::external::{self, StoreError};
use wazo_auth_core::keys::Keyring;
use wazo_auth_core::password::{self, Scheme, StoredPassword};
use wazo_auth_core::users::UserRecord;
use wazo_auth_core::{Result, Storage};
use wazo_auth_plugin_api::{ErrorKind, PluginError};

/// The JSON handed to plugins for a user (never the password).
pub fn user_json(u: &UserRecord) -> String {
    json!({
        "uuid": u.uuid,
        "username": u.username,
        "tenant_uuid": u.tenant_uuid,
        "purpose": u.purpose,
        "enabled": u.enabled,
        "authentication_method": u.authentication_method,
        "tenant_default_authentication_method": u.tenant_default_authentication_method,
    })
    .to_string()
}

/// Why `authenticate` gave no answer.
#[derive(Debug)]
pub enum AuthError {
    /// The user store failed.
    Store(wazo_auth_core::Error),
    /// The plugin call this came from was abandoned (client gone, or timed out) before the
    /// password was hashed; the hash was not computed.
    Abandoned,
}

thread_local! {
    /// The plugin call running on this thread, set by the host around each call so that the
    /// services the plugin calls back into can see it abandoned.
    static CURRENT_CALL: RefCell<Option<tokio_util::sync::CancellationToken>> =
        const { RefCell::new(None) };
}

/// Marks the plugin call on this thread as belonging to `token` until dropped.
pub struct CallScope(Option<tokio_util::sync::CancellationToken>);

impl CallScope {
    pub fn enter(token: tokio_util::sync::CancellationToken) -> CallScope {
        CallScope(CURRENT_CALL.with(|c| c.replace(Some(token))))
    }
}

impl Drop for CallScope {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT_CALL.with(|c| *c.borrow_mut() = previous);
    }
}

fn current_call() -> Option<tokio_util::sync::CancellationToken> {
    CURRENT_CALL.with(|c| c.borrow().clone())
}

/// State behind the host services.
pub struct HostContext {
    runtime: tokio::runtime::Runtime,
    storage: Storage,
    scheme: Scheme,
    keyring: Keyring,
    /// One slot per core for password hashing: concurrent logins queue (fairly) instead of
    /// sharing the cores, so each completes as fast as the hardware allows and the login rate
    /// stays at the hash limit.
    hash_slots: tokio::sync::Semaphore,
}

impl HostContext {
    /// A context with its own runtime and connection pool on `db_uri`.
    pub fn new(
        db_uri: &str,
        scheme: Scheme,
        keyring: Keyring,
    ) -> std::result::Result<HostContext, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wazo-auth-host-services")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the host-services runtime: {e}"))?;
        let storage = {
            let _guard = runtime.enter();
            Storage::new(db_uri, 8).map_err(|e| e.to_string())?
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(HostContext {
            runtime,
            storage,
            scheme,
            keyring,
            hash_slots: tokio::sync::Semaphore::new(cores),
        })
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Runs `f` to completion on the services runtime. Must not be called from an async task.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// The enabled user whose confirmed e-mail, else username, equals `login` (any case).
    pub fn find_user(&self, login: &str) -> Result<Option<UserRecord>> {
        if login.is_empty() {
            return Ok(None);
        }
        self.block_on(find_enabled_user(&self.storage, login))
    }

    /// A hash slot, waited for fairly; `None` when the plugin call was abandoned meanwhile (its
    /// client disconnected, or it timed out), so that abandoned logins cost no hashing.
    fn hash_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let call = current_call();
        // `hash_slots` is never closed: `acquire` only ends with a permit.
        self.block_on(async {
            match call {
                Some(call) => tokio::select! {
                    biased;
                    _ = call.cancelled() => None,
                    slot = self.hash_slots.acquire() => slot.ok(),
                },
                None => self.hash_slots.acquire().await.ok(),
            }
        })
    }

    /// Checks credentials with constant work for unknown logins; upgrades the hash scheme after
    /// a success. A call abandoned before its hash starts stops there (`AuthError::Abandoned`).
    pub fn authenticate(
        &self,
        login: &str,
        password: &str,
    ) -> std::result::Result<Option<UserRecord>, AuthError> {
        let abandoned = || {
            log::debug!("login abandoned by its client before its password hash: not hashed");
            AuthError::Abandoned
        };
        if current_call().is_some_and(|c| c.is_cancelled()) {
            return Err(abandoned());
        }
        let user = self.find_user(login).map_err(AuthError::Store)?;
        let stored = user.as_ref().and_then(|u| u.password.as_ref());
        let verified = {
            let _slot = self.hash_slot().ok_or_else(abandoned)?;
            password::verify(password, stored, self.scheme)
        };
        if !verified {
            return Ok(None);
        }
        let Some(user) = user else {
            return Ok(None);
        };
        if let Some(old) = &user.password {
            if password::needs_rehash(old, self.scheme) {
                // Nobody waits for this login any more: the rehash waits for the next one.
                let Some(_slot) = self.hash_slot() else {
                    return Ok(Some(user));
                };
                let new = password::hash(password, self.scheme);
                drop(_slot);
                match self.block_on(replace_password(&self.storage, &user.uuid, old, &new)) {
                    Ok(true) => log::info!(
                        "password of user {} rehashed from {} to {}",
                        user.uuid,
                        old.scheme.as_str(),
                        new.scheme.as_str()
                    ),
                    Ok(false) => {}
                    Err(e) => {
                        log::warn!("rehashing the password of user {} failed: {e}", user.uuid)
                    }
                }
            }
        }
        Ok(Some(user))
    }

    /// The ACL of the user's group policies, then of the user's own policies.
    pub fn user_acl(&self, user_uuid: &str) -> Result<Vec<String>> {
        self.block_on(user_acl(&self.storage, user_uuid))
    }

    async fn with_client<T>(
        &self,
        f: impl AsyncFnOnce(&deadpool_postgres::Object) -> external::StoreResult<T>,
    ) -> external::StoreResult<T> {
        let client = self.storage.client().await?;
        f(&client).await
    }

    /// This auth type's data for a user (`None` when there is none).
    pub fn external_get(
        &self,
        user: &str,
        auth_type: &str,
    ) -> std::result::Result<Option<serde_json::Value>, PluginError> {
        let outcome = self.block_on(self.with_client(async |c| {
            external::get_user_data(c, &self.keyring, user, auth_type).await
        }));
        match outcome {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NotFound | StoreError::UnknownType) => Ok(None),
            Err(e) => Err(store_error("external_get", e)),
        }
    }

    pub fn external_create(
        &self,
        user: &str,
        auth_type: &str,
        data: &serde_json::Value,
    ) -> std::result::Result<(), PluginError> {
        self.block_on(self.with_client(async |c| {
            external::create_user_data(c, &self.keyring, user, auth_type, data).await
        }))
        .map_err(|e| store_error("external_create", e))
    }

    pub fn external_update(
        &self,
        user: &str,
        auth_type: &str,
        data: &serde_json::Value,
    ) -> std::result::Result<(), PluginError> {
        self.block_on(self.with_client(async |c| {
            external::update_user_data(c, &self.keyring, user, auth_type, data).await
        }))
        .map_err(|e| store_error("external_update", e))
    }

    pub fn external_delete(
        &self,
        user: &str,
        auth_type: &str,
    ) -> std::result::Result<(), PluginError> {
        self.block_on(
            self.with_client(async |c| external::delete_user_data(c, user, auth_type).await),
        )
        .map_err(|e| store_error("external_delete", e))
    }

    /// This auth type's configuration for the user's tenant.
    /// Publishes `auth_user_external_auth_authorized` through the outbox.
    pub fn external_authorized(
        &self,
        user: &str,
        auth_type: &str,
    ) -> std::result::Result<(), PluginError> {
        self.block_on(async {
            let mut client = self.storage.client().await?;
            external::record_authorized(&mut client, auth_type, user).await
        })
        .map_err(|e| store_error("publish_authorized", e))
    }

    /// This auth type's configuration for a tenant (`None` when it has none).
    pub fn external_tenant_config(
        &self,
        tenant: &str,
        auth_type: &str,
    ) -> std::result::Result<Option<serde_json::Value>, PluginError> {
        let outcome = self.block_on(self.with_client(async |c| {
            external::get_config(c, &self.keyring, auth_type, tenant).await
        }));
        match outcome {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NotFound | StoreError::UnknownType) => Ok(None),
            Err(e) => Err(store_error("external_tenant_config", e)),
        }
    }

    /// The tenant owning a domain name, as JSON for plugins.
    pub fn tenant_by_domain_name(&self, name: &str) -> Result<Option<serde_json::Value>> {
        self.block_on(async {
            let client = self.storage.client().await?;
            let tenant = wazo_auth_core::tenants::by_domain_name(&client, name).await?;
            Ok(tenant.map(tenant_json))
        })
    }

    /// The tenant named by a uuid or a slug (the deprecated `tenant_id` of a login).
    pub fn tenant_by_id(&self, id: &str) -> Result<Option<serde_json::Value>> {
        self.block_on(async {
            let client = self.storage.client().await?;
            let tenant = wazo_auth_core::tenants::by_uuid_or_slug(&client, id).await?;
            Ok(tenant.map(tenant_json))
        })
    }

    /// The LDAP configuration of a tenant with its bind password opened (for the built-in LDAP
    /// plugins only: the caller checks).
    pub fn ldap_config(&self, tenant_uuid: &str) -> Result<Option<serde_json::Value>> {
        let found = self.block_on(wazo_auth_core::services::ldap::login_config(
            &self.storage,
            &self.keyring,
            tenant_uuid,
        ))?;
        Ok(found.map(|(c, password)| {
            json!({
                "tenant_uuid": c.tenant_uuid,
                "host": c.host,
                "port": c.port,
                "protocol_version": c.protocol_version,
                "protocol_security": c.protocol_security,
                "bind_dn": c.bind_dn,
                "bind_password": password,
                "user_base_dn": c.user_base_dn,
                "user_login_attribute": c.user_login_attribute,
                "user_email_attribute": c.user_email_attribute,
                "search_filters": c.search_filters,
            })
        }))
    }

    pub fn external_config(
        &self,
        user: &str,
        auth_type: &str,
    ) -> std::result::Result<Option<serde_json::Value>, PluginError> {
        let outcome = self.block_on(self.with_client(async |c| {
            let tenant = external::user_tenant(c, user).await?;
            external::get_config(c, &self.keyring, auth_type, &tenant).await
        }));
        match outcome {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NotFound | StoreError::UnknownType) => Ok(None),
            Err(e) => Err(store_error("external_config", e)),
        }
    }
}

/// A store error as the plugin sees it (details are logged, never handed over).
fn store_error(service: &str, e: StoreError) -> PluginError {
    match e {
        StoreError::UnknownUser => PluginError::new(ErrorKind::NOT_FOUND, "unknown user"),
        StoreError::UnknownType | StoreError::NotFound => {
            PluginError::new(ErrorKind::NOT_FOUND, "no data for this user")
        }
        StoreError::UnknownTenant => PluginError::new(ErrorKind::NOT_FOUND, "unknown tenant"),
        StoreError::Conflict => {
            PluginError::new(ErrorKind::CONFLICT, "data already exists for this user")
        }
        StoreError::Other(e) => {
            log::error!("host service {service} failed: {e}");
            PluginError::new(ErrorKind::UNAVAILABLE, format!("{service} failed"))
        }
    }
}

async fn find_enabled_user(storage: &Storage, login: &str) -> Result<Option<UserRecord>> {
    let client = storage.client().await?;
    wazo_auth_core::users::find_enabled_user_by_login(&client, login).await
}

async fn replace_password(
    storage: &Storage,
    user_uuid: &str,
    old: &StoredPassword,
    new: &StoredPassword,
) -> Result<bool> {
    let client = storage.client().await?;
    // Only if the password did not change meanwhile.
    wazo_auth_core::users::replace_password(&client, user_uuid, old, new).await
}

/// Group policies then user policies (see `wazo_auth_core::policies::user_acl`).
pub async fn user_acl(storage: &Storage, user_uuid: &str) -> Result<Vec<String>> {
    let client = storage.client().await?;
    wazo_auth_core::policies::user_acl(&client, user_uuid).await
}

/// A tenant as the host services give it to plugins.
fn tenant_json(t: wazo_auth_core::tenants::Tenant) -> serde_json::Value {
    json!({
        "uuid": t.uuid,
        "name": t.name,
        "slug": t.slug,
        "parent_uuid": t.parent_uuid,
        "domain_names": t.domain_names,
    })
}
