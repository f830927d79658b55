//! The way of a request to a member and back: connect (or reuse), send the
//! head and body, relay the response head and body.

use super::*;

impl ClientConn {
    /// The idle connections a request to `member` of `pool` may use.
    pub(super) fn idle_for(
        &mut self,
        pool: &PoolRuntime,
        member: &MemberRuntime,
    ) -> Arc<IdleConns> {
        if !matches!(pool.protocol, PoolProtocol::Proxy | PoolProtocol::ProxyV2) {
            return member.idle.clone();
        }
        self.own_idle.entry(member.id).or_default().clone()
    }

    /// Sends the request (its head in `out`, its body in `buf` and still
    /// coming) to a member and relays the response.
    pub(super) async fn forward(&mut self, pool: &PoolRuntime, x: Exchange) -> Keep {
        // The part of the body that came with the head, and whether it is
        // all of it.
        let mut chunked = Chunked::default();
        let (body_end, complete) = match x.head.framing() {
            Framing::Empty | Framing::UntilClose => (x.head.len, true),
            Framing::Length(n) => {
                let available = (self.buf.len() - x.head.len) as u64;
                let end = x.head.len + available.min(n) as usize;
                (end, available >= n)
            }
            Framing::Chunked => match chunked.scan(&self.buf[x.head.len..], |_| {}) {
                Ok(n) => (x.head.len + n, chunked.is_done()),
                Err(_) => return self.refuse_closing(StatusCode::BAD_REQUEST).await,
            },
        };
        if complete {
            // The whole request goes out in one write.
            self.out.extend_from_slice(&self.buf[x.head.len..body_end]);
        } else if x.head.expect_continue && x.head.minor == 1 {
            // We forward without Expect; the client waits for our word.
            if self
                .write_client(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
            {
                return false;
            }
        }
        let replayable = complete && x.head.framing() == Framing::Empty && x.idempotent;
        let proxy_header = upstream::proxy_header(pool.protocol, self.peer, self.vip);
        let reporter = self.snapshot.reporter.clone();
        let mut tried = [0; MAX_CONNECT_ATTEMPTS];
        let mut attempts = 0;
        'members: while attempts < MAX_CONNECT_ATTEMPTS {
            let Some(i) = pool.select(self.peer, &x.affinity, &tried[..attempts]) else {
                break;
            };
            tried[attempts] = i;
            attempts += 1;
            let member = &pool.members[i];
            // Counted from the attempt to the end of the response body.
            let in_flight = member.start();
            let idle = self.idle_for(pool, member);
            let opened_for = upstream::OpenedFor {
                addr: member.addr,
                protocol: pool.protocol,
                tls: pool.tls.clone(),
            };
            let mut fresh_only = false;
            loop {
                let pooled = if fresh_only {
                    None
                } else {
                    idle.take(&opened_for)
                };
                let reused = pooled.is_some();
                let mut up = match pooled {
                    Some(up) => up,
                    None => match upstream::open(
                        &self.snapshot.netns,
                        statera_config::member_source(self.vip.ip(), member.addr.ip()),
                        opened_for.clone(),
                        x.connect_timeout,
                        proxy_header.as_deref(),
                        member.stats.clone(),
                    )
                    .await
                    {
                        Ok(up) => up,
                        Err(error) => {
                            tracing::debug!(member = %member.id, addr = %member.addr, %error, "member connect failed");
                            pool.observe(i, Outcome::Failure, &reporter);
                            continue 'members;
                        }
                    },
                };
                let sent = if complete {
                    self.send_whole(&mut up, &x).await
                } else {
                    self.send_streaming(&mut up, &x, body_end, chunked.clone())
                        .await
                };
                let (response, request_complete) = match sent {
                    Ok(sent) => {
                        if complete {
                            self.consume(body_end);
                        }
                        sent
                    }
                    Err(SendError::ClientGone) => {
                        self.clean = false;
                        return false;
                    }
                    Err(SendError::MalformedBody) => {
                        tracing::debug!(peer = %self.peer, "malformed chunked request body");
                        return self.refuse_closing(StatusCode::BAD_REQUEST).await;
                    }
                    Err(SendError::Member(failure)) => {
                        let status = match failure {
                            MemberFailure::Lost if reused && replayable => {
                                // The member closed the idle connection as
                                // we sent: not its fault, and the request
                                // can go again.
                                tracing::debug!(member = %member.id, "request lost by a reused connection; sending again");
                                fresh_only = true;
                                continue;
                            }
                            MemberFailure::TimedOut => {
                                tracing::debug!(member = %member.id, "member did not answer in time");
                                pool.observe(i, Outcome::Failure, &reporter);
                                StatusCode::GATEWAY_TIMEOUT
                            }
                            MemberFailure::Lost | MemberFailure::Broken => {
                                tracing::debug!(member = %member.id, reused, "member request failed");
                                if !reused {
                                    // A fresh connection lost: the member's
                                    // doing (a reused one may just have
                                    // timed out idle).
                                    pool.observe(i, Outcome::Failure, &reporter);
                                }
                                StatusCode::BAD_GATEWAY
                            }
                        };
                        return self.error_after_send(&x, complete, body_end, status).await;
                    }
                };
                let outcome = if response.status >= 500 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                pool.observe(i, outcome, &reporter);
                pool.stick(&x.affinity, i);
                let (keep, reusable) = self
                    .relay_response(&mut up, response, pool, member.id, &x, request_complete)
                    .await;
                drop(in_flight);
                if reusable {
                    idle.park(up);
                }
                return keep;
            }
        }
        tracing::debug!(pool = %pool.id, tried = attempts, "no member took the request");
        if complete {
            self.consume(body_end);
        }
        let keep = complete && x.head.keep_alive;
        self.proxy_error(StatusCode::SERVICE_UNAVAILABLE, !keep)
            .await;
        keep
    }

