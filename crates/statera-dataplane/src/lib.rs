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
//!   with a single `ArcSwap` store. A TCP connection takes the snapshot when
//!   it is accepted and uses it to the end; each request of an HTTP
//!   keep-alive connection takes the newest snapshot that still serves its
//!   address (a removed listener's connections drain on their last one), so
//!   nothing ever sees half of two configs. State that must survive a config (counters, listener lives,
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
//!   weight above 0, not down, not ejected by passive health unless all
//!   are, backups only when no primary is left, not yet tried for this
//!   connection); a `Balancer` picks one: `ROUND_ROBIN` is
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
//!   bytes moved both ways by splice(2) through a pipe per direction
//!   (`splice.rs`: made when the first bytes come, so an idle connection
//!   holds none; a small buffer when no pipe can be had), with per-listener
//!   counters and idle timeouts.
//! - **Limits** (`limits.rs`). Beside each listener's `connection_limit`,
//!   every connection and UDP session takes a slot under its load
//!   balancer's ceiling and the process's ([`EngineOptions::limits`],
//!   derived by `statera serve` from the descriptor budget,
//!   [`FdBudget::plan`]); past either it is reset at once and counted
//!   (the listener's `request_errors` and refused connections,
//!   [`Engine::connections`], a log line at most every 10 s; the listeners
//!   report FULL while a ceiling is held). Accept loops
//!   pause on `EMFILE`/`ENFILE` (5 ms doubling to 1 s) and never stop.
//! - **UDP** (`udp.rs`). UDP listeners have their own datagram socket per
//!   VIP:port (beside any TCP one on the same port). Sessions are keyed by
//!   client address and port; a session's first datagram picks a member as
//!   a TCP connection would (algorithm, `SOURCE_IP` persistence with
//!   `persistence_timeout`), and the session gets its own UDP socket bound
//!   on the VIP and connected to the member; replies reach the client from
//!   VIP:port. Sessions end after `timeout_client_data` without a datagram
//!   (30 s when 0) or when the member answers with ICMP unreachable (a
//!   passive health failure; that client's next session avoids it). Each
//!   session counts as a connection of its listener and member, and
//!   against `connection_limit`.
//! - **HTTP** (`http/` over `h1.rs`). HTTP listeners speak HTTP/1.1 and
//!   1.0 with keep-alive (and pipelining) to clients, with no HTTP library
//!   in between: heads are parsed in place (`httparse`, byte ranges into the
//!   read buffer) and forwarded as the bytes they arrived as, less what must
//!   not cross the proxy (hop-by-hop headers, `Expect`) plus what it adds
//!   (`X-Forwarded-For/-Port/-Proto` per `insert_headers`, the framing
//!   stated once); bodies stream through with their framing checked
//!   (`h1::Chunked`). Header maps are built only for L7 policies and cookie
//!   persistence. L7 policies decide per request, and the request goes to a
//!   member over a keep-alive connection from that member's idle set
//!   (`upstream.rs`: bounded, closed after a few idle seconds; connections
//!   leave from the VIP when it is of the member's family, see
//!   `statera_config::member_source`, and every wait for more of a response
//!   first sends our pending ACK, `TCP_QUICKACK`, so a member with Nagle on
//!   is not held ~40 ms per response). A failed
//!   connect moves on to another member before the request leaves. An
//!   HTTP/1.0 request without a host goes to the member as HTTP/1.0;
//!   transfer codings besides chunked are forwarded as they are (502 to an
//!   HTTP/1.0 client, which cannot be told of them). The proxy
//!   itself answers 400/431 (malformed or oversized head, not exactly one
//!   `Host`, both `Content-Length` and `Transfer-Encoding`, differing
//!   lengths, a malformed chunked body), 403 (REJECT), 3xx (redirects), 405
//!   (CONNECT), 502 (member failed before its response head), 503 (no
//!   member), 504 (member too slow); those 4xx/5xx, and responses cut by a
//!   member failing mid-body, count in `request_errors`.
//! - **Metrics** (`metrics.rs`). A PROMETHEUS listener answers
//!   `GET /metrics` (other paths 404) in the Prometheus text format, from
//!   the newest snapshot: per listener (its report's counters), per member
//!   (bytes toward and from it, connections or HTTP requests in flight and
//!   sent, failed uses, `statera_member_up`) and per pool (sums over its
//!   current members), labelled `loadbalancer`, `listener`, `pool`,
//!   `member`. Member counters survive applies by member id.
//! - **L7 policies** (`l7.rs`). Compiled at apply (an invalid regex or a
//!   missing redirect pool fails the apply); all rules of a policy must
//!   match; REJECT outranks redirects, which outrank REDIRECT_TO_POOL, as in
//!   Octavia's HAProxy provider; position orders policies of one rank. Hosts
//!   are compared without port or trailing dot; when a rule reads the path,
//!   the target is normalised first (`l7::normalize_target`: unreserved
//!   escapes decoded, slashes merged, dot segments removed) and forwarded
//!   so.
//! - **PROXY protocol** (`proxy_protocol.rs`). Members of PROXY / PROXYV2
//!   pools get a v1 line / v2 header with the client's and the VIP's address
//!   and port before any other byte, on L4 and HTTP listeners alike. Their
//!   HTTP connections are kept per client connection, never shared between
//!   clients (the header names one client).
//! - **Health** (`health/`, one file per probe kind behind a `Probe`
//!   trait). Active probes for every Octavia monitor type but SCTP (refused
//!   with `Unsupported`): `HTTP`/`HTTPS` (method, path, `expected_codes` as
//!   a code, a list or a range, HTTP/1.0 or 1.1, `domain_name` as Host; TLS
//!   without certificate verification, like HAProxy's `check-ssl verify
//!   none`), `TCP` (connect), `TLS-HELLO` (a full handshake), `PING` (ICMP
//!   echo), `UDP-CONNECT` (a datagram; ICMP port unreachable is down, silence
//!   is up). `delay`, `timeout`, `max_retries` (rise) and `max_retries_down`
//!   (fall) as in HAProxy; `monitor_address`/`monitor_port` override the
//!   target. One prober per distinct target and settings for the whole
//!   engine, whatever number of pools and load balancers share it; probers
//!   keep their state across applies and stop when nothing uses them; first
//!   probes are spread over the delay by a hash of the target. Members start
//!   up (HAProxy's behaviour: a new member serves at once) and one that comes
//!   back is ramped in over 10 s (ROUND_ROBIN, LEAST_CONNECTIONS). A disabled
//!   monitor probes nothing (members report `NoCheck`). Passive health
//!   (`health/passive.rs`, beyond Octavia): 5 failures in a row in real
//!   traffic (failed connects, lost requests, 5xx answers) eject a member
//!   for 30 s, doubling up to 5 min, reset by a success; never the last
//!   member that could serve; ejected members are reported `Down`. Every
//!   transition (probe or ejection) sends a report at once.
//!
//!   `PING` needs an ICMP socket: an unprivileged datagram one when
//!   `net.ipv4.ping_group_range` allows the process's group, else a raw one
//!   (root / `CAP_NET_RAW`). When the kernel refuses both, one warning is
//!   logged and PING-monitored members are reported down.
//!
//! # Not yet done
//!
//! - Refused with `Unsupported` when on an enabled listener, rather than
//!   served wrongly: TERMINATED_HTTPS (TLS) and SCTP listeners; L7
//!   policies on a listener that is not HTTP.
//! - UDP listeners: `connection_limit` bounds live sessions (and a fixed
//!   cap of 64k), dropping new clients' datagrams over it; removing or disabling one
//!   ends its sessions at once (nothing drains); a member that drops
//!   datagrams silently (no ICMP) keeps its sessions until they idle out.
//! - HTTP listeners speak HTTP/1.x only: no HTTP/2 (h2c), no protocol
//!   upgrades (WebSocket `Upgrade` is dropped, so WebSockets through an HTTP
//!   listener do not work; a TCP listener relays them), no `CONNECT`.
//! - No header read timeout separate from `timeout_client_data`: a request
//!   head must arrive whole within it (so a client trickling a head byte by
//!   byte is cut there, like an idle keep-alive client).
//! - A client that aborts in the middle of its request body just ends its
//!   connection (and the member connection the body was going to); it is
//!   not counted in `request_errors` (HAProxy counts those apart, as client
//!   aborts).
//! - Member connection pools have fixed sizes (256 idle connections per
//!   member, 3 s idle expiry), not configurable yet.
//! - Accepted but not honoured yet: `tcp_inspect_ms`,
//!   `persistence_granularity` (source IP persistence is per address, not
//!   per subnet). Cookie persistence on a listener that is not HTTP does
//!   nothing (there is no cookie to read), as in HAProxy's TCP mode.
//! - `HTTP_COOKIE` uses one cookie name (`SRV`) for every pool, as Octavia's
//!   HAProxy provider does: a client whose requests alternate between pools
//!   (L7 policies) is given a new cookie at each switch. `APP_COOKIE` entries
//!   are not removed when the application deletes its cookie; they expire.
//! - Health: SCTP monitors are refused. HTTPS and TLS-HELLO probes do not
//!   offer ALPN (`alpn_protocols`) or a client certificate, and ignore the
//!   pool's TLS settings. Passive health thresholds and slow start are
//!   engine options ([`EngineOptions::health`]), not per pool.
//! - Counters are reported when asked and after each apply, not on a timer.
//! - A changed `connection_limit` takes a fresh set of slots: connections
//!   admitted under the old limit do not count against the new one.

mod balance;
mod engine;
#[doc(hidden)]
pub mod fuzzing;
mod h1;
mod health;
mod http;
mod io;
mod l7;
mod limits;
mod listener;
mod member_tls;
mod metrics;
mod persistence;
mod pool;
mod proxy_protocol;
mod relay;
mod snapshot;
mod sockets;
mod splice;
mod stats;
mod stream;
mod tls;
mod udp;
mod upstream;

pub use engine::{Engine, EngineOptions};
pub use health::{HealthOptions, PassiveOptions};
pub use limits::{AcceptBackoff, ConnectionLimits, FdBudget};
pub use sockets::SocketKey;
