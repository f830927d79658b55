//! One HAProxy master-worker process per load balancer: its files, start,
//! hitless reload through the master CLI, stop, and the two CLIs.
//!
//! # Why master-worker with a master CLI reload
//!
//! The master (`haproxy -W -S <master socket>`) is this provider's child
//! for the load balancer's whole life; a reload (`reload` on the master
//! CLI) re-executes the master, which reads the new haproxy.cfg and starts a
//! new worker that takes the old worker's *listening sockets themselves*
//! over the master/worker socket pair (the same file descriptors, so the
//! kernel's accept queue is never closed), then tells the old worker to
//! stop accepting and finish its connections. No connection is refused or
//! reset during a reload, which `-sf` alone (new process binds new sockets,
//! old one closes its own) cannot promise; `-sf` with `-x` hands the sockets
//! over too, but needs a new, unsupervised process per reload. With the
//! master, one pid stays ours: its exit is a crash, its stderr says
//! `Loading success.` / `Loading failure!` after each (re)load, and a
//! failed reload leaves the old worker serving.
//!
//! HAProxy's own defaults make a dying worker take its master down with it
//! (no `no-exit-on-failure`), so watching the master is enough to see any
//! crash.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::Command;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// The longest path a Unix socket address holds (`sun_path`, with its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// The sockets' names in the load balancer's directory. HAProxy runs in
/// that directory and is given them relative to it (`unix@<name>`): it
/// refuses socket paths over 97 bytes, which an absolute path under a data
/// directory easily exceeds.
const STATS_SOCKET: &str = "stats.sock";
const MASTER_SOCKET: &str = "master.sock";
/// How many of the master's last stderr lines are kept for error messages.
const KEPT_LINES: usize = 64;

/// The files of one load balancer's HAProxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub dir: PathBuf,
    /// The configuration being served (the last good one).
    pub config: PathBuf,
    /// A candidate configuration while it is checked.
    pub candidate: PathBuf,
    pub pid_file: PathBuf,
    /// The worker's stats socket (admin level).
    pub stats_socket: PathBuf,
    /// The master CLI.
    pub master_socket: PathBuf,
}

impl Paths {
    pub fn new(base_dir: &Path, lb_id: Uuid) -> Paths {
        let dir = base_dir.join(lb_id.to_string());
        Paths {
            config: dir.join("haproxy.cfg"),
            candidate: dir.join("haproxy.cfg.new"),
            pid_file: dir.join("haproxy.pid"),
            stats_socket: dir.join(STATS_SOCKET),
            master_socket: dir.join(MASTER_SOCKET),
            dir,
        }
    }

    /// The stats socket as HAProxy's configuration names it: relative to
    /// the directory HAProxy runs in.
    pub fn stats_socket_for_haproxy() -> PathBuf {
        PathBuf::from(format!("unix@{STATS_SOCKET}"))
    }
}

/// Where to find `haproxy`: `$PATH`, then the sbin directories (Debian
/// installs it in /usr/sbin, which is not on every user's path).
pub fn find_haproxy() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| candidate.is_file())
}

/// `haproxy -c -f <file>`: `Err` carries HAProxy's alerts.
pub async fn check_config(binary: &Path, file: &Path) -> Result<(), String> {
    let output = Command::new(binary)
        .arg("-c")
        .arg("-f")
        .arg(file)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    Err(alerts(text.lines()).unwrap_or_else(|| text.trim().to_string()))
}

/// The `[ALERT]` lines of HAProxy's output, without their prefix, joined.
fn alerts<'a>(lines: impl Iterator<Item = &'a str>) -> Option<String> {
    let alerts: Vec<&str> = lines
        .filter(|l| l.contains("[ALERT]"))
        .map(|l| l.split_once(" : ").map(|(_, msg)| msg).unwrap_or(l).trim())
        .collect();
    (!alerts.is_empty()).then(|| alerts.join("; "))
}

