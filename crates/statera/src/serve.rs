//! `statera serve`: the API, the controller and the data planes in one
//! process, over the store: SQLite in the data directory by default, or a
//! PostgreSQL database several nodes share (`--store`), each node running
//! the roles `--role` names.

use crate::api_server::{self, ServerLimits};
use crate::handover;
use crate::settings::Settings;
use anyhow::Context;
use statera_api::{ApiSettings, AppState, ProviderInfo, QuotaDefaults};
use statera_config::DataPlane;
use statera_config::StatusReport;
use statera_controller::{Controller, NetnsNetwork, Sharing};
use statera_dataplane::{Engine, EngineOptions, FdBudget};
use statera_haproxy::{HaproxyOptions, HaproxyProvider};
use statera_model::addressing::HostAddressSpace;
use statera_model::{HealthMonitorType, ListenerProtocol};
use statera_store::{Location, PgOptions, Store};
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

fn providers(haproxy_available: bool) -> Vec<ProviderInfo> {
    vec![
        ProviderInfo {
            name: "native".to_string(),
            description: "Statera's own data plane, in process.".to_string(),
            available: true,
            flavor_capabilities: vec![(
                "loadbalancer_topology".to_string(),
                "The load balancer topology. One of: SINGLE - One data-plane instance per load balancer.".to_string(),
            )],
            availability_zone_capabilities:
                statera_api::octavia::providers::octavia_availability_zone_capabilities(),
            unsupported_listener_protocols: vec![ListenerProtocol::Sctp],
            unsupported_monitor_types: vec![HealthMonitorType::Sctp],
            pool_tls: true,
            // Members get HTTP/1.1 from the native data plane (no h2 yet).
            pool_h2: false,
        },
        ProviderInfo {
            name: "haproxy".to_string(),
            description: if haproxy_available {
                "One HAProxy process per load balancer (the Neutron LBaaS HAProxy driver's model).".to_string()
            } else {
                "One HAProxy process per load balancer (unavailable here: no haproxy executable found).".to_string()
            },
            available: haproxy_available,
            flavor_capabilities: vec![(
                "loadbalancer_topology".to_string(),
                "The load balancer topology. One of: SINGLE - One HAProxy process per load balancer.".to_string(),
            )],
            availability_zone_capabilities:
                statera_api::octavia::providers::octavia_availability_zone_capabilities(),
            unsupported_listener_protocols: vec![
                ListenerProtocol::Udp,
                ListenerProtocol::Sctp,
                ListenerProtocol::Prometheus,
            ],
            // PING needs an external-check script; UDP-CONNECT and SCTP checks
            // belong to keepalived in Octavia's amphora.
            unsupported_monitor_types: vec![
                HealthMonitorType::Ping,
                HealthMonitorType::UdpConnect,
                HealthMonitorType::Sctp,
            ],
            pool_tls: true,
            pool_h2: true,
        },
    ]
}

