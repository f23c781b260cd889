//! HTTP, the first transport through the egress gate (`egress`): the host
//! side of the adapter's `http` import.
//!
//! A request leaves only if its parsed URL is on the provider instance's
//! allowlist (plain `http` only where the entry says so) and its host name
//! resolves outside the denied networks, with no redirects, within the
//! send's remaining time, and its answer is cut off at a size cap. The guest
//! cannot set `Host` or framing headers, so the checked URL is the one the
//! request goes to.
//!
//! Every provider shares one client, and with it the pooled connections:
//! a config or adapter reload drops none of them.
//!
//! A request the gate admits passes the [`Interceptor`] (the queue's mark)
//! and then, where one is set, a [`Responder`] that answers in place of the
//! network (fixtures and benchmarks).

use crate::egress::{self, Allowlist, Exchange, Interceptor};
use anyhow::Result;
use std::sync::Arc;
use std::time::Instant;
use url::Url;

/// An adapter's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why there is no response, as the adapter is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The host refused the call (host not allowed, bad URL or method).
    Denied(String),
    /// No answer within the provider instance's time budget.
    Timeout,
    /// Could not connect (DNS, TCP, TLS).
    Connect(String),
    /// The exchange broke or the answer was too large.
    Protocol(String),
}

/// Answers requests in place of the network.
#[async_trait::async_trait]
pub trait Responder: Send + Sync {
    async fn respond(&self, req: &Request) -> Result<Response, Error>;
}

/// Answers every request with the same response: for benchmarks, which
/// measure the sandbox and not the network.
pub struct Canned(pub Response);

#[async_trait::async_trait]
impl Responder for Canned {
    async fn respond(&self, _req: &Request) -> Result<Response, Error> {
        Ok(self.0.clone())
    }
}

/// Resolves host names for the HTTP client through the gate: a name that
/// resolves into a denied network fails to connect, before any byte leaves.
/// (hyper resolves no IP literal; only an allowlist entry can name one.)
struct GateResolver;

impl reqwest::dns::Resolve for GateResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = egress::resolve(&host, 0).await?;
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The one HTTP client: connection pools outlive every reload.
fn shared_client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| client(Arc::new(GateResolver))).clone()
}

fn client(resolver: Arc<dyn reqwest::dns::Resolve>) -> reqwest::Client {
    // reqwest is built without a default crypto provider; pick ring once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(resolver)
        .user_agent(concat!("smsbridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client's settings are valid")
}

/// An outbound HTTP client bound to one provider instance's policy.
pub struct Outbound {
    client: reqwest::Client,
    allowlist: Allowlist,
    max_response_bytes: usize,
    interceptor: Option<Arc<dyn Interceptor>>,
    responder: Option<Arc<dyn Responder>>,
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
/// Headers the host owns: the checked URL decides the host, hyper the framing.
const HOST_OWNED_HEADERS: &[&str] =
    &["host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"];

impl Outbound {
    pub fn new(
        allowlist: Allowlist,
        max_response_bytes: usize,
        interceptor: Option<Arc<dyn Interceptor>>,
        responder: Option<Arc<dyn Responder>>,
    ) -> Outbound {
        Outbound { client: shared_client(), allowlist, max_response_bytes, interceptor, responder }
    }

    /// [`Outbound::new`] resolving names with `resolver` (which the gate's
    /// check still applies to): for tests that need a name to point somewhere.
    pub fn with_resolver(
        allowlist: Allowlist,
        max_response_bytes: usize,
        resolver: Arc<dyn reqwest::dns::Resolve>,
    ) -> Outbound {
        Outbound { client: client(resolver), allowlist, max_response_bytes, interceptor: None, responder: None }
    }

    /// `scheme://host[:port]` of `url`, the most of a URL that is ever logged:
    /// paths and queries can carry credentials.
    pub fn origin(url: &str) -> String {
        Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| "<invalid URL>".into())
    }

    /// Checks `req` against the policy and returns what may be sent.
    fn admit(&self, req: &Request) -> Result<(reqwest::Method, Url), Error> {
        let method = req.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(Error::Denied(format!("method `{}` is not allowed", req.method)));
        }
        let url = Url::parse(&req.url).map_err(|e| Error::Denied(format!("invalid URL: {e}")))?;
        if !self.allowlist.permits_url(&url) {
            return Err(Error::Denied(format!(
                "{} is not in this provider's allow_hosts",
                url.origin().ascii_serialization()
            )));
        }
        Ok((method.parse().expect("listed methods parse"), url))
    }

    /// Performs `req` if the policy allows it, answering by `deadline`.
    pub async fn send(&self, req: Request, deadline: Instant, exchange: Exchange<'_>) -> Result<Response, Error> {
        let (method, url) = self.admit(&req)?;
        if let Some(interceptor) = &self.interceptor {
            interceptor.before_leaving(exchange).await.map_err(|d| Error::Denied(d.0))?;
        }
        if let Some(responder) = &self.responder {
            return responder.respond(&req).await;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Error::Timeout);
        }
        // From here bytes may leave; a request dropped midway stays in doubt.
        let mut leaving = exchange.leaving();
        // The client runs as its own task: polled here, on the sandbox's
        // fiber stack, its deep frames stayed resident there for as long as
        // the provider took to answer (BENCHMARKS.md, "held"). Doubt is
        // settled here, not there, so an exchange dropped with its sandbox
        // never counts as answered.
        let (client, max) = (self.client.clone(), self.max_response_bytes);
        let exchange = tokio::spawn(async move {
            match builder(&client, method, url, remaining, req) {
                Ok(builder) => exchange_over(builder, max).await,
                Err(refused) => Ended::NotSent(refused),
            }
        });
        match Detached(exchange).await {
            Ended::NotSent(e) => {
                leaving.settled();
                Err(e)
            }
            Ended::Answered(answer) => {
                leaving.settled();
                answer
            }
            Ended::Broken(e) => Err(e),
        }
    }
}