/// One command on a CLI socket (the stats socket or the master CLI), in
/// non-interactive mode: the answer ends when HAProxy closes.
pub async fn cli(socket: &Path, command: &str, deadline: Duration) -> io::Result<String> {
    tokio::time::timeout(deadline, async {
        let mut stream = connect(socket).await?;
        stream.write_all(format!("{command}\n").as_bytes()).await?;
        stream.shutdown().await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok(answer)
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{command:?} timed out")))?
}

/// Connects to the Unix socket at `path`, however long: a path that does
/// not fit in `sun_path` is reached through its directory's descriptor
/// (`/proc/self/fd/<fd>/<name>`).
pub async fn connect(path: &Path) -> io::Result<UnixStream> {
    if path.as_os_str().len() <= MAX_SOCKET_PATH {
        return UnixStream::connect(path).await;
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return UnixStream::connect(path).await;
    };
    let dir = std::fs::File::open(dir)?;
    let short = Path::new("/proc/self/fd")
        .join(std::os::fd::AsRawFd::as_raw_fd(&dir).to_string())
        .join(name);
    let stream = UnixStream::connect(&short).await;
    drop(dir);
    stream
}

/// Why a (re)load failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub message: String,
    /// `(address, reason)` when HAProxy could not bind a listener.
    pub bind: Option<(String, String)>,
}

impl LoadError {
    fn new(message: String) -> LoadError {
        let bind = bind_failure(&message);
        LoadError { message, bind }
    }
}

/// Reads `cannot bind socket (<reason>) for [<address>]` from an alert.
fn bind_failure(message: &str) -> Option<(String, String)> {
    let at = message.find("cannot bind socket")?;
    let rest = &message[at..];
    let reason = rest
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(r, _)| r.to_string())
        .unwrap_or_default();
    let address = rest
        .split_once(" for [")
        .and_then(|(_, a)| a.split_once(']'))
        .map(|(a, _)| a.to_string())
        .unwrap_or_default();
    Some((address, reason))
}

/// A running HAProxy master (our child) and what it prints.
#[derive(Debug)]
pub struct Master {
    pid: u32,
    exited: watch::Receiver<Option<ExitStatus>>,
    lines: broadcast::Sender<String>,
    recent: Arc<Mutex<VecDeque<String>>>,
    /// Turns true when its stderr is closed (every line is in `recent`).
    stderr_done: watch::Receiver<bool>,
}

/// What the master printed after a (re)load.
enum Outcome {
    Success,
    Failure,
}

