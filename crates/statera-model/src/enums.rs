//! The closed vocabularies of the Octavia API, each spelled exactly as on the wire.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Declares a fieldless enum whose variants have fixed wire names, with
/// `as_str`, `Display`, `FromStr`, serde (as the wire string) and `ALL`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s { $($wire => Ok($name::$variant),)+ _ => Err(UnknownValue) }
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> { s.serialize_str(self.as_str()) }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(|_| serde::de::Error::custom(format!("unknown {} {s:?}", stringify!($name))))
            }
        }
    };
}

/// A string that is not one of an enum's wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownValue;

wire_enum!(
    /// Where an object is in its life: the API moves objects into PENDING_*,
    /// only the controller moves them out.
    ProvisioningStatus {
        Active => "ACTIVE",
        PendingCreate => "PENDING_CREATE",
        PendingUpdate => "PENDING_UPDATE",
        PendingDelete => "PENDING_DELETE",
        Deleted => "DELETED",
        Error => "ERROR",
    }
);

impl ProvisioningStatus {
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            ProvisioningStatus::PendingCreate
                | ProvisioningStatus::PendingUpdate
                | ProvisioningStatus::PendingDelete
        )
    }
}

wire_enum!(
    /// What the data plane observes of an object.
    OperatingStatus {
        Online => "ONLINE",
        Offline => "OFFLINE",
        Degraded => "DEGRADED",
        Error => "ERROR",
        NoMonitor => "NO_MONITOR",
        Draining => "DRAINING",
    }
);

wire_enum!(
    ListenerProtocol {
        Http => "HTTP",
        Https => "HTTPS",
        Tcp => "TCP",
        TerminatedHttps => "TERMINATED_HTTPS",
        Udp => "UDP",
        Sctp => "SCTP",
        Prometheus => "PROMETHEUS",
    }
);

/// The transport family a listener occupies a port in: two listeners on one
/// load balancer clash only when family and port are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Family {
    Tcp,
    Udp,
    Sctp,
}

impl ListenerProtocol {
    pub fn family(self) -> L4Family {
        match self {
            ListenerProtocol::Udp => L4Family::Udp,
            ListenerProtocol::Sctp => L4Family::Sctp,
            _ => L4Family::Tcp,
        }
    }

    /// Whether a pool of `pool` protocol may serve this listener (default pool
    /// or REDIRECT_TO_POOL target).
    pub fn accepts_pool(self, pool: PoolProtocol) -> bool {
        use ListenerProtocol as L;
        use PoolProtocol as P;
        match self {
            L::Http | L::TerminatedHttps => matches!(pool, P::Http | P::Proxy | P::ProxyV2),
            L::Https => matches!(pool, P::Https | P::Proxy | P::ProxyV2 | P::Tcp),
            L::Tcp => matches!(pool, P::Http | P::Https | P::Proxy | P::ProxyV2 | P::Tcp),
            L::Udp => pool == P::Udp,
            L::Sctp => pool == P::Sctp,
            L::Prometheus => false,
        }
    }

    /// HTTP-aware listeners: the only ones that may insert headers or carry L7 policies.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            ListenerProtocol::Http | ListenerProtocol::TerminatedHttps
        )
    }
}

wire_enum!(
    PoolProtocol {
        Http => "HTTP",
        Https => "HTTPS",
        Tcp => "TCP",
        Udp => "UDP",
        Sctp => "SCTP",
        Proxy => "PROXY",
        ProxyV2 => "PROXYV2",
    }
);

impl PoolProtocol {
    pub fn is_datagram(self) -> bool {
        matches!(self, PoolProtocol::Udp | PoolProtocol::Sctp)
    }

    /// Whether a health monitor of type `hm` can watch members of this pool.
    pub fn accepts_monitor(self, hm: HealthMonitorType) -> bool {
        use HealthMonitorType as H;
        if self.is_datagram() {
            matches!(hm, H::Http | H::Tcp | H::UdpConnect | H::Sctp)
        } else {
            !matches!(hm, H::UdpConnect | H::Sctp)
        }
    }
}

wire_enum!(
    LbAlgorithm {
        RoundRobin => "ROUND_ROBIN",
        LeastConnections => "LEAST_CONNECTIONS",
        SourceIp => "SOURCE_IP",
        SourceIpPort => "SOURCE_IP_PORT",
    }
);

wire_enum!(
    SessionPersistenceType {
        SourceIp => "SOURCE_IP",
        HttpCookie => "HTTP_COOKIE",
        AppCookie => "APP_COOKIE",
    }
);

