//! The client side of an HTTP connection: plain TCP, or TLS over it
//! (TERMINATED_HTTPS), and the handshake that makes the second.
//!
//! The handshake runs in the connection's own task once the client has
//! sent its first byte (a silent connection costs what a plaintext one
//! does), under three bounds: the first byte must open a TLS handshake
//! record (anything else is closed at once); once the whole ClientHello is
//! in, a place under the handshake ceilings must be free for the rest
//! ([`crate::limits::MAX_HANDSHAKES`]; none free: the connection is closed
//! and counted as refused), so a client that sends part of a hello and
//! stops holds no place; and the whole handshake must end within the client
//! data timeout, at most [`HANDSHAKE_TIMEOUT`]. A cut listener ends it too.
//!
//! A TLS connection the proxy ends gets a close_notify (bounded by
//! [`CLOSE_NOTIFY_WAIT`]: a client that reads nothing cannot hold the
//! connection open), so a client can tell a response that ended from one cut
//! short.

use super::*;
use crate::limits::Slot;
use crate::tls::{PeerCert, ServerTls};

/// The longest a TLS handshake may take from its first byte, whatever the
/// client data timeout (HAProxy bounds it by `timeout client` alone; a
/// handshake that holds a place under the ceiling should not hold it for
/// minutes).
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the proxy waits for its close_notify (and any response bytes
/// still queued before it) to leave when it closes a TLS connection.
pub(super) const CLOSE_NOTIFY_WAIT: Duration = Duration::from_secs(1);

/// A TLS record of type handshake starts with this byte.
const HANDSHAKE_RECORD: u8 = 0x16;

/// A client connection: plain, or TLS (TERMINATED_HTTPS), or one HTTP/2
/// stream of a TLS connection carried to the HTTP/1.1 machinery as bytes
/// (`h2.rs`).
pub(super) type ClientStream = crate::stream::MaybeTls<Secure>;

/// What comes over a TERMINATED_HTTPS connection.
pub(super) type Secure = tokio_util::either::Either<TlsStream, tokio::io::DuplexStream>;

pub(super) type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

impl ClientStream {
    /// Ends our side: FIN on TCP; close_notify then FIN on TLS, within
    /// [`CLOSE_NOTIFY_WAIT`] (a TLS shutdown first writes what rustls still
    /// holds, which a client that reads nothing would never take).
    pub(super) async fn close(&mut self) -> io::Result<()> {
        match tokio::time::timeout(CLOSE_NOTIFY_WAIT, self.shutdown()).await {
            Ok(result) => result,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

/// What a TLS connection carries beside its stream.
#[derive(Clone)]
pub(super) struct ConnTls {
    pub(super) peer: PeerCert,
    pub(super) server: Arc<ServerTls>,
    /// The client chose HTTP/2 by ALPN.
    pub(super) h2: bool,
}

/// Completes the TLS handshake of a client whose first byte has arrived:
/// `None` when the connection should end instead (see the module notes).
pub(super) async fn handshake(
    client: TcpStream,
    first: u8,
    server: Arc<ServerTls>,
    slot: &Slot,
    view: &ListenerView,
    client_timeout: Option<Duration>,
    life: &mut watch::Receiver<LifeState>,
) -> Option<(ClientStream, Box<ConnTls>)> {
    if first != HANDSHAKE_RECORD {
        tracing::debug!("TERMINATED_HTTPS client sent something else than a TLS handshake");
        return None;
    }
    let limit = client_timeout.map_or(HANDSHAKE_TIMEOUT, |t| t.min(HANDSHAKE_TIMEOUT));
    let deadline = tokio::time::Instant::now() + limit;
    // 1. The ClientHello, read whole (rustls bounds its size) before any
    //    place is taken or any key used: a client that sends part of one
    //    and stops holds its connection slot only.
    let hello = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), client);
    let start = within(deadline, life, "TLS ClientHello", hello).await?;
    // 2. The rest, signature included, under the handshake ceilings.
    let Some(_place) = slot.handshake() else {
        view.stats.refuse_connection();
        tracing::debug!("TLS handshakes at their ceiling; connection refused");
        return None;
    };
    // A client offering only protocols the listener does not speak goes on
    // without ALPN, as OpenSSL (HAProxy) lets it, rather than get rustls'
    // fatal no_application_protocol alert.
    let ours = &server.config.alpn_protocols;
    let overlap = start
        .client_hello()
        .alpn()
        .is_none_or(|mut offered| offered.any(|p| ours.iter().any(|o| o.as_slice() == p)));
    let config = if overlap {
        server.config.clone()
    } else {
        server.without_alpn.clone()
    };
    let stream = within(deadline, life, "TLS handshake", start.into_stream(config)).await?;
    let peer = PeerCert::of(
        stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first()),
    );
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    Some((
        ClientStream::Tls(Box::new(tokio_util::either::Either::Left(stream))),
        Box::new(ConnTls { peer, server, h2 }),
    ))
}

/// `step`'s result if it succeeds by `deadline` and before the listener is
/// cut; `None` otherwise (logged as `what` failing or too slow).
async fn within<T>(
    deadline: tokio::time::Instant,
    life: &mut watch::Receiver<LifeState>,
    what: &str,
    step: impl std::future::Future<Output = io::Result<T>>,
) -> Option<T> {
    tokio::select! {
        done = tokio::time::timeout_at(deadline, step) => match done {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                tracing::debug!(%error, "{what} failed");
                None
            }
            Err(_) => {
                tracing::debug!("{what} too slow; closing");
                None
            }
        },
        _ = life.wait_for(|state| *state == LifeState::Cut) => None,
    }
}