impl Master {
    /// Starts `haproxy -W` on `paths.config` and waits until the master says
    /// the first worker loaded. On failure the process is gone.
    /// In the `netns` network driver's namespace `namespace`, when given.
    pub async fn start(
        binary: &Path,
        namespace: Option<&str>,
        paths: &Paths,
        lb_id: Uuid,
        deadline: Duration,
    ) -> Result<Master, LoadError> {
        let mut command = match namespace {
            None => Command::new(binary),
            Some(ns) => Command::from(statera_net::netns::exec::command_in(ns, binary).map_err(
                |e| LoadError::new(format!("cannot enter network namespace {ns}: {e}")),
            )?),
        };
        command
            .arg("-W")
            .arg("-f")
            .arg(&paths.config)
            .arg("-p")
            .arg(&paths.pid_file)
            .arg("-S")
            // Owner only: through the master CLI the workers answer at
            // admin level (`dump ssl cert` prints private keys).
            .arg(format!("unix@{MASTER_SOCKET},mode,600"));
        // A HAProxy left by an earlier run still holds the listening sockets
        // and nothing else may bind them (`noreuseport`): the new one takes
        // them from its stats socket (`expose-fd listeners`), as a reload
        // does, and the caller then soft-stops the old one. The path is
        // relative to HAProxy's directory, like the sockets.
        if stale_master(paths).is_some() {
            command.arg("-x").arg(STATS_SOCKET);
        }
        command
            .current_dir(&paths.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: a terminal's Ctrl-C aimed at Statera
            // does not take the load balancers down with it.
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| LoadError::new(format!("cannot run {}: {e}", binary.display())))?;
        let pid = child.id().unwrap_or_default();
        let (lines, mut rx) = broadcast::channel(256);
        let recent = Arc::new(Mutex::new(VecDeque::with_capacity(KEPT_LINES)));
        let (done_tx, stderr_done) = watch::channel(false);
        if let Some(stderr) = child.stderr.take() {
            let (lines, recent) = (lines.clone(), recent.clone());
            tokio::spawn(async move {
                forward_stderr(stderr, lb_id, lines, recent).await;
                let _ = done_tx.send(true);
            });
        }
        let (exit_tx, exited) = watch::channel(None);
        tokio::spawn(async move {
            let status = child.wait().await;
            let status = match status {
                Ok(status) => status,
                Err(e) => {
                    tracing::error!(lb = %lb_id, pid, error = %e, "cannot wait for haproxy");
                    return;
                }
            };
            let _ = exit_tx.send(Some(status));
        });
        let master = Master {
            pid,
            exited,
            lines,
            recent,
            stderr_done,
        };
        match master.outcome(&mut rx, deadline).await {
            Ok(Outcome::Success) => Ok(master),
            Ok(Outcome::Failure) | Err(_) => {
                master.kill().await;
                // Every line it printed, before reading its alerts.
                let mut done = master.stderr_done.clone();
                let _ = tokio::time::timeout(Duration::from_secs(1), done.wait_for(|d| *d)).await;
                Err(master.failure())
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resolves with the exit status once the master is gone.
    pub fn exited(&self) -> watch::Receiver<Option<ExitStatus>> {
        self.exited.clone()
    }

    pub fn is_running(&self) -> bool {
        self.exited.borrow().is_none()
    }

    /// Asks the master to reload `paths.config` and waits for the verdict.
    /// On failure the old worker keeps serving.
    pub async fn reload(&self, paths: &Paths, deadline: Duration) -> Result<(), LoadError> {
        let mut rx = self.lines.subscribe();
        // The master re-executes itself on `reload`: the CLI connection is
        // cut without an answer, which is expected.
        if let Err(e) = cli(&paths.master_socket, "reload", deadline).await
            && !matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof
            )
        {
            return Err(LoadError::new(format!(
                "cannot reach the haproxy master CLI: {e}"
            )));
        }
        match self.outcome(&mut rx, deadline).await {
            Ok(Outcome::Success) => Ok(()),
            Ok(Outcome::Failure) => Err(self.failure()),
            Err(e) => Err(LoadError::new(e)),
        }
    }

    /// Waits for `Loading success.` / `Loading failure!` (or the exit).
    async fn outcome(
        &self,
        rx: &mut broadcast::Receiver<String>,
        deadline: Duration,
    ) -> Result<Outcome, String> {
        let mut exited = self.exited.clone();
        let wait = async {
            loop {
                tokio::select! {
                    line = rx.recv() => match line {
                        Ok(line) if line.contains("Loading success") => return Ok(Outcome::Success),
                        Ok(line) if line.contains("Loading failure") => return Ok(Outcome::Failure),
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        // Never while `self.lines` lives.
                        Err(broadcast::error::RecvError::Closed) => return Ok(Outcome::Failure),
                    },
                    _ = exited.wait_for(Option::is_some) => return Ok(Outcome::Failure),
                }
            }
        };
        tokio::time::timeout(deadline, wait)
            .await
            .map_err(|_| format!("haproxy did not load within {deadline:?}"))?
    }

    /// The error of the last failed load: HAProxy's alerts since then.
    fn failure(&self) -> LoadError {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        // The alerts after the last successful load.
        let start = recent
            .iter()
            .rposition(|l| l.contains("Loading success"))
            .map_or(0, |i| i + 1);
        let lines: Vec<&str> = recent.iter().skip(start).map(String::as_str).collect();
        let message =
            alerts(lines.iter().copied()).unwrap_or_else(|| match *self.exited.borrow() {
                Some(status) => format!("haproxy exited ({status}) while loading"),
                None => "haproxy could not load the configuration".to_string(),
            });
        LoadError::new(message)
    }

    fn signal(&self, signal: libc::c_int) {
        if self.is_running() && self.pid > 0 {
            // SAFETY: kill(2) has no memory effects; the pid is our child,
            // not yet reaped (its waiter has not reported an exit).
            unsafe {
                libc::kill(self.pid as libc::pid_t, signal);
            }
        }
    }

    async fn wait_exit(&self, deadline: Duration) -> bool {
        let mut exited = self.exited.clone();
        tokio::time::timeout(deadline, exited.wait_for(Option::is_some))
            .await
            .is_ok()
    }

    /// Soft stop (SIGUSR1: workers close their listeners at once and finish
    /// their connections), then SIGTERM after `deadline`, then SIGKILL.
    pub async fn stop(&self, deadline: Duration) {
        self.signal(libc::SIGUSR1);
        if self.wait_exit(deadline).await {
            return;
        }
        tracing::warn!(
            pid = self.pid,
            "haproxy did not finish its connections in time; terminating"
        );
        self.signal(libc::SIGTERM);
        if self.wait_exit(Duration::from_secs(3)).await {
            return;
        }
        self.kill().await;
    }

    async fn kill(&self) {
        self.signal(libc::SIGKILL);
        self.wait_exit(Duration::from_secs(3)).await;
    }
}

/// Logs HAProxy's stderr, keeps its last lines, and passes them on.
async fn forward_stderr(
    stderr: tokio::process::ChildStderr,
    lb_id: Uuid,
    lines: broadcast::Sender<String>,
    recent: Arc<Mutex<VecDeque<String>>>,
) {
    let mut reader = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        if line.contains("[ALERT]") {
            tracing::error!(lb = %lb_id, "haproxy: {line}");
        } else if line.contains("[WARNING]") {
            tracing::warn!(lb = %lb_id, "haproxy: {line}");
        } else {
            tracing::debug!(lb = %lb_id, "haproxy: {line}");
        }
        {
            let mut recent = recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() == KEPT_LINES {
                recent.pop_front();
            }
            recent.push_back(line.clone());
        }
        let _ = lines.send(line);
    }
}

/// A HAProxy left running from an earlier run of this provider (its pid
/// file names a live process started on this load balancer's config).
pub fn stale_master(paths: &Paths) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(&paths.pid_file)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    let ours =
        cmdline.contains("haproxy") && cmdline.contains(paths.config.to_string_lossy().as_ref());
    ours.then_some(pid)
}

