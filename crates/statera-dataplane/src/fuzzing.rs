//! Entry points for the fuzz targets (`fuzz/`) and their in-crate test: the
//! HTTP proxy's request handling (`h1.rs`: heads parsed in place, framing,
//! chunked bodies; the target as L7 rules normalise it) driven from plain bytes, as one client connection's
//! stream of requests. Not an API.

use crate::h1::{self, Chunked, Framing, Refusal};

/// What one connection's bytes came to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeadOutcome {
    /// Each request found in the bytes, in order: `200` went through the
    /// head and framing checks (and would be forwarded), `400` or `431`
    /// refused (the connection ends there).
    pub requests: Vec<u16>,
    /// The bytes ended inside a head or a body.
    pub incomplete: bool,
}

/// Reads `data` as the proxy reads a client connection: a head, its body by
/// its framing, the next head, … until a refusal or the end. Checks the
/// invariants the proxy relies on, and panics when one does not hold:
///
/// - a head parsed whole from `data` parses the same from any longer
///   buffer, and no shorter prefix of it is taken for a whole head;
/// - every range of a head lies inside it;
/// - a head with both a `Content-Length` and a `Transfer-Encoding` line, or
///   a `Transfer-Encoding` line and HTTP/1.0, is never accepted;
/// - a chunked body ends at the same byte, with the same data, whatever
///   the sizes of the reads it arrives in.
pub fn check_request_head(data: &[u8]) -> HeadOutcome {
    let mut outcome = HeadOutcome::default();
    let mut rest = data;
    loop {
        if rest.is_empty() {
            return outcome;
        }
        let head = match h1::parse_request(rest) {
            Ok(Some(head)) => head,
            Ok(None) => {
                outcome.incomplete = true;
                return outcome;
            }
            Err(refusal) => {
                outcome.requests.push(match refusal {
                    Refusal::BadRequest(_) => 400,
                    Refusal::TooLarge => 431,
                });
                return outcome;
            }
        };
        check_head(rest, &head);
        outcome.requests.push(200);
        rest = &rest[head.len..];
        match head.framing() {
            Framing::Empty | Framing::UntilClose => {}
            Framing::Length(n) => {
                if (rest.len() as u64) < n {
                    outcome.incomplete = true;
                    return outcome;
                }
                rest = &rest[n as usize..];
            }
            Framing::Chunked => match chunked_end(rest) {
                Some(Ok(end)) => rest = &rest[end..],
                Some(Err(())) => {
                    // The proxy answers 400 and closes.
                    outcome.requests.push(400);
                    return outcome;
                }
                None => {
                    outcome.incomplete = true;
                    return outcome;
                }
            },
        }
    }
}

fn check_head(buf: &[u8], head: &h1::Head) {
    let bytes = &buf[..head.len];
    for range in [&head.method, &head.target]
        .into_iter()
        .chain(head.fields.iter().flat_map(|f| [&f.name, &f.value]))
    {
        assert!(range.end <= head.len, "range {range:?} past the head");
    }
    // Parsed alone, the head is the same; any prefix of it is incomplete
    // or refused, never a whole head.
    let alone = h1::parse_request(bytes).expect("the head alone parses");
    assert_eq!(alone.as_ref(), Some(head), "the head alone parses the same");
    for cut in prefix_cuts(head.len) {
        if let Ok(Some(shorter)) = h1::parse_request(&bytes[..cut]) {
            panic!(
                "a prefix of {cut} bytes was taken for a head of {}",
                shorter.len
            );
        }
    }
    let has = |name: &[u8]| {
        head.fields
            .iter()
            .any(|f| buf[f.name.clone()].eq_ignore_ascii_case(name))
    };
    if has(b"transfer-encoding") {
        assert!(
            !has(b"content-length"),
            "Content-Length with Transfer-Encoding accepted"
        );
        assert_eq!(head.minor, 1, "Transfer-Encoding in HTTP/1.0 accepted");
        assert_eq!(head.framing(), Framing::Chunked);
    }
    check_normalized(&buf[head.target.clone()]);
}

