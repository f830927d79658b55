//! Active health checking: a TCP connect probe per member.
//!
//! A member of a pool with an enabled health monitor gets one prober task. It
//! probes right away, then every `delay`: a probe succeeds when a TCP
//! connection to the member (or its `monitor_address`/`monitor_port`) is
//! established within `timeout`, and is closed at once. `fall` failures in a
//! row take an up member down, `rise` successes in a row bring a down member
//! back. Members start up, so a new pool serves at once; a dead member is
//! still avoided before its first failed probes by the connect retry in
//! [`crate::relay`].
//!
//! Every monitor type is approximated by the TCP connect probe for now
//! (HTTP/HTTPS requests, TLS-HELLO and PING come later; PING cannot be a real
//! ICMP echo without privileges anyway). UDP-CONNECT and SCTP monitors belong
//! to datagram pools, which this data plane does not serve yet: members of
//! such pools are not probed.

use statera_config::{HealthMonitorConfig, MemberConfig};
use statera_model::HealthMonitorType;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Whether a monitored member is up, as the last probes say.
#[derive(Debug)]
pub struct HealthCell {
    up: AtomicBool,
}

impl HealthCell {
    pub fn new_up() -> Self {
        HealthCell {
            up: AtomicBool::new(true),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }
}

/// What one prober does; a prober is replaced when its spec changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub target: SocketAddr,
    pub delay: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl ProbeSpec {
    /// The probe for `member` under `monitor`, if this data plane probes it.
    pub fn for_member(monitor: &HealthMonitorConfig, member: &MemberConfig) -> Option<ProbeSpec> {
        if !monitor.admin_state_up
            || matches!(
                monitor.kind,
                HealthMonitorType::UdpConnect | HealthMonitorType::Sctp
            )
        {
            return None;
        }
        let target = SocketAddr::new(
            member.monitor_address.unwrap_or(member.address),
            member.monitor_port.unwrap_or(member.protocol_port),
        );
        Some(ProbeSpec {
            target,
            // Octavia's minimum delay and timeout are 1 s; guard against 0
            // anyway so a bad config cannot spin a prober.
            delay: Duration::from_secs(monitor.delay_s.max(1)),
            timeout: Duration::from_secs(monitor.timeout_s.max(1)),
            rise: monitor.rise.max(1),
            fall: monitor.fall.max(1),
        })
    }
}

/// A running prober; dropping it stops the probing.
#[derive(Debug)]
pub struct Prober {
    pub spec: ProbeSpec,
    pub cell: Arc<HealthCell>,
    task: JoinHandle<()>,
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Prober {
    /// Starts probing `spec.target`, writing into `cell` and calling
    /// `on_change` after each transition.
    pub fn spawn(
        spec: ProbeSpec,
        cell: Arc<HealthCell>,
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> Prober {
        let task = tokio::spawn(probe_loop(spec.clone(), cell.clone(), on_change));
        Prober { spec, cell, task }
    }
}

async fn probe_loop(spec: ProbeSpec, cell: Arc<HealthCell>, on_change: impl Fn()) {
    let mut successes = 0u32;
    let mut failures = 0u32;
    loop {
        let ok = matches!(
            tokio::time::timeout(spec.timeout, TcpStream::connect(spec.target)).await,
            Ok(Ok(_))
        );
        if ok {
            failures = 0;
            successes = successes.saturating_add(1);
            if !cell.is_up() && successes >= spec.rise {
                cell.set_up(true);
                tracing::info!(target = %spec.target, "member is up");
                on_change();
            }
        } else {
            successes = 0;
            failures = failures.saturating_add(1);
            if cell.is_up() && failures >= spec.fall {
                cell.set_up(false);
                tracing::info!(target = %spec.target, "member is down");
                on_change();
            }
        }
        tokio::time::sleep(spec.delay).await;
    }
}
