//! HTTP/1.x on raw bytes: message heads parsed in place (`httparse`, byte
//! ranges into the buffer they arrived in, nothing copied or allocated per
//! header), the framing rules a proxy must get exactly right (RFC 9112 §6),
//! and the chunked transfer coding checked as it streams through.
//!
//! The HTTP proxy (`http/`) forwards heads as the bytes they arrived as,
//! rewriting only what must change, and bodies as they come: this module says
//! where a head ends, what it asks for, and where its body ends.

use std::mem::MaybeUninit;
use std::ops::Range;

/// Largest request head (request line and headers) accepted; larger ones get
/// `431`. HAProxy's default buffer (16 KiB) less its rewrite reserve allows
/// about as much, so clients that work behind the reference work here.
pub const MAX_HEADER_SIZE: usize = 15 * 1024;

/// Largest response head accepted from a member: a larger one is a `502`.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Header lines a head may have (more: `431` for a request, `502` for a
/// response).
pub const MAX_FIELDS: usize = 128;

/// Largest chunk extension or trailer section accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

/// How a message's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes (more than 0).
    Length(u64),
    /// The chunked transfer coding, last.
    Chunked,
    /// Until the sender closes the connection (responses only).
    UntilClose,
}

/// One header line: byte ranges of its name and value in the head's buffer
/// (the value without surrounding whitespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Range<usize>,
    pub value: Range<usize>,
}

/// A parsed message head. Ranges index the buffer it was parsed from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, blank line included: the body starts here.
    pub len: usize,
    /// Request: method and target. Response: empty.
    pub method: Range<usize>,
    pub target: Range<usize>,
    /// Response: the status code and reason phrase.
    pub status: u16,
    pub reason: Range<usize>,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor: u8,
    pub fields: Vec<Field>,
    pub framing: Option<Framing>,
    /// Whether the sender lets the connection go on after this message
    /// (version and `Connection` tokens).
    pub keep_alive: bool,
    /// A `Connection` header names a header besides `close` and
    /// `keep-alive`: one more hop-by-hop header to drop.
    pub connection_names: bool,
    /// `Transfer-Encoding` names a coding besides `chunked` (`gzip,
    /// chunked`): the header's values must reach the recipient as they are.
    pub codings: bool,
    /// Request: has a `Host` line.
    pub has_host: bool,
    /// Request: `Expect: 100-continue`.
    pub expect_continue: bool,
    /// Response: has no body whatever its headers say (the answer to HEAD,
    /// 1xx, 204, 304).
    pub bodiless: bool,
}

impl Head {
    pub fn framing(&self) -> Framing {
        self.framing.unwrap_or(Framing::Empty)
    }

    /// The values of the fields named `name` (lowercase), in order.
    pub fn values<'b>(&'b self, buf: &'b [u8], name: &'b str) -> impl Iterator<Item = &'b [u8]> {
        self.fields
            .iter()
            .filter(move |f| buf[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(move |f| &buf[f.value.clone()])
    }
}

/// Why a request head is refused: the status the client gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `400`: malformed, or ambiguous framing or host.
    BadRequest(&'static str),
    /// `431`: the head is too large or has too many header lines.
    TooLarge,
}