/// Soft-stops a process that is not our child and waits for it to go.
pub async fn stop_stale(pid: u32, deadline: Duration) {
    let alive = || Path::new(&format!("/proc/{pid}")).exists();
    // SAFETY: kill(2) has no memory effects.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGUSR1);
    }
    let start = tokio::time::Instant::now();
    while alive() && start.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if alive() {
        // SAFETY: as above.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
}

/// The highest global `maxconn` HAProxy can start with under this process's
/// hard file-descriptor limit (it needs about two descriptors per
/// connection, plus a few of its own).
pub fn maxconn_cap() -> u32 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if !ok || limit.rlim_max == libc::RLIM_INFINITY {
        return crate::render::MAX_GLOBAL_MAXCONN;
    }
    let usable = limit.rlim_max.saturating_sub(1000) / 2;
    u32::try_from(usable)
        .unwrap_or(u32::MAX)
        .clamp(1000, crate::render::MAX_GLOBAL_MAXCONN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bind_failures_from_alerts() {
        let message = "Binding [h.cfg:14] for frontend fe: cannot bind socket (Cannot assign requested address) for [192.0.2.55:18080]";
        assert_eq!(
            bind_failure(message),
            Some((
                "192.0.2.55:18080".to_string(),
                "Cannot assign requested address".to_string()
            ))
        );
        assert_eq!(bind_failure("some other alert"), None);
    }

    #[test]
    fn keeps_alerts_only() {
        let text = "[NOTICE]   (1) : haproxy version is 2.6\n\
                    [ALERT]    (1) : config : parsing [x.cfg:3] : unknown keyword 'bogus'\n\
                    [ALERT]    (1) : config : Fatal errors found in configuration.\n";
        assert_eq!(
            alerts(text.lines()).unwrap(),
            "config : parsing [x.cfg:3] : unknown keyword 'bogus'; config : Fatal errors found in configuration."
        );
        assert_eq!(alerts("[NOTICE] fine".lines()), None);
    }

    #[tokio::test]
    async fn sockets_are_reached_however_long_their_path() {
        let base = tempfile_dir();
        let mut dir = base.clone();
        while dir.as_os_str().len() <= MAX_SOCKET_PATH {
            dir = dir.join("a-long-directory-name");
        }
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(STATS_SOCKET);
        // Bound the same way: through the directory's descriptor.
        let handle = std::fs::File::open(&dir).unwrap();
        let short = Path::new("/proc/self/fd")
            .join(std::os::fd::AsRawFd::as_raw_fd(&handle).to_string())
            .join(STATS_SOCKET);
        let listener = tokio::net::UnixListener::bind(&short).unwrap();
        assert!(path.as_os_str().len() > MAX_SOCKET_PATH);
        let (client, accepted) = tokio::join!(connect(&path), listener.accept());
        client.unwrap();
        accepted.unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sthx-unit-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
