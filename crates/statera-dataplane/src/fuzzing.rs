//! Entry points for the fuzz targets (`fuzz/`) and their in-crate test: the
//! client-side request head handling, driven from plain bytes. Not an API.

use crate::http::{MAX_HEADER_SIZE, is_ambiguous};
use crate::io::{Activity, HyperIo, Meter, RawHeads};
use crate::stats::ListenerStats;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What one connection's bytes came to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeadOutcome {
    /// The status the proxy's head checks gave each request hyper parsed
    /// (`200` passed them, `400` refused as ambiguous), in order.
    pub requests: Vec<u16>,
    /// hyper refused the bytes (it answers 400 or 431 itself).
    pub parse_error: bool,
    /// The connection did not end within the bound: a hang, a bug.
    pub hung: bool,
}

/// Feeds `data` to the raw head tracker (`RawHeads`) in chunks of the
/// sizes `chunks` gives in turn (0 taken as 1), checking its invariants:
/// every call hands over at least one byte and at most what it was offered,
/// and stops at the first blank line's end. Panics when one does not hold.
pub fn check_raw_heads(data: &[u8], chunks: &[u8]) {
    let heads = RawHeads::new(MAX_HEADER_SIZE + 1024);
    let mut rest = data;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let size = if chunks.is_empty() {
            rest.len()
        } else {
            usize::from(*sizes.next().unwrap_or(&1)).max(1)
        };
        let offered = &rest[..size.min(rest.len())];
        let given = heads.observe(offered);
        assert!(
            given >= 1 && given <= offered.len(),
            "observe gave {given} of {}",
            offered.len()
        );
        // No blank line end before the cut: `\n\n` or `\n\r\n` inside
        // `offered[..given - 1]` would have been cut earlier.
        let before = &offered[..given - 1];
        assert!(
            !before.windows(2).any(|w| w == b"\n\n") && !before.windows(3).any(|w| w == b"\n\r\n"),
            "observe handed over past a blank line"
        );
        let _ = heads.last_has_content_length();
        rest = &rest[given..];
    }
}

/// Serves `data` as one client connection's bytes through the proxy's own
/// client transport (`HyperIo` with `RawHeads`) and hyper's HTTP/1 server,
/// with the proxy's header limit and smuggling check; the service answers
/// 200 without a member. Bounded: a connection that does not end within
/// 5 s is reported `hung`.
pub fn serve_request_bytes(data: &[u8]) -> HeadOutcome {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(_) => return HeadOutcome::default(),
    };
    runtime.block_on(serve_async(data))
}

async fn serve_async(data: &[u8]) -> HeadOutcome {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let heads = Arc::new(RawHeads::new(MAX_HEADER_SIZE + 1024));
    let io = HyperIo::client(
        server,
        Meter {
            stats: Arc::new(ListenerStats::default()),
            activity: Arc::new(Activity::new()),
        },
        heads.clone(),
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_in = seen.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let status = if is_ambiguous(request.headers(), &heads) {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        seen_in
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(status.as_u16());
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = status;
        async move { Ok::<_, Infallible>(response) }
    });
    let http = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .max_header_size(MAX_HEADER_SIZE)
        .serve_connection(io, service);
    let (mut read, mut write) = tokio::io::split(client);
    let writer = async move {
        let _ = write.write_all(data).await;
        let _ = write.shutdown().await;
    };
    let reader = async move {
        let mut sink = Vec::new();
        let _ = read.read_to_end(&mut sink).await;
    };
    let all = async {
        let (served, (), ()) = tokio::join!(http, writer, reader);
        served
    };
    let mut outcome = HeadOutcome::default();
    match tokio::time::timeout(Duration::from_secs(5), all).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => outcome.parse_error = error.is_parse() || error.is_parse_too_large(),
        Err(_) => outcome.hung = true,
    }
    outcome.requests = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    outcome
}

/// The request head checks, whole: [`check_raw_heads`] over a few chunkings
/// of `data`, then [`serve_request_bytes`]. Panics on a broken invariant or
/// a hang; otherwise returns what hyper and the checks made of the bytes.
pub fn check_request_head(data: &[u8]) -> HeadOutcome {
    check_raw_heads(data, &[]);
    check_raw_heads(data, &[1]);
    check_raw_heads(data, &[7, 1, 3, 200]);
    let outcome = serve_request_bytes(data);
    assert!(!outcome.hung, "connection did not end");
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMUGGLE: &[u8] = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";

    #[test]
    fn hand_made_heads() {
        let ok = check_request_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(ok.requests, vec![200]);
        let smuggle = check_request_head(SMUGGLE);
        assert_eq!(smuggle.requests, vec![400]);
        // Bare LF line ends, and the smuggling shape behind a clean request.
        let bare = check_request_head(
            b"GET / HTTP/1.1\nHost: a\n\nPOST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nContent-Length: 3\n\n0\n\n",
        );
        assert_eq!(bare.requests.first(), Some(&200));
        assert_eq!(bare.requests.get(1).copied().unwrap_or(400), 400);
        // A head over the limit: hyper refuses it, the service never runs.
        let mut huge = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 64 * 1024));
        huge.extend_from_slice(b"\r\n\r\n");
        let huge = check_request_head(&huge);
        assert!(huge.requests.is_empty() && huge.parse_error);
        // Garbage, empty, lone blank lines, obs-fold.
        for data in [
            &b""[..],
            b"\r\n\r\n\r\n",
            b"\n\n\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"\x00\xff\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            let outcome = check_request_head(data);
            assert!(!outcome.requests.contains(&200) || data.starts_with(b"GET"));
        }
    }

    #[test]
    fn pseudo_random_inputs_never_panic_or_hang() {
        // xorshift64*: deterministic, no dependency.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let pieces: [&[u8]; 12] = [
            b"GET / HTTP/1.1",
            b"POST /x HTTP/1.0",
            b"\r\n",
            b"\n",
            b"\r",
            b"Host: a",
            b"Content-Length: 4",
            b"Transfer-Encoding: chunked",
            b"transfer-encoding : chunked",
            b"0\r\n\r\n",
            b": ",
            b" ",
        ];
        for _ in 0..3000 {
            let mut data = Vec::new();
            for _ in 0..(next() % 24) {
                let r = next();
                if r % 4 == 0 {
                    data.push((r >> 8) as u8);
                } else {
                    data.extend_from_slice(pieces[(r >> 8) as usize % pieces.len()]);
                }
            }
            let outcome = check_request_head(&data);
            assert!(!outcome.hung);
        }
    }

    #[test]
    fn smuggling_shapes_are_refused_at_any_read_boundary() {
        // The head arrives split anywhere: the check still sees it whole.
        let outcome = check_request_head(SMUGGLE);
        assert_eq!(outcome.requests, vec![400]);
        for size in [1u8, 2, 3, 5, 13] {
            check_raw_heads(SMUGGLE, &[size]);
        }
    }
}
