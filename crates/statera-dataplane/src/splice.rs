//! Relaying without copying through user space: bytes go from one
//! socket into a pipe and from the pipe into the other socket with
//! splice(2), so the kernel moves page references instead of the proxy
//! copying every byte out and back in. The pipe of a direction is made only
//! when its first bytes arrive (an idle connection holds none), and a
//! direction that cannot get one (out of file descriptors) copies through a
//! small buffer instead. The HTTP proxy moves large response bodies the
//! same way ([`Pipe`], `http/`).

use rustix::pipe::{PipeFlags, SpliceFlags};
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bytes asked of one splice, and the capacity pipes are given (the
/// default is 16 pages, 64 KiB): fewer, larger moves for bulk transfers.
const CHUNK: usize = 256 * 1024;

/// Buffer of a direction that has no pipe.
const FALLBACK_BUFFER: usize = 16 * 1024;

/// Pipes open at once, at most, in the whole process (each is two file
/// descriptors, and the kernel counts a pipe's capacity against the user's
/// pipe pages whether it holds data or not: past `pipe-user-pages-soft`,
/// 64 MiB by default, new pipes would get one page each; 256 pipes of
/// [`CHUNK`] are that much). Over it, relays
/// copy through buffers. HAProxy bounds its pipes the same way
/// (`maxpipes`).
pub const MAX_PIPES: usize = 256;

static PIPES: Budget = Budget::new(MAX_PIPES);

/// A count of things in use with a ceiling.
struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl Budget {
    const fn new(max: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes one, unless all are taken.
    fn take(&self) -> bool {
        if self.used.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.used.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn give_back(&self) {
        self.used.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long a relay direction keeps its pipe or buffer without bytes.
const IDLE_RELEASE: std::time::Duration = std::time::Duration::from_secs(1);

/// What one direction counts: its bytes into each counter, and when it last
/// moved any (milliseconds since `epoch`) for the idle timeout.
pub struct Meter<'a> {
    pub bytes: [&'a AtomicU64; 2],
    pub last_read: &'a AtomicU64,
    pub epoch: Instant,
}

impl Meter<'_> {
    fn moved(&self, n: usize) {
        for counter in self.bytes {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_read.store(now, Ordering::Relaxed);
    }
}

/// Relays both ways between `client` and `member` until both directions
/// have ended (each end of stream is passed on as a write shutdown, as
/// `tokio::io::copy_bidirectional` does) or one fails. Returns the bytes
/// moved from the client and from the member.
pub async fn relay(
    client: &TcpStream,
    member: &TcpStream,
    from_client: Meter<'_>,
    from_member: Meter<'_>,
) -> io::Result<(u64, u64)> {
    tokio::try_join!(
        one_way(client, member, from_client, false),
        one_way(member, client, from_member, true)
    )
}

/// A pipe that bytes cross between two sockets, and how many are in it.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    held: usize,
}

impl Pipe {
    /// A new pipe, unless [`MAX_PIPES`] are open already (or the system
    /// refuses one).
    pub fn new() -> io::Result<Pipe> {
        if !PIPES.take() {
            return Err(io::Error::other("too many pipes open"));
        }
        match rustix::pipe::pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC) {
            Ok((read, write)) => {
                // Best effort: a pipe keeps its default size if refused.
                let _ = rustix::pipe::fcntl_setpipe_size(&write, CHUNK);
                Ok(Pipe {
                    read,
                    write,
                    held: 0,
                })
            }
            Err(error) => {
                PIPES.give_back();
                Err(error.into())
            }
        }
    }

    /// Bytes taken from one socket and not yet given to the other.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Takes up to `max` bytes from `from` (the pipe is empty); `Ok(0)` at
    /// its end. Meant for `from.try_io(Interest::READABLE, …)`.
    pub fn fill(&mut self, from: &TcpStream, max: usize) -> io::Result<usize> {
        let n = rustix::pipe::splice(
            from.as_fd(),
            None,
            self.write.as_fd(),
            None,
            max.min(CHUNK),
            SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
        )?;
        self.held = n;
        Ok(n)
    }

    /// Gives `to` what the pipe holds (as much as it takes). Meant for
    /// `to.try_io(Interest::WRITABLE, …)`.
    pub fn drain(&mut self, to: &TcpStream) -> io::Result<usize> {
        let n = rustix::pipe::splice(
            self.read.as_fd(),
            None,
            to.as_fd(),
            None,
            self.held,
            SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
        )?;
        self.held -= n;
        Ok(n)
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        PIPES.give_back();
    }
}

/// How a direction moves its bytes.
enum Path {
    /// Not chosen yet: no byte has come.
    None,
    Pipe(Pipe),
    /// A buffer and the bytes in it not yet written (`start..end`).
    Buffer(Box<[u8]>, usize, usize),
}

/// Moves bytes from `from` to `to` until `from` ends, then shuts `to`'s
/// sending side. `ack_now`: `from` is a member, whose every read is
/// acknowledged at once (`upstream::ack_now`: no delayed-ACK stall behind a
/// member's Nagle).
async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    meter: Meter<'_>,
    ack_now: bool,
) -> io::Result<u64> {
    let mut path = Path::None;
    let mut total = 0u64;
    loop {
        // Fill: whatever `from` has, into the pipe or the buffer.
        if path.is_empty() {
            if matches!(path, Path::None) {
                from.readable().await?;
            } else {
                // A direction quiet for a while gives its pipe (or buffer)
                // back: pipes are few (see `MAX_PIPES`), idle connections many.
                tokio::select! {
                    biased;
                    ready = from.readable() => ready?,
                    () = tokio::time::sleep(IDLE_RELEASE) => {
                        path = Path::None;
                        continue;
                    }
                }
            }
            if matches!(path, Path::None) {
                path = Path::new();
            }
            let read = from.try_io(Interest::READABLE, || path.fill(from));
            match read {
                Ok(0) => {
                    // End of stream: pass it on.
                    socket2::SockRef::from(to).shutdown(Shutdown::Write)?;
                    return Ok(total);
                }
                Ok(n) => {
                    total += n as u64;
                    meter.moved(n);
                    if ack_now {
                        crate::upstream::ack_now(from);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        // Drain: what was taken, into `to`.
        to.writable().await?;
        match to.try_io(Interest::WRITABLE, || path.drain(to)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

impl Path {
    /// A pipe if one can be had, else a buffer.
    fn new() -> Path {
        match Pipe::new() {
            Ok(pipe) => Path::Pipe(pipe),
            Err(error) => {
                tracing::debug!(%error, "no pipe for a relay; copying through a buffer");
                Path::Buffer(vec![0; FALLBACK_BUFFER].into_boxed_slice(), 0, 0)
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Path::None => true,
            Path::Pipe(pipe) => pipe.held == 0,
            Path::Buffer(_, start, end) => start == end,
        }
    }

    /// Takes what `from` has (the path is empty); `Ok(0)` at its end.
    fn fill(&mut self, from: &TcpStream) -> io::Result<usize> {
        match self {
            Path::None => Ok(0),
            Path::Pipe(pipe) => pipe.fill(from, CHUNK),
            Path::Buffer(buf, start, end) => {
                let n = from.try_read(buf)?;
                (*start, *end) = (0, n);
                Ok(n)
            }
        }
    }

    /// Gives `to` what the path holds (as much as it takes).
    fn drain(&mut self, to: &TcpStream) -> io::Result<usize> {
        match self {
            Path::None => Ok(0),
            Path::Pipe(pipe) => pipe.drain(to),
            Path::Buffer(buf, start, end) => {
                let n = to.try_write(&buf[*start..*end])?;
                *start += n;
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connected pair of loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (connected.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn both_directions_arrive_whole_and_ends_are_passed_on() {
        tokio::time::timeout(std::time::Duration::from_secs(20), async {
            // client_end <-> client | proxy | member <-> member_end
            let (mut client_end, client) = pair().await;
            let (member, mut member_end) = pair().await;
            let counters: [AtomicU64; 4] = Default::default();
            let last: [AtomicU64; 2] = Default::default();
            let epoch = Instant::now();
            let relay = relay(
                &client,
                &member,
                Meter {
                    bytes: [&counters[0], &counters[1]],
                    last_read: &last[0],
                    epoch,
                },
                Meter {
                    bytes: [&counters[2], &counters[3]],
                    last_read: &last[1],
                    epoch,
                },
            );
            let upload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            let download: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
            let client_side = async {
                client_end.write_all(&upload).await.unwrap();
                client_end.shutdown().await.unwrap();
                let mut got = Vec::new();
                client_end.read_to_end(&mut got).await.unwrap();
                got
            };
            let member_side = async {
                let mut got = vec![0; upload.len()];
                member_end.read_exact(&mut got).await.unwrap();
                member_end.write_all(&download).await.unwrap();
                member_end.shutdown().await.unwrap();
                let mut rest = Vec::new();
                member_end.read_to_end(&mut rest).await.unwrap();
                assert!(
                    rest.is_empty(),
                    "the client's end of stream reached the member"
                );
                got
            };
            let (moved, downloaded, uploaded) = tokio::join!(relay, client_side, member_side);
            assert_eq!(uploaded, upload);
            assert_eq!(downloaded, download);
            let (up, down) = moved.unwrap();
            assert_eq!((up, down), (upload.len() as u64, download.len() as u64));
            assert_eq!(counters[1].load(Ordering::Relaxed), up);
            assert_eq!(counters[3].load(Ordering::Relaxed), down);
        })
        .await
        .unwrap();
    }

    #[test]
    fn budgets_have_a_ceiling_and_take_back() {
        let budget = Budget::new(3);
        assert!((0..3).all(|_| budget.take()));
        assert!(!budget.take(), "one past the ceiling");
        assert!(!budget.take());
        budget.give_back();
        assert!(budget.take());
        assert_eq!(budget.used.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_buffer_path_fills_and_drains_like_a_pipe() {
        let mut path = Path::Buffer(vec![0; 8].into_boxed_slice(), 0, 0);
        assert!(path.is_empty());
        if let Path::Buffer(_, start, end) = &mut path {
            *end = 5;
            *start = 2;
        }
        assert!(!path.is_empty());
    }
}
