//! The provider: one supervised HAProxy per load balancer behind
//! [`statera_config::DataPlane`].

use crate::process::{self, LoadError, Master, Paths};
use crate::render::{self, RenderOptions};
use crate::stats::{self, Counters, Row};
use statera_config::{
    BoxFuture, DataPlane, DataPlaneError, LbConfig, ListenerReport, ListenerState, MemberHealth,
    MemberReport, PoolReport, ReportSender, StatusReport,
};
use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How the provider runs HAProxy; [`HaproxyOptions::new`] has the defaults.
#[derive(Debug, Clone)]
pub struct HaproxyOptions {
    /// Each load balancer gets `<base_dir>/<lb_id>/` (haproxy.cfg, pid file,
    /// stats socket, master socket); HAProxy runs in that directory and
    /// names its sockets relative to it, so the path may be of any length.
    pub base_dir: PathBuf,
    /// The `haproxy` executable (≥ 2.6).
    pub binary: PathBuf,
    /// How often the stats socket is read and the process checked.
    pub poll_interval: Duration,
    /// How long a (re)load may take before it counts as failed.
    pub load_timeout: Duration,
    /// How long a removed load balancer's connections may drain before
    /// HAProxy is terminated.
    pub stop_timeout: Duration,
    /// The most connections one load balancer may hold (its global
    /// `maxconn`, and the cap of every listener's): `statera serve` gives the
    /// native engine's per-load-balancer ceiling, so a listener's
    /// `connection_limit` of -1 means the same on both providers. `None`:
    /// only HAProxy's own bounds.
    pub lb_max_connections: Option<u32>,
}

impl HaproxyOptions {
    /// Defaults: `haproxy` from `$PATH` (or /usr/sbin), a 2 s poll, 10 s to
    /// load, 30 s to drain on remove.
    pub fn new(base_dir: impl Into<PathBuf>) -> HaproxyOptions {
        HaproxyOptions {
            base_dir: base_dir.into(),
            binary: process::find_haproxy().unwrap_or_else(|| PathBuf::from("haproxy")),
            poll_interval: Duration::from_secs(2),
            load_timeout: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(30),
            lb_max_connections: None,
        }
    }
}

/// The HAProxy data plane. Cheap to clone: clones share the same load
/// balancers. Dropping it leaves the HAProxy processes serving (a data plane
/// outlives its controller); [`HaproxyProvider::shutdown`] stops them.
#[derive(Debug, Clone)]
pub struct HaproxyProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: HaproxyOptions,
    maxconn_cap: u32,
    report_tx: ReportSender,
    /// Serialises applies and removes.
    lbs: tokio::sync::Mutex<HashMap<Uuid, Arc<Lb>>>,
    /// What `report` returns, refreshed by every poll.
    reports: RwLock<HashMap<Uuid, StatusReport>>,
    restarts: AtomicU64,
}

#[derive(Debug)]
struct Lb {
    id: Uuid,
    paths: Paths,
    /// Serialises everything done to this load balancer's process: apply,
    /// remove, polls, crash restarts.
    run: tokio::sync::Mutex<Run>,
    watcher: std::sync::Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Run {
    /// The configuration being served (the last one HAProxy accepted).
    config: Arc<LbConfig>,
    /// Its rendered text, as on disk in `haproxy.cfg`.
    text: String,
    /// `None` while HAProxy is down (crashed, restart pending).
    master: Option<Master>,
    counters: Counters,
    removed: bool,
}

impl HaproxyProvider {
    /// A provider that sends reports (after each apply, and whenever a
    /// member's health or a listener's state changes) to `report_tx`. Needs
    /// no runtime; `apply` and `remove` must be awaited on a tokio runtime
    /// with I/O, time and process support.
    ///
    /// A relative `base_dir` (or `binary` path) is resolved against the
    /// current directory now: HAProxy runs in the load balancer's directory
    /// and would read a relative path in its configuration (the stats
    /// socket) relative to that, or as an address.
    pub fn new(mut options: HaproxyOptions, report_tx: ReportSender) -> HaproxyProvider {
        options.base_dir = absolute(options.base_dir);
        if options.binary.components().count() > 1 {
            options.binary = absolute(options.binary);
        }
        HaproxyProvider {
            inner: Arc::new(Inner {
                maxconn_cap: process::maxconn_cap()
                    .min(options.lb_max_connections.unwrap_or(u32::MAX)),
                options,
                report_tx,
                lbs: tokio::sync::Mutex::new(HashMap::new()),
                reports: RwLock::new(HashMap::new()),
                restarts: AtomicU64::new(0),
            }),
        }
    }

