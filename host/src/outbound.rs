//! The host side of the adapter's `http` import: the one place where egress
//! policy is enforced.
//!
//! A request leaves only if its parsed URL names a host on the provider
//! instance's allowlist (plain `http` only where the entry says so), with no
//! redirects, within the send's remaining time, and its answer is cut off at
//! a size cap. The guest cannot set `Host` or framing headers, so the checked
//! URL is the one the request goes to.
//!
//! A request the allowlist admits passes an optional [`Interceptor`] before
//! it leaves: the queue marks the provider that may get the message, and
//! fixtures and benchmarks answer in place of the network.

pub use crate::wit::{HttpError as Error, HttpRequest as Request, HttpResponse as Response};
use anyhow::{Result, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;
use url::Url;

/// One allowlist entry: `api.twilio.com`, `*.signalwire.com`,
/// `api.example.com:8443` or `http://127.0.0.1:9000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl HostRule {
    pub fn parse(entry: &str) -> Result<HostRule> {
        let (scheme, rest) = match entry.split_once("://") {
            Some((s @ ("http" | "https"), rest)) => (s, rest),
            Some((s, _)) => bail!("allow_hosts entry `{entry}`: scheme `{s}` is not http or https"),
            None => ("https", entry),
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            bail!("allow_hosts entry `{entry}` must be a host, optionally with scheme and port");
        }
        // Let the URL parser split host and port, so IPv6 and IDNA agree with
        // how request URLs are read.
        let wildcard = rest.starts_with("*.");
        let probe = format!("{scheme}://{}", if wildcard { &rest[2..] } else { rest });
        let url = Url::parse(&probe).map_err(|e| anyhow::anyhow!("allow_hosts entry `{entry}`: {e}"))?;
        let host = url.host_str().unwrap_or_default().to_string();
        Ok(HostRule {
            scheme: scheme.into(),
            host: if wildcard { format!("*.{host}") } else { host },
            port: url.port(),
        })
    }

    fn permits(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host_ok = match self.host.strip_prefix("*.") {
            Some(suffix) => {
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix)
                    && host[..host.len() - suffix.len()].ends_with('.')
            }
            None => host == self.host,
        };
        host_ok && url.scheme() == self.scheme && url.port() == self.port
    }
}

/// An outbound HTTP client bound to one provider instance's policy.
pub struct Outbound {
    client: reqwest::Client,
    rules: Vec<HostRule>,
    max_response_bytes: usize,
    interceptor: Option<Arc<dyn Interceptor>>,
}

/// Which send a request belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// The provider instance.
    pub provider: &'a str,
    /// The message being sent; none for `info()` and callbacks.
    pub message_id: Option<&'a str>,
    /// Counts this send's requests that may have reached the provider
    /// without their answer arriving: raised before a request leaves,
    /// lowered once its answer comes or it is known not to have left.
    pub in_doubt: Option<&'a AtomicU32>,
}

/// What an interceptor decided for one request.
pub enum Intercepted {
    /// Let it go to the network.
    Continue,
    /// Answer it with this, and send nothing.
    Answer(Result<Response, Error>),
}

/// Sees every request the allowlist admits, just before it would leave.
#[async_trait::async_trait]
pub trait Interceptor: Send + Sync {
    async fn intercept(&self, exchange: Exchange<'_>, req: &Request) -> Intercepted;
}

/// Answers every request with the same response: for benchmarks, which
/// measure the sandbox and not the network.
pub struct Canned(pub Response);

#[async_trait::async_trait]
impl Interceptor for Canned {
    async fn intercept(&self, _exchange: Exchange<'_>, _req: &Request) -> Intercepted {
        Intercepted::Answer(Ok(self.0.clone()))
    }
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
/// Headers the host owns: the checked URL decides the host, hyper the framing.
const HOST_OWNED_HEADERS: &[&str] =
    &["host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"];

impl Outbound {
    pub fn new(
        rules: Vec<HostRule>,
        max_response_bytes: usize,
        interceptor: Option<Arc<dyn Interceptor>>,
    ) -> Result<Outbound> {
        // reqwest is built without a default crypto provider; pick ring once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("smsbridge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Outbound { client, rules, max_response_bytes, interceptor })
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
        if !self.rules.iter().any(|r| r.permits(&url)) {
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
        if let Some(interceptor) = &self.interceptor
            && let Intercepted::Answer(answer) = interceptor.intercept(exchange, &req).await
        {
            return answer;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Error::Timeout);
        }
        let mut builder = self.client.request(method, url).timeout(remaining).body(req.body);
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
        // From here bytes may leave; a request dropped midway stays in doubt.
        if let Some(doubt) = exchange.in_doubt {
            doubt.fetch_add(1, Ordering::SeqCst);
        }
        let settled = || {
            if let Some(doubt) = exchange.in_doubt {
                doubt.fetch_sub(1, Ordering::SeqCst);
            }
        };
        let mut resp = match builder.send().await {
            Ok(resp) => resp,
            Err(e) => {
                // Refused or unreachable: nothing reached the provider.
                if e.is_connect() {
                    settled();
                }
                return Err(transport_error(e));
            }
        };
        // The provider answered: it knows what it did with the request.
        settled();
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > self.max_response_bytes {
                return Err(Error::Protocol(format!("response larger than {} bytes", self.max_response_bytes)));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { status, headers, body })
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
        text = format!("{text}: {s}");
        source = s.source();
    }
    if connect { Error::Connect(text) } else { Error::Protocol(text) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permits(rule: &str, url: &str) -> bool {
        HostRule::parse(rule).unwrap().permits(&Url::parse(url).unwrap())
    }

    #[test]
    fn allowlist_matches_parsed_urls_only() {
        assert!(permits("api.twilio.com", "https://api.twilio.com/2010-04-01/x"));
        assert!(permits("API.Twilio.com", "https://api.twilio.com:443/"));
        assert!(!permits("api.twilio.com", "http://api.twilio.com/"));
        assert!(!permits("api.twilio.com", "https://api.twilio.com:8443/"));
        assert!(!permits("api.twilio.com", "https://api.twilio.com.evil.example/"));
        assert!(!permits("api.twilio.com", "https://evil.example/?api.twilio.com"));
        assert!(permits("api.twilio.com", "https://user:pw@api.twilio.com/"));
        assert!(!permits("api.twilio.com", "https://api.twilio.com@evil.example/"));
        assert!(permits("http://127.0.0.1:9000", "http://127.0.0.1:9000/sms"));
        assert!(!permits("http://127.0.0.1:9000", "http://127.0.0.1:9001/sms"));
        assert!(!permits("http://127.0.0.1:9000", "http://2130706433:9001/sms"));
        assert!(permits("*.signalwire.com", "https://acme.signalwire.com/api"));
        assert!(!permits("*.signalwire.com", "https://signalwire.com/api"));
        assert!(!permits("*.signalwire.com", "https://evilsignalwire.com/api"));
        assert!(permits("http://[::1]:8080", "http://[::1]:8080/"));
    }

    #[test]
    fn allowlist_entries_are_checked() {
        assert!(HostRule::parse("ftp://x.example").is_err());
        assert!(HostRule::parse("x.example/path").is_err());
        assert!(HostRule::parse("").is_err());
    }
}
