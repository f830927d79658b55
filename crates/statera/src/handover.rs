//! One `statera serve` handing over to the next on the same data directory
//! (an upgrade, a restart, a changed configuration) without refusing or
//! dropping a connection.
//!
//! The serving process holds `<data-dir>/serve.lock` (flock) and listens on
//! `<data-dir>/handover.sock` (a Unix socket in the 0700 data directory; a
//! peer of another user is refused). A second `serve` finds the lock held
//! and asks for the handover:
//!
//! 1. new → old: `Take`. The old one stops its API (requests in flight
//!    finish; new ones wait in the listening socket's queue), its
//!    controller and network task, forgets its HAProxy processes without
//!    stopping them, closes its store and lets go of the lock.
//! 2. old → new: `Sockets`, in batches, each carrying its descriptors
//!    (SCM_RIGHTS): the API's listening socket and every load balancer's.
//!    Until the end, the old process's data plane keeps accepting on them.
//! 3. The new one takes the lock, opens the store, restores every load
//!    balancer on the sockets it was given (HAProxy ones by starting a new
//!    HAProxy that takes its sockets from the old one, `-x`), serves the API
//!    on the same socket, then sends `Serving`.
//! 4. The old one stops accepting, lets its connections finish (HTTP
//!    keep-alive ones after their current request) up to the drain timeout,
//!    and exits.
//!
//! If the new process goes away before `Serving`, the old one takes the lock
//! back and serves on as before (its data plane never stopped).

use serde::{Deserialize, Serialize};
use statera_dataplane::SocketKey;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const SOCKET: &str = "handover.sock";
pub const LOCK: &str = "serve.lock";

/// Descriptors per message (the kernel takes at most 253 at a time).
const BATCH: usize = 200;
/// The longest message: a batch of keys.
const MAX_FRAME: usize = 1 << 20;

#[derive(Debug, Serialize, Deserialize)]
enum Message {
    /// `role`: `serve` or `agent`; a process takes over only from its kind.
    Take {
        pid: u32,
        role: String,
    },
    Sockets {
        keys: Vec<Key>,
        last: bool,
    },
    Serving,
}

/// What a handed-over descriptor is.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Key {
    /// The API's listening socket.
    Api,
    /// A load balancer's listening socket.
    Lb {
        netns: Option<String>,
        addr: SocketAddr,
        udp: bool,
    },
}

/// `<data-dir>/serve.lock`, held (flock) while a process serves on the data
/// directory; let go when dropped.
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

impl Lock {
    /// The lock if no other process holds it.
    pub fn try_acquire(dir: &Path) -> io::Result<Option<Lock>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The lock, waiting up to `within` for the process holding it to let go.
    pub fn acquire_within(dir: &Path, within: Duration) -> io::Result<Option<Lock>> {
        let until = Instant::now() + within;
        loop {
            if let Some(lock) = Lock::try_acquire(dir)? {
                return Ok(Some(lock));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Listens for a process that wants to take over; each accepted connection
/// (from this user only) is sent to the returned receiver.
pub fn listen(dir: &Path) -> io::Result<tokio::sync::mpsc::Receiver<UnixStream>> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(SOCKET);
    // We hold the lock: a socket file there is a dead process's.
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = via_short_path(&path, |p| UnixListener::bind(p))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    std::thread::Builder::new()
        .name("handover".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                match rustix::net::sockopt::socket_peercred(&stream) {
                    Ok(cred) if cred.uid == rustix::process::geteuid() => {}
                    Ok(cred) => {
                        tracing::warn!(
                            uid = cred.uid.as_raw(),
                            pid = cred.pid.as_raw_nonzero().get(),
                            "handover asked by another user: refused"
                        );
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "handover peer unknown: refused");
                        continue;
                    }
                }
                if tx.blocking_send(stream).is_err() {
                    return;
                }
            }
        })?;
    Ok(rx)
}

/// The longest path a Unix socket address holds, with its NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Runs `f` on `path`, or, when `path` is too long for a Unix socket
/// address (a deep data directory), on `/proc/self/fd/<its directory>/<name>`.
pub(crate) fn via_short_path<T>(
    path: &Path,
    f: impl FnOnce(&Path) -> io::Result<T>,
) -> io::Result<T> {
    if path.as_os_str().len() < MAX_SOCKET_PATH {
        return f(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return f(path);
    };
    let dir = std::fs::File::open(dir)?;
    let short = Path::new("/proc/self/fd")
        .join(std::os::fd::AsRawFd::as_raw_fd(&dir).to_string())
        .join(name);
    f(&short)
}

/// The socket a process that wants to take over connects to.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET)
}