    /// How many times a crashed HAProxy was restarted, over all load
    /// balancers.
    pub fn restarts(&self) -> u64 {
        self.inner.restarts.load(Ordering::Relaxed)
    }

    /// The pid of the HAProxy master serving `lb_id`, if it runs.
    pub async fn master_pid(&self, lb_id: Uuid) -> Option<u32> {
        let lb = self.inner.lbs.lock().await.get(&lb_id)?.clone();
        let run = lb.run.lock().await;
        run.master
            .as_ref()
            .filter(|m| m.is_running())
            .map(Master::pid)
    }

    /// The directory of `lb_id`'s files (whether or not it is served).
    pub fn lb_dir(&self, lb_id: Uuid) -> PathBuf {
        Paths::new(&self.inner.options.base_dir, lb_id).dir
    }

    /// Stops every HAProxy (soft stop, as `remove` does) and forgets every
    /// load balancer; their directories stay.
    pub async fn shutdown(&self) {
        let mut lbs = self.inner.lbs.lock().await;
        for (_, lb) in lbs.drain() {
            lb.stop(&self.inner).await;
        }
        self.reports_mut().clear();
    }

    /// Forgets every HAProxy without stopping it, for a `statera serve`
    /// taking over from this one: its provider starts a new HAProxy per load
    /// balancer that takes the listening sockets from the old one (`-x`)
    /// and then soft-stops it, so no connection is refused or cut.
    pub async fn detach(&self) {
        let mut lbs = self.inner.lbs.lock().await;
        for (lb_id, lb) in lbs.drain() {
            drop(lb.watcher.lock().unwrap_or_else(|e| e.into_inner()).take());
            let mut run = lb.run.lock().await;
            run.removed = true;
            if let Some(master) = run.master.take() {
                tracing::info!(lb = %lb_id, pid = master.pid(), "haproxy left running for the next statera");
            }
        }
        self.reports_mut().clear();
    }