/// Parses the request head at the start of `buf`: `Ok(None)` while it is
/// incomplete. Refuses (RFC 9112) what a proxy must not guess at: both
/// `Content-Length` and `Transfer-Encoding`, differing lengths, a length
/// that is not a number, a transfer coding that does not end in `chunked`,
/// an HTTP/1.1 request without exactly one `Host` (at most one in 1.0).
pub fn parse_request(buf: &[u8]) -> Result<Option<Head>, Refusal> {
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut request = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut request,
        buf,
        &mut storage,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEADER_SIZE {
                Err(Refusal::TooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
        Err(_) => return Err(Refusal::BadRequest("malformed request head")),
    };
    if len > MAX_HEADER_SIZE {
        return Err(Refusal::TooLarge);
    }
    let minor = request.version.unwrap_or(1);
    let method = offset(buf, request.method.unwrap_or("").as_bytes());
    let target = offset(buf, request.path.unwrap_or("").as_bytes());
    let mut head = Head {
        len,
        method,
        target,
        minor,
        ..Head::default()
    };
    let info = fields(buf, request.headers, &mut head);
    if info.hosts != 1 && (minor == 1 || info.hosts > 1) {
        return Err(Refusal::BadRequest("not exactly one Host"));
    }
    head.has_host = info.hosts == 1;
    head.framing = Some(match (info.length, info.transfer) {
        (Err(()), _) | (_, Transfer::Invalid) => {
            return Err(Refusal::BadRequest("invalid framing"));
        }
        (Ok(Some(_)), Transfer::Chunked | Transfer::NotChunked) => {
            return Err(Refusal::BadRequest("Content-Length with Transfer-Encoding"));
        }
        (_, Transfer::NotChunked) => {
            return Err(Refusal::BadRequest(
                "Transfer-Encoding not ending in chunked",
            ));
        }
        (_, Transfer::Chunked) if minor == 0 => {
            return Err(Refusal::BadRequest("Transfer-Encoding in HTTP/1.0"));
        }
        (_, Transfer::Chunked) => Framing::Chunked,
        (Ok(Some(0)) | Ok(None), Transfer::None) => Framing::Empty,
        (Ok(Some(n)), Transfer::None) => Framing::Length(n),
    });
    Ok(Some(head))
}

/// Parses the response head at the start of `buf` (the answer to a request
/// whose method was HEAD when `to_head`): `Ok(None)` while incomplete,
/// `Err` for a head a proxy cannot relay (malformed, too large, unreadable
/// length).
pub fn parse_response(buf: &[u8], to_head: bool) -> Result<Option<Head>, &'static str> {
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut storage,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
            return Err("response head too large");
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("malformed response head"),
    };
    let status = response.code.unwrap_or(0);
    let mut head = Head {
        len,
        status,
        reason: offset(buf, response.reason.unwrap_or("").as_bytes()),
        minor: response.version.unwrap_or(1),
        ..Head::default()
    };
    let info = fields(buf, response.headers, &mut head);
    let bodiless = to_head || (100..200).contains(&status) || status == 204 || status == 304;
    head.bodiless = bodiless;
    head.framing = Some(match (info.transfer, info.length) {
        _ if bodiless => Framing::Empty,
        (Transfer::Invalid, _) => return Err("invalid Transfer-Encoding"),
        (Transfer::Chunked, _) => Framing::Chunked,
        (Transfer::NotChunked, _) => Framing::UntilClose,
        (Transfer::None, Err(())) => return Err("invalid Content-Length"),
        (Transfer::None, Ok(Some(0))) => Framing::Empty,
        (Transfer::None, Ok(Some(n))) => Framing::Length(n),
        (Transfer::None, Ok(None)) => Framing::UntilClose,
    });
    if head.framing == Some(Framing::UntilClose) {
        head.keep_alive = false;
    }
    Ok(Some(head))
}

