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
//!   balancer rotation, health, members' in-flight counts, stick tables) is
//!   carried into the next snapshot by id.
//! - **All or nothing.** `apply` first refuses what it cannot serve
//!   (`Unsupported`) and L7 policies that do not compile (`Other`), then binds every new address (`Bind` on failure, with
//!   what it bound closed again), and only then publishes. A refused config
//!   leaves the previous one serving untouched.
//! - **Listener lifecycle** (`listener.rs`). Sockets are keyed by address and
//!   kept bound across applies; each new connection reads the listener's
//!   current settings through the snapshot. A listener that is removed or
//!   disabled stops accepting at once; its established connections drain and
//!   are cut at [`EngineOptions::drain_timeout`] (30 s by default). Sockets
//!   are bound with `SO_REUSEADDR` and `IP_FREEBIND`, so a VIP can be bound
//!   before its address is on an interface.
//! - **Selection behind a trait** (`balance/`, one file per algorithm). The
//!   pool decides which members are candidates (pool and member enabled,
//!   weight above 0, not down, backups only when no primary is left, not yet
//!   tried for this connection); a `Balancer` picks one: `ROUND_ROBIN` is
//!   smooth weighted round robin, `LEAST_CONNECTIONS` minimises
//!   `(in flight + 1) / weight` (connections for L4 listeners, requests for
//!   HTTP ones; ties in rotation), `SOURCE_IP` / `SOURCE_IP_PORT` are
//!   weighted rendezvous hashing of the client's IP / IP and port keyed on
//!   member ids (a member leaving moves only its own clients). A failed
//!   connect asks the same balancer again without the failed member, at
//!   most three attempts per connection or request.
//! - **Session persistence** (`persistence.rs`). `SOURCE_IP` (stick table
//!   client IP → member, any listener), `HTTP_COOKIE` (the proxy's own
//!   `SRV=<member id>` cookie, HTTP listeners) and `APP_COOKIE` (the
//!   application cookie's values learnt from `Set-Cookie` and `Cookie`,
//!   HTTP listeners). Tables are bounded (10k entries), entries expire after
//!   `persistence_timeout` (default 30 min) without use and are refreshed by
//!   use; they survive applies and lose entries of removed members. A
//!   remembered member that cannot take the client (removed, disabled,
//!   weight 0, down, a backup while a primary is usable, or its connect
//!   fails) gives way to the algorithm, and the new member is remembered.
//! - **Relay** (`relay.rs`). Every connection is admitted there:
//!   `connection_limit` holds clients in the kernel's accept queue instead of
//!   resetting them; `allowed_cidrs` closes connections from other sources at
//!   once. TCP and HTTPS (passthrough) listeners are then relayed at layer 4:
//!   bytes copied both ways with per-listener counters and idle timeouts.
//! - **HTTP** (`http.rs`). HTTP listeners parse requests with hyper
//!   (HTTP/1.1, keep-alive to clients): L7 policies decide per request, the
//!   head is rewritten (hop-by-hop headers dropped, `X-Forwarded-For/-Port/
//!   -Proto` per `insert_headers`), and the request goes to a member over a
//!   keep-alive connection from that member's small idle set
//!   (`upstream.rs`: bounded, closed after a few idle seconds). A failed
//!   connect moves on to another member before the request leaves. The proxy
//!   itself answers 400/431 (malformed or oversized head, not exactly one
//!   `Host`, both `Content-Length` and `Transfer-Encoding`, which hyper
//!   would resolve silently: `io.rs` keeps the raw head to catch it), 403
//!   (REJECT), 3xx (redirects), 502 (member failed before its response
//!   head), 503 (no member), 504 (member too slow); those 4xx/5xx, and
//!   responses cut by a member failing mid-body, count in `request_errors`.
//! - **L7 policies** (`l7.rs`). Compiled at apply (an invalid regex or a
//!   missing redirect pool fails the apply); all rules of a policy must
//!   match; REJECT outranks redirects, which outrank REDIRECT_TO_POOL, as in
//!   Octavia's HAProxy provider; position orders policies of one rank.
//! - **PROXY protocol** (`proxy_protocol.rs`). Members of PROXY / PROXYV2
//!   pools get a v1 line / v2 header with the client's and the VIP's address
//!   and port before any other byte, on L4 and HTTP listeners alike. Their
//!   HTTP connections are kept per client connection, never shared between
//!   clients (the header names one client).
//! - **Health** (`health.rs`). Members of pools with an enabled health
//!   monitor get a TCP connect prober honouring delay, timeout, rise and
//!   fall; down members take no new connections, and each transition sends a
//!   report.
//!
//! # Not yet done
//!
//! - Refused with `Unsupported` when on an enabled listener, rather than
//!   served wrongly: TERMINATED_HTTPS (TLS), UDP, SCTP and PROMETHEUS
//!   listeners; L7 policies on a listener that is not HTTP.
//! - HTTP listeners speak HTTP/1.x only: no HTTP/2 (h2c), no protocol
//!   upgrades (WebSocket `Upgrade` is dropped, so WebSockets through an HTTP
//!   listener do not work; a TCP listener relays them), no `CONNECT`.
//! - No header read timeout separate from `timeout_client_data` (a client
//!   trickling a head byte by byte keeps its connection).
//! - A client that aborts in the middle of its request body is counted in
//!   `request_errors` (as a 502 it never receives); HAProxy counts those
//!   apart, as client aborts.
//! - Member connection pools have fixed sizes (16 idle connections per
//!   member, 3 s idle expiry), not configurable yet.
//! - Accepted but not honoured yet: `tcp_inspect_ms`,
//!   `persistence_granularity` (source IP persistence is per address, not
//!   per subnet). Cookie persistence on a listener that is not HTTP does
//!   nothing (there is no cookie to read), as in HAProxy's TCP mode.
//! - `HTTP_COOKIE` uses one cookie name (`SRV`) for every pool, as Octavia's
//!   HAProxy provider does: a client whose requests alternate between pools
//!   (L7 policies) is given a new cookie at each switch. `APP_COOKIE` entries
//!   are not removed when the application deletes its cookie; they expire.
//! - Health probes are TCP connects for every monitor type (no HTTP request,
//!   TLS hello or ICMP yet); no passive health (failed connects do not count
//!   against a member).
//! - Counters are reported when asked and after each apply, not on a timer.
//! - A changed `connection_limit` takes a fresh set of slots: connections
//!   admitted under the old limit do not count against the new one.

mod balance;
mod engine;
mod health;
mod http;
mod io;
mod l7;
mod listener;
mod persistence;
mod pool;
mod proxy_protocol;
mod relay;
mod snapshot;
mod stats;
mod upstream;

pub use engine::{Engine, EngineOptions};