/// What an L7 rule sees of a target (`l7::normalize_target`) is normal: a
/// second pass changes nothing, and its path has no empty, `.` or `..`
/// segment and no escaped unreserved character.
pub fn check_normalized(target: &[u8]) {
    let Ok(Some(normal)) = crate::l7::normalize_target(target) else {
        return;
    };
    assert!(normal.starts_with(b"/"), "{normal:?}");
    assert_eq!(
        crate::l7::normalize_target(&normal),
        Ok(None),
        "normalising {:?} twice changes it",
        String::from_utf8_lossy(target)
    );
    let path_end = normal
        .iter()
        .position(|b| *b == b'?')
        .unwrap_or(normal.len());
    let segments: Vec<&[u8]> = normal[1..path_end].split(|b| *b == b'/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        assert!(
            !matches!(*segment, b"." | b"..") && (i == last || !segment.is_empty()),
            "{:?} has a dot or empty segment",
            String::from_utf8_lossy(&normal)
        );
    }
}

/// A few prefix lengths of a head of `len` bytes (all of them for a short
/// head).
fn prefix_cuts(len: usize) -> Vec<usize> {
    if len <= 64 {
        return (0..len).collect();
    }
    let mut cuts: Vec<usize> = (0..16).chain(len - 16..len).collect();
    cuts.extend((1..16).map(|i| len * i / 16));
    cuts
}

/// Where the chunked body at the start of `data` ends (`Err` malformed,
/// `None` not within `data`), checked to be the same over several read
/// sizes.
fn chunked_end(data: &[u8]) -> Option<Result<usize, ()>> {
    let whole = scan_in_pieces(data, data.len().max(1));
    for step in [1, 2, 3, 7, 200] {
        assert_eq!(
            scan_in_pieces(data, step),
            whole,
            "chunked scan differs in reads of {step}"
        );
    }
    match whole {
        Ok((end, _, true)) => Some(Ok(end)),
        Ok((_, _, false)) => None,
        Err(()) => Some(Err(())),
    }
}

/// Scans `data` in reads of `step` bytes: (bytes of the body, its data,
/// whether it ended).
fn scan_in_pieces(data: &[u8], step: usize) -> Result<(usize, Vec<u8>, bool), ()> {
    let mut chunked = Chunked::default();
    let mut used = 0;
    let mut body = Vec::new();
    for piece in data.chunks(step) {
        let n = chunked
            .scan(piece, |r| body.extend_from_slice(&piece[r]))
            .map_err(|_| ())?;
        assert!(n <= piece.len());
        used += n;
        if chunked.is_done() {
            return Ok((used, body, true));
        }
        assert_eq!(n, piece.len(), "a body that has not ended takes every byte");
    }
    Ok((used, body, false))
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
        assert_eq!(bare.requests, vec![200, 400]);
        // A chunked body with a bare LF in its framing is refused.
        let bare_chunk = check_request_head(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\nz\r\n0\r\n\r\n",
        );
        assert_eq!(bare_chunk.requests, vec![200, 400]);
        // Two requests, the first with a chunked body that looks like a head.
        let two = check_request_head(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
              12\r\nGET / HTTP/1.1\r\n\r\n\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        assert_eq!(two.requests, vec![200, 200]);
        assert!(!two.incomplete);
        // A head over the limit.
        let mut huge = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 64 * 1024));
        huge.extend_from_slice(b"\r\n\r\n");
        assert_eq!(check_request_head(&huge).requests, vec![431]);
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

    /// xorshift64*: deterministic, no dependency.
    fn random(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed;
        move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn pseudo_random_inputs_keep_the_invariants() {
        let mut next = random(0x9e37_79b9_7f4a_7c15);
        let pieces: [&[u8]; 14] = [
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
            b"4;x=y\r\nabcd\r\n",
            b": ",
            b" ",
            b"Connection: close",
        ];
        for _ in 0..3000 {
            let mut data = Vec::new();
            for _ in 0..(next() % 24) {
                let r = next();
                if r.is_multiple_of(4) {
                    data.push((r >> 8) as u8);
                } else {
                    data.extend_from_slice(pieces[(r >> 8) as usize % pieces.len()]);
                }
            }
            check_request_head(&data);
        }
    }

    #[test]
    fn pseudo_random_targets_normalise_once() {
        let mut next = random(0x2545_f491_4f6c_dd1d);
        let pieces: [&[u8]; 12] = [
            b"/", b"//", b".", b"..", b"%2e", b"%2E", b"%61", b"%2f", b"%", b"a", b"?", b"%7e",
        ];
        for _ in 0..20_000 {
            let mut target = b"/".to_vec();
            for _ in 0..(next() % 12) {
                target.extend_from_slice(pieces[(next() >> 8) as usize % pieces.len()]);
            }
            check_normalized(&target);
        }
    }
}
