//! Doing things inside a network namespace.
//!
//! `setns(2)` changes the namespace of the calling thread only, so each
//! namespace gets one dedicated OS thread that enters it once and then runs
//! what is sent to it: creating sockets (a socket belongs to the namespace it
//! was created in, whichever thread uses it afterwards) and writing the
//! namespace's `/proc/sys/net` settings. Processes (`ip`, `nft`, HAProxy) are
//! started in a namespace by entering it between fork and exec.
//!
//! This module is the only place in Statera that calls `setns`.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

type Job = Box<dyn FnOnce() + Send>;

fn threads() -> &'static Mutex<HashMap<String, Sender<Job>>> {
    static THREADS: OnceLock<Mutex<HashMap<String, Sender<Job>>>> = OnceLock::new();
    THREADS.get_or_init(Default::default)
}

fn ns_path(ns: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(ns)
}

fn enter(ns: &str) -> io::Result<()> {
    let file = File::open(ns_path(ns))?;
    // SAFETY: setns on a valid namespace file descriptor; it only changes the
    // network namespace of this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The sender of `ns`'s thread, starting it (and entering the namespace) if
/// needed.
fn worker(ns: &str) -> io::Result<Sender<Job>> {
    let mut map = threads().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(tx) = map.get(ns) {
        return Ok(tx.clone());
    }
    let (tx, rx) = channel::<Job>();
    let (ready_tx, ready_rx) = channel::<io::Result<()>>();
    let name = ns.to_string();
    std::thread::Builder::new()
        .name(format!("netns {}", short(ns)))
        .spawn(move || {
            let entered = enter(&name);
            let ok = entered.is_ok();
            let _ = ready_tx.send(entered);
            if ok {
                for job in rx {
                    job();
                }
            }
        })?;
    ready_rx
        .recv()
        .map_err(|_| io::Error::other("namespace thread died"))??;
    map.insert(ns.to_string(), tx.clone());
    Ok(tx)
}

/// Thread names are limited to 15 bytes; keep the distinctive tail.
fn short(ns: &str) -> &str {
    let start = ns.len().saturating_sub(9);
    ns.get(start..).unwrap_or(ns)
}

/// Runs `f` on `ns`'s thread (inside the namespace) and returns its result.
pub fn run_in<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let tx = worker(ns)?;
    let (reply_tx, reply_rx) = channel();
    let job: Job = Box::new(move || {
        let _ = reply_tx.send(f());
    });
    if tx.send(job).is_err() {
        forget(ns);
        return Err(io::Error::other(format!("namespace {ns} is gone")));
    }
    reply_rx
        .recv()
        .map_err(|_| io::Error::other(format!("namespace {ns}: its thread stopped")))?
}

/// A new socket (`socket(2)` arguments) created inside `ns`.
pub fn socket(ns: &str, domain: i32, ty: i32, protocol: i32) -> io::Result<OwnedFd> {
    run_in(ns, move || {
        // SAFETY: plain socket(2); the returned descriptor is owned below.
        let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    })
}

/// Writes a `/proc/sys/net/...` setting as seen from inside `ns`
/// (`key` like `ipv4/ip_forward`).
pub fn sysctl(ns: &str, key: &str, value: &str) -> io::Result<()> {
    let path = format!("/proc/sys/net/{key}");
    let value = value.to_string();
    run_in(ns, move || std::fs::write(&path, value))
}

/// Stops `ns`'s thread (before or after the namespace is deleted: the
/// thread holds a reference that keeps the namespace alive).
pub fn forget(ns: &str) {
    threads()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(ns);
}

/// `program` set up to run inside `ns` (entered between fork and exec).
pub fn command_in(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> io::Result<Command> {
    let file = File::open(ns_path(ns))?;
    let mut cmd = Command::new(program);
    // SAFETY: the closure only calls setns(2), which is async-signal-safe,
    // on a descriptor opened before the fork; `file` lives in the closure.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// Runs a command to completion, feeding it `stdin`; an error carries its
/// stderr.
pub fn run(mut cmd: Command, stdin: Option<&str>) -> io::Result<String> {
    use std::io::Write;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        io::Error::new(e.kind(), format!("cannot run {:?}: {e}", cmd.get_program()))
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        return Err(io::Error::other(format!(
            "{} {} failed: {}",
            cmd.get_program().to_string_lossy(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip` with the given arguments (`-n NS` selects a namespace).
pub fn ip(args: &[&str]) -> io::Result<String> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    run(cmd, None)
}

/// A batch of `ip` commands run in `ns` (or the current namespace), one per
/// line, stopping at the first failure.
pub fn ip_batch(ns: Option<&str>, lines: &[String]) -> io::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"]);
    let mut text = lines.join("\n");
    text.push('\n');
    run(cmd, Some(&text)).map(|_| ())
}

/// Loads an nftables ruleset (one atomic transaction) inside `ns`.
pub fn nft(ns: &str, ruleset: &str) -> io::Result<()> {
    let mut cmd = command_in(ns, "nft")?;
    cmd.args(["-f", "-"]);
    run(cmd, Some(ruleset)).map(|_| ())
}

/// The named namespaces that exist.
pub fn list_namespaces() -> io::Result<Vec<String>> {
    match std::fs::read_dir(NETNS_DIR) {
        Ok(dir) => Ok(dir
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

pub fn namespace_exists(ns: &str) -> bool {
    ns_path(ns).exists()
}

/// Whether `ns` is the namespace this process runs in (an agent started in
/// its host's namespace).
pub fn is_own_namespace(ns: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(ns_path(ns)),
        std::fs::metadata("/proc/self/ns/net"),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Creates the namespace `ns` (with `lo` up) if it does not exist.
pub fn add_namespace(ns: &str) -> io::Result<()> {
    if ensure_namespace(ns)? {
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
    }
    Ok(())
}

/// Creates the namespace `ns` if it does not exist; says whether it did
/// (`lo` is still down in a new one).
pub fn ensure_namespace(ns: &str) -> io::Result<bool> {
    if namespace_exists(ns) {
        return Ok(false);
    }
    ip(&["netns", "add", ns])?;
    Ok(true)
}

/// Deletes the namespace `ns` if it exists, stopping its thread first.
pub fn delete_namespace(ns: &str) -> io::Result<()> {
    forget(ns);
    if namespace_exists(ns) {
        ip(&["netns", "delete", ns])?;
    }
    Ok(())
}

/// An interface as `ip link` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    /// The bridge it is a port of.
    pub master: Option<String>,
    pub alias: Option<String>,
}

/// The interfaces in `ns`.
pub fn links(ns: &str) -> io::Result<Vec<Link>> {
    let out = ip(&["-n", ns, "-o", "link", "show"])?;
    Ok(out
        .lines()
        .filter_map(|line| {
            // "7: tapabc@if6: <...> mtu 1500 qdisc noqueue master brqx state UP ..."
            let mut parts = line.split_whitespace();
            parts.next()?;
            let name = parts.next()?.trim_end_matches(':');
            let name = name.split('@').next()?.to_string();
            let words: Vec<&str> = line.split_whitespace().collect();
            let after = |key: &str| {
                words
                    .windows(2)
                    .find(|w| w[0] == key)
                    .map(|w| w[1].to_string())
            };
            Some(Link {
                name,
                master: after("master"),
                alias: after("alias"),
            })
        })
        .collect())
}
