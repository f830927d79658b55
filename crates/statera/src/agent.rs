//! `statera agent`: the data planes (the native engine and the HAProxy
//! provider) in a process of their own, driven by a controller (`statera
//! serve --agent-listen`) over gRPC with mutual TLS (crates/statera-agent).
//! The agent serves what it was last told, kept on disk, whether or not a
//! controller is connected; a second `statera agent` on the same data
//! directory takes its sockets over (handover.rs), so upgrading an agent
//! drops nothing either.

use crate::handover;
use anyhow::Context;
use statera_agent::agent::{self as remote, Agent};
use statera_agent::plumbing::Plumbed;
use statera_config::{DataPlane, StatusReport};
use statera_dataplane::{Engine, EngineOptions};
use statera_haproxy::{HaproxyOptions, HaproxyProvider};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

#[derive(clap::Args)]
pub struct AgentArgs {
    /// The controller's agents' endpoint: HOST:PORT (its `statera serve
    /// --agent-listen`), or `unix:PATH`, the same endpoint on its Unix
    /// socket `<its data dir>/agents.sock` (an agent on the controller's
    /// machine in another network namespace).
    #[arg(long, env = "STATERA_AGENT_CONTROLLER")]
    controller: String,
    /// Where the agent keeps its certificate, the configurations it serves
    /// and its HAProxy processes' files.
    #[arg(long, env = "STATERA_DATA_DIR", default_value = "./statera-agent-data")]
    data_dir: PathBuf,
    /// This agent's name, as its certificate will carry it (first start
    /// only); default: the host's name.
    #[arg(long, env = "STATERA_AGENT_NAME")]
    name: Option<String>,
    /// A one-time token from `statera agent-token create` on the controller
    /// (first start only).
    #[arg(long, env = "STATERA_AGENT_TOKEN")]
    enroll_token: Option<String>,
    /// The controller's agents' CA (its `<data-dir>/agent-pki/ca.pem`), to
    /// check the controller at enrolment (first start only).
    #[arg(long, env = "STATERA_AGENT_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// `host`: VIPs are this host's own addresses (loopback subnets);
    /// `netns`: each load balancer's VIP in a namespace of its own on this
    /// host, built from what the controller sends (needs root; the
    /// controller runs `--network-driver netns` too).
    #[arg(long, env = "STATERA_NETWORK_DRIVER", default_value = "host", value_parser = ["host", "netns"])]
    network_driver: String,
    /// With `netns` (required): the prefix of this host's namespaces (its
    /// switch `<prefix>switch`, its load balancers' `<prefix>lb-<id>`): one
    /// of its own per agent sharing a kernel (an agent removes the load
    /// balancer namespaces under its prefix that it does not serve).
    #[arg(long, env = "STATERA_NAMESPACE_PREFIX")]
    namespace_prefix: Option<String>,
    /// With `netns`: the switch namespace this host's bridges are trunked
    /// to, one veth pair per network (the controller's `<its
    /// prefix>switch`). One machine only: across machines the trunk would
    /// be a VXLAN device per network, not built.
    #[arg(
        long,
        env = "STATERA_UPLINK_NAMESPACE",
        default_value = "statera-switch"
    )]
    uplink_namespace: String,
}

