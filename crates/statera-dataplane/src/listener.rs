//! Listener sockets and listener lifetimes.
//!
//! Two things are kept apart on purpose:
//!
//! - a **socket** ([`AcceptTask`]) is keyed by its address (VIP : port). It is
//!   bound once and kept across applies as long as some served listener uses
//!   that address; for each connection it looks the address up in the current
//!   snapshot to learn which listener, with which settings, serves it.
//! - a **listener life** ([`ListenerLife`]) is keyed by the listener id. It
//!   starts when the listener starts being served and ends when the listener
//!   is removed or disabled: its connections are then *draining*, and are cut
//!   at the drain deadline unless they finish first.
//!
//! Keying sockets by address lets a config replace listener A by listener B on
//! the same port without a bind conflict: B takes over A's socket.

use crate::l7::Policies;
use crate::limits::{AcceptBackoff, Slot};
use crate::relay;
use crate::snapshot::LbShared;
use crate::sockets::{Netns, new_socket};
use crate::stats::ListenerStats;
use socket2::{Domain, Protocol, Type};
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

/// Kernel accept queue length. Connections over a listener's
/// `connection_limit` wait here, so it is sized for bursts, like HAProxy's
/// default backlog (its maxconn).
const LISTEN_BACKLOG: i32 = 1024;

