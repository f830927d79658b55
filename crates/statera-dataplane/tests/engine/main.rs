//! The native data plane on real loopback sockets: one test binary, a module
//! per behaviour. Each test owns a distinct VIP (127.101.N.1), starts its own
//! backends, and is bounded in time.

mod admission;
mod balancing;
mod health;
mod health_monitors;
mod health_passive;
mod http;
mod http2;
mod http_framing;
mod l7;
mod lifecycle;
mod member_sockets;
mod metrics;
mod persistence;
mod proxy_protocol;
mod reencrypt;
mod relay;
mod reports;
mod support;
mod support_health;
mod support_http;
mod tls;
mod udp;
