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
    /// host's data plane serves it (its namespace named here), with whether
    /// the namespace was made by this call (to be taken down again if the
    /// data plane then refuses the configuration).
    async fn plumb(&self, config: Arc<LbConfig>) -> Result<(Arc<LbConfig>, bool), DataPlaneError> {
        let Some(plumbing) = config.vip.plumbing.clone() else {
            if config.vip.namespace.is_some() {
                // Only this host names its namespaces.
                tracing::warn!(lb = %config.lb_id, "configuration naming a namespace: refused");
                return Err(DataPlaneError::Other(
                    "a configuration names no namespace: the agent's host builds and names it"
                        .into(),
                ));
            }
            return Ok((config, false));
        };
        let Some(network) = self.network.clone() else {
            return Err(DataPlaneError::Unsupported(
                "this load balancer's VIP needs a namespace: this agent runs without \
                 --network-driver netns"
                    .into(),
            ));
        };
        let addresses_vip = plumbing
            .leg
            .addresses
            .iter()
            .any(|a| a.addr() == config.vip.address);
        if plumbing.lb_id != config.lb_id
            || plumbing.leg.port_id != config.vip.port_id
            || plumbing.leg.network_id != config.vip.network_id
            || !addresses_vip
        {
            tracing::warn!(lb = %config.lb_id, "plumbing for another load balancer, port, network or address: refused");
            return Err(DataPlaneError::Other(
                "the plumbing names another load balancer, port, network or address than its \
                 configuration"
                    .into(),
            ));
        }
        if let Err(why) = plumbing.check() {
            tracing::warn!(lb = %config.lb_id, %why, "plumbing refused");
            return Err(DataPlaneError::Other(why));
        }
        let namespace = network.driver.names().lb(config.lb_id);
        let lb_id = config.lb_id;
        let built = tokio::task::spawn_blocking(move || {
            let fresh = !network.driver.lb_exists(lb_id);
            let built = network
                .driver
                .ensure_lb_on_host(&plumbing, &network.uplink, &network.host);
            if built.is_err() && fresh {
                let _ = network.driver.remove_lb_on_host(lb_id);
            }
            built.map(|()| fresh)
        })
        .await
        .map_err(|e| DataPlaneError::Other(e.to_string()))?;
        let fresh =
            built.map_err(|e| DataPlaneError::Other(format!("cannot plug the VIP port: {e}")))?;
        let mut config = (*config).clone();
        config.vip.namespace = Some(namespace);
        Ok((Arc::new(config), fresh))
    }

    /// Takes down a namespace made for a configuration the data plane then
    /// refused: its VIP must not stay on the network (the load balancer may
    /// be placed elsewhere next).
    async fn unplumb(&self, lb_id: Uuid) {
        let Some(network) = self.network.clone() else {
            return;
        };
        let removed =
            tokio::task::spawn_blocking(move || network.driver.remove_lb_on_host(lb_id)).await;
        if !matches!(removed, Ok(Ok(()))) {
            tracing::warn!(lb = %lb_id, "cannot take down the namespace of a refused configuration");
        }
    }

    async fn serve(&self, config: Arc<LbConfig>, failover: bool) -> Result<u64, DataPlaneError> {
        let lb_id = config.lb_id;
        let (config, fresh) = self.plumb(config).await?;
        let served = if failover {
            self.inner.fail_over(config).await
        } else {
            self.inner.apply(config).await
        };
        if served.is_err() && fresh {
            self.unplumb(lb_id).await;
        }
        served
    }
}

impl DataPlane for Plumbed {
    fn apply(&self, config: Arc<LbConfig>) -> BoxFuture<'_, Result<u64, DataPlaneError>> {
        Box::pin(self.serve(config, false))
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
        Box::pin(self.serve(config, true))
    }

    fn placement(&self, lb_id: Uuid) -> Option<Placement> {
        self.inner.placement(lb_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use statera_config::Vip;
    use statera_net::netns::firewall::{Ingress, LbFilter};
    use statera_net::netns::{LbPlumbing, Leg, Names};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A data plane that counts what reaches it.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl DataPlane for Counting {
        fn apply(&self, config: Arc<LbConfig>) -> BoxFuture<'_, Result<u64, DataPlaneError>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { Ok(config.version) })
        }
        fn remove(&self, _lb_id: Uuid) -> BoxFuture<'_, Result<(), DataPlaneError>> {
            Box::pin(async { Ok(()) })
        }
        fn report(&self, _lb_id: Uuid) -> Option<StatusReport> {
            None
        }
    }

    fn config() -> LbConfig {
        let (lb_id, port_id, network_id) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        LbConfig {
            lb_id,
            version: 1,
            admin_state_up: true,
            vip: Vip {
                address: "10.9.0.5".parse().unwrap(),
                port_id,
                subnet_id: Uuid::new_v4(),
                network_id,
                mac_address: "fa:16:3e:00:00:01".into(),
                subnet_cidr: "10.9.0.0/24".parse().unwrap(),
                gateway: None,
                namespace: None,
                plumbing: Some(LbPlumbing {
                    lb_id,
                    leg: Leg {
                        port_id,
                        network_id,
                        dev: Names::vip_dev(port_id),
                        mac: "fa:16:3e:00:00:01".into(),
                        addresses: vec!["10.9.0.5/24".parse().unwrap()],
                        mtu: 1500,
                    },
                    routes: Vec::new(),
                    filter: LbFilter {
                        listeners: Vec::new(),
                        ingress: Ingress::ListenersOnly,
                    },
                }),
            },
            listeners: Vec::new(),
            pools: Vec::new(),
        }
    }

    #[tokio::test]
    async fn what_the_host_cannot_or_must_not_plumb_never_reaches_the_data_plane() {
        let inner = Arc::new(Counting::default());
        let plane = Plumbed::new(inner.clone(), None);
        // A namespace to build, on a host without the netns driver.
        let e = plane.apply(Arc::new(config())).await.unwrap_err();
        assert!(matches!(e, DataPlaneError::Unsupported(_)), "{e}");
        // A namespace named by the controller: only the host names them.
        let mut named = config();
        named.vip.plumbing = None;
        named.vip.namespace = Some("statera-switch".into());
        assert!(plane.apply(Arc::new(named)).await.is_err());
        // Nothing to plumb: served as it is.
        let mut plain = config();
        plain.vip.plumbing = None;
        assert_eq!(plane.apply(Arc::new(plain)).await.unwrap(), 1);
        assert_eq!(inner.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn plumbing_for_another_load_balancer_port_or_address_is_refused() {
        // The checks come before any kernel work, so a host network that
        // was never checked (no root needed) is enough here.
        let network = Arc::new(HostNetwork {
            driver: Driver::new("statera-unit-"),
            uplink: "statera-unit-uplink".into(),
            host: "unit".into(),
        });
        let inner = Arc::new(Counting::default());
        let plane = Plumbed::new(inner.clone(), Some(network));
        let spoil: [fn(&mut LbPlumbing); 4] = [
            |p| p.lb_id = Uuid::new_v4(),
            |p| p.leg.port_id = Uuid::new_v4(),
            |p| p.leg.addresses = vec!["10.9.0.6/24".parse().unwrap()],
            |p| p.leg.dev = "eth0".into(),
        ];
        for spoil in spoil {
            let mut c = config();
            spoil(c.vip.plumbing.as_mut().unwrap());
            assert!(plane.apply(Arc::new(c)).await.is_err());
        }
        assert_eq!(inner.0.load(Ordering::SeqCst), 0);
    }
}