/// Up to 40 letters, digits, '-' or '_' (as `statera serve`'s).
fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 40
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let dir = std::path::absolute(&args.data_dir)
        .with_context(|| format!("resolving {}", args.data_dir.display()))?;
    crate::serve::private_dir(&dir)?;
    let (lock, taken) = match handover::Lock::try_acquire(&dir)
        .with_context(|| format!("locking {}", dir.join(handover::LOCK).display()))?
    {
        Some(lock) => (lock, None),
        None => crate::serve::take_over(&dir, "agent").await?,
    };
    let netns = args.network_driver == "netns";
    let prefix = args.namespace_prefix.clone().unwrap_or_default();
    if netns {
        if !(valid_prefix(&prefix) && valid_prefix(&args.uplink_namespace)) {
            anyhow::bail!(
                "with --network-driver netns, --namespace-prefix (one of its own per agent) and \
                 --uplink-namespace are 1-40 letters, digits, '-' or '_'"
            );
        }
        if args.uplink_namespace.starts_with(&prefix) {
            // Its own switch, or a namespace it would take as its own.
            anyhow::bail!(
                "--uplink-namespace {} is under this agent's own --namespace-prefix {prefix}",
                args.uplink_namespace
            );
        }
    }
    let credentials = match remote::load_credentials(&dir)? {
        Some(c) => c,
        None => {
            let (Some(token), Some(ca_file)) = (&args.enroll_token, &args.ca_file) else {
                anyhow::bail!(
                    "this agent is not enrolled: give --enroll-token (from `statera agent-token create` \
                     on the controller) and --ca-file (the controller's <data-dir>/agent-pki/ca.pem)"
                );
            };
            let ca = std::fs::read_to_string(ca_file)
                .with_context(|| format!("reading {}", ca_file.display()))?;
            let name = match &args.name {
                Some(n) => n.clone(),
                None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_else(|_| "agent".into()),
            };
            let c = remote::enroll(&args.controller, &ca, token, &name, &dir)
                .await
                .map_err(anyhow::Error::msg)?;
            tracing::info!(agent = %name, "enrolled");
            c
        }
    };
    // The name the certificate carries: what the controller fences this
    // host's trunks by.
    let name = remote::certified_name(&credentials).map_err(anyhow::Error::msg)?;
    let network = if netns {
        let network =
            statera_agent::plumbing::HostNetwork::new(&prefix, &args.uplink_namespace, &name)
                .context("starting the netns network driver")?;
        tracing::info!(%prefix, uplink = %args.uplink_namespace, "network driver: netns");
        Some(Arc::new(network))
    } else {
        None
    };
    let plumbed = |plane: Arc<dyn DataPlane>| -> Arc<dyn DataPlane> {
        Arc::new(Plumbed::new(plane, network.clone()))
    };

    let (report_tx, reports) = mpsc::unbounded_channel::<StatusReport>();
    let engine = Engine::with_options(report_tx.clone(), EngineOptions::default());
    let taken = taken.map(|mut t| {
        engine.inherit(std::mem::take(&mut t.sockets));
        t
    });
    let mut planes: HashMap<String, Arc<dyn DataPlane>> = HashMap::new();
    planes.insert("native".into(), plumbed(Arc::new(engine.clone())));
    let haproxy = statera_haproxy::find_haproxy().map(|binary| {
        let mut options = HaproxyOptions::new(dir.join("haproxy"));
        options.binary = binary;
        options.stop_timeout = std::time::Duration::from_secs(5);
        Arc::new(HaproxyProvider::new(options, report_tx))
    });
    if let Some(h) = &haproxy {
        planes.insert("haproxy".into(), plumbed(h.clone() as Arc<dyn DataPlane>));
    }
    let agent = Arc::new(Agent::new(planes, &dir)?);
    // What is kept on disk is claimed first, so that the session (started
    // now: the controller must hear from this agent within its timeout)
    // claims it while it is restored.
    let claimed = agent.claim_kept();
    if let Some(network) = &network {
        // Namespaces of load balancers removed while this agent could not
        // finish (or kept configurations lost) go.
        let keep = agent.claimed_ids();
        let network = network.clone();
        tokio::task::spawn_blocking(move || network.remove_unkept(&keep))
            .await?
            .context("removing namespaces nothing serves")?;
    }
    let mut handover_rx = handover::listen(&dir)?;
    let mut lock = Some(lock);
    let (mut stop_tx, stop_rx) = watch::channel(false);
    let mut session = tokio::spawn(agent.clone().run(
        args.controller.clone(),
        credentials.clone(),
        reports,
        stop_rx,
    ));
    let restored = agent.restore(true).await;
    engine.release_inherited();
    tracing::info!(claimed, restored, controller = %args.controller, "statera agent serving");
    if let Some(taken) = taken {
        tokio::task::spawn_blocking(move || taken.serving()).await??;
    }
    loop {
        // The session runs on until a real handover request has been read
        // (a connection that says nothing changes nothing).
        let taken = tokio::select! {
            () = crate::serve::shutdown_signal() => None,
            Some(taken) = handover::next_take(&mut handover_rx, "agent") => Some(taken),
        };
        let _ = stop_tx.send(true);
        let reports = (&mut session).await?;
        let Some((pid, mut stream)) = taken else {
            // Stopped: the load balancers stop with it.
            if let Some(h) = &haproxy {
                h.shutdown().await;
            }
            return Ok(());
        };
        tracing::info!(pid, "a new statera agent takes over");
        if let Some(h) = &haproxy {
            h.detach().await;
        }
        let sockets = engine.listening_sockets().await?;
        drop(lock.take());
        let given = tokio::task::spawn_blocking(move || {
            handover::give(&mut stream, None::<std::os::fd::BorrowedFd<'_>>, &sockets)?;
            handover::wait_serving(&mut stream, std::time::Duration::from_secs(600))
        })
        .await?;
        if matches!(given, Ok(true)) {
            return crate::serve::drain(&engine).await;
        }
        match handover::Lock::try_acquire(&dir)? {
            Some(l) => {
                tracing::warn!("the new statera agent did not take over: serving on");
                lock = Some(l);
                let (tx, rx) = watch::channel(false);
                stop_tx = tx;
                session = tokio::spawn(agent.clone().run(
                    args.controller.clone(),
                    credentials.clone(),
                    reports,
                    rx,
                ));
                // The HAProxy processes were let go: take them back (the
                // native load balancers never stopped).
                agent.restore(false).await;
            }
            None => return crate::serve::drain(&engine).await,
        }
    }
}