/// Binds a listening TCP socket on `addr` the way a VIP needs it:
/// `SO_REUSEADDR` (rebind while old connections sit in TIME_WAIT) and
/// `IP_FREEBIND` (bind a VIP before the address is on an interface). Never
/// `SO_REUSEPORT`: a listening socket belongs to one load balancer, and a
/// second one (another project's) on the same address and port must fail to
/// bind rather than share its connections. A listener handed from one
/// config to the next keeps its socket instead (sockets are kept by address).
pub fn bind(netns: &Netns, addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = new_socket(
        netns,
        Domain::for_address(addr),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(true)?;
    } else {
        socket.set_freebind_v4(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// A listening socket handed over by the process this one replaces, checked
/// to be what `addr` needs: a listening TCP socket bound to `addr`.
pub fn adopt(fd: OwnedFd, addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::from(fd);
    crate::sockets::check_inherited(&socket, Type::STREAM, addr)?;
    if !socket.is_listener()? {
        return Err(std::io::Error::other("not a listening socket"));
    }
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Where a listener is in its life. Connections watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifeState {
    Serving,
    /// Removed or disabled: no new connections; established ones finish.
    Draining,
    /// The drain deadline passed: established connections are closed.
    Cut,
}

#[derive(Debug)]
pub struct ListenerLife {
    state: watch::Sender<LifeState>,
}

impl ListenerLife {
    pub fn new() -> Self {
        ListenerLife {
            state: watch::Sender::new(LifeState::Serving),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<LifeState> {
        self.state.subscribe()
    }

    /// Ends the listener's life: connections are told to drain now and cut
    /// after `deadline`, unless they all finish first.
    pub fn drain(self: &Arc<Self>, deadline: Duration) {
        if *self.state.borrow() != LifeState::Serving {
            return;
        }
        self.state.send_replace(LifeState::Draining);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime left to wait on (the engine is dropped at shutdown):
            // nothing can drain, cut at once.
            self.state.send_replace(LifeState::Cut);
            return;
        };
        let life = self.clone();
        runtime.spawn(async move {
            tokio::select! {
                // Every connection holds a receiver: all gone = all done.
                () = life.state.closed() => {}
                () = tokio::time::sleep(deadline) => {
                    life.state.send_replace(LifeState::Cut);
                }
            }
        });
    }
}

/// One listener as a snapshot serves it.
#[derive(Debug)]
pub struct ListenerView {
    /// Index of the listener in the snapshot's `config.listeners`.
    pub index: usize,
    pub stats: Arc<ListenerStats>,
    /// `connection_limit` and the semaphore enforcing it; carried over to the
    /// next snapshot while the limit is unchanged.
    pub limiter: Option<(u32, Arc<Semaphore>)>,
    pub life: Arc<ListenerLife>,
    /// The listener's L7 policies, compiled (empty for L4 listeners).
    pub policies: Arc<Policies>,
    /// TERMINATED_HTTPS: the certificates and settings of its handshakes.
    pub tls: Option<Arc<crate::tls::ServerTls>>,
}

impl ListenerView {
    /// Whether the listener is at its connection limit. Counted from the
    /// active connections, not from the free slots: the accept loop holds the
    /// next slot while it waits for a connection.
    pub fn is_full(&self) -> bool {
        self.limiter.as_ref().is_some_and(|(limit, _)| {
            self.stats.active_connections.load(Ordering::Relaxed) >= u64::from(*limit)
        })
    }
}

/// The accept loop of one bound socket; dropping it closes the socket.
/// Connections already accepted are separate tasks and keep running.
#[derive(Debug)]
pub struct AcceptTask {
    task: JoinHandle<()>,
    /// The socket, shared with the task: handed to the process that takes
    /// over from this one ([`AcceptTask::socket_fd`]).
    listener: Arc<TcpListener>,
}

impl Drop for AcceptTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AcceptTask {
    pub fn spawn(listener: TcpListener, addr: SocketAddr, shared: Arc<LbShared>) -> AcceptTask {
        let listener = Arc::new(listener);
        AcceptTask {
            task: tokio::spawn(accept_loop(listener.clone(), addr, shared)),
            listener,
        }
    }

    /// A second descriptor of the listening socket, for a process taking
    /// over from this one.
    pub fn socket_fd(&self) -> std::io::Result<OwnedFd> {
        self.listener.as_fd().try_clone_to_owned()
    }

    /// Stops accepting and returns once the socket is closed, so its address
    /// can be bound again at once (dropping only schedules the close). A
    /// socket handed to another process stays open there.
    pub async fn close(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

async fn accept_loop(listener: Arc<TcpListener>, addr: SocketAddr, shared: Arc<LbShared>) {
    let mut changed = shared.subscribe_changes();
    let mut backoff = AcceptBackoff::default();
    loop {
        changed.borrow_and_update();
        let Some(view) = shared.load().by_addr.get(&addr).cloned() else {
            // Not served by the current snapshot: this task is about to be
            // dropped by the apply that published it.
            if changed.changed().await.is_err() {
                return;
            }
            continue;
        };
        // Take a connection slot before accepting: over the limit, clients
        // wait in the kernel's accept queue instead of being reset.
        let permit = match &view.limiter {
            None => None,
            Some((_, sem)) => tokio::select! {
                permit = sem.clone().acquire_owned() => match permit {
                    Ok(permit) => Some(permit),
                    Err(_closed) => return,
                },
                changed = changed.changed() => {
                    if changed.is_err() { return; }
                    continue;
                }
            },
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff.succeeded();
                    accepted
                }
                Err(error) => {
                    // Out of descriptors: pause (growing) rather than spin
                    // on the connection still queued; never give up.
                    let pause = backoff.failed("load balancer listener", addr, &error);
                    tokio::time::sleep(pause).await;
                    continue;
                }
            },
            changed = changed.changed() => {
                if changed.is_err() { return; }
                continue;
            }
        };
        // Serve with the newest snapshot: a config published while we waited
        // for the connection applies to it.
        let snapshot = shared.load();
        let Some(view) = snapshot.by_addr.get(&addr).cloned() else {
            continue;
        };
        // The load balancer's and the process's ceilings: past either, the
        // connection is reset at once and counted.
        let slot = match shared.admission().admit() {
            Ok(slot) => slot,
            Err(refusal) => {
                let _ = stream.set_zero_linger();
                drop(stream);
                view.stats.refuse_connection();
                let listener_id = snapshot.config.listeners.get(view.index).map(|l| l.id);
                shared
                    .admission()
                    .refused(addr, listener_id.unwrap_or_default(), refusal);
                continue;
            }
        };
        tokio::spawn(relay::serve(
            stream,
            peer,
            snapshot,
            view,
            shared.clone(),
            Admitted {
                _permit: permit,
                _slot: slot,
            },
        ));
    }
}

/// What an accepted connection holds until it ends: its listener's
/// `connection_limit` slot (if it has a limit) and its place under the load
/// balancer's and the process's ceilings.
#[derive(Debug)]
pub struct Admitted {
    pub _permit: Option<OwnedSemaphorePermit>,
    pub _slot: Slot,
}
