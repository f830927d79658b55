//! An agent's host network with the `netns` driver: each load balancer's
//! namespace built on this host from the plumbing its configuration carries
//! (computed by the controller), joined to the tenant networks through this
//! host's bridges and their trunks to the switch, before the data plane
//! binds the VIP there; removed after the data plane let go.
//!
//! [`Plumbed`] wraps a data plane with that, so the agent's apply, remove
//! and restore paths are those of the host driver.

use statera_config::{BoxFuture, DataPlane, DataPlaneError, LbConfig, Placement, StatusReport};
use statera_net::netns::Driver;
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

/// This host's namespaces and where its trunks go.
pub struct HostNetwork {
    driver: Driver,
    /// The switch namespace the host's bridges are trunked to.
    uplink: String,
    /// This agent's name: what the controller finds its trunks by.
    host: String,
}

impl HostNetwork {
    /// Checks the host can run the driver.
    pub fn new(prefix: &str, uplink: &str, host: &str) -> std::io::Result<HostNetwork> {
        Driver::check_host()?;
        Ok(HostNetwork {
            driver: Driver::new(prefix),
            uplink: uplink.to_string(),
            host: host.to_string(),
        })
    }

    /// Removes load balancer namespaces under this host's prefix that are
    /// not in `keep` (at start: what nothing serves any more).
    pub fn remove_unkept(&self, keep: &HashSet<Uuid>) -> std::io::Result<()> {
        self.driver.remove_lb_namespaces_except(keep)
    }
}

/// A data plane whose load balancers' namespaces this host builds.
pub struct Plumbed {
    inner: Arc<dyn DataPlane>,
    network: Option<Arc<HostNetwork>>,
}

impl Plumbed {
    /// `network`: `None` on a host without the `netns` driver, which
    /// refuses configurations that need a namespace.
    pub fn new(inner: Arc<dyn DataPlane>, network: Option<Arc<HostNetwork>>) -> Plumbed {
        Plumbed { inner, network }
    }

    /// Builds `config`'s namespace, if it has one, and returns it as this
    /// host's data plane serves it (its namespace named here).
    async fn plumb(&self, config: Arc<LbConfig>) -> Result<Arc<LbConfig>, DataPlaneError> {
        let Some(plumbing) = config.vip.plumbing.clone() else {
            return Ok(config);
        };
        let Some(network) = self.network.clone() else {
            return Err(DataPlaneError::Unsupported(
                "this load balancer's VIP needs a namespace: this agent runs without \
                 --network-driver netns"
                    .into(),
            ));
        };
        if plumbing.lb_id != config.lb_id
            || plumbing.leg.port_id != config.vip.port_id
            || plumbing.leg.network_id != config.vip.network_id
        {
            tracing::warn!(lb = %config.lb_id, "plumbing for another load balancer or port: refused");
            return Err(DataPlaneError::Other(
                "the plumbing names another load balancer, port or network than its configuration"
                    .into(),
            ));
        }
        if let Err(why) = plumbing.check() {
            tracing::warn!(lb = %config.lb_id, %why, "plumbing refused");
            return Err(DataPlaneError::Other(why));
        }
        let namespace = network.driver.names().lb(config.lb_id);
        let built = tokio::task::spawn_blocking(move || {
            network.driver.ensure_trunk(
                plumbing.leg.network_id,
                plumbing.leg.mtu,
                &network.uplink,
                &network.host,
            )?;
            network.driver.ensure_lb(&plumbing)
        })
        .await
        .map_err(|e| DataPlaneError::Other(e.to_string()))?;
        built.map_err(|e| DataPlaneError::Other(format!("cannot plug the VIP port: {e}")))?;
        let mut config = (*config).clone();
        config.vip.namespace = Some(namespace);
        Ok(Arc::new(config))
    }
}

impl DataPlane for Plumbed {
    fn apply(&self, config: Arc<LbConfig>) -> BoxFuture<'_, Result<u64, DataPlaneError>> {
        Box::pin(async move {
            let config = self.plumb(config).await?;
            self.inner.apply(config).await
        })
    }

    fn remove(&self, lb_id: Uuid) -> BoxFuture<'_, Result<(), DataPlaneError>> {
        Box::pin(async move {
            self.inner.remove(lb_id).await?;
            if let Some(network) = self.network.clone() {
                let removed =
                    tokio::task::spawn_blocking(move || network.driver.remove_lb_on_host(lb_id))
                        .await
                        .map_err(|e| DataPlaneError::Other(e.to_string()))?;
                removed.map_err(|e| {
                    DataPlaneError::Other(format!("cannot remove the namespace: {e}"))
                })?;
            }
            Ok(())
        })
    }

    fn report(&self, lb_id: Uuid) -> Option<StatusReport> {
        self.inner.report(lb_id)
    }

    fn fail_over(&self, config: Arc<LbConfig>) -> BoxFuture<'_, Result<u64, DataPlaneError>> {
        Box::pin(async move {
            let config = self.plumb(config).await?;
            self.inner.fail_over(config).await
        })
    }

    fn placement(&self, lb_id: Uuid) -> Option<Placement> {
        self.inner.placement(lb_id)
    }
}
