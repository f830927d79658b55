//! Listeners: a port on a load balancer's VIP.

use statera_model::*;

pub const TIMEOUT_MAX: i64 = 2_073_600_000;
pub const DEFAULT_TIMEOUT_CLIENT_DATA: i64 = 50_000;
pub const DEFAULT_TIMEOUT_MEMBER_CONNECT: i64 = 5_000;
pub const DEFAULT_TIMEOUT_MEMBER_DATA: i64 = 50_000;
pub const DEFAULT_TIMEOUT_TCP_INSPECT: i64 = 0;
pub const DEFAULT_TLS_CIPHERS: &str = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

/// The TLS versions a TLS listener (or a re-encrypting pool) gets by default.
pub fn default_tls_versions() -> Vec<TlsVersion> {
    vec![TlsVersion::TlsV1_2, TlsVersion::TlsV1_3]
}

/// The ALPN protocols a TLS listener (or a re-encrypting pool) gets by default.
pub fn default_alpn() -> Vec<AlpnProtocol> {
    vec![AlpnProtocol::H2, AlpnProtocol::Http11, AlpnProtocol::Http10]
}