/// The client's request for `req`, with the headers the host owns left out.
fn builder(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: Url,
    timeout: std::time::Duration,
    req: Request,
) -> Result<reqwest::RequestBuilder, Error> {
    let mut builder = client.request(method, url).timeout(timeout).body(req.body);
    for (name, value) in &req.headers {
        if HOST_OWNED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::Denied(format!("invalid header name `{name}`")))?;
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| Error::Denied(format!("invalid value for header `{name}`")))?;
        builder = builder.header(name, value);
    }
    Ok(builder)
}

/// How an exchange ended, as the gate's doubt needs it.
enum Ended {
    /// Refused or unreachable: nothing reached the provider.
    NotSent(Error),
    /// The provider answered: it knows what it did with the request, even
    /// if its answer then broke off or ran too long.
    Answered(Result<Response, Error>),
    /// The request may have reached the provider; no answer came.
    Broken(Error),
}

async fn exchange_over(builder: reqwest::RequestBuilder, max_response_bytes: usize) -> Ended {
    let mut resp = match builder.send().await {
        Ok(resp) => resp,
        Err(e) if e.is_connect() => return Ended::NotSent(transport_error(e)),
        Err(e) => return Ended::Broken(transport_error(e)),
    };
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() > max_response_bytes => {
                return Ended::Answered(Err(Error::Protocol(format!(
                    "response larger than {max_response_bytes} bytes"
                ))));
            }
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return Ended::Answered(Ok(Response { status, headers, body })),
            Err(e) => return Ended::Answered(Err(transport_error(e))),
        }
    }
}

/// A spawned exchange, aborted when dropped: a sandbox that times out takes
/// its request with it, as when the request was polled in place.
struct Detached(tokio::task::JoinHandle<Ended>);

impl Drop for Detached {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::future::Future for Detached {
    type Output = Ended;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Ended> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|done| done.unwrap_or_else(|e| Ended::Broken(Error::Protocol(format!("the exchange stopped: {e}")))))
    }
}

