//! PROMETHEUS listeners: `GET /metrics` in the Prometheus text exposition
//! format (0.0.4) with the load balancer's counters, per listener, pool and
//! member; any other path is 404, any other method 405.
//!
//! The encoder is written here rather than taken from `prometheus-client`:
//! every series is a plain counter or gauge read from atomics the engine
//! already keeps, rendered once per scrape from the newest snapshot, so a
//! registry (and its own copies of the counters, kept in step) would be more
//! code and a dependency for nothing. What it must get right is small: one
//! `# HELP`/`# TYPE` per family with its series together, label values
//! escaped (`\\`, `\"`, `\n`).

use crate::io::{Activity, HyperIo, Meter};
use crate::listener::{LifeState, ListenerView};
use crate::snapshot::{LbShared, Snapshot};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use statera_config::MemberHealth;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves one scraper connection to its end (keep-alive, like Prometheus
/// itself uses), with the listener's client timeout as idle timeout.
pub async fn serve(
    client: TcpStream,
    view: Arc<ListenerView>,
    shared: Arc<LbShared>,
    life: &mut watch::Receiver<LifeState>,
    client_timeout: Option<Duration>,
) {
    let activity = Arc::new(Activity::new());
    let io = HyperIo::new(
        client,
        Meter {
            stats: view.stats.clone(),
            activity: activity.clone(),
        },
    );
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let response = respond(&request, &shared.load());
        async move { Ok::<_, Infallible>(response) }
    });
    let http = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .max_header_size(crate::http::MAX_HEADER_SIZE)
        .serve_connection(io, service);
    tokio::pin!(http);
    let idle = activity.idle(client_timeout);
    tokio::pin!(idle);
    let mut watching_life = true;
    loop {
        tokio::select! {
            _ = http.as_mut() => return,
            () = &mut idle => return,
            changed = life.changed(), if watching_life => {
                if changed.is_err() {
                    watching_life = false;
                    continue;
                }
                match *life.borrow_and_update() {
                    LifeState::Serving => {}
                    LifeState::Draining => http.as_mut().graceful_shutdown(),
                    LifeState::Cut => return,
                }
            }
        }
    }
}

fn respond<B>(request: &Request<B>, snapshot: &Snapshot) -> Response<Full<Bytes>> {
    let (status, body) = if request.uri().path() != "/metrics" {
        (StatusCode::NOT_FOUND, String::from("not found\n"))
    } else if request.method() != Method::GET && request.method() != Method::HEAD {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            String::from("method not allowed\n"),
        )
    } else {
        (StatusCode::OK, render(snapshot))
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let content_type = if status == StatusCode::OK {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// One metric family: its series as (labels, value).
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    series: Vec<(Vec<(&'static str, String)>, u64)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family {
            name,
            kind,
            help,
            series: Vec::new(),
        }
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.series {
            out.push_str(self.name);
            out.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{name}=\"{}\"", escape(value));
            }
            let _ = writeln!(out, "}} {value}");
        }
    }
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The counters of the families every level (listener, pool, member) has.
struct Counters {
    bytes_in: u64,
    bytes_out: u64,
    active: u64,
    total: u64,
    errors: u64,
}

