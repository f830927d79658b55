//! The built-in Keystone's commands: its start under `statera serve`
//! (bootstrap on a fresh store, clouds.yaml, the token keys), `statera
//! bootstrap` and `statera token-keys rotate`.

use crate::settings::{ServeArgs, Settings};
use anyhow::Context;
use clap::{Args, Subcommand};
use statera_identity::builtin::bootstrap::{
    BootstrapOptions, BootstrapOutcome, add_missing_services, bootstrap, is_fresh,
    write_clouds_yaml,
};
use statera_identity::builtin::{Builtin, key_repository};
use statera_store::Store;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The admin password given in the environment (`keystone-manage bootstrap`'s
/// `OS_BOOTSTRAP_PASSWORD`).
const PASSWORD_ENV: &str = "STATERA_ADMIN_PASSWORD";

fn clouds_yaml(data_dir: &Path) -> PathBuf {
    data_dir.join("clouds.yaml")
}

/// Write clouds.yaml when the bootstrap set a password.
fn write_credentials(
    data_dir: &Path,
    public_url: &str,
    out: &BootstrapOutcome,
) -> anyhow::Result<Option<PathBuf>> {
    let Some(password) = &out.admin_password else {
        return Ok(None);
    };
    let path = clouds_yaml(data_dir);
    write_clouds_yaml(&path, &format!("{public_url}/v3"), password)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(path))
}

/// `statera serve` in auth mode `builtin`: bootstrap a fresh store, then the
/// authenticator over the token keys of the data directory.
pub async fn start_builtin(
    store: &Arc<Store>,
    settings: &Settings,
    listen: SocketAddr,
) -> anyhow::Result<Builtin> {
    let data_dir = &settings.store.data_dir;
    let public_url = settings.auth.builtin.public_url(listen);
    if is_fresh(store) {
        let out = bootstrap(
            store,
            &BootstrapOptions {
                admin_password: std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()),
                public_url: public_url.clone(),
            },
        )
        .await
        .context("bootstrapping the built-in identity service")?;
        if let Some(path) = write_credentials(data_dir, &public_url, &out)? {
            tracing::info!(
                "identity bootstrapped: the admin's credentials are in {p}; use them with: \
                 OS_CLIENT_CONFIG_FILE={p} OS_CLOUD=statera openstack loadbalancer list",
                p = path.display()
            );
        }
    } else {
        let added = add_missing_services(store, &public_url)
            .await
            .context("adding the catalog's new services")?;
        if !added.is_empty() {
            tracing::info!(services = ?added, "catalog: added the services this Statera serves that it lacked");
        }
        // A data directory moved to another address keeps its old catalog:
        // clients would be sent there. Say so (bootstrap rewrites it).
        let expected = format!("{public_url}/v3");
        let state = store.snapshot();
        let identity = state
            .catalog_services
            .iter()
            .find(|s| s.kind == "identity")
            .and_then(|s| {
                state
                    .catalog_endpoints
                    .iter()
                    .find(|e| e.service_id == s.id && e.interface == "public")
                    .map(|e| e.url.clone())
            });
        if let Some(url) = identity.filter(|u| *u != expected) {
            tracing::warn!(
                catalog = %url,
                public_url = %public_url,
                "the catalog's identity endpoint is not this server's public URL: clients will be \
                 sent there; `statera bootstrap --public-url {public_url}` (server stopped) updates it"
            );
        }
    }
    Builtin::new(
        store.clone(),
        key_repository(data_dir),
        settings.auth.builtin.identity_settings(),
    )
    .context("opening the token key repository")
}