    fn reports_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Uuid, StatusReport>> {
        self.inner
            .reports
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Applies are serialised per load balancer (its `run` lock), not over
    /// the provider: the map of load balancers is locked only to look one up
    /// or add one, so one HAProxy (re)loading never holds up another.
    async fn apply_config(&self, config: Arc<LbConfig>) -> Result<u64, DataPlaneError> {
        let inner = &self.inner;
        let lb_id = config.lb_id;
        let paths = Paths::new(&inner.options.base_dir, lb_id);
        let options = RenderOptions {
            stats_socket: Paths::stats_socket_for_haproxy(),
            maxconn_cap: inner.maxconn_cap,
            dir: paths.dir.clone(),
        };
        // 1. Render: refuses what HAProxy cannot serve here.
        let text = render::render(&config, &options)?;
        let tls_dir = render::tls::tls_dir(&config, &paths.dir);
        let files = Files {
            tls: render::tls::tls_files(&config, &tls_dir),
            tls_dir,
        };

        let lb = {
            let mut lbs = inner.lbs.lock().await;
            lbs.entry(lb_id)
                .or_insert_with(|| {
                    Arc::new(Lb {
                        id: lb_id,
                        paths: paths.clone(),
                        run: tokio::sync::Mutex::new(Run {
                            config: config.clone(),
                            text: String::new(),
                            master: None,
                            counters: Counters::default(),
                            removed: false,
                        }),
                        watcher: std::sync::Mutex::new(None),
                    })
                })
                .clone()
        };
        let mut run = lb.run.lock().await;
        if run.removed {
            return Err(DataPlaneError::Other(format!(
                "load balancer {lb_id} was removed while this configuration waited"
            )));
        }
        if !run.text.is_empty() {
            let served = run.config.version;
            if config.version < served {
                return Err(DataPlaneError::Other(format!(
                    "load balancer {lb_id} is at version {served}; refusing older version {}",
                    config.version
                )));
            }
            if text != run.text || !run.master.as_ref().is_some_and(Master::is_running) {
                lb.load(inner, &mut run, &text, &files)
                    .await
                    .map_err(|e| name_listener(e, &config))?;
            }
            run.config = config.clone();
            lb.poll(inner, &mut run, true).await;
            tracing::info!(lb = %lb_id, version = config.version, "haproxy serves the configuration");
            return Ok(config.version);
        }

        // A new load balancer (for this provider instance).
        let stale = process::stale_master(&paths);
        // Owner only: it holds the sockets and, with TLS, private keys.
        let made = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&paths.dir)
            // One made by an earlier version keeps its mode otherwise.
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&paths.dir, std::fs::Permissions::from_mode(0o700))
            });
        let started = match made {
            Err(e) => Err(DataPlaneError::Other(format!(
                "cannot create {}: {e}",
                paths.dir.display()
            ))),
            Ok(()) => {
                run.config = config.clone();
                lb.load(inner, &mut run, &text, &files)
                    .await
                    .map_err(|e| name_listener(e, &config))
            }
        };
        if let Err(e) = started {
            // Forget it, unless an apply that came after already replaced it.
            run.removed = true;
            drop(run);
            let mut lbs = inner.lbs.lock().await;
            if lbs.get(&lb_id).is_some_and(|l| Arc::ptr_eq(l, &lb)) {
                lbs.remove(&lb_id);
            }
            if stale.is_none() {
                let _ = std::fs::remove_dir_all(&paths.dir);
            }
            return Err(e);
        }
        if let Some(pid) = stale {
            // HAProxy from an earlier run of Statera: the new one took its
            // listening sockets (`-x`, see `Master::start`) and serves
            // already; the old one is told to finish, in the background.
            tracing::info!(lb = %lb_id, pid, "stopping the haproxy left by an earlier run");
            tokio::spawn(process::stop_stale(pid, inner.options.stop_timeout));
        }
        lb.poll(inner, &mut run, true).await;
        drop(run);
        let watcher = tokio::spawn(watch(Arc::downgrade(inner), lb.clone()));
        *lb.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(watcher);
        tracing::info!(lb = %lb_id, version = config.version, "haproxy serves the configuration");
        Ok(config.version)
    }

    async fn remove_lb(&self, lb_id: Uuid) -> Result<(), DataPlaneError> {
        let removed = self.inner.lbs.lock().await.remove(&lb_id);
        self.reports_mut().remove(&lb_id);
        let Some(lb) = removed else {
            // Perhaps left by an earlier run.
            let paths = Paths::new(&self.inner.options.base_dir, lb_id);
            if let Some(pid) = process::stale_master(&paths) {
                process::stop_stale(pid, self.inner.options.stop_timeout).await;
            }
            let _ = std::fs::remove_dir_all(&paths.dir);
            return Ok(());
        };
        lb.stop(&self.inner).await;
        std::fs::remove_dir_all(&lb.paths.dir).or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(DataPlaneError::Other(format!(
                    "cannot remove {}: {e}",
                    lb.paths.dir.display()
                )))
            }
        })?;
        tracing::info!(%lb_id, "haproxy stopped; load balancer removed");
        Ok(())
    }
}

