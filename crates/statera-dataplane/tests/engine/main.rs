//! The native data plane on real loopback sockets: one test binary, a module
//! per behaviour. Each test owns a distinct VIP (127.101.N.1), starts its own
//! backends, and is bounded in time.

mod admission;
mod health;
mod lifecycle;
mod relay;
mod reports;
mod support;
