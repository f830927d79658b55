//! Heads as they cross the proxy: the request target, hop-by-hop headers,
//! what the proxy adds, the framing stated once.

use super::*;

/// The target of a request, as the member gets it.
pub(super) struct Target<'b> {
    /// Origin form (or `*`), after a `/` when `slash`: an absolute-form
    /// target's path may be empty (`http://host?q` is `/?q`).
    pub(super) slash: bool,
    pub(super) path: &'b [u8],
    /// The authority of an absolute-form target: the request's host.
    authority: Option<&'b [u8]>,
}

impl<'b> Target<'b> {
    /// The target's origin form normalised (`l7::normalize_target`), when
    /// that changes it.
    pub(super) fn normalized(&self) -> Result<Option<Vec<u8>>, crate::l7::InvalidEscape> {
        if self.slash {
            // An absolute-form target without a path: `/` then the query.
            let mut origin = Vec::with_capacity(self.path.len() + 1);
            origin.push(b'/');
            origin.extend_from_slice(self.path);
            return Ok(Some(
                crate::l7::normalize_target(&origin)?.unwrap_or(origin),
            ));
        }
        crate::l7::normalize_target(self.path)
    }

    /// `None` for an authority-form target (CONNECT's).
    pub(super) fn of(target: &'b [u8]) -> Option<Target<'b>> {
        if target.starts_with(b"/") || target == b"*" {
            return Some(Target {
                slash: false,
                path: target,
                authority: None,
            });
        }
        let scheme_end = target.windows(3).position(|w| w == b"://")?;
        let rest = &target[scheme_end + 3..];
        let authority_end = rest
            .iter()
            .position(|b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(rest.len());
        let path = &rest[authority_end..];
        let authority = &rest[..authority_end];
        // userinfo is not part of the host.
        let host = authority
            .iter()
            .rposition(|b| *b == b'@')
            .map_or(authority, |at| &authority[at + 1..]);
        Some(Target {
            slash: !path.starts_with(b"/"),
            path,
            authority: (!host.is_empty()).then_some(host),
        })
    }
}

/// Header lines a proxy never forwards: they describe one connection, not
/// the message (RFC 9110 §7.6.1), or (`Expect`) ask something of this hop.
pub(super) fn is_hop_by_hop(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 9] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"expect",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Whether the message's `Connection` headers name `name` (a header to
/// drop with them).
pub(super) fn named_by_connection(buf: &[u8], head: &Head, name: &[u8]) -> bool {
    head.connection_names
        && head
            .values(buf, "connection")
            .flat_map(h1::tokens)
            .any(|token| token.eq_ignore_ascii_case(name))
}

/// What the proxy changes in a request head besides hop-by-hop headers.
pub(super) struct RequestEdits<'a> {
    /// The client's address, for X-Forwarded-For.
    pub(super) forwarded_for: Option<&'a str>,
    pub(super) forwarded_port: Option<u16>,
    pub(super) forwarded_proto: bool,
    /// The `Cookie` headers to send instead of the client's (the proxy's
    /// own cookie taken out).
    pub(super) cookies: Option<&'a HeaderMap>,
    /// TERMINATED_HTTPS: the client's certificate and the `X-SSL-*`
    /// headers the listener adds from it. Every `X-SSL-*` header of
    /// [`crate::tls::CLIENT_CERT_HEADERS`] the client sent is dropped, so
    /// none can be forged; `X-Forwarded-Proto` says `https`.
    pub(super) tls: Option<(&'a crate::tls::PeerCert, statera_config::ClientCertHeaders)>,
}

/// Writes the head a member gets for the request `head` (in `buf`).
pub(super) fn write_request_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &Head,
    target: &Target<'_>,
    edits: RequestEdits<'_>,
) {
    out.clear();
    out.extend_from_slice(&buf[head.method.clone()]);
    out.push(b' ');
    if target.slash {
        out.push(b'/');
    }
    out.extend_from_slice(target.path);
    // An HTTP/1.0 request without a host (no Host, origin form) goes as
    // HTTP/1.0, as HAProxy sends it: the member gets the request the client
    // made, where HTTP/1.1 would require a Host that nobody named.
    let hostless = head.minor == 0 && target.authority.is_none() && !head.has_host;
    if hostless {
        out.extend_from_slice(b" HTTP/1.0\r\n");
    } else {
        out.extend_from_slice(b" HTTP/1.1\r\n");
    }
    let mut earlier_forwarded = 0;
    let mut had_length = false;
    for field in &head.fields {
        let name = &buf[field.name.clone()];
        let value = &buf[field.value.clone()];
        let host = name.eq_ignore_ascii_case(b"host");
        let skip = is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(b"content-length")
            || (target.authority.is_some() && host)
            || (edits.forwarded_for.is_some() && name.eq_ignore_ascii_case(b"x-forwarded-for"))
            || (edits.forwarded_port.is_some() && name.eq_ignore_ascii_case(b"x-forwarded-port"))
            || (edits.forwarded_proto && name.eq_ignore_ascii_case(b"x-forwarded-proto"))
            || (edits.cookies.is_some() && name.eq_ignore_ascii_case(b"cookie"))
            || (edits.tls.is_some()
                && crate::tls::CLIENT_CERT_HEADERS
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(name)))
            // `Connection: host` cannot make the host hop-by-hop: it names
            // the resource (RFC 9110 §7.6.1: end-to-end fields are never
            // connection options).
            || (!host && named_by_connection(buf, head, name));
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            earlier_forwarded += 1;
        }
        had_length |= name.eq_ignore_ascii_case(b"content-length");
        if !skip {
            line(out, name, value);
        }
    }
    if let Some(authority) = target.authority {
        line(out, b"Host", authority);
    }
    if hostless {
        // HTTP/1.0 closes by default: ask to keep the member connection.
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    if let Some(cookies) = edits.cookies {
        for value in cookies.get_all(header::COOKIE) {
            line(out, b"Cookie", value.as_bytes());
        }
    }
    if let Some(client) = edits.forwarded_for {
        // Appended to what earlier proxies said, as one comma-separated line
        // (applications that read only the first line still see the chain).
        out.extend_from_slice(b"X-Forwarded-For: ");
        if earlier_forwarded > 0 {
            for value in head.values(buf, "x-forwarded-for") {
                out.extend_from_slice(value);
                out.extend_from_slice(b", ");
            }
        }
        out.extend_from_slice(client.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(port) = edits.forwarded_port {
        use std::io::Write as _;
        let _ = write!(out, "X-Forwarded-Port: {port}\r\n");
    }
    if edits.forwarded_proto {
        out.extend_from_slice(if edits.tls.is_some() {
            b"X-Forwarded-Proto: https\r\n"
        } else {
            b"X-Forwarded-Proto: http\r\n"
        });
    }
    if let Some((peer, wanted)) = &edits.tls {
        peer.write_headers(out, wanted);
    }
    match head.framing() {
        Framing::Length(n) => {
            use std::io::Write as _;
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        Framing::Chunked => transfer_encoding(out, buf, head),
        // `Content-Length: 0` said so (a POST without body): some members
        // want a length on every POST or PUT.
        Framing::Empty if had_length => out.extend_from_slice(b"Content-Length: 0\r\n"),
        Framing::Empty | Framing::UntilClose => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes the head the client gets for the member's response `head` (in
/// `buf`, or its headers from `map` when persistence rewrote them).
pub(super) fn write_response_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &Head,
    map: Option<&HeaderMap>,
    close: bool,
    client_minor: u8,
    hsts: Option<&[u8]>,
) {
    use std::io::Write as _;
    out.clear();
    let _ = write!(out, "HTTP/1.1 {:03} ", head.status);
    out.extend_from_slice(&buf[head.reason.clone()]);
    out.extend_from_slice(b"\r\n");
    // The framing is stated here, from what was parsed, never taken from
    // the member's lines (which its `Connection` header could name away):
    // only a bodiless response (to HEAD, 204, 304) keeps its own length.
    let keep = |name: &[u8]| {
        !(is_hop_by_hop(name)
            || (!head.bodiless && name.eq_ignore_ascii_case(b"content-length"))
            || (hsts.is_some() && name.eq_ignore_ascii_case(b"strict-transport-security"))
            || named_by_connection(buf, head, name))
    };
    match map {
        Some(map) => {
            for (name, value) in map {
                if keep(name.as_str().as_bytes()) {
                    line(out, name.as_str().as_bytes(), value.as_bytes());
                }
            }
        }
        None => {
            for field in &head.fields {
                let name = &buf[field.name.clone()];
                if keep(name) {
                    line(out, name, &buf[field.value.clone()]);
                }
            }
        }
    }
    match head.framing() {
        Framing::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        Framing::Empty if !head.bodiless => out.extend_from_slice(b"Content-Length: 0\r\n"),
        Framing::Chunked if client_minor == 1 => transfer_encoding(out, buf, head),
        // Delimited by the close, after codings (`Transfer-Encoding: gzip`):
        // the client must know them. (An HTTP/1.0 client cannot: such a
        // response never gets here, see `relay_response`.)
        Framing::UntilClose if head.codings => transfer_encoding(out, buf, head),
        _ => {}
    }
    if let Some(hsts) = hsts {
        // The listener's, in place of any the member sent (HAProxy's
        // `http-response set-header`).
        out.extend_from_slice(hsts);
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if client_minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The `Transfer-Encoding` line of a chunked message: `chunked`, or, when
/// the sender applied other codings too (`gzip, chunked`), its own values
/// as they were (the body is forwarded with its codings: only the chunked
/// framing is checked on the way, never taken off for an HTTP/1.1 peer).
pub(super) fn transfer_encoding(out: &mut Vec<u8>, buf: &[u8], head: &Head) {
    if !head.codings {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        return;
    }
    out.extend_from_slice(b"Transfer-Encoding: ");
    for (i, value) in head.values(buf, "transfer-encoding").enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(value);
    }
    out.extend_from_slice(b"\r\n");
}

pub(super) fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The head's headers as a map (for L7 rules and cookie persistence); lines
/// that are not valid names or values are left out.
pub(super) fn header_map(buf: &[u8], head: &Head) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(head.fields.len());
    for field in &head.fields {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&buf[field.name.clone()]),
            HeaderValue::from_bytes(&buf[field.value.clone()]),
        ) {
            map.append(name, value);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(raw: &str, target: &str, edits: RequestEdits<'_>) -> String {
        let head = h1::parse_request(raw.as_bytes()).unwrap().unwrap();
        let target = Target::of(target.as_bytes()).unwrap();
        let mut out = Vec::new();
        write_request_head(&mut out, raw.as_bytes(), &head, &target, edits);
        String::from_utf8(out).unwrap()
    }

    fn no_edits() -> RequestEdits<'static> {
        RequestEdits {
            forwarded_for: None,
            forwarded_port: None,
            forwarded_proto: false,
            cookies: None,
            tls: None,
        }
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let raw = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\n\
                   Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\n\
                   Proxy-Connection: keep-alive\r\nExpect: 100-continue\r\nX-Kept: yes\r\n\r\n";
        assert_eq!(
            forwarded(raw, "/", no_edits()),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Kept: yes\r\n\r\n"
        );
    }

    #[test]
    fn connection_cannot_name_away_what_the_request_needs() {
        // Host names the resource; the framing is stated by the proxy.
        let raw = "POST /x HTTP/1.1\r\nHost: a\r\nConnection: host, content-length, x-p\r\n\
                   X-P: 1\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(
            forwarded(raw, "/x", no_edits()),
            "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n"
        );
        // HTTP/1.0 without a host stays HTTP/1.0 (and asks to keep the
        // member connection); with a Host it goes as HTTP/1.1.
        assert_eq!(
            forwarded("GET / HTTP/1.0\r\n\r\n", "/", no_edits()),
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            forwarded("GET / HTTP/1.0\r\nHost: a\r\n\r\n", "/", no_edits()),
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        );
    }

    #[test]
    fn forwarded_for_appends_to_earlier_proxies() {
        let raw = "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n\
                   X-Forwarded-Proto: https\r\nX-Forwarded-For: 10.0.0.3\r\n\r\n";
        let edits = RequestEdits {
            forwarded_for: Some("192.0.2.7"),
            forwarded_port: Some(8080),
            forwarded_proto: true,
            cookies: None,
            tls: None,
        };
        assert_eq!(
            forwarded(raw, "/x", edits),
            "GET /x HTTP/1.1\r\nHost: a\r\n\
             X-Forwarded-For: 10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7\r\n\
             X-Forwarded-Port: 8080\r\nX-Forwarded-Proto: http\r\n\r\n"
        );
    }

    #[test]
    fn framing_is_stated_once() {
        let raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(
            forwarded(raw, "/", no_edits()),
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
        );
        let raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            forwarded(raw, "/", no_edits()),
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
        );
        // Codings besides chunked are kept as the client sent them.
        let raw = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            forwarded(raw, "/", no_edits()),
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        );
        let raw = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n";
        assert_eq!(
            forwarded(raw, "/", no_edits()),
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn targets_become_origin_form() {
        type Expected = Option<(&'static str, Option<&'static str>)>;
        let table: [(&str, Expected); 6] = [
            ("/a?b=c", Some(("/a?b=c", None))),
            (
                "http://example.com:8080/x/y?z",
                Some(("/x/y?z", Some("example.com:8080"))),
            ),
            ("http://example.com", Some(("/", Some("example.com")))),
            ("http://u@example.com?q", Some(("/?q", Some("example.com")))),
            ("*", Some(("*", None))),
            ("example.com:443", None),
        ];
        for (target, expected) in table {
            let got = Target::of(target.as_bytes()).map(|t| {
                let slash = if t.slash { "/" } else { "" };
                (
                    format!("{slash}{}", String::from_utf8(t.path.to_vec()).unwrap()),
                    t.authority.map(|a| String::from_utf8(a.to_vec()).unwrap()),
                )
            });
            let expected = expected.map(|(p, a)| (p.to_string(), a.map(str::to_string)));
            assert_eq!(got, expected, "{target}");
        }
    }

    #[test]
    fn response_heads_keep_their_lines_and_state_the_connection() {
        let ok =
            "HTTP/1.1 200 OK\r\nServer: x\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok";
        // (member's head, answers HEAD, proxy closes, client's minor version, client's head)
        let table = [
            (
                ok,
                false,
                false,
                1,
                "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\n\r\n",
            ),
            // A length the member's Connection header names is stated all the same.
            (
                "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\nok",
                false,
                false,
                1,
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
            ),
            // The answer to HEAD keeps the member's length; an empty body says 0.
            (
                ok,
                true,
                false,
                1,
                "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\n\r\n",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                false,
                false,
                1,
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ),
            (
                ok,
                false,
                true,
                0,
                "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
            ),
            (
                "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
                false,
                false,
                1,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            ),
        ];
        let mut out = Vec::new();
        for (raw, to_head, close, minor, expected) in table {
            let head = h1::parse_response(raw.as_bytes(), to_head)
                .unwrap()
                .unwrap();
            write_response_head(&mut out, raw.as_bytes(), &head, None, close, minor, None);
            assert_eq!(String::from_utf8_lossy(&out), expected, "{raw:?}");
        }
    }
}