impl Lb {
    /// Checks `text` with `haproxy -c`, then makes HAProxy serve it: a
    /// reload when the master runs, a start otherwise. On any failure the
    /// previous configuration stays on disk and in service.
    async fn load(
        &self,
        inner: &Inner,
        run: &mut Run,
        text: &str,
        files: &Files,
    ) -> Result<(), DataPlaneError> {
        let paths = &self.paths;
        let io = |what: &str, e: std::io::Error| DataPlaneError::Other(format!("{what}: {e}"));
        files
            .write()
            .map_err(|e| io("cannot write the certificate files", e))?;
        std::fs::write(&paths.candidate, text)
            .map_err(|e| io(&format!("cannot write {}", paths.candidate.display()), e))?;
        if let Err(message) = process::check_config(&inner.options.binary, &paths.candidate).await {
            let _ = std::fs::remove_file(&paths.candidate);
            files.forget_unless_served(&run.text);
            return Err(DataPlaneError::Other(format!(
                "haproxy refused the configuration: {message}"
            )));
        }
        std::fs::rename(&paths.candidate, &paths.config)
            .map_err(|e| io(&format!("cannot write {}", paths.config.display()), e))?;
        let mut before = Vec::new();
        if run.master.as_ref().is_some_and(Master::is_running) {
            // Counters of the worker about to retire, as late as possible.
            before = self.current_workers().await;
            self.observe(run).await;
        }
        let result = match run.master.as_ref().filter(|m| m.is_running()) {
            Some(master) => match master.reload(paths, inner.options.load_timeout).await {
                Ok(()) => {
                    self.wait_new_worker(&before, inner.options.load_timeout)
                        .await;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            None => {
                run.counters.all_gone();
                match Master::start(
                    &inner.options.binary,
                    run.config.vip.namespace.as_deref(),
                    paths,
                    self.id,
                    inner.options.load_timeout,
                )
                .await
                {
                    Ok(master) => {
                        run.master = Some(master);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(()) => {
                run.text = text.to_string();
                files.prune_others(&paths.dir);
                Ok(())
            }
            Err(error) => {
                // The last good configuration goes back on disk, for the next
                // reload or a crash restart.
                if !run.text.is_empty() {
                    let _ = std::fs::write(&paths.config, &run.text);
                }
                files.forget_unless_served(&run.text);
                Err(load_error(error))
            }
        }
    }

    /// The pids of the workers started by the latest (re)load.
    async fn current_workers(&self) -> Vec<u32> {
        process::cli(
            &self.paths.master_socket,
            "show proc",
            Duration::from_secs(2),
        )
        .await
        .map(|text| {
            stats::parse_show_proc(&text)
                .into_iter()
                .filter(|w| w.reloads == 0)
                .map(|w| w.pid)
                .collect()
        })
        .unwrap_or_default()
    }

    /// After a reload the master answers on its CLI again only once it has
    /// re-executed: waits until it lists a current worker that was not
    /// there before, so the next poll reads the new worker.
    async fn wait_new_worker(&self, before: &[u32], deadline: Duration) {
        let start = tokio::time::Instant::now();
        while start.elapsed() < deadline {
            let now = self.current_workers().await;
            if now.iter().any(|pid| !before.contains(pid)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!(lb = %self.id, "haproxy reloaded but lists no new worker yet");
    }

    /// Reads every worker's counters into `run.counters`; returns the
    /// current worker's rows.
    async fn observe(&self, run: &mut Run) -> Option<Vec<Row>> {
        const CLI_DEADLINE: Duration = Duration::from_secs(2);
        run.master.as_ref().filter(|m| m.is_running())?;
        let procs = process::cli(&self.paths.master_socket, "show proc", CLI_DEADLINE)
            .await
            .ok()?;
        let workers = stats::parse_show_proc(&procs);
        let mut current_rows = None;
        for worker in &workers {
            let current = worker.reloads == 0;
            let answer = if current {
                process::cli(&self.paths.stats_socket, "show stat", CLI_DEADLINE).await
            } else {
                let command = format!("@!{} show stat", worker.pid);
                process::cli(&self.paths.master_socket, &command, CLI_DEADLINE).await
            };
            let Ok(rows) = answer
                .map_err(|e| e.to_string())
                .and_then(|a| stats::parse_csv(&a))
            else {
                continue;
            };
            run.counters.observe(worker.pid, current, &rows);
            if current {
                current_rows = Some(rows);
            }
        }
        if !workers.is_empty() {
            let pids: Vec<u32> = workers.iter().map(|w| w.pid).collect();
            run.counters.retain_workers(&pids);
        }
        current_rows
    }

    /// Refreshes the report; sends it when something other than counters
    /// changed (or when `always`).
    async fn poll(&self, inner: &Inner, run: &mut Run, always: bool) {
        let rows = self.observe(run).await;
        let running = run.master.as_ref().is_some_and(Master::is_running);
        let previous = inner
            .reports
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&self.id)
            .cloned();
        let report = build_report(
            &run.config,
            running,
            rows.as_deref(),
            &run.counters,
            previous.as_ref(),
        );
        let changed = previous.as_ref().is_none_or(|p| !same_states(p, &report));
        inner
            .reports
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.id, report.clone());
        if changed || always {
            let _ = inner.report_tx.send(report);
        }
    }

    /// Stops HAProxy and the watcher; the directory stays.
    async fn stop(&self, inner: &Inner) {
        // Not aborted: it may be starting HAProxy, which must not be left
        // half-supervised. It sees `removed` and ends.
        drop(
            self.watcher
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        let mut run = self.run.lock().await;
        run.removed = true;
        if let Some(master) = run.master.take() {
            master.stop(inner.options.stop_timeout).await;
        }
    }
}

/// The files a configuration needs besides haproxy.cfg: TERMINATED_HTTPS
/// listeners' certificates, keys, CAs and CRLs, in a directory named by
/// their contents (`render::tls`).
struct Files {
    tls_dir: PathBuf,
    tls: Vec<render::tls::TlsFile>,
}

impl Files {
    /// Writes them (directories 0700, files 0600: they hold private keys),
    /// each whole.
    fn write(&self) -> std::io::Result<()> {
        for f in &self.tls {
            if let Some(parent) = f.path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)?;
            }
            statera_config::write_private(&f.path, &f.contents)?;
        }
        Ok(())
    }

    /// After a configuration was refused: its certificate directory goes,
    /// unless the configuration in service (`served`, its text) names it.
    fn forget_unless_served(&self, served: &str) {
        let named = self.tls_dir.to_str().is_some_and(|d| served.contains(d));
        if !self.tls.is_empty() && !named {
            let _ = std::fs::remove_dir_all(&self.tls_dir);
        }
    }

    /// Once HAProxy serves this configuration (it read its files when it
    /// loaded them), every other certificate directory goes.
    fn prune_others(&self, lb_dir: &Path) {
        let Ok(entries) = std::fs::read_dir(lb_dir.join("tls")) else {
            return;
        };
        for e in entries.flatten() {
            let keep = !self.tls.is_empty() && e.path() == self.tls_dir;
            if !keep {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// `path` made absolute: resolved (`..` and links) when it exists, else
/// joined to the current directory; as given if neither can be done.
fn absolute(path: PathBuf) -> PathBuf {
    std::fs::canonicalize(&path)
        .or_else(|_| std::path::absolute(&path))
        .unwrap_or(path)
}

/// Names the listener of a bind failure: the one of `config` on the port
/// HAProxy could not bind (one VIP per load balancer, so the port decides).
fn name_listener(error: DataPlaneError, config: &LbConfig) -> DataPlaneError {
    match error {
        DataPlaneError::Bind {
            address,
            reason,
            listener: None,
        } => {
            let port = address
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok());
            let listener = config
                .listeners
                .iter()
                .find(|l| Some(l.protocol_port) == port)
                .map(|l| l.id);
            DataPlaneError::Bind {
                address,
                reason,
                listener,
            }
        }
        other => other,
    }
}

fn load_error(error: LoadError) -> DataPlaneError {
    match error.bind {
        Some((address, reason)) => DataPlaneError::Bind {
            address,
            reason,
            listener: None,
        },
        None => DataPlaneError::Other(format!("haproxy could not load: {}", error.message)),
    }
}

/// Polls the load balancer's HAProxy every `poll_interval` and restarts it
/// with the last good configuration when its master is gone.
async fn watch(inner: Weak<Inner>, lb: Arc<Lb>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let interval = strong.options.poll_interval;
        drop(strong);
        let exited = {
            let run = lb.run.lock().await;
            if run.removed {
                return;
            }
            run.master.as_ref().map(|m| (m.pid(), m.exited()))
        };
        let crashed = match exited {
            Some((pid, mut exited)) => {
                tokio::select! {
                    status = exited.wait_for(Option::is_some) => {
                        status.ok().and_then(|s| *s).map(|s| (pid, s.to_string()))
                    }
                    _ = tokio::time::sleep(interval) => None,
                }
            }
            None => {
                tokio::time::sleep(interval).await;
                None
            }
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let mut run = lb.run.lock().await;
        if run.removed {
            return;
        }
        if let Some((pid, status)) = crashed
            && run.master.as_ref().is_some_and(|m| m.pid() == pid)
        {
            tracing::error!(lb = %lb.id, pid, %status, "haproxy exited unexpectedly; restarting it");
            run.master = None;
            run.counters.all_gone();
            inner.restarts.fetch_add(1, Ordering::Relaxed);
            // Listeners are reported down until HAProxy is back.
            lb.poll(&inner, &mut run, false).await;
        }
        if run.master.is_none() {
            match Master::start(
                &inner.options.binary,
                run.config.vip.namespace.as_deref(),
                &lb.paths,
                lb.id,
                inner.options.load_timeout,
            )
            .await
            {
                Ok(master) => {
                    tracing::info!(lb = %lb.id, pid = master.pid(), "haproxy restarted with the last good configuration");
                    run.master = Some(master);
                }
                Err(e) => {
                    tracing::error!(lb = %lb.id, error = %e.message, "cannot restart haproxy; will retry");
                }
            }
        }
        lb.poll(&inner, &mut run, false).await;
    }
}

/// Whether two reports agree on everything but counters.
fn same_states(a: &StatusReport, b: &StatusReport) -> bool {
    a.version == b.version
        && a.pools == b.pools
        && a.listeners.len() == b.listeners.len()
        && a.listeners
            .iter()
            .zip(&b.listeners)
            .all(|(x, y)| x.id == y.id && x.state == y.state)
}

/// The report of `config` from the current worker's `show stat` rows
/// (`None` when HAProxy could not be read).
fn build_report(
    config: &LbConfig,
    running: bool,
    rows: Option<&[Row]>,
    counters: &Counters,
    previous: Option<&StatusReport>,
) -> StatusReport {
    let served: Vec<Uuid> = render::served_listeners(config)
        .map(|ls| ls.iter().map(|l| l.id).collect())
        .unwrap_or_default();
    let listeners = config
        .listeners
        .iter()
        .map(|listener| {
            let state = if !running || !served.contains(&listener.id) {
                ListenerState::Down
            } else {
                let frontend = rows.and_then(|rows| {
                    rows.iter()
                        .find(|r| r.name == "FRONTEND" && r.proxy == listener.id.to_string())
                });
                match (frontend, previous_listener(previous, listener.id)) {
                    (Some(row), _) => stats::listener_state(&row.status),
                    // Not read this time: what was known.
                    (None, Some(state)) if rows.is_none() => state,
                    (None, _) => ListenerState::Open,
                }
            };
            ListenerReport {
                id: listener.id,
                state,
                stats: counters.stats(listener.id),
                epoch: counters.epoch,
            }
        })
        .collect();
    let pools = config
        .pools
        .iter()
        .map(|pool| {
            let monitored = pool
                .health_monitor
                .as_ref()
                .is_some_and(|h| h.admin_state_up);
            let members = pool
                .members
                .iter()
                .map(|member| {
                    let health = if !member.admin_state_up {
                        MemberHealth::Maint
                    } else if member.weight == 0 {
                        MemberHealth::Drain
                    } else if !monitored {
                        MemberHealth::NoCheck
                    } else {
                        observed_health(rows, pool.id, member.id)
                            .or_else(|| previous_member(previous, pool.id, member.id))
                            // HAProxy starts checked servers up.
                            .unwrap_or(MemberHealth::Up)
                    };
                    MemberReport {
                        id: member.id,
                        health,
                    }
                })
                .collect();
            PoolReport {
                id: pool.id,
                members,
            }
        })
        .collect();
    StatusReport {
        lb_id: config.lb_id,
        version: config.version,
        listeners,
        pools,
        unserved: false,
    }
}

/// A member's health over every backend of its pool (one per listener): down
/// if any says down.
fn observed_health(rows: Option<&[Row]>, pool: Uuid, member: Uuid) -> Option<MemberHealth> {
    let prefix = format!("{pool}:");
    let member = member.to_string();
    let mut found: Option<MemberHealth> = None;
    for row in rows?
        .iter()
        .filter(|r| r.name == member && r.proxy.starts_with(&prefix))
    {
        let health = stats::member_health(&row.status)?;
        found = match found {
            Some(MemberHealth::Down) => Some(MemberHealth::Down),
            _ => Some(health),
        };
    }
    found
}

fn previous_member(
    previous: Option<&StatusReport>,
    pool: Uuid,
    member: Uuid,
) -> Option<MemberHealth> {
    previous?
        .pools
        .iter()
        .find(|p| p.id == pool)?
        .members
        .iter()
        .find(|m| m.id == member)
        .map(|m| m.health)
}

fn previous_listener(previous: Option<&StatusReport>, listener: Uuid) -> Option<ListenerState> {
    previous?
        .listeners
        .iter()
        .find(|l| l.id == listener)
        .map(|l| l.state)
}

impl DataPlane for HaproxyProvider {
    fn apply(&self, config: Arc<LbConfig>) -> BoxFuture<'_, Result<u64, DataPlaneError>> {
        Box::pin(self.apply_config(config))
    }

    fn remove(&self, lb_id: Uuid) -> BoxFuture<'_, Result<(), DataPlaneError>> {
        Box::pin(self.remove_lb(lb_id))
    }

    fn report(&self, lb_id: Uuid) -> Option<StatusReport> {
        self.inner
            .reports
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&lb_id)
            .cloned()
    }
}