    /// Sends a request whose body is all in `buf` (head and body are in
    /// `out`) and reads the response head.
    pub(super) async fn send_whole(
        &mut self,
        up: &mut Upstream,
        x: &Exchange,
    ) -> Result<(Head, bool), SendError> {
        if up.write_all(&self.out).await.is_err() {
            return Err(SendError::Member(MemberFailure::Lost));
        }
        let read = read_response_head(up, x.to_head);
        match timed(&mut self.timer, x.member_timeout, read).await {
            Some(Ok(head)) => Ok((head, true)),
            Some(Err(failure)) => Err(SendError::Member(failure)),
            None => Err(SendError::Member(MemberFailure::TimedOut)),
        }
    }

    /// Sends a request whose body is still coming: the head and what `buf`
    /// has of the body first, then the rest as the client sends it, while
    /// watching for the response head (a member may answer before it has
    /// read the whole body). `Err(None)`: the client failed; nothing more
    /// can be said to it.
    pub(super) async fn send_streaming(
        &mut self,
        up: &mut Upstream,
        x: &Exchange,
        body_end: usize,
        chunked: Chunked,
    ) -> Result<(Head, bool), SendError> {
        let mut first = std::mem::take(&mut self.out);
        first.extend_from_slice(&self.buf[x.head.len..body_end]);
        let written = up.write_all(&first).await;
        first.clear();
        self.out = first;
        if written.is_err() {
            return Err(SendError::Member(MemberFailure::Lost));
        }
        let remaining = match x.head.framing() {
            Framing::Length(n) => n - (body_end - x.head.len) as u64,
            _ => 0,
        };
        self.buf.clear();
        let framing = x.head.framing();
        let body = Body {
            remaining,
            chunked: (framing == Framing::Chunked).then_some(chunked),
        };
        let Upstream {
            stream, buf, stats, ..
        } = up;
        let stats: &crate::stats::ListenerStats = stats;
        // Plain TCP splits into halves for free; a TLS stream's halves share
        // it under a lock.
        let (waited, pumped) = match stream {
            MaybeTls::Plain(tcp) => {
                let (member_read, member_write) = tcp.split();
                self.send_body_watching(member_read, member_write, buf, stats, x, body)
                    .await
            }
            MaybeTls::Tls(_) => {
                let (member_read, member_write) = tokio::io::split(stream);
                self.send_body_watching(member_read, member_write, buf, stats, x, body)
                    .await
            }
        };
        let request_complete = match pumped {
            Some(Ok(end)) => {
                self.consume(end);
                true
            }
            Some(Err(PumpError::Client)) => return Err(SendError::ClientGone),
            Some(Err(PumpError::Malformed)) => return Err(SendError::MalformedBody),
            _ => false,
        };
        match waited {
            Some(Ok(head)) => Ok((head, request_complete)),
            Some(Err(failure)) if request_complete => Err(SendError::Member(failure)),
            // The body did not get through: nothing can be sent again.
            Some(Err(_)) => Err(SendError::Member(MemberFailure::Broken)),
            None => Err(SendError::Member(MemberFailure::TimedOut)),
        }
    }