#[derive(clap::Subcommand)]
pub enum AgentsCommand {
    /// Make a one-time enrolment token for a new agent (printed once).
    Token {
        #[arg(long, env = "STATERA_DATA_DIR", default_value = "./statera-data")]
        data_dir: PathBuf,
        /// How long the token may be used.
        #[arg(long, default_value_t = 3600)]
        ttl_seconds: u64,
    },
    /// The agents' certificates: name, fingerprint, revoked or not.
    List {
        #[arg(long, env = "STATERA_DATA_DIR", default_value = "./statera-data")]
        data_dir: PathBuf,
    },
    /// Revoke an agent's certificates: its sessions are refused from its
    /// next connection on.
    Revoke {
        name: String,
        #[arg(long, env = "STATERA_DATA_DIR", default_value = "./statera-data")]
        data_dir: PathBuf,
    },
}

pub fn run_agents(command: AgentsCommand) -> anyhow::Result<()> {
    use statera_agent::pki::Pki;
    match command {
        AgentsCommand::Token {
            data_dir,
            ttl_seconds,
        } => {
            let pki = Pki::open(&data_dir)?;
            let token = pki.create_token(std::time::Duration::from_secs(ttl_seconds))?;
            println!("{token}");
            eprintln!(
                "one-time enrolment token, valid {ttl_seconds} s; the agent also needs {}",
                data_dir.join("agent-pki").join("ca.pem").display()
            );
        }
        AgentsCommand::List { data_dir } => {
            for a in Pki::open(&data_dir)?.agents()? {
                let state = if a.revoked { "revoked" } else { "valid" };
                println!("{}\t{}\t{state}", a.name, a.fingerprint);
            }
        }
        AgentsCommand::Revoke { name, data_dir } => {
            let n = Pki::open(&data_dir)?.revoke(&name)?;
            println!("revoked {n} certificate(s) of {name}");
        }
    }
    Ok(())
}
