//! The client side of an HTTP connection: plain TCP, or TLS over it
//! (TERMINATED_HTTPS), and the handshake that makes the second.
//!
//! The handshake runs in the connection's own task once the client has
//! sent its first byte (a silent connection costs what a plaintext one
//! does, and holds no handshake place), under three bounds: the first byte
//! must open a TLS handshake record (anything else is closed at once), a
//! place under the handshake ceilings must be free
//! ([`crate::limits::MAX_HANDSHAKES`]; none free: the connection is closed
//! and counted as refused), and the handshake must end within the client
//! data timeout, at most [`HANDSHAKE_TIMEOUT`]. A cut listener ends it too.

use super::*;
use crate::limits::Slot;
use crate::tls::{PeerCert, ServerTls};
use tokio::io::ReadBuf;

/// The longest a TLS handshake may take from its first byte, whatever the
/// client data timeout (HAProxy bounds it by `timeout client` alone; a
/// handshake that holds a place under the ceiling should not hold it for
/// minutes).
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS record of type handshake starts with this byte.
const HANDSHAKE_RECORD: u8 = 0x16;

pub(super) enum ClientStream {
    Plain(TcpStream),
    /// Boxed: rustls' state is large, and plaintext connections stay small.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl ClientStream {
    /// The socket, when bytes can be spliced to it.
    pub(super) fn plain(&self) -> Option<&TcpStream> {
        match self {
            ClientStream::Plain(tcp) => Some(tcp),
            ClientStream::Tls(_) => None,
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientStream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Plain(s) => s.is_write_vectored(),
            ClientStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// What a TLS connection carries beside its stream.
pub(super) struct ConnTls {
    pub(super) peer: PeerCert,
    pub(super) server: Arc<ServerTls>,
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
    let Some(_place) = slot.handshake() else {
        view.stats.refuse_connection();
        tracing::debug!("TLS handshakes at their ceiling; connection refused");
        return None;
    };
    let limit = client_timeout.map_or(HANDSHAKE_TIMEOUT, |t| t.min(HANDSHAKE_TIMEOUT));
    let accept = tokio_rustls::TlsAcceptor::from(server.config.clone()).accept(client);
    let stream = tokio::select! {
        done = tokio::time::timeout(limit, accept) => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%error, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!("TLS handshake too slow; closing");
                return None;
            }
        },
        _ = life.wait_for(|state| *state == LifeState::Cut) => return None,
    };
    let peer = PeerCert::of(
        stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first()),
    );
    Some((
        ClientStream::Tls(Box::new(stream)),
        Box::new(ConnTls { peer, server }),
    ))
}