/// What the header lines say about framing and hosts.
struct FieldInfo {
    hosts: usize,
    /// The one length all `Content-Length` values agree on; `Err` when one
    /// is not a number or two differ.
    length: Result<Option<u64>, ()>,
    transfer: Transfer,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Transfer {
    None,
    Chunked,
    /// Codings that do not end in `chunked`.
    NotChunked,
    /// `chunked` before another coding, or an empty list.
    Invalid,
}

/// Records `headers` as ranges in `head.fields` and reads the fields that
/// decide framing, persistence of the connection and `Expect`.
fn fields(buf: &[u8], headers: &[httparse::Header<'_>], head: &mut Head) -> FieldInfo {
    let mut info = FieldInfo {
        hosts: 0,
        length: Ok(None),
        transfer: Transfer::None,
    };
    let mut close = false;
    let mut keep_alive = false;
    head.fields.reserve_exact(headers.len());
    for header in headers {
        let name = header.name.as_bytes();
        let value = trim(header.value);
        head.fields.push(Field {
            name: offset(buf, name),
            value: offset(buf, value),
        });
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => info.hosts += 1,
            6 if name.eq_ignore_ascii_case(b"expect") => {
                head.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in tokens(value) {
                    let is_close = token.eq_ignore_ascii_case(b"close");
                    let is_keep_alive = token.eq_ignore_ascii_case(b"keep-alive");
                    close |= is_close;
                    keep_alive |= is_keep_alive;
                    head.connection_names |= !is_close && !is_keep_alive;
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                info.length = merge_length(info.length, value);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                info.transfer = merge_transfer(info.transfer, value);
                head.codings |= tokens(value).any(|t| !t.eq_ignore_ascii_case(b"chunked"));
            }
            _ => {}
        }
    }
    head.keep_alive = !close && (head.minor == 1 || keep_alive);
    info
}

fn merge_length(so_far: Result<Option<u64>, ()>, value: &[u8]) -> Result<Option<u64>, ()> {
    let mut length = so_far?;
    // A list of equal values ("5, 5") is one length (RFC 9110 §8.6).
    for item in value.split(|b| *b == b',') {
        let item = trim(item);
        if item.is_empty() || item.len() > 18 || !item.iter().all(u8::is_ascii_digit) {
            return Err(());
        }
        let n = item.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        match length {
            Some(known) if known != n => return Err(()),
            _ => length = Some(n),
        }
    }
    Ok(length)
}

fn merge_transfer(so_far: Transfer, value: &[u8]) -> Transfer {
    let mut transfer = so_far;
    for coding in value.split(|b| *b == b',').map(trim) {
        if coding.is_empty() {
            continue;
        }
        transfer = match transfer {
            // Chunked must be applied once, last: anything after it is not
            // a message a proxy can delimit.
            Transfer::Chunked | Transfer::Invalid => Transfer::Invalid,
            _ if coding.eq_ignore_ascii_case(b"chunked") => Transfer::Chunked,
            _ => Transfer::NotChunked,
        };
    }
    if transfer == Transfer::None {
        // A Transfer-Encoding line with no coding at all.
        return Transfer::Invalid;
    }
    transfer
}

/// The comma-separated tokens of a header value, trimmed.
pub fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(trim)
        .filter(|t| !t.is_empty())
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// Where `part`, a slice of `buf`, lies in it.
fn offset(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    if part.is_empty() || start > buf.len() {
        return 0..0;
    }
    start..start + part.len()
}

/// Where a chunked body is, as it streams through: [`Chunked::scan`] is
/// given its bytes in order and says where it ends. Chunk sizes, line ends
/// (CRLF only: a bare LF in the framing is refused) and the sizes of
/// extensions and trailers are checked, so a body that a member could read
/// differently from us never goes through.
#[derive(Clone, Debug, Default)]
pub struct Chunked {
    state: ChunkState,
    /// Bytes left in the current chunk's data, or the size being read.
    size: u64,
    digits: u8,
    /// Bytes of the current extension or trailer section.
    line: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    SizeSpace,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// A chunked body that is not well-formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub struct ChunkError;

impl Chunked {
    /// Whether the last chunk and the trailers have been seen.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Takes the next bytes of the body; returns how many belong to it (all
    /// of them unless it ends inside `data`). `on_data` gets the ranges of
    /// `data` that are chunk data (to take the coding off, for an HTTP/1.0
    /// client).
    pub fn scan(
        &mut self,
        data: &[u8],
        mut on_data: impl FnMut(Range<usize>),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < data.len() {
            if self.state == ChunkState::Data {
                let take = (data.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                on_data(i..i + take);
                i += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = ChunkState::DataCr;
                }
                continue;
            }
            let byte = data[i];
            i += 1;
            self.state = match (self.state, byte) {
                (ChunkState::Done, _) => {
                    return Ok(i - 1);
                }
                (ChunkState::Size, b) if b.is_ascii_hexdigit() => {
                    // At most 15 hex digits (under 2^60): no member that
                    // reads sizes into 64 bits can overflow on what we pass.
                    if self.digits == 15 {
                        return Err(ChunkError);
                    }
                    self.digits += 1;
                    self.size = self.size << 4 | u64::from(hex(b));
                    ChunkState::Size
                }
                (ChunkState::Size | ChunkState::SizeSpace, _) if self.digits == 0 => {
                    return Err(ChunkError);
                }
                (ChunkState::Size | ChunkState::SizeSpace, b' ' | b'\t') => ChunkState::SizeSpace,
                (ChunkState::Size | ChunkState::SizeSpace, b';') => {
                    self.line = 0;
                    ChunkState::Extension
                }
                (ChunkState::Size | ChunkState::SizeSpace | ChunkState::Extension, b'\r') => {
                    ChunkState::SizeLf
                }
                (ChunkState::Extension, b) if b == b'\t' || (b >= b' ' && b != 0x7f) => {
                    self.line += 1;
                    if self.line > MAX_CHUNK_LINE {
                        return Err(ChunkError);
                    }
                    ChunkState::Extension
                }
                (ChunkState::SizeLf, b'\n') => {
                    self.digits = 0;
                    self.line = 0;
                    if self.size == 0 {
                        ChunkState::TrailerStart
                    } else {
                        ChunkState::Data
                    }
                }
                (ChunkState::DataCr, b'\r') => ChunkState::DataLf,
                (ChunkState::DataLf, b'\n') => ChunkState::Size,
                (ChunkState::TrailerStart, b'\r') => ChunkState::EndLf,
                (ChunkState::TrailerStart | ChunkState::TrailerLine, b)
                    if b == b'\t' || (b >= b' ' && b != 0x7f) || b >= 0x80 =>
                {
                    self.line += 1;
                    if self.line > MAX_TRAILERS {
                        return Err(ChunkError);
                    }
                    ChunkState::TrailerLine
                }
                (ChunkState::TrailerLine, b'\r') => ChunkState::TrailerLf,
                (ChunkState::TrailerLf, b'\n') => ChunkState::TrailerStart,
                (ChunkState::EndLf, b'\n') => {
                    self.state = ChunkState::Done;
                    return Ok(i);
                }
                _ => return Err(ChunkError),
            };
        }
        Ok(i)
    }
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &str) -> Result<Option<Head>, Refusal> {
        parse_request(raw.as_bytes())
    }

    #[test]
    fn request_heads_are_read_in_place() {
        let raw = "POST /a?b HTTP/1.1\r\nHost: x\r\nContent-Length:  5 \r\nX-A: 1\r\n\r\nhello";
        let head = request(raw).unwrap().unwrap();
        let buf = raw.as_bytes();
        assert_eq!(head.len, raw.len() - 5);
        assert_eq!(&buf[head.method.clone()], b"POST");
        assert_eq!(&buf[head.target.clone()], b"/a?b");
        assert_eq!(head.minor, 1);
        assert_eq!(head.framing(), Framing::Length(5));
        assert!(head.keep_alive);
        assert_eq!(head.fields.len(), 3);
        assert_eq!(&buf[head.fields[1].value.clone()], b"5");
        assert_eq!(head.values(buf, "x-a").collect::<Vec<_>>(), [b"1"]);
        assert_eq!(request("GET / HTTP/1.1\r\nHost: x\r\n").unwrap(), None);
        assert_eq!(request("GET / HT").unwrap(), None);
    }

    #[test]
    fn connection_persistence_follows_version_and_tokens() {
        let cases = [
            ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", true),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n",
                false,
            ),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            ("GET / HTTP/1.0\r\nConnection: x, Keep-Alive\r\n\r\n", true),
        ];
        for (raw, keep) in cases {
            assert_eq!(request(raw).unwrap().unwrap().keep_alive, keep, "{raw}");
        }
    }

    #[test]
    fn ambiguous_and_malformed_requests_are_refused() {
        let bad = [
            "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\n\r\n",
            "HELLO\r\n\r\n",
            "GET / HTTP/7.1\r\nHost: x\r\n\r\n",
        ];
        for raw in bad {
            assert!(
                matches!(request(raw), Err(Refusal::BadRequest(_))),
                "{raw:?}: {:?}",
                request(raw)
            );
        }
        let same =
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\n";
        assert_eq!(
            request(same).unwrap().unwrap().framing(),
            Framing::Length(3)
        );
        let chunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        let head = request(chunked).unwrap().unwrap();
        assert_eq!(head.framing(), Framing::Chunked);
        assert!(head.codings);
        let plain = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n";
        assert!(!request(plain).unwrap().unwrap().codings);
    }

    #[test]
    fn oversized_heads_are_431() {
        let big = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n",
            "a".repeat(MAX_HEADER_SIZE)
        );
        assert_eq!(request(&big), Err(Refusal::TooLarge));
        let many: String = (0..MAX_FIELDS + 1)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect();
        let many = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
        assert_eq!(request(&many), Err(Refusal::TooLarge));
    }

