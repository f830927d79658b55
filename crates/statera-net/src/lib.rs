//! Network drivers: how a load balancer's VIP port becomes something the
//! data plane can listen on.
//!
//! `host`: a VIP is an address of this host. The
//! default deployment offers a ready-made Neutron network, `host-net`, with a
//! subnet on the loopback range (127.100.0.0/16 by default) from which VIPs
//! are allocated: any 127/8 address can be bound on Linux without
//! configuration, so nothing in the kernel changes and no privilege is
//! needed. `netns`: one namespace per load balancer with one leg on the tenant
//! subnet, bridges per network, routers with floating IPs, security groups as
//! nftables (needs root).

pub mod host;
pub mod netns;