/// The guest-facing error for a failed exchange; never includes the URL,
/// whose query may carry credentials.
fn transport_error(e: reqwest::Error) -> Error {
    if e.is_timeout() {
        return Error::Timeout;
    }
    let connect = e.is_connect();
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        // The gate refused the address a name resolved to.
        if let Some(denied) = s.downcast_ref::<egress::Denied>() {
            return Error::Denied(denied.0.clone());
        }
        text = format!("{text}: {s}");
        source = s.source();
    }
    if connect { Error::Connect(text) } else { Error::Protocol(text) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A resolver that says what a hostile or careless DNS would.
    struct Says(SocketAddr);

    impl reqwest::dns::Resolve for Says {
        fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
            let (host, at) = (name.as_str().to_string(), self.0);
            Box::pin(async move {
                let found = egress::checked(&host, vec![at])?;
                Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
            })
        }
    }

    fn request(url: &str) -> Request {
        Request { method: "POST".into(), url: url.into(), headers: Vec::new(), body: b"To=%2B447400123456".to_vec() }
    }

    #[tokio::test]
    async fn an_allowed_name_that_resolves_to_the_metadata_service_is_refused_before_any_byte_leaves() {
        let allow = Allowlist::parse(&["http://sms.example:8080".into()]).unwrap();
        let metadata: SocketAddr = "169.254.169.254:8080".parse().unwrap();
        let out = Outbound::with_resolver(allow.clone(), 1024, Arc::new(Says(metadata)));
        let doubt = AtomicU32::new(0);
        let exchange = Exchange { provider: "p", message_id: Some("m"), in_doubt: Some(&doubt) };
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let started = Instant::now();
        let err = out.send(request("http://sms.example:8080/send"), deadline, exchange).await.unwrap_err();
        let Error::Denied(why) = err else { panic!("not refused by the gate: {err:?}") };
        assert!(why.contains("169.254.169.254"), "{why}");
        assert_eq!(doubt.load(Ordering::SeqCst), 0, "nothing left, so nothing is in doubt");
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "refused, not timed out connecting");

        // The same name resolving to a loopback server is reached.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        });
        let allow = Allowlist::parse(&[format!("http://sms.example:{}", at.port())]).unwrap();
        let out = Outbound::with_resolver(allow, 1024, Arc::new(Says(at)));
        let url = format!("http://sms.example:{}/send", at.port());
        let resp = out.send(request(&url), deadline, exchange).await.unwrap();
        assert_eq!((resp.status, resp.body.as_slice()), (200, &b"ok"[..]));
    }

    #[tokio::test]
    async fn an_exchange_dropped_before_its_answer_stays_in_doubt_and_closes_its_connection() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = listener.local_addr().unwrap();
        let (got, got_it) = tokio::sync::oneshot::channel();
        let closed = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = got.send(());
            // Never answers; reads until the client hangs up.
            s.set_read_timeout(Some(std::time::Duration::from_secs(3))).unwrap();
            matches!(s.read(&mut buf), Ok(0))
        });
        let allow = Allowlist::parse(&[format!("http://{at}")]).unwrap();
        let out = Outbound::new(allow, 1024, None, None);
        let doubt = AtomicU32::new(0);
        let exchange = Exchange { provider: "p", message_id: Some("m"), in_doubt: Some(&doubt) };
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        tokio::select! {
            r = out.send(request(&format!("http://{at}/send")), deadline, exchange) => panic!("answered: {r:?}"),
            _ = got_it => {}
        }
        // The send was dropped, as a sandbox that times out drops it.
        assert_eq!(doubt.load(Ordering::SeqCst), 1, "it may have reached the provider");
        let closed = tokio::task::spawn_blocking(move || closed.join().unwrap()).await.unwrap();
        assert!(closed, "the request was abandoned with its send, not left running");
    }

    #[tokio::test]
    async fn a_literal_metadata_address_is_reached_only_if_an_entry_names_it() {
        let allow = Allowlist::parse(&["http://sms.example".into()]).unwrap();
        let out = Outbound::new(allow, 1024, None, None);
        let exchange = Exchange { provider: "p", message_id: None, in_doubt: None };
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let err = out.send(request("http://169.254.169.254/latest/meta-data/"), deadline, exchange).await.unwrap_err();
        assert!(matches!(err, Error::Denied(ref why) if why.contains("allow_hosts")), "{err:?}");
    }
}