#[derive(Args, Debug)]
pub struct BootstrapArgs {
    /// A TOML settings file (see statera.example.toml).
    #[arg(long, env = "STATERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the SQLite store lives (run while `statera serve` is stopped).
    #[arg(long, env = "STATERA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The admin's password (else STATERA_ADMIN_PASSWORD; else an existing
    /// admin keeps its password and a new one gets a random password).
    #[arg(long)]
    pub admin_password: Option<String>,
    /// The URL clients reach the API at (catalog, clouds.yaml); default:
    /// `[auth.builtin] public_url`, else http:// + the listen address.
    #[arg(long)]
    pub public_url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum TokenKeysCommand {
    /// Rotate the token keys as `keystone-manage fernet_rotate`: the staged
    /// key becomes the primary, a new staged key is made, the oldest go
    /// beyond `[auth.builtin] max_active_keys`.
    Rotate(TokenKeysArgs),
}

#[derive(Args, Debug)]
pub struct TokenKeysArgs {
    #[arg(long, env = "STATERA_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "STATERA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keys kept, the staged one included (default `[auth.builtin] max_active_keys`).
    #[arg(long)]
    pub max_active_keys: Option<usize>,
}

fn settings_for(config: &Option<PathBuf>, data_dir: &Option<PathBuf>) -> anyhow::Result<Settings> {
    let mut settings = Settings::load(&ServeArgs {
        config: config.clone(),
        data_dir: data_dir.clone(),
        ..ServeArgs::default()
    })?;
    settings.store.data_dir = std::path::absolute(&settings.store.data_dir)
        .with_context(|| format!("resolving {}", settings.store.data_dir.display()))?;
    Ok(settings)
}

/// `statera bootstrap`: idempotent, like `keystone-manage bootstrap`.
pub async fn run_bootstrap(args: BootstrapArgs) -> anyhow::Result<()> {
    let mut settings = settings_for(&args.config, &args.data_dir)?;
    if let Some(u) = &args.public_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            anyhow::bail!("--public-url must start with http:// or https://, not '{u}'");
        }
        settings.auth.builtin.public_url = Some(u.clone());
    }
    let data_dir = settings.store.data_dir.clone();
    let store = Store::open(&data_dir, settings.store.durability)
        .await
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    let public_url = settings.auth.builtin.public_url(settings.api.listen);
    let password = args
        .admin_password
        .or_else(|| std::env::var(PASSWORD_ENV).ok())
        .filter(|p| !p.is_empty());
    let out = bootstrap(
        &store,
        &BootstrapOptions {
            admin_password: password,
            public_url: public_url.clone(),
        },
    )
    .await
    .context("bootstrapping the built-in identity service")?;
    key_repository(&data_dir)
        .setup()
        .context("setting up the token keys")?;
    let written = write_credentials(&data_dir, &public_url, &out)?;
    store.close().await;
    println!(
        "admin user {} in project admin ({}): {}; catalog at {public_url}",
        out.admin_user_id,
        out.admin_project_id,
        match (out.created_admin, &written) {
            (true, Some(p)) => format!("created, credentials in {}", p.display()),
            (false, Some(p)) => format!("password set, credentials in {}", p.display()),
            _ => "exists, password unchanged".to_string(),
        }
    );
    if let Some(p) = written {
        println!(
            "use it with: OS_CLIENT_CONFIG_FILE={} OS_CLOUD=statera openstack loadbalancer list",
            p.display()
        );
    }
    Ok(())
}

/// `statera token-keys rotate`.
pub fn run_token_keys(cmd: TokenKeysCommand) -> anyhow::Result<()> {
    match cmd {
        TokenKeysCommand::Rotate(args) => {
            let settings = settings_for(&args.config, &args.data_dir)?;
            let max = args
                .max_active_keys
                .unwrap_or(settings.auth.builtin.max_active_keys);
            if max < 2 {
                anyhow::bail!("--max-active-keys must be at least 2");
            }
            let repo = key_repository(&settings.store.data_dir);
            let keys = repo.rotate(max).context("rotating the token keys")?;
            println!(
                "token keys in {}: {:?} (primary {}, staged 0)",
                repo.dir().display(),
                keys,
                keys[0]
            );
            Ok(())
        }
    }
}