/// What the new process received.
#[derive(Debug)]
pub struct Taken {
    stream: UnixStream,
    pub api: Option<OwnedFd>,
    pub sockets: Vec<(SocketKey, OwnedFd)>,
    /// The process handing over.
    pub from_pid: Option<u32>,
}

impl Taken {
    /// Tells the old process this one serves: it stops accepting and drains.
    pub fn serving(mut self) -> io::Result<()> {
        write_frame(&mut self.stream, &Message::Serving, &[])
    }
}

/// Asks the process serving on `dir` for its sockets (blocking: run it off
/// the runtime). `Ok(None)`: nobody answers there.
pub fn take_over(dir: &Path, within: Duration, role: &str) -> io::Result<Option<Taken>> {
    let mut stream = match via_short_path(&socket_path(dir), |p| UnixStream::connect(p)) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let from_pid = rustix::net::sockopt::socket_peercred(&stream)
        .ok()
        .map(|c| c.pid.as_raw_nonzero().get() as u32);
    stream.set_read_timeout(Some(within))?;
    write_frame(
        &mut stream,
        &Message::Take {
            pid: std::process::id(),
            role: role.to_string(),
        },
        &[],
    )?;
    let mut api = None;
    let mut sockets = Vec::new();
    loop {
        let (message, fds) = match read_frame(&mut stream) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(io::Error::other(
                    "the running process closed the handover (is it a statera of another kind, \
                     `serve` and `agent` on one data directory?)",
                ));
            }
            other => other?,
        };
        let Message::Sockets { keys, last } = message else {
            return Err(io::Error::other("unexpected handover message"));
        };
        if keys.len() != fds.len() {
            return Err(io::Error::other(format!(
                "{} sockets named, {} received",
                keys.len(),
                fds.len()
            )));
        }
        for (key, fd) in keys.into_iter().zip(fds) {
            match key {
                Key::Api => api = Some(fd),
                Key::Lb { netns, addr, udp } => sockets.push((SocketKey { netns, addr, udp }, fd)),
            }
        }
        if last {
            break;
        }
    }
    stream.set_read_timeout(None)?;
    Ok(Some(Taken {
        stream,
        api,
        sockets,
        from_pid,
    }))
}

/// The old process's side: reads the `Take`, returning the asking pid and
/// its role.
pub fn read_take(stream: &mut UnixStream, within: Duration) -> io::Result<(u32, String)> {
    stream.set_read_timeout(Some(within))?;
    match read_frame(stream)?.0 {
        Message::Take { pid, role } => Ok((pid, role)),
        other => Err(io::Error::other(format!(
            "unexpected handover message {other:?}"
        ))),
    }
}

/// The next real request to take over from this process (a `role`
/// process's `Take`, within 10 s of connecting); connections that say
/// nothing, or come from another kind of process, are closed and logged.
pub async fn next_take(
    requests: &mut tokio::sync::mpsc::Receiver<UnixStream>,
    role: &str,
) -> Option<(u32, UnixStream)> {
    loop {
        let mut stream = requests.recv().await?;
        let read = tokio::task::spawn_blocking(move || {
            read_take(&mut stream, Duration::from_secs(10)).map(|taken| (taken, stream))
        })
        .await;
        match read {
            Ok(Ok(((pid, asking), stream))) if asking == role => return Some((pid, stream)),
            Ok(Ok(((pid, asking), _))) => {
                tracing::warn!(pid, role = %asking, "a statera {asking} asked to take over this {role}: refused");
            }
            _ => tracing::warn!("a handover request that said nothing: ignored"),
        }
    }
}

