//! Statera's HAProxy provider: each load balancer is served by its own
//! HAProxy process, configured from the load balancer's whole
//! [`statera_config::LbConfig`].
//!
//! The control plane builds a [`HaproxyProvider`] with
//! [`HaproxyOptions::new`]`(<data-dir>/haproxy)` and a report channel, and
//! drives it through [`statera_config::DataPlane`], exactly like the native
//! engine. HAProxy ≥ 2.6 must be installed (Debian's `haproxy` package).
//!
//! # Shape
//!
//! - **Rendering** (`render.rs`) is a pure function `LbConfig` →
//!   haproxy.cfg following the field mapping of Octavia's amphora driver:
//!   `global` (master-worker, an admin stats socket in the load balancer's
//!   directory, `maxconn` = the sum of the listeners' limits, 50 000 for
//!   none, capped at 1 000 000, at what the file-descriptor limit allows and
//!   at the load balancer's ceiling, [`HaproxyOptions::lb_max_connections`],
//!   which caps each frontend's `maxconn` too),
//!   `defaults` (retries 3, redispatch, timeouts), one `frontend
//!   <listener_id>` per enabled listener (bind VIP:port, `mode http` for
//!   HTTP, `mode tcp` for TCP and HTTPS passthrough, maxconn, client and
//!   inspect timeouts, `X-Forwarded-*` headers, L7 policies as ACLs,
//!   `default_backend`), and one `backend <pool_id>:<listener_id>` per pool a
//!   listener uses (algorithm, persistence, backups, member timeouts, health
//!   checks, PROXY protocol). `allowed_cidrs`, which Octavia enforces with
//!   security-group rules on the VIP port, become `tcp-request connection
//!   reject if !{ src … }` here.
//! - **Lifecycle** (`process.rs`, `provider.rs`). Per load balancer a
//!   directory `<base>/<lb_id>/` holds `haproxy.cfg` (always the last good
//!   configuration), the pid file, the stats socket and the master CLI
//!   socket. `apply` renders, checks the text with `haproxy -c`, then starts
//!   `haproxy -W` or reloads it through the master CLI: the new worker takes
//!   over the old one's listening sockets, so a reload refuses no
//!   connection, and the old worker finishes its own. A configuration
//!   HAProxy refuses (at check or at load) is answered with HAProxy's alert
//!   and the previous one keeps serving. A configuration whose text is
//!   unchanged only moves the version. `remove` soft-stops HAProxy (SIGUSR1:
//!   listeners close at once, connections finish), terminates it after
//!   [`HaproxyOptions::stop_timeout`], and deletes the directory.
//! - **Supervision.** A task per load balancer watches the master (HAProxy
//!   takes its master down when a worker dies) and restarts it with the
//!   last good configuration, logging an error and counting it
//!   ([`HaproxyProvider::restarts`]); listeners are reported `Down` until it
//!   is back. An HAProxy left running by an earlier run (pid file) is
//!   replaced on the first apply: the new one binds beside it
//!   (`SO_REUSEPORT`), then the old one is soft-stopped.
//! - **Status and counters** (`stats.rs`). Every
//!   [`HaproxyOptions::poll_interval`] (2 s) the task reads `show proc` on
//!   the master CLI and `show stat` from the stats socket (and from workers
//!   still draining after a reload, through the master CLI): frontend
//!   `OPEN`/`FULL` → listener state, server status → member health (`UP`
//!   and `UP x/y` → Up, `DOWN` and `DOWN x/y` → Down, i.e. what HAProxy
//!   routes by; `NOLB`/`DRAIN` → Drain, `MAINT` → Maint, `no check` →
//!   NoCheck; a disabled member is Maint and a weight-0 member Drain, as in
//!   the native engine). Counters (bytes, total connections, request
//!   errors) add up every worker's last values, so they never go back
//!   when a reload or a restart starts a worker from zero. `report` returns
//!   the last polled report; a report is also sent after each apply and
//!   whenever a member's health or a listener's state changes.
//!
//! # Not supported
//!
//! Refused with `Unsupported` (the previous configuration keeps serving):
//! UDP and SCTP listeners (Octavia serves them with keepalived/LVS, not
//! HAProxy), TERMINATED_HTTPS (the configuration carries no certificates
//! yet), PROMETHEUS listeners, L7 policies on listeners other than HTTP,
//! PING health monitors (HAProxy pings only through `external-check` with a
//! helper script, which this provider does not install), UDP-CONNECT and
//! SCTP monitors. Cookie persistence on a TCP listener is left out (there is
//! no cookie to read), as HAProxy would ignore it.
//!
//! Known limits: `SOURCE_IP_PORT` hashes address and port with
//! `balance hash` (HAProxy ≥ 2.6); HAProxy evaluates `http-request deny`
//! before `redirect` before `use_backend`, so REJECT outranks redirects,
//! which outrank REDIRECT_TO_POOL, as in Octavia; counters of a worker
//! between its last poll and its exit are not counted; a pool's members are
//! health-checked once per listener using the pool, and a member is Down if
//! any of those checks says so.

mod process;
mod provider;
pub mod render;
mod stats;

pub use process::find_haproxy;
pub use provider::{HaproxyOptions, HaproxyProvider};
