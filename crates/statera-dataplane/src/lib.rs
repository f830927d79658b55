//! Statera's native data plane: an in-process full proxy that serves whole
//! load balancer configurations.
//!
//! The control plane builds an [`Engine`] with a channel for reports and
//! drives it through [`statera_config::DataPlane`]: `apply` a whole
//! `LbConfig` whenever a load balancer changes, `remove` it on delete,
//! `report` to read its listeners' states and counters and its members'
//! health. `apply` and `remove` must be awaited on a tokio runtime with I/O
//! and time enabled (the engine spawns its tasks there); `Engine::new` needs
//! no runtime.
//!
//! # Shape
//!
//! - **One snapshot per load balancer** (`snapshot.rs`). `apply` derives a
//!   snapshot from the config (which listener serves which address,
//!   connection slots, counters, pools with their balancers and member
//!   health) and publishes it
//!   with a single `ArcSwap` store. A connection takes the snapshot when it
//!   is accepted and uses it to the end, so it never sees half of two
//!   configs. State that must survive a config (counters, listener lives,
//!   balancer rotation, health) is carried into the next snapshot by id.
//! - **All or nothing.** `apply` first refuses what it cannot serve
//!   (`Unsupported`), then binds every new address (`Bind` on failure, with
//!   what it bound closed again), and only then publishes. A refused config
//!   leaves the previous one serving untouched.
//! - **Listener lifecycle** (`listener.rs`). Sockets are keyed by address and
//!   kept bound across applies; each new connection reads the listener's
//!   current settings through the snapshot. A listener that is removed or
//!   disabled stops accepting at once; its established connections drain and
//!   are cut at [`EngineOptions::drain_timeout`] (30 s by default). Sockets
//!   are bound with `SO_REUSEADDR` and `IP_FREEBIND`, so a VIP can be bound
//!   before its address is on an interface.
//! - **Selection behind a trait** (`balance/`). The pool decides which
//!   members are candidates (enabled, weight above 0, not down, backups only
//!   when no primary is left, not yet tried for this connection); a
//!   `Balancer` picks one. A failed connect moves on to another member, at
//!   most three attempts per connection.
//! - **Relay** (`relay.rs`). Bytes are copied both ways with per-listener
//!   counters and idle timeouts; `connection_limit` holds clients in the
//!   kernel's accept queue instead of resetting them; `allowed_cidrs` closes
//!   connections from other sources at once.
//! - **Health** (`health.rs`). Members of pools with an enabled health
//!   monitor get a TCP connect prober honouring delay, timeout, rise and
//!   fall; down members take no new connections, and each transition sends a
//!   report.
//!
//! # Not yet done
//!
//! - Every served listener protocol (TCP, HTTP, HTTPS passthrough) is an L4
//!   byte relay: no HTTP parsing, so no X-Forwarded-* headers, no L7
//!   policies, no keep-alive pooling to members, no cookie persistence.
//! - Refused with `Unsupported` when on an enabled listener, rather than
//!   served wrongly: TERMINATED_HTTPS (TLS), UDP, SCTP and PROMETHEUS
//!   listeners; L7 policies (an ignored REJECT would let blocked traffic
//!   through); PROXY and PROXYV2 default pools (members expect a header this
//!   relay does not send yet).
//! - Accepted but not honoured yet: `insert_headers` (members see the
//!   connection come from this host, without X-Forwarded-*), session
//!   persistence, `tcp_inspect_ms`.
//! - Every algorithm is smooth weighted round robin; LEAST_CONNECTIONS,
//!   SOURCE_IP and SOURCE_IP_PORT get their own balancers later.
//! - Health probes are TCP connects for every monitor type (no HTTP request,
//!   TLS hello or ICMP yet); no passive health (failed connects do not count
//!   against a member).
//! - Counters are reported when asked and after each apply, not on a timer.
//! - A changed `connection_limit` takes a fresh set of slots: connections
//!   admitted under the old limit do not count against the new one.

mod balance;
mod engine;
mod health;
mod listener;
mod pool;
mod relay;
mod snapshot;
mod stats;

pub use engine::{Engine, EngineOptions};