    #[test]
    fn response_framing() {
        let cases: [(&str, bool, Result<Framing, ()>, bool); 9] = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
                false,
                Ok(Framing::Length(2)),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
                true,
                Ok(Framing::Empty),
                true,
            ),
            ("HTTP/1.1 204 No\r\n\r\n", false, Ok(Framing::Empty), true),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Ok(Framing::Chunked),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\n\r\n",
                false,
                Ok(Framing::UntilClose),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
                false,
                Ok(Framing::Empty),
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
                false,
                Ok(Framing::Length(1)),
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false,
                Err(()),
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                false,
                Ok(Framing::UntilClose),
                false,
            ),
        ];
        for (raw, to_head, framing, keep) in cases {
            let parsed = parse_response(raw.as_bytes(), to_head);
            match framing {
                Ok(framing) => {
                    let head = parsed.unwrap().unwrap();
                    assert_eq!(head.framing(), framing, "{raw}");
                    assert_eq!(head.keep_alive, keep, "{raw}");
                }
                Err(()) => assert!(parsed.is_err(), "{raw}"),
            }
        }
        let head = parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(head.status, 404);
        assert_eq!(
            &b"HTTP/1.1 404 Not Found\r\n\r\n"[head.reason],
            b"Not Found"
        );
    }

    /// Scans `body` in pieces of `step` bytes; returns (bytes that belong
    /// to the body, its data) or the error.
    fn scan_all(body: &[u8], step: usize) -> Result<(usize, Vec<u8>), ChunkError> {
        let mut chunked = Chunked::default();
        let mut used = 0;
        let mut data = Vec::new();
        for piece in body.chunks(step) {
            let n = chunked.scan(piece, |r| data.extend_from_slice(&piece[r]))?;
            used += n;
            if chunked.is_done() {
                break;
            }
        }
        assert!(chunked.is_done(), "not done after {body:?}");
        Ok((used, data))
    }

    #[test]
    fn chunked_bodies_end_where_their_last_chunk_says() {
        let body = b"3\r\nabc\r\n4;ext=1\r\ndefg\r\nA \r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in [1, 2, 5, 100] {
            let (used, data) = scan_all(body, step).unwrap();
            assert_eq!(used, body.len() - 4, "step {step}");
            assert_eq!(data, b"abcdefg0123456789");
        }
        let bad: [&[u8]; 9] = [
            b"x\r\n",
            b"3\nabc\r\n0\r\n\r\n",
            b"3\r\nabcX\r\n0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"0\r\n\n",
            b"0\r\nX: 1\n\r\n",
            b"1111111111111111\r\n",
            b";\r\n",
            b"-1\r\n",
        ];
        for body in bad {
            let mut chunked = Chunked::default();
            assert!(
                chunked.scan(body, |_| {}).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