wire_enum!(
    HealthMonitorType {
        Http => "HTTP",
        Https => "HTTPS",
        Ping => "PING",
        Tcp => "TCP",
        TlsHello => "TLS-HELLO",
        UdpConnect => "UDP-CONNECT",
        Sctp => "SCTP",
    }
);

impl HealthMonitorType {
    pub fn is_http(self) -> bool {
        matches!(self, HealthMonitorType::Http | HealthMonitorType::Https)
    }
}

wire_enum!(
    HttpMethod {
        Get => "GET",
        Head => "HEAD",
        Post => "POST",
        Put => "PUT",
        Delete => "DELETE",
        Trace => "TRACE",
        Options => "OPTIONS",
        Connect => "CONNECT",
        Patch => "PATCH",
    }
);

wire_enum!(
    L7PolicyAction {
        Reject => "REJECT",
        RedirectToUrl => "REDIRECT_TO_URL",
        RedirectToPool => "REDIRECT_TO_POOL",
        RedirectPrefix => "REDIRECT_PREFIX",
    }
);

wire_enum!(
    L7RuleType {
        HostName => "HOST_NAME",
        Path => "PATH",
        FileType => "FILE_TYPE",
        Header => "HEADER",
        Cookie => "COOKIE",
        SslConnHasCert => "SSL_CONN_HAS_CERT",
        SslVerifyResult => "SSL_VERIFY_RESULT",
        SslDnField => "SSL_DN_FIELD",
    }
);

wire_enum!(
    L7RuleCompareType {
        Regex => "REGEX",
        StartsWith => "STARTS_WITH",
        EndsWith => "ENDS_WITH",
        Contains => "CONTAINS",
        EqualTo => "EQUAL_TO",
    }
);

wire_enum!(
    ClientAuthentication {
        None => "NONE",
        Optional => "OPTIONAL",
        Mandatory => "MANDATORY",
    }
);

wire_enum!(
    TlsVersion {
        SslV3 => "SSLv3",
        TlsV1 => "TLSv1",
        TlsV1_1 => "TLSv1.1",
        TlsV1_2 => "TLSv1.2",
        TlsV1_3 => "TLSv1.3",
    }
);

wire_enum!(
    AlpnProtocol {
        H2 => "h2",
        Http11 => "http/1.1",
        Http10 => "http/1.0",
    }
);

wire_enum!(
    /// The role of a data-plane instance; Statera runs one STANDALONE instance per load balancer.
    AmphoraRole {
        Master => "MASTER",
        Backup => "BACKUP",
        Standalone => "STANDALONE",
    }
);

wire_enum!(
    AmphoraStatus {
        Booting => "BOOTING",
        Allocated => "ALLOCATED",
        Ready => "READY",
        PendingCreate => "PENDING_CREATE",
        PendingDelete => "PENDING_DELETE",
        Deleted => "DELETED",
        Error => "ERROR",
        FailoverStopped => "FAILOVER_STOPPED",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for p in HealthMonitorType::ALL {
            assert_eq!(p.as_str().parse::<HealthMonitorType>(), Ok(*p));
        }
        assert_eq!("TLS-HELLO".parse(), Ok(HealthMonitorType::TlsHello));
        assert!("tcp".parse::<ListenerProtocol>().is_err());
    }

    #[test]
    fn listener_pool_compatibility_matches_octavia_table() {
        use ListenerProtocol as L;
        use PoolProtocol as P;
        assert!(L::Http.accepts_pool(P::ProxyV2));
        assert!(!L::Http.accepts_pool(P::Tcp));
        assert!(L::Tcp.accepts_pool(P::Http));
        assert!(L::Https.accepts_pool(P::Tcp));
        assert!(!L::Https.accepts_pool(P::Http));
        assert!(!L::Udp.accepts_pool(P::Tcp));
        assert!(!L::Prometheus.accepts_pool(P::Http));
    }

    #[test]
    fn pool_monitor_compatibility() {
        assert!(PoolProtocol::Udp.accepts_monitor(HealthMonitorType::UdpConnect));
        assert!(!PoolProtocol::Udp.accepts_monitor(HealthMonitorType::Https));
        assert!(!PoolProtocol::Tcp.accepts_monitor(HealthMonitorType::UdpConnect));
        assert!(PoolProtocol::Proxy.accepts_monitor(HealthMonitorType::TlsHello));
    }
}
