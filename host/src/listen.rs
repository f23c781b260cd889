//! Accepting connections, for every listener (HTTP, HTTPS, admin): the one
//! place where a client's hold on the server is bounded.
//!
//! A connection must send a request's whole header within
//! `header_read_timeout` (hyper's timer, which also runs while a kept-alive
//! connection waits for its next request); is closed once no request has
//! been in flight for `idle_timeout`, whatever bytes it moves (an HTTP/2
//! PING keeps nothing open), and once it is `max_age` old; and at most
//! `max_connections` are open per listener (and `per_peer` from one
//! address, where set): past that, new ones wait in the kernel's backlog
//! until one closes, or are closed at once when their address has its
//! share. HTTP/2 over plain TCP (h2c) is served only where configured, with
//! bounded streams. A failed accept (out of file descriptors, say) backs off
//! instead of spinning. Request bodies have their own deadline, applied
//! where they are read (`server`).

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// How long and how many connections a listener keeps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
    /// A connection this old finishes its requests and closes.
    pub max_age: Duration,
    pub max_connections: usize,
    /// Connections one address may hold; past it, new ones are closed.
    pub per_peer: Option<usize>,
    /// HTTP/2 with prior knowledge on a plain listener.
    pub h2c: bool,
}

impl Limits {
    /// The limits `[server]` sets.
    pub fn of(server: &crate::config::Server) -> Limits {
        Limits {
            header_read: Duration::from_millis(server.header_read_timeout_ms),
            idle: Duration::from_millis(server.idle_timeout_ms),
            max_age: Duration::from_millis(server.max_connection_age_ms),
            max_connections: server.max_connections,
            per_peer: None,
            h2c: server.h2c,
        }
    }
}

/// HTTP/2 streams one connection may have open at once.
const MAX_STREAMS: u32 = 64;
/// The largest header block an HTTP/2 request may send.
const MAX_HEADER_LIST: u32 = 64 * 1024;

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
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let peers: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>> = Arc::default();
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
        let Some(share) = PeerShare::take(&peers, peer.ip(), limits.per_peer) else {
            tracing::debug!(%peer, "connection closed: its address holds its share of this listener");
            continue;
        };
        let (app, tls, stop_rx) = (app.clone(), tls.clone(), stop_rx.clone());
        tokio::spawn(async move {
            connection(tcp, peer, app, tls, limits, stop_rx).await;
            drop(share);
            drop(slot);
        });
    }
    let _ = stop_tx.send(true);
    // Every connection gives its slot back when it ends.
    let _ = slots.acquire_many(limits.max_connections as u32).await;
    Ok(())
}

/// One connection counted against its address's share.
struct PeerShare {
    peers: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl PeerShare {
    /// A share for `ip`, unless it holds `cap` already; with no cap, one
    /// that counts nothing.
    fn take(
        peers: &Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
        ip: IpAddr,
        cap: Option<usize>,
    ) -> Option<Option<PeerShare>> {
        let Some(cap) = cap else { return Some(None) };
        let mut held = peers.lock().unwrap();
        let n = held.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Some(PeerShare { peers: peers.clone(), ip }))
    }
}

impl Drop for PeerShare {
    fn drop(&mut self) {
        let mut held = self.peers.lock().unwrap();
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
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
        None => serve_io(tcp, peer, app, Scheme::Http, limits, activity, &mut stop).await,
        Some(acceptor) => match tokio::time::timeout(limits.header_read, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => serve_io(stream, peer, app, Scheme::Https, limits, activity, &mut stop).await,
            Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        },
    }
}

/// The scheme a request arrived by, as an extension of each request:
/// callback signatures cover the URL the provider called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

async fn serve_io<S>(
    io: S,
    peer: SocketAddr,
    app: Router,
    scheme: Scheme,
    limits: Limits,
    activity: Arc<Activity>,
    stop: &mut watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let in_flight = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(scheme);
        let busy = Busy::enter(in_flight.clone());
        let answer = app.clone().oneshot(req.map(Body::new));
        async move {
            let answer = answer.await;
            drop(busy);
            answer
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // HTTP/2 over TLS is chosen by ALPN; over plain TCP only where asked.
    if scheme == Scheme::Http && !limits.h2c {
        builder = builder.http1_only();
    }
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_pending_accept_reset_streams(Some(MAX_STREAMS as usize / 4))
        .max_local_error_reset_streams(Some(MAX_STREAMS as usize));
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let old_at = activity.born + limits.max_age;
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
            _ = tokio::time::sleep_until(wake.min(old_at)) => Instant::now() >= old_at,
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

/// When a connection last finished answering a request (or opened), and
/// how many of its requests are being answered.
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

/// Descriptors kept free of connections: sandboxes' folders, the record,
/// the database and provider connections, the listeners themselves.
const FILES_RESERVE: u64 = 256;

/// Raises the soft open-file limit to the hard one; the limit now in force.
pub fn raise_file_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum)
        && soft < hard
    {
        let raised = rustix::process::Rlimit { current: Some(hard), maximum: Some(hard) };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return hard;
        }
    }
    limit.current.unwrap_or(u64::MAX)
}

/// The connections each of `listeners` may hold with `files` descriptors
/// in all and `fixed` taken by listeners of a fixed size (the admin one):
/// `wanted`, or less, so that connections never use the descriptors a send
/// needs.
pub fn connection_budget(wanted: usize, listeners: usize, fixed: usize, files: u64) -> usize {
    let room = files.saturating_sub(FILES_RESERVE.max(files / 4)).saturating_sub(fixed as u64);
    let each = room / listeners.max(1) as u64;
    wanted.min(each.max(1).min(usize::MAX as u64) as usize)
}

#[cfg(test)]
mod tests {
    #[test]
    fn connections_leave_descriptors_for_sends() {
        use super::connection_budget;
        assert_eq!(connection_budget(4096, 1, 64, 1024), 704, "1024 files: a quarter kept, 64 for admin");
        assert_eq!(connection_budget(4096, 2, 64, 1024), 352, "two listeners share it");
        assert_eq!(connection_budget(4096, 1, 64, 1_048_576), 4096, "plenty: as configured");
        assert_eq!(connection_budget(4096, 1, 64, 100), 1, "never none");
    }
}
