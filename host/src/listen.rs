//! Accepting connections, for every listener (HTTP, HTTPS, admin): the one
//! place where a client's hold on the server is bounded.
//!
//! A connection must send a request's whole header within
//! `header_read_timeout` (hyper's timer, which also runs while a kept-alive
//! connection waits for its next request), is closed after `idle_timeout`
//! with no bytes either way and no request in flight, and at most
//! `max_connections` are open per listener: past that, new ones wait in the
//! kernel's backlog until one closes. A failed accept (out of file
//! descriptors, say) backs off instead of spinning. Request bodies have their
//! own deadline, applied where they are read (`server`).

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// How long and how many connections a listener keeps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// The limits `[server]` sets.
    pub fn of(server: &crate::config::Server) -> Limits {
        Limits {
            header_read: Duration::from_millis(server.header_read_timeout_ms),
            idle: Duration::from_millis(server.idle_timeout_ms),
            max_connections: server.max_connections,
        }
    }
}

/// The longest wait between retries of a failing accept.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` (over TLS with `tls`) within `limits`, until
/// `shutdown` resolves; then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    warn_if_files_run_short(limits.max_connections);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut backoff = Duration::ZERO;
    tokio::pin!(shutdown);
    loop {
        // A slot first: past the cap, connections wait in the backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::ZERO;
                a
            }
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                if backoff == MAX_ACCEPT_BACKOFF {
                    tracing::warn!("accept failed: {e}; retrying every {} ms", backoff.as_millis());
                } else {
                    tracing::debug!("accept failed: {e}");
                }
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        // An IPv4 caller on a dual-stack listener reads as itself.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let (app, tls, stop_rx) = (app.clone(), tls.clone(), stop_rx.clone());
        tokio::spawn(async move {
            connection(tcp, peer, app, tls, limits, stop_rx).await;
            drop(slot);
        });
    }
    let _ = stop_tx.send(true);
    // Every connection gives its slot back when it ends.
    let _ = slots.acquire_many(limits.max_connections as u32).await;
    Ok(())
}

/// Serves one connection until it ends, idles out, or the listener stops.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::default());
    match tls {
        None => serve_io(Tracked { io: tcp, activity: activity.clone() }, peer, app, limits, activity, &mut stop).await,
        Some(acceptor) => match tokio::time::timeout(limits.header_read, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => {
                let io = Tracked { io: stream, activity: activity.clone() };
                serve_io(io, peer, app, limits, activity, &mut stop).await
            }
            Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        },
    }
}

async fn serve_io<S>(
    io: S,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    activity: Arc<Activity>,
    stop: &mut watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let in_flight = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let busy = Busy::enter(in_flight.clone());
        let answer = app.clone().oneshot(req.map(Body::new));
        async move {
            let answer = answer.await;
            drop(busy);
            answer
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let ended = loop {
        let (now, idle_at) = (Instant::now(), activity.last() + limits.idle);
        let busy = activity.in_flight.load(Ordering::Acquire) > 0;
        if !busy && idle_at <= now {
            tracing::debug!(%peer, "connection idle; closed");
            return;
        }
        // While a request is answered, look again later rather than spin.
        let wake = if busy { now + limits.idle.min(Duration::from_secs(1)) } else { idle_at };
        let stopping = tokio::select! {
            ended = connection.as_mut() => break ended,
            _ = async { drop(stop.wait_for(|stop| *stop).await) } => true,
            _ = tokio::time::sleep_until(wake) => false,
        };
        if stopping {
            // Finish the request in flight, take no more.
            connection.as_mut().graceful_shutdown();
            break connection.await;
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

/// When a connection last moved a byte, and how many of its requests are
/// being answered.
struct Activity {
    born: Instant,
    /// Milliseconds after `born`.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity { born: Instant::now(), last_ms: AtomicU64::new(0), in_flight: AtomicUsize::new(0) }
    }
}

impl Activity {
    fn touch(&self) {
        self.last_ms.store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn last(&self) -> Instant {
        self.born + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A request being answered: the connection is not idle.
struct Busy(Arc<Activity>);

impl Busy {
    fn enter(activity: Arc<Activity>) -> Busy {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A stream that notes when it last moved bytes.
struct Tracked<S> {
    io: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Says so when the process may run out of file descriptors before the
/// connection cap is reached: accepts would then fail (and back off).
fn warn_if_files_run_short(max_connections: usize) {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if let Some(soft) = limit.current
        && (soft as usize) < max_connections.saturating_add(256)
    {
        tracing::warn!(
            "the open-file limit ({soft}) is below max_connections ({max_connections}) plus headroom: \
             raise it (LimitNOFILE in the systemd unit) or lower [server] max_connections"
        );
    }
}