/// Create the ready-made `host-net` network and `host-subnet` subnet if absent.
async fn ensure_host_network(store: &Store, settings: &Settings) -> anyhow::Result<()> {
    let (network, subnet) = statera_net::host::default_network(
        &settings.api.default_project_id,
        settings.network.host_subnet,
        statera_model::now(),
    )
    .map_err(anyhow::Error::msg)?;
    store
        .write(|txn| {
            let s = txn.state();
            if s.networks.iter().any(|n| n.name == network.name) {
                return Ok(());
            }
            txn.put(network)?;
            txn.put(subnet)?;
            Ok::<_, statera_store::StoreError>(())
        })
        .await?;
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// Shares out the descriptor table (`nofile` descriptors) and logs how.
fn fd_budget(settings: &Settings, nofile: u64) -> anyhow::Result<FdBudget> {
    let nonzero = |n: u64| (n > 0).then_some(n);
    let budget = FdBudget::plan(
        nofile,
        nonzero(settings.api.max_connections),
        nonzero(settings.limits.reserved_fds),
        u64::from(settings.limits.lb_max_connections),
    )
    .map_err(anyhow::Error::msg)?;
    tracing::info!(
        nofile,
        api_connections = budget.api_connections,
        control_reserve = budget.control_reserve,
        pipe_reserve = budget.pipe_reserve,
        lb_connections_total = budget.connections.total.unwrap_or(u64::MAX),
        lb_connections_each = budget.connections.per_lb.unwrap_or(u64::MAX),
        "descriptor budget"
    );
    Ok(budget)
}

/// What outlives the control part (store, controller, API): the data
/// planes, the API's listening socket, the lock on the data directory.
struct Parts {
    settings: Settings,
    budget: FdBudget,
    policy: Arc<statera_policy::Enforcer>,
    location: Location,
    engine: Engine,
    planes: HashMap<String, Arc<dyn DataPlane>>,
    haproxy: Option<Arc<HaproxyProvider>>,
    /// Where the data planes' reports go: the running controller's channel.
    reports: Arc<std::sync::Mutex<Option<mpsc::UnboundedSender<StatusReport>>>>,
    /// The API's listening socket, bound once (or handed over) and kept
    /// across control restarts: requests wait in its queue meanwhile.
    api_socket: Option<std::net::TcpListener>,
    /// With `--agent-listen`: the agents' certificate authority; the load
    /// balancers are served by agents (`statera agent`), not here.
    agents: Option<Arc<statera_agent::pki::Pki>>,
}

/// Why the control part stopped.
enum Stopped {
    /// SIGTERM or Ctrl-C: stop everything.
    Signal,
    /// Another `statera serve` takes over.
    Handover(std::os::unix::net::UnixStream),
}

pub async fn run(mut settings: Settings, nofile: u64) -> anyhow::Result<()> {
    let budget = fd_budget(&settings, nofile)?;
    // Refuse a bad policy before anything starts.
    let policy = Arc::new(
        statera_policy::Enforcer::load(settings.auth.policy_file.as_deref())
            .context("loading the policy")?,
    );
    // Absolute from here on: HAProxy runs in its load balancer's directory
    // under it, and is given paths under it (its configuration file).
    settings.store.data_dir = std::path::absolute(&settings.store.data_dir)
        .with_context(|| format!("resolving {}", settings.store.data_dir.display()))?;
    let location = Location::parse(settings.store.url.as_deref(), &settings.store.data_dir)?;
    private_dir(&settings.store.data_dir)?;
    let (runs_api, runs_controller) = (settings.node.runs("api"), settings.node.runs("controller"));
    let shared = matches!(location, Location::Postgres(_));
    if shared && runs_controller && settings.network.driver == "netns" {
        anyhow::bail!(
            "the netns network driver keeps a load balancer's namespace on the controller's host, \
             which a shared store cannot move between controllers yet: use the host driver with --store postgres://…"
        );
    }

    if settings.node.agent_listen.is_some() && shared {
        anyhow::bail!(
            "--agent-listen works with one controller on SQLite for now (agents of several \
             controllers sharing PostgreSQL are not built yet)"
        );
    }
    // One process serves a data directory: take it over from the one that
    // does, if any (handover.rs).
    let dir = settings.store.data_dir.clone();
    let (lock, taken) = match handover::Lock::try_acquire(&dir)
        .with_context(|| format!("locking {}", dir.join(handover::LOCK).display()))?
    {
        Some(lock) => (lock, None),
        None => take_over(&dir, "serve").await?,
    };

    let (report_tx, report_rx) = mpsc::unbounded_channel();
    let engine = Engine::with_options(
        report_tx.clone(),
        EngineOptions {
            limits: budget.connections,
            ..EngineOptions::default()
        },
    );
    let mut api_socket = None;
    let taken = taken.map(|mut t| {
        engine.inherit(std::mem::take(&mut t.sockets));
        // The old API socket serves on only where this process listens too
        // (a changed --listen binds anew; the old socket closes with the
        // old process).
        api_socket = t
            .api
            .take()
            .map(std::net::TcpListener::from)
            .filter(|socket| {
                let same = socket.local_addr().ok() == Some(settings.api.listen);
                if !same {
                    tracing::info!(listen = %settings.api.listen, "the API moves: not serving on the handed-over socket");
                }
                same && runs_api
            });
        t
    });
    let per_lb = budget
        .connections
        .per_lb
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let mut planes = HashMap::new();
    let native: Arc<dyn DataPlane> = Arc::new(engine.clone());
    // Octavia's names of its default provider serve load balancers on the
    // default provider (statera_api::DEFAULT_PROVIDER_ALIASES).
    for (alias, _) in statera_api::DEFAULT_PROVIDER_ALIASES {
        planes.insert(alias.to_string(), native.clone());
    }
    planes.insert("native".to_string(), native);
    // The HAProxy provider, when the executable is there: one process per load
    // balancer under <data-dir>/haproxy.
    let agent_mode = settings.node.agent_listen.is_some();
    let haproxy = statera_haproxy::find_haproxy()
        .filter(|_| !agent_mode)
        .map(|binary| {
            let mut options = HaproxyOptions::new(settings.store.data_dir.join("haproxy"));
            options.binary = binary;
            options.stop_timeout = std::time::Duration::from_secs(5);
            options.lb_max_connections = per_lb;
            Arc::new(HaproxyProvider::new(options, report_tx))
        });
    if let Some(h) = &haproxy {
        planes.insert("haproxy".to_string(), h.clone() as Arc<dyn DataPlane>);
    } else if !agent_mode {
        tracing::warn!("no haproxy executable found: the haproxy provider is unavailable");
    }
    let reports = Arc::new(std::sync::Mutex::new(None));
    tokio::spawn(relay_reports(report_rx, reports.clone()));
    let agents = if agent_mode {
        let pki = statera_agent::pki::Pki::open(&dir)
            .with_context(|| format!("opening the agents' CA in {}", dir.display()))?;
        Some(Arc::new(pki))
    } else {
        None
    };
    if runs_api && api_socket.is_none() {
        let socket = std::net::TcpListener::bind(settings.api.listen)
            .with_context(|| format!("binding the API to {}", settings.api.listen))?;
        api_socket = Some(socket);
    }
    if let Some(socket) = &api_socket {
        socket.set_nonblocking(true)?;
    }
    let mut handover_rx = handover::listen(&dir)
        .with_context(|| format!("listening on {}", handover::socket_path(&dir).display()))?;
    let parts = Parts {
        settings,
        budget,
        policy,
        location,
        engine,
        planes,
        haproxy,
        reports,
        api_socket,
        agents,
    };
    let mut lock = Some(lock);
    let mut taken = taken;
    loop {
        let stopped = control(&parts, &mut handover_rx, taken.take()).await?;
        let mut stream = match stopped {
            Stopped::Signal => {
                if let Some(h) = &parts.haproxy {
                    h.shutdown().await;
                }
                return Ok(());
            }
            Stopped::Handover(stream) => stream,
        };
        // The control part is down and the store closed: hand the sockets
        // over, then let go of the data directory.
        if let Some(h) = &parts.haproxy {
            h.detach().await;
        }
        let sockets = parts.engine.listening_sockets().await?;
        let api = parts
            .api_socket
            .as_ref()
            .map(|s| s.as_fd().try_clone_to_owned())
            .transpose()?;
        drop(lock.take());
        let n = sockets.len();
        let given = tokio::task::spawn_blocking(move || {
            handover::give(&mut stream, api.as_ref().map(|fd| fd.as_fd()), &sockets)?;
            handover::wait_serving(&mut stream, HANDOVER_WAIT)
        })
        .await?;
        match given {
            Ok(true) => {
                tracing::info!(
                    sockets = n,
                    "the new statera serves: draining this one's connections"
                );
                return drain(&parts.engine).await;
            }
            Ok(false) | Err(_) => {
                if let Err(error) = &given {
                    tracing::error!(%error, "handover failed");
                }
                // Serve on, unless the new process holds the data directory.
                match handover::Lock::try_acquire(&dir)? {
                    Some(l) => {
                        tracing::warn!("the new statera serve did not take over: serving on");
                        lock = Some(l);
                    }
                    None => {
                        tracing::warn!(
                            "the new statera serve holds the data directory: draining this one"
                        );
                        return drain(&parts.engine).await;
                    }
                }
            }
        }
    }
}

/// Binds `addr`, retrying for a few seconds while another process (the one
/// handing over) still holds it.
async fn bind_retrying(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < until =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How long an old process waits for the new one to serve.
const HANDOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Takes over from the `statera serve` holding `dir`: its sockets, then its
/// lock.
pub(crate) async fn take_over(
    dir: &std::path::Path,
    role: &'static str,
) -> anyhow::Result<(handover::Lock, Option<handover::Taken>)> {
    let d = dir.to_path_buf();
    let taken = tokio::task::spawn_blocking(move || {
        handover::take_over(&d, std::time::Duration::from_secs(120), role)
    })
    .await?
    .with_context(|| format!("taking over from the statera serve on {}", dir.display()))?;
    let Some(taken) = taken else {
        anyhow::bail!(
            "another process holds {} and does not hand over (an older statera serve?): stop it first",
            dir.join(handover::LOCK).display()
        );
    };
    tracing::info!(
        from = taken.from_pid.unwrap_or_default(),
        sockets = taken.sockets.len(),
        api = taken.api.is_some(),
        "taking over from the running statera serve"
    );
    let d = dir.to_path_buf();
    let lock = tokio::task::spawn_blocking(move || {
        handover::Lock::acquire_within(&d, std::time::Duration::from_secs(30))
    })
    .await??
    .context("the running statera serve kept its lock")?;
    Ok((lock, Some(taken)))
}

/// After a handover: no new connections here; the open ones finish, up to
/// the drain timeout (or a second signal).
pub(crate) async fn drain(engine: &Engine) -> anyhow::Result<()> {
    engine.stop_accepting().await;
    let until = tokio::time::Instant::now() + engine.drain_timeout();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        let open = engine.connections().1;
        if open == 0 {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
            () = tokio::time::sleep_until(until) => {
                tracing::warn!(open, "connections still open at the drain timeout are closed");
                break;
            }
            () = &mut signal => break,
        }
    }
    tracing::info!("handed over; exiting");
    Ok(())
}

/// Forwards the data planes' reports to the running controller, if any.
async fn relay_reports(
    mut rx: mpsc::UnboundedReceiver<StatusReport>,
    to: Arc<std::sync::Mutex<Option<mpsc::UnboundedSender<StatusReport>>>>,
) {
    while let Some(report) = rx.recv().await {
        let guard = to.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = guard.as_ref() {
            let _ = tx.send(report);
        }
    }
}

/// The control part: the store, the controller, the API. Returns when a
/// signal or a handover stops it, with everything it started stopped and
/// the store closed; the data planes serve on.
async fn control(
    parts: &Parts,
    handover_rx: &mut mpsc::Receiver<std::os::unix::net::UnixStream>,
    taken: Option<handover::Taken>,
) -> anyhow::Result<Stopped> {
    let settings = &parts.settings;
    let location = &parts.location;
    let (runs_api, runs_controller) = (settings.node.runs("api"), settings.node.runs("controller"));
    let store = Arc::new(
        Store::open_at(
            location,
            settings.store.durability,
            PgOptions {
                // A write holds one connection while it may reload on it,
                // adoption holds one across a write, heartbeats and syncs
                // take their turns: fewer than 4 can stall a node.
                max_connections: settings.store.max_connections.max(4),
                ..PgOptions::default()
            },
        )
        .await
        .with_context(|| format!("opening the store ({})", location.display()))?,
    );
    let node_id = match &settings.node.id {
        Some(id) => id.clone(),
        None => node_id(&settings.store.data_dir)?,
    };
    tracing::info!(
        store = %location.display(),
        node = %node_id,
        roles = ?settings.node.roles,
        "store opened"
    );
    ensure_host_network(&store, settings).await?;
    // The API serves it; the controller reads listeners' certificates from it.
    let key_manager = Arc::new(crate::key_manager::start(settings, &store).await?);

    let (report_tx, report_rx) = mpsc::unbounded_channel();
    *parts.reports.lock().unwrap_or_else(|e| e.into_inner()) = Some(report_tx);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let (restored_tx, restored_rx) = tokio::sync::oneshot::channel();
    // With agents: their endpoint runs with the control part (a handover
    // closes it; agents reconnect to the new process) and the planes are
    // theirs.
    let (agent_stop_tx, agent_stop_rx) = watch::channel(false);
    let mut agent_server = None;
    let planes = match (&parts.agents, settings.node.agent_listen) {
        (Some(pki), Some(listen)) => {
            let report_tx = parts
                .reports
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .context("no report channel")?;
            let directory = Arc::new(StoreDirectory {
                store: store.clone(),
                // Agents' hosts are trunked into this switch (netns).
                switch: (settings.network.driver == "netns")
                    .then(|| format!("{}switch", settings.network.namespace_prefix)),
            });
            let hub = statera_agent::hub::Hub::new(
                pki.clone(),
                report_tx,
                std::time::Duration::from_secs_f64(settings.node.agent_timeout_s),
                directory,
            );
            tokio::spawn(hub.clone().failovers(agent_stop_rx.clone()));
            let listener = bind_retrying(listen)
                .await
                .with_context(|| format!("binding the agents' endpoint to {listen}"))?;
            tracing::info!(%listen, "agents' endpoint (gRPC, mutual TLS)");
            // The same endpoint on a Unix socket in the data directory:
            // agents of this machine in other network namespaces (each its
            // own "host") reach it whatever their network.
            let socket = settings.store.data_dir.join(AGENTS_SOCKET);
            let unix = bind_unix(&socket)
                .with_context(|| format!("binding the agents' endpoint to {}", socket.display()))?;
            let mut stop = agent_stop_rx.clone();
            tokio::spawn(hub.clone().serve_unix(unix, async move {
                let _ = stop.wait_for(|s| *s).await;
            }));
            let mut stop = agent_stop_rx.clone();
            agent_server = Some((
                hub.clone(),
                tokio::spawn(hub.clone().serve(listener, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })),
            ));
            let mut planes: HashMap<String, Arc<dyn DataPlane>> = HashMap::new();
            for name in statera_api::DEFAULT_PROVIDER_ALIASES
                .iter()
                .map(|(a, _)| *a)
                .chain(["native"])
            {
                planes.insert(name.to_string(), Arc::new(hub.plane("native")));
            }
            planes.insert("haproxy".to_string(), Arc::new(hub.plane("haproxy")));
            planes
        }
        _ => parts.planes.clone(),
    };
    let mut controller = Controller::new(store.clone(), planes, report_rx, host)
        .on_restored(restored_tx)
        .with_key_manager(key_manager.clone());
    if store.is_shared() {
        controller = controller.with_sharing(Sharing {
            node: node_id.clone(),
            timeout: std::time::Duration::from_secs_f64(settings.node.controller_timeout_s),
        });
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut network_task = None;
    if settings.network.driver == "netns" {
        let prefix = &settings.network.namespace_prefix;
        let network = if settings.node.agent_listen.is_some() {
            NetnsNetwork::for_agents(prefix)
        } else {
            NetnsNetwork::new(prefix)
        };
        let network = Arc::new(network.context("starting the netns network driver")?);
        tracing::info!(prefix = %settings.network.namespace_prefix, "network driver: netns");
        controller = controller.with_network(network.clone());
        network_task = Some(tokio::spawn(network.run(store.clone(), stop_rx.clone())));
    }
    let controller = if runs_controller {
        Some(tokio::spawn(controller.run(stop_rx)))
    } else {
        drop(controller);
        None
    };
    // A process that took over tells the old one once it serves: every load
    // balancer restored on the handed-over sockets.
    let mut taken = taken;
    let announce = async {
        if runs_controller {
            let _ = restored_rx.await;
        }
        if let Some(taken) = taken.take() {
            parts.engine.release_inherited();
            let told = tokio::task::spawn_blocking(move || taken.serving()).await;
            if !matches!(told, Ok(Ok(()))) {
                tracing::warn!("the process that handed over did not hear that this one serves");
            }
            tracing::info!("took over: serving");
        }
    };
    let why: Arc<std::sync::Mutex<Option<Stopped>>> = Arc::default();
    let stop_when = {
        let why = why.clone();
        async move {
            let stopped = tokio::select! {
                () = shutdown_signal() => Stopped::Signal,
                Some((pid, stream)) = handover::next_take(handover_rx, "serve") => {
                    tracing::info!(pid, "a new statera serve takes over: stopping the API and the controller");
                    Stopped::Handover(stream)
                }
            };
            *why.lock().unwrap_or_else(|e| e.into_inner()) = Some(stopped);
        }
    };

    if !runs_api {
        tracing::info!(node = %node_id, "statera controller running (no API on this node)");
        tokio::join!(announce, stop_when);
    } else {
        let Some(socket) = &parts.api_socket else {
            anyhow::bail!("no API socket");
        };
        let listener = tokio::net::TcpListener::from_std(socket.try_clone()?)?;
        serve_api(&store, key_manager, parts, listener, announce, stop_when).await?;
    }
    let stopped = why
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or(Stopped::Signal);
    *parts.reports.lock().unwrap_or_else(|e| e.into_inner()) = None;
    stop(stop_tx, controller, network_task, &store).await?;
    let _ = agent_stop_tx.send(true);
    if let Some((hub, mut server)) = agent_server {
        hub.close();
        match tokio::time::timeout(std::time::Duration::from_secs(3), &mut server).await {
            Ok(Ok(Err(error))) => tracing::warn!(%error, "the agents' endpoint failed"),
            Ok(Err(error)) => tracing::warn!(%error, "the agents' endpoint failed"),
            Ok(Ok(Ok(()))) => {}
            Err(_) => {
                tracing::warn!("the agents' endpoint did not stop within 3 s: stopped");
                server.abort();
            }
        }
    }
    Ok(stopped)
}

/// Serves the API on `listener` until `stop_when` resolves.
async fn serve_api(
    store: &Arc<Store>,
    key_manager: Arc<statera_service::keymanager::KeyManager>,
    parts: &Parts,
    listener: tokio::net::TcpListener,
    announce: impl std::future::Future<Output = ()>,
    stop_when: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let settings = &parts.settings;
    let q = settings.quotas;
    let api_settings = ApiSettings {
        default_project_id: settings.api.default_project_id.clone(),
        pagination_max_limit: settings.api.pagination_max_limit,
        default_provider: "native".to_string(),
        // With agents, HAProxy is theirs: offered when this host has it too
        // (an agent without it refuses haproxy load balancers).
        providers: providers(
            parts.haproxy.is_some()
                || (parts.agents.is_some() && statera_haproxy::find_haproxy().is_some()),
        ),
        quota_defaults: QuotaDefaults {
            loadbalancer: q.loadbalancer,
            listener: q.listener,
            member: q.member,
            pool: q.pool,
            healthmonitor: q.healthmonitor,
            l7policy: q.l7policy,
            l7rule: q.l7rule,
        },
        reserved_ips: settings.network.reserved_ips.clone(),
        host_address_space: if settings.network.driver == "netns" {
            HostAddressSpace::LoopbackSubnets
        } else {
            HostAddressSpace::AllSubnets
        },
        own_sockets: vec![listener.local_addr().unwrap_or(settings.api.listen)],
        neutron: settings
            .neutron
            .api_settings(Arc::new(statera_net::host::interface_addresses)),
        trust_proxy_headers: settings.api.trust_proxy_headers,
    };
    let auth: Arc<dyn statera_identity::Authenticator> =
        match statera_identity::AuthMode::parse(&settings.auth.mode) {
            Some(statera_identity::AuthMode::Builtin) => {
                let listen = listener.local_addr().unwrap_or(settings.api.listen);
                Arc::new(crate::identity::start_builtin(store, settings, listen).await?)
            }
            Some(statera_identity::AuthMode::Keystone) => {
                let keystone =
                    statera_identity::keystone::Keystone::new(settings.auth.keystone.config())
                        .map_err(anyhow::Error::msg)?;
                tracing::info!(
                    auth_url = %keystone.config().auth_url,
                    cache_seconds = keystone.config().cache_seconds,
                    "tokens validated by an external Keystone"
                );
                Arc::new(keystone)
            }
            _ => Arc::new(statera_identity::NoAuth {
                default_project_id: settings.api.default_project_id.clone(),
                default_roles: settings.auth.noauth.default_roles.clone(),
            }),
        };
    tracing::info!(mode = auth.mode().as_str(), "authentication");
    let router = statera_api::app(AppState {
        store: store.clone(),
        settings: Arc::new(api_settings),
        auth,
        policy: parts.policy.clone(),
        key_manager,
    });
    let app = tower::Layer::layer(
        &tower::util::MapRequestLayer::new(statera_api::normalize_path),
        router,
    );
    tracing::info!(listen = %listener.local_addr().unwrap_or(settings.api.listen), data_dir = %settings.store.data_dir.display(), "statera serving");
    let ms = std::time::Duration::from_millis;
    let limits = ServerLimits {
        max_connections: usize::try_from(parts.budget.api_connections).unwrap_or(usize::MAX),
        header_timeout: ms(settings.api.header_timeout_ms),
        body_timeout: ms(settings.api.body_timeout_ms),
        idle_timeout: ms(settings.api.idle_timeout_ms),
    };
    let shutdown = async move {
        tokio::join!(announce, stop_when);
    };
    api_server::serve(listener, app, limits, shutdown).await;
    Ok(())
}

async fn stop(
    stop_tx: watch::Sender<bool>,
    controller: Option<tokio::task::JoinHandle<()>>,
    network_task: Option<tokio::task::JoinHandle<()>>,
    store: &Store,
) -> anyhow::Result<()> {
    tracing::info!("stopping the controller and closing the store");
    let _ = stop_tx.send(true);
    if let Some(controller) = controller {
        let _ = controller.await;
    }
    if let Some(task) = network_task {
        let _ = task.await;
    }
    store.close().await;
    Ok(())
}

/// The data directory, made 0700 if absent (it holds token keys and, on
/// SQLite, the database).
pub(crate) fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("making {}", dir.display()))?;
    }
    Ok(())
}