    /// The rest of a request body to the member while watching for its
    /// response head: the head (or how the wait failed, `None`: timed out)
    /// and how the body went (`None`: the head came first).
    async fn send_body_watching<R: MemberRead, W: AsyncWrite + Unpin>(
        &mut self,
        mut member_read: R,
        mut member_write: W,
        buf: &mut Vec<u8>,
        stats: &crate::stats::ListenerStats,
        x: &Exchange,
        body: Body,
    ) -> (
        Option<Result<Head, MemberFailure>>,
        Option<Result<usize, PumpError>>,
    ) {
        let mut pumped: Option<Result<usize, PumpError>> = None;
        let mut pump = std::pin::pin!(pump_body(
            &mut self.client,
            &mut self.buf,
            &mut member_write,
            body,
            self.client_timeout,
            &self.view.stats,
            stats,
        ));
        let mut read = std::pin::pin!(read_head_from(&mut member_read, buf, stats, x.to_head));
        // While the body is coming, the client's timeout governs (each of
        // its reads); the member's starts once the body is through: a slow
        // client is not a slow member.
        let early = tokio::select! {
            biased;
            head = &mut read => Some(head),
            result = &mut pump => {
                pumped = Some(result);
                None
            }
        };
        let waited = match early {
            Some(head) => Some(head),
            None if matches!(pumped, Some(Err(PumpError::Client | PumpError::Malformed))) => {
                Some(Err(MemberFailure::Lost))
            }
            None => timed(&mut self.timer, x.member_timeout, &mut read).await,
        };
        (waited, pumped)
    }

    /// Relays a member's response (its head parsed from `conn.buf`) to the
    /// client; also says whether the member connection can take another
    /// request.
    pub(super) async fn relay_response(
        &mut self,
        conn: &mut Upstream,
        response: Head,
        pool: &PoolRuntime,
        member: Uuid,
        x: &Exchange,
        request_complete: bool,
    ) -> (Keep, bool) {
        let mut map = None;
        if let Some(persistence) = pool.persistence.as_deref()
            && !matches!(persistence, Persistence::SourceIp(_))
        {
            let mut headers = header_map(&conn.buf, &response);
            persistence.on_response(&x.affinity, member, &mut headers, Instant::now());
            map = Some(headers);
        }
        let framing = response.framing();
        if response.codings && x.head.minor == 0 {
            // Transfer codings besides chunked (`gzip, chunked`) cannot be
            // said to an HTTP/1.0 client, and taking them off is not the
            // proxy's to do: refused rather than delivered as another body.
            tracing::debug!("transfer-coded response to an HTTP/1.0 client");
            self.out.clear();
            self.proxy_error(StatusCode::BAD_GATEWAY, true).await;
            return (false, false);
        }
        let dechunk = framing == Framing::Chunked && x.head.minor == 0;
        let close = !x.head.keep_alive
            || !request_complete
            || framing == Framing::UntilClose
            || dechunk
            || self.draining();
        write_response_head(
            &mut self.out,
            &conn.buf,
            &response,
            map.as_ref(),
            close,
            x.head.minor,
            self.tls.as_ref().and_then(|t| t.server.hsts.as_deref()),
        );
        conn.buf.drain(..response.len);
        let relayed = self
            .relay_body(conn, framing, dechunk, x.member_timeout)
            .await;
        if relayed.is_ok() && !request_complete {
            // The member answered before the whole body came: the rest of
            // it is still on its way from the client.
            self.linger().await;
        }
        match relayed {
            Ok(()) => (
                !close,
                response.keep_alive && request_complete && conn.buf.is_empty(),
            ),
            Err(Side::Member) => {
                tracing::debug!("member failed mid-response");
                self.clean = false;
                self.view
                    .stats
                    .request_errors
                    .fetch_add(1, Ordering::Relaxed);
                (false, false)
            }
            Err(Side::MemberBeforeHead) => {
                tracing::debug!("member sent a malformed body");
                self.out.clear();
                self.proxy_error(StatusCode::BAD_GATEWAY, true).await;
                (false, false)
            }
            Err(Side::Client) => {
                self.clean = false;
                (false, false)
            }
        }
    }

