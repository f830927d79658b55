//! Per-listener counters.
//!
//! One [`ListenerStats`] lives as long as its listener id stays in the load
//! balancer's config: an apply that keeps the listener keeps the same counters,
//! and connections still draining from an earlier config keep counting into
//! them.

use statera_config::Stats;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct ListenerStats {
    /// This run of counters (see `ListenerReport::epoch`).
    pub epoch: u64,
    /// Bytes received from clients.
    pub bytes_in: AtomicU64,
    /// Bytes sent to clients.
    pub bytes_out: AtomicU64,
    pub active_connections: AtomicU64,
    pub total_connections: AtomicU64,
    /// L4 connections that could not be served (no pool, no usable member,
    /// every member attempt failed), and HTTP requests answered with a 4xx or
    /// 5xx by the proxy itself or cut because their member failed mid-body.
    pub request_errors: AtomicU64,
    /// Connections (and UDP sessions) refused because the load balancer or
    /// the process held its connection ceiling (`limits.rs`); each is in
    /// `request_errors` too, which is what Octavia's listener stats show.
    pub refused_connections: AtomicU64,
}

impl Default for ListenerStats {
    fn default() -> Self {
        ListenerStats {
            epoch: statera_config::counter_epoch(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            active_connections: AtomicU64::new(0),
            total_connections: AtomicU64::new(0),
            request_errors: AtomicU64::new(0),
            refused_connections: AtomicU64::new(0),
        }
    }
}

impl ListenerStats {
    pub fn read(&self) -> Stats {
        Stats {
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            active_connections: self.active_connections.load(Ordering::Relaxed),
            total_connections: self.total_connections.load(Ordering::Relaxed),
            request_errors: self.request_errors.load(Ordering::Relaxed),
        }
    }

    /// Counts a new connection as total and active; active drops again when
    /// the returned guard does.
    /// Counts a connection refused at a ceiling.
    pub fn refuse_connection(&self) {
        self.refused_connections.fetch_add(1, Ordering::Relaxed);
        self.request_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn open_connection(&self) -> ActiveGuard<'_> {
        self.total_connections.fetch_add(1, Ordering::Relaxed);
        self.active_connections.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self)
    }
}

pub struct ActiveGuard<'a>(&'a ListenerStats);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}
