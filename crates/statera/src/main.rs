//! `statera`: read the settings, build the parts, run them.

mod api_server;
mod identity;
mod limits;
mod serve;
mod settings;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "statera",
    version,
    about = "Load balancing as a service: the Octavia v2 API with its own data plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: API, controller, native data plane, SQLite store.
    Serve(Box<settings::ServeArgs>),
    /// The authorization policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Create the built-in identity service's first objects (the `admin`
    /// user and project, the roles, the catalog) and `<data-dir>/clouds.yaml`,
    /// idempotently, like `keystone-manage bootstrap`. Run it while `statera
    /// serve` is stopped (`serve` does it by itself on a fresh store).
    Bootstrap(identity::BootstrapArgs),
    /// The built-in identity service's token keys (`<data-dir>/token-keys`).
    TokenKeys {
        #[command(subcommand)]
        command: identity::TokenKeysCommand,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print the effective rules (`"name": "check string"`, one per line,
    /// YAML a policy file may start from); overridden ones are marked.
    List {
        /// The operator's policy file to apply over the defaults.
        #[arg(long, env = "STATERA_POLICY_FILE")]
        policy_file: Option<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let settings = settings::Settings::load(&args)?;
            settings::init_logging(&settings.log);
            let nofile = limits::raise_nofile();
            tracing::info!(
                soft_before = nofile.soft_before,
                soft = nofile.soft,
                hard = %nofile.hard.map_or("unlimited".to_string(), |h| h.to_string()),
                "descriptor limit (RLIMIT_NOFILE) raised to the hard limit"
            );
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve::run(settings, nofile.soft))
        }
        Command::Policy(PolicyCommand::List { policy_file }) => {
            let enforcer = statera_policy::Enforcer::load(policy_file.as_deref())?;
            print!("{}", enforcer.listing());
            Ok(())
        }
        Command::Bootstrap(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(identity::run_bootstrap(args)),
        Command::TokenKeys { command } => identity::run_token_keys(command),
    }
}