    /// Sends the head in `out` and the body that follows it in `up.buf`
    /// (and from the member after that) to the client.
    pub(super) async fn relay_body(
        &mut self,
        up: &mut Upstream,
        framing: Framing,
        dechunk: bool,
        member_timeout: Option<Duration>,
    ) -> Result<(), Side> {
        let mut remaining = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let mut chunked = Chunked::default();
        let mut data = Vec::new();
        // Whether the last read was small (at first: whether the head came
        // with little or none of the body): then the rest may wait behind
        // the member's Nagle for our ACK (see `upstream::ack_now`).
        let mut small = up.buf.len() < upstream::SMALL_READ;
        loop {
            // What of `up.buf` is this body, and whether the body ends there.
            let (take, done) = match framing {
                Framing::Empty => (0, true),
                Framing::Length(_) => {
                    let take = (up.buf.len() as u64).min(remaining);
                    remaining -= take;
                    (take as usize, remaining == 0)
                }
                Framing::Chunked => {
                    data.clear();
                    let n = chunked
                        .scan(&up.buf, |range| data.push(range))
                        .map_err(|_| {
                            if self.out.is_empty() {
                                Side::Member
                            } else {
                                Side::MemberBeforeHead
                            }
                        })?;
                    (n, chunked.is_done())
                }
                Framing::UntilClose => (up.buf.len(), false),
            };
            let head = std::mem::take(&mut self.out);
            let wrote = if dechunk {
                let mut parts: Vec<IoSlice<'_>> = Vec::with_capacity(data.len() + 1);
                parts.push(IoSlice::new(&head));
                parts.extend(data.iter().map(|r| IoSlice::new(&up.buf[r.clone()])));
                self.write_client_parts(&mut parts).await
            } else {
                self.write_client_pair(&head, &up.buf[..take]).await
            };
            self.out = head;
            self.out.clear();
            wrote.map_err(|_| Side::Client)?;
            up.buf.drain(..take);
            if done {
                return Ok(());
            }
            if !up.buf.is_empty() {
                // Bytes past the end of a body that has not ended: cannot be.
                return Err(Side::Member);
            }
            if matches!(framing, Framing::Length(_))
                && remaining >= SPLICE_MIN
                && self.client.plain().is_some()
                && up.stream.plain().is_some()
                && let Ok(pipe) = crate::splice::Pipe::new()
            {
                return self.splice_body(up, pipe, remaining, member_timeout).await;
            }
            let expected = matches!(framing, Framing::Length(_)).then_some(remaining);
            if small {
                up.ack_now();
            }
            match timed(&mut self.timer, member_timeout, up.read_more(expected)).await {
                Some(Ok(0)) if framing == Framing::UntilClose => return Ok(()),
                // A TLS member that closes without close_notify (as many
                // do after a body that lasts until the close) has ended it.
                Some(Err(e))
                    if framing == Framing::UntilClose
                        && e.kind() == io::ErrorKind::UnexpectedEof =>
                {
                    return Ok(());
                }
                Some(Ok(0)) | Some(Err(_)) => return Err(Side::Member),
                Some(Ok(n)) => small = n < upstream::SMALL_READ,
                None => {
                    tracing::debug!("member response body timed out");
                    return Err(Side::Member);
                }
            }
        }
    }

    /// Moves the last `remaining` bytes of a response body from the member
    /// to the client through `pipe` (splice(2): the bytes never enter the
    /// proxy's memory); each wait for the member within its data timeout,
    /// for the client within the client's.
    pub(super) async fn splice_body(
        &mut self,
        up: &mut Upstream,
        mut pipe: crate::splice::Pipe,
        mut remaining: u64,
        member_timeout: Option<Duration>,
    ) -> Result<(), Side> {
        use tokio::io::Interest;
        // Only plain connections on both sides get here (TLS bodies go
        // through the proxy's memory to be encrypted or decrypted).
        let Some(member) = up.stream.plain() else {
            return Err(Side::Member);
        };
        // Only large bodies come here; a small read is still acknowledged at
        // once (see `upstream::SMALL_READ`).
        let mut small = false;
        loop {
            if pipe.held() == 0 {
                if remaining == 0 {
                    return Ok(());
                }
                let max = usize::try_from(remaining).unwrap_or(usize::MAX);
                if small {
                    up.ack_now();
                }
                match timed(&mut self.timer, member_timeout, member.readable()).await {
                    Some(Ok(())) => {}
                    Some(Err(_)) | None => return Err(Side::Member),
                }
                match member.try_io(Interest::READABLE, || pipe.fill(member, max)) {
                    Ok(0) => return Err(Side::Member),
                    Ok(n) => {
                        small = n < upstream::SMALL_READ;
                        remaining -= n as u64;
                        up.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(_) => return Err(Side::Member),
                }
            }
            let Some(client) = self.client.plain() else {
                return Err(Side::Client);
            };
            match timed(&mut self.timer, self.client_timeout, client.writable()).await {
                Some(Ok(())) => {}
                Some(Err(_)) | None => return Err(Side::Client),
            }
            match client.try_io(Interest::WRITABLE, || pipe.drain(client)) {
                Ok(n) => {
                    self.view
                        .stats
                        .bytes_out
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(Side::Client),
            }
        }
    }
}