/// This node's name, kept in `<data-dir>/node-id` (made at the first start:
/// the host's name and a random suffix), so a restart on the same data
/// directory is the same controller.
fn node_id(dir: &std::path::Path) -> anyhow::Result<String> {
    let path = dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "statera".into());
    let id = format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

/// What the agents' hub asks of the store: which load balancers an agent
/// may claim, and which agents a load balancer's availability zone allows.
/// The agents' endpoint's Unix socket, in the data directory.
pub const AGENTS_SOCKET: &str = "agents.sock";

/// Binds a Unix socket at `path` (0600: the endpoint is mutual TLS anyway,
/// but only its owner needs to reach it), replacing one left by a process
/// that stopped (or the one a handover replaces: its process stops serving
/// it).
fn bind_unix(path: &std::path::Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    // A deep data directory: bound through its descriptor's short path.
    let listener = handover::via_short_path(path, |p| tokio::net::UnixListener::bind(p))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

struct StoreDirectory {
    store: Arc<statera_store::Store>,
    /// The netns switch namespace agents' hosts are trunked into.
    switch: Option<String>,
}

impl statera_agent::hub::Directory for StoreDirectory {
    /// A load balancer that exists with that provider (an agent's `Hello`
    /// is checked against the store).
    fn may_claim(&self, lb_id: uuid::Uuid, provider: &str) -> bool {
        self.store
            .snapshot()
            .loadbalancers
            .get(&lb_id)
            .is_some_and(|lb| {
                let native = lb.provider == "native"
                    || statera_api::DEFAULT_PROVIDER_ALIASES
                        .iter()
                        .any(|(alias, _)| *alias == lb.provider);
                match provider {
                    "native" => native,
                    other => lb.provider == other,
                }
            })
    }

    /// The `agents` of the load balancer's availability zone's profile.
    fn agents_for(&self, lb_id: uuid::Uuid) -> Option<Vec<String>> {
        let s = self.store.snapshot();
        let zone = s.loadbalancers.get(&lb_id)?.availability_zone.clone()?;
        let zone = s.availability_zones.get(&zone)?;
        let profile = s
            .availability_zone_profiles
            .get(&zone.availability_zone_profile_id)?;
        statera_api::octavia::providers::zone_agents(&profile.availability_zone_data)
    }

    /// Takes the agent's trunks in the switch down, or up again.
    fn fence(&self, agent: &str, fenced: bool) -> Result<(), String> {
        let Some(switch) = &self.switch else {
            return Ok(());
        };
        match statera_net::netns::fence_host(switch, agent, fenced) {
            Ok(0) => {}
            Ok(trunks) if fenced => {
                tracing::warn!(%agent, trunks, "agent's host fenced: its trunks to the switch are down")
            }
            Ok(trunks) => tracing::info!(%agent, trunks, "agent's host joined to the switch again"),
            Err(error) => return Err(format!("cannot set the agent's trunks: {error}")),
        }
        Ok(())
    }

    fn fences(&self) -> bool {
        self.switch.is_some()
    }
}