/// The old process's side: sends the API's socket and the load balancers'.
pub fn give(
    stream: &mut UnixStream,
    api: Option<BorrowedFd<'_>>,
    sockets: &[(SocketKey, OwnedFd)],
) -> io::Result<()> {
    let mut all: Vec<(Key, BorrowedFd<'_>)> = Vec::with_capacity(sockets.len() + 1);
    if let Some(api) = api {
        all.push((Key::Api, api));
    }
    for (key, fd) in sockets {
        all.push((
            Key::Lb {
                netns: key.netns.clone(),
                addr: key.addr,
                udp: key.udp,
            },
            fd.as_fd(),
        ));
    }
    let chunks: Vec<&[(Key, BorrowedFd<'_>)]> = if all.is_empty() {
        vec![&[]]
    } else {
        all.chunks(BATCH).collect()
    };
    let n = chunks.len();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let keys = chunk.iter().map(|(k, _)| k.clone()).collect();
        let fds: Vec<BorrowedFd<'_>> = chunk.iter().map(|(_, fd)| *fd).collect();
        let message = Message::Sockets {
            keys,
            last: i + 1 == n,
        };
        write_frame(stream, &message, &fds)?;
    }
    Ok(())
}

/// The old process's side: waits for `Serving`. `Ok(false)`: the new
/// process went away (or said something else) first.
pub fn wait_serving(stream: &mut UnixStream, within: Duration) -> io::Result<bool> {
    stream.set_read_timeout(Some(within))?;
    match read_frame(stream) {
        Ok((Message::Serving, _)) => Ok(true),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// A frame: its length (4 bytes, big-endian), then JSON; `fds` ride on its
/// first byte.
fn write_frame(
    stream: &mut UnixStream,
    message: &Message,
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&body);
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(BATCH))];
    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(rustix::net::SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors for one message"));
    }
    let sent = rustix::net::sendmsg(
        &*stream,
        &[IoSlice::new(&bytes)],
        &mut control,
        rustix::net::SendFlags::NOSIGNAL,
    )?;
    stream.write_all(&bytes[sent..])?;
    Ok(())
}

fn read_frame(stream: &mut UnixStream) -> io::Result<(Message, Vec<OwnedFd>)> {
    let mut head = [0u8; 4];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(BATCH))];
    let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        &*stream,
        &mut [IoSliceMut::new(&mut head)],
        &mut control,
        rustix::net::RecvFlags::CMSG_CLOEXEC,
    )?;
    if got.bytes == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if got.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
        return Err(io::Error::other("descriptors truncated"));
    }
    let mut fds = Vec::new();
    for message in control.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    stream.read_exact(&mut head[got.bytes..])?;
    let len = u32::from_be_bytes(head) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::other("handover message too long"));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    let message = serde_json::from_slice(&body).map_err(io::Error::other)?;
    Ok((message, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_cross_in_batches_with_their_keys() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let listeners: Vec<std::net::TcpListener> = (0..450)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let sockets: Vec<(SocketKey, OwnedFd)> = listeners
            .iter()
            .map(|l| {
                let key = SocketKey {
                    netns: None,
                    addr: l.local_addr().unwrap(),
                    udp: false,
                };
                (key, l.as_fd().try_clone_to_owned().unwrap())
            })
            .collect();
        let api = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let api_addr = api.local_addr().unwrap();
        let reader = std::thread::spawn(move || {
            let mut api = None;
            let mut got = Vec::new();
            loop {
                let (message, fds) = read_frame(&mut b).unwrap();
                let Message::Sockets { keys, last } = message else {
                    panic!("{message:?}")
                };
                assert_eq!(keys.len(), fds.len());
                for (key, fd) in keys.into_iter().zip(fds) {
                    match key {
                        Key::Api => api = Some(fd),
                        Key::Lb { addr, .. } => got.push((addr, fd)),
                    }
                }
                if last {
                    return (api, got);
                }
            }
        });
        give(&mut a, Some(api.as_fd()), &sockets).unwrap();
        let (api_fd, got) = reader.join().unwrap();
        assert_eq!(got.len(), 450);
        // Each descriptor is the socket its key names.
        for (addr, fd) in got {
            let listener = std::net::TcpListener::from(fd);
            assert_eq!(listener.local_addr().unwrap(), addr);
        }
        let api = std::net::TcpListener::from(api_fd.unwrap());
        assert_eq!(api.local_addr().unwrap(), api_addr);
    }

    #[test]
    fn a_deep_data_directory_still_listens_and_is_reached() {
        let base = tempfile::tempdir().unwrap();
        let deep = base.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        assert!(socket_path(&deep).as_os_str().len() > MAX_SOCKET_PATH);
        let mut rx = listen(&deep).unwrap();
        let connected = via_short_path(&socket_path(&deep), |p| UnixStream::connect(p));
        assert!(connected.is_ok(), "{connected:?}");
        assert!(rx.blocking_recv().is_some());
    }

    #[test]
    fn the_lock_is_held_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::try_acquire(dir.path()).unwrap();
        assert!(first.is_some());
        assert!(Lock::try_acquire(dir.path()).unwrap().is_none());
        drop(first);
        assert!(Lock::try_acquire(dir.path()).unwrap().is_some());
    }
}
