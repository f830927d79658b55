//! The connection's waits: the listener's life as the connection follows
//! it, and the connection's one timer.

use super::*;

/// The listener's life as one client connection follows it: one wait on
/// the listener's state, registered once per connection (not once per
/// request), that resolves when it moves to draining, then to cut.
pub(super) struct Stop {
    next: Pin<Box<dyn Future<Output = (LifeState, watch::Receiver<LifeState>)> + Send>>,
    /// The listener is draining: the request in flight is the last.
    pub(super) draining: bool,
}

impl Stop {
    pub(super) fn new(life: watch::Receiver<LifeState>) -> Stop {
        Stop {
            next: Box::pin(next_stop(life, LifeState::Serving)),
            draining: false,
        }
    }

    /// Ready with the new state when the listener starts draining or is cut.
    pub(super) fn poll_next(&mut self, cx: &mut std::task::Context<'_>) -> Poll<LifeState> {
        let (state, life) = std::task::ready!(self.next.as_mut().poll(cx));
        if state == LifeState::Draining {
            self.draining = true;
            self.next = Box::pin(next_stop(life, LifeState::Draining));
        } else {
            self.next = Box::pin(std::future::pending());
        }
        Poll::Ready(state)
    }
}

/// Resolves with the listener's state once it is neither serving nor `from`.
pub(super) async fn next_stop(
    mut life: watch::Receiver<LifeState>,
    from: LifeState,
) -> (LifeState, watch::Receiver<LifeState>) {
    loop {
        let state = *life.borrow_and_update();
        if state != LifeState::Serving && state != from {
            return (state, life);
        }
        if life.changed().await.is_err() {
            // The listener's life cannot change any more.
            std::future::pending::<()>().await;
        }
    }
}

/// `future`'s output if it comes within `limit` (`None`: no limit), on the
/// connection's timer. A future that is ready at once (most writes, a
/// response already in) costs the timer nothing: it is armed only when the
/// future has to wait.
pub(super) async fn timed<F: Future>(
    timer: &mut Pin<Box<Sleep>>,
    limit: Option<Duration>,
    future: F,
) -> Option<F::Output> {
    let Some(limit) = limit else {
        return Some(future.await);
    };
    let mut future = std::pin::pin!(future);
    let mut armed = false;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if !armed {
            timer.as_mut().reset(Instant::now() + limit);
            armed = true;
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Makes room for at least `want` more bytes in `buf` when it has little.
pub(super) fn reserve(buf: &mut Vec<u8>, want: usize) {
    if buf.capacity() - buf.len() < want / 4 {
        buf.reserve(want);
    }
}
