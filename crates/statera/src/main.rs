//! `statera`: read the settings, build the parts, run them.

mod agent;
mod api_server;
mod handover;
mod identity;
mod key_manager;
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
    /// Run Statera: the API, the controller and the data planes (`--role`), over
    /// SQLite in the data directory or a shared PostgreSQL database (`--store`).
    Serve(Box<settings::ServeArgs>),
    /// Run the data planes as an agent of a controller (`statera serve
    /// --agent-listen`), over gRPC with mutual TLS.
    Agent(Box<agent::AgentArgs>),
    /// The agents' certificates (on the controller): enrolment tokens, the
    /// list, revocation.
    #[command(subcommand)]
    Agents(agent::AgentsCommand),
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
    /// The store's schema: `status` (exit 0 current, 3 upgrade needed, 4 a
    /// schema this Statera does not know) and `upgrade`.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Internal: read a PKCS#12 bundle from stdin (the key manager runs this
    /// under CPU and memory limits; not for operators).
    #[command(hide = true)]
    InternalReadPkcs12,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Say whether the schema is current, behind, or unknown to this binary.
    Status(DbArgs),
    /// Apply the migrations this binary has and the database lacks (run it
    /// on one node before starting the new version's `serve`).
    Upgrade(DbArgs),
}

#[derive(clap::Args)]
struct DbArgs {
    /// `postgres://USER@HOST:PORT/DATABASE`; left out: SQLite in --data-dir.
    #[arg(long, env = "STATERA_STORE")]
    store: Option<String>,
    #[arg(long, env = "STATERA_DATA_DIR", default_value = "./statera-data")]
    data_dir: std::path::PathBuf,
}

fn run_db(command: DbCommand) -> anyhow::Result<std::process::ExitCode> {
    use statera_store::{Location, SchemaState};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (args, upgrade) = match command {
        DbCommand::Status(a) => (a, false),
        DbCommand::Upgrade(a) => (a, true),
    };
    let location = Location::parse(args.store.as_deref(), &args.data_dir)?;
    let status = runtime.block_on(async {
        if upgrade {
            statera_store::db_upgrade(&location).await
        } else {
            statera_store::db_status(&location).await
        }
    })?;
    let (word, code) = match &status.state {
        SchemaState::Current => ("current", 0),
        SchemaState::UpgradeNeeded { .. } => ("upgrade needed", 3),
        SchemaState::Unknown { .. } => ("unknown", 4),
    };
    println!("schema: {word}");
    println!("store: {}", location.display());
    println!("backend: {}", status.backend);
    println!("applied: {:?}", status.applied);
    println!("known: {:?}", status.known);
    match &status.state {
        SchemaState::UpgradeNeeded { pending } => println!("pending: {pending:?}"),
        SchemaState::Unknown { versions } => println!("unknown: {versions:?}"),
        SchemaState::Current => {}
    }
    Ok(std::process::ExitCode::from(code))
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

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    if let Command::InternalReadPkcs12 = cli.command {
        std::process::exit(statera_tls::isolated::child_main());
    }
    if let Command::Db { command } = cli.command {
        return run_db(command);
    }
    run(cli.command).map(|()| std::process::ExitCode::SUCCESS)
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
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
        Command::Agent(args) => {
            settings::init_logging(&settings::LogSection::default());
            let nofile = limits::raise_nofile();
            tracing::info!(
                soft = nofile.soft,
                "descriptor limit (RLIMIT_NOFILE) raised to the hard limit"
            );
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(agent::run(*args))
        }
        Command::Agents(command) => agent::run_agents(command),
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
        Command::Db { .. } => unreachable!("handled in main"),
        Command::InternalReadPkcs12 => unreachable!("handled in main"),
    }
}