/// Renders the load balancer's counters.
///
/// - listener: bytes from/to clients, active and total connections, request
///   errors (as in the status report), connections refused at a ceiling;
/// - member: bytes toward/from the member, connections (L4) or requests
///   (HTTP) in flight and sent in all, failed uses, and `up` (1 when the
///   member takes traffic as far as health goes: up or unchecked);
/// - pool: the sums over its current members (a removed member's counts
///   leave the pool's sums with it).
pub fn render(snapshot: &Snapshot) -> String {
    let lb = snapshot.config.lb_id.to_string();
    let mut families: Vec<[Family; 5]> = ["listener", "pool", "member"]
        .iter()
        .map(|level| families_for(level))
        .collect();
    let mut push = |level: usize, labels: Vec<(&'static str, String)>, c: Counters| {
        let values = [c.bytes_in, c.bytes_out, c.active, c.total, c.errors];
        for (family, value) in families[level].iter_mut().zip(values) {
            family.series.push((labels.clone(), value));
        }
    };
    let mut refused = Family::new(
        "statera_listener_refused_connections_total",
        "counter",
        "Connections refused because the load balancer (or the whole process) held its connection ceiling; also in request errors.",
    );
    for (listener, slot) in snapshot.config.listeners.iter().zip(&snapshot.listeners) {
        refused.series.push((
            vec![
                ("loadbalancer", lb.clone()),
                ("listener", listener.id.to_string()),
            ],
            slot.stats.refused_connections.load(Ordering::Relaxed),
        ));
        let stats = slot.stats.read();
        push(
            0,
            vec![
                ("loadbalancer", lb.clone()),
                ("listener", listener.id.to_string()),
            ],
            Counters {
                bytes_in: stats.bytes_in,
                bytes_out: stats.bytes_out,
                active: stats.active_connections,
                total: stats.total_connections,
                errors: stats.request_errors,
            },
        );
    }
    let report = snapshot.report();
    let mut up = Family::new(
        "statera_member_up",
        "gauge",
        "1 when the member takes new traffic as far as health goes (up or not checked), else 0.",
    );
    for pool in &snapshot.config.pools {
        let Some(runtime) = snapshot.pools.get(&pool.id) else {
            continue;
        };
        let mut sum = Counters {
            bytes_in: 0,
            bytes_out: 0,
            active: 0,
            total: 0,
            errors: 0,
        };
        for member in &runtime.members {
            let c = Counters {
                bytes_in: member.stats.bytes_in.load(Ordering::Relaxed),
                bytes_out: member.stats.bytes_out.load(Ordering::Relaxed),
                active: member.in_flight.load(Ordering::Relaxed),
                total: member.stats.total_connections.load(Ordering::Relaxed),
                errors: member.stats.request_errors.load(Ordering::Relaxed),
            };
            sum.bytes_in += c.bytes_in;
            sum.bytes_out += c.bytes_out;
            sum.active += c.active;
            sum.total += c.total;
            sum.errors += c.errors;
            let labels = vec![
                ("loadbalancer", lb.clone()),
                ("pool", pool.id.to_string()),
                ("member", member.id.to_string()),
            ];
            let health = report
                .pools
                .iter()
                .find(|p| p.id == pool.id)
                .and_then(|p| p.members.iter().find(|m| m.id == member.id))
                .map(|m| m.health);
            let is_up = matches!(health, Some(MemberHealth::Up | MemberHealth::NoCheck));
            up.series.push((labels.clone(), u64::from(is_up)));
            push(2, labels, c);
        }
        push(
            1,
            vec![("loadbalancer", lb.clone()), ("pool", pool.id.to_string())],
            sum,
        );
    }
    let mut out = String::new();
    for family in families.iter().flatten() {
        family.render(&mut out);
    }
    up.render(&mut out);
    refused.render(&mut out);
    out
}

fn families_for(level: &str) -> [Family; 5] {
    let (bytes_in, bytes_out, active, total, errors) = match level {
        "listener" => (
            "statera_listener_bytes_in_total",
            "statera_listener_bytes_out_total",
            "statera_listener_active_connections",
            "statera_listener_connections_total",
            "statera_listener_request_errors_total",
        ),
        "pool" => (
            "statera_pool_bytes_in_total",
            "statera_pool_bytes_out_total",
            "statera_pool_active_connections",
            "statera_pool_connections_total",
            "statera_pool_request_errors_total",
        ),
        _ => (
            "statera_member_bytes_in_total",
            "statera_member_bytes_out_total",
            "statera_member_active_connections",
            "statera_member_connections_total",
            "statera_member_request_errors_total",
        ),
    };
    [
        Family::new(
            bytes_in,
            "counter",
            "Bytes received from clients (members: sent toward the member).",
        ),
        Family::new(
            bytes_out,
            "counter",
            "Bytes sent to clients (members: received from the member).",
        ),
        Family::new(
            active,
            "gauge",
            "Connections open now (members, pools: connections or HTTP requests in flight).",
        ),
        Family::new(
            total,
            "counter",
            "Connections accepted (members, pools: connections or HTTP requests sent).",
        ),
        Family::new(
            errors,
            "counter",
            "Requests answered with an error by the proxy (members, pools: failed uses).",
        ),
    ]
}
