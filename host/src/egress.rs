//! The one gate every byte to a provider passes, whatever the transport:
//!
//! - the provider instance's allowlist: URL rules for HTTP
//!   (`api.twilio.com`, `http://127.0.0.1:9000`, `*.signalwire.com`) and
//!   `host:port` rules for stream protocols (`smpp://smsc.example:2775`,
//!   `smpps://smsc.example:3550`);
//! - the address a name resolves to: a name on the allowlist that resolves
//!   into a denied network (link-local, which holds the cloud metadata
//!   services, and the other metadata addresses) is refused before any byte
//!   leaves. An entry that is a literal IP address is allowed as written;
//! - the [`Exchange`]: which send the bytes belong to, and the count of its
//!   requests that may have reached the provider unanswered (in doubt);
//! - the [`Interceptor`], which sees every exchange just before it leaves:
//!   the queue marks the provider that may get a queued message there, for
//!   any transport.

use anyhow::{Result, bail};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use url::Url;

/// How a provider is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
    /// SMPP over TCP.
    Smpp,
    /// SMPP over TLS.
    Smpps,
}

impl Scheme {
    fn parse(word: &str) -> Option<Scheme> {
        Some(match word {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "smpp" => Scheme::Smpp,
            "smpps" => Scheme::Smpps,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Smpp => "smpp",
            Scheme::Smpps => "smpps",
        }
    }

    /// A stream protocol has no default port worth trusting: its rule names one.
    fn is_stream(self) -> bool {
        matches!(self, Scheme::Smpp | Scheme::Smpps)
    }
}

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    scheme: Scheme,
    /// Lower case; `*.` first for a wildcard; IPv6 in brackets, as URLs write it.
    host: String,
    /// None: the scheme's default port.
    port: Option<u16>,
}

impl Rule {
    /// `api.twilio.com` (HTTPS), `http://host:port`, `*.example.com`,
    /// `smpp://host:port` or `smpps://host:port`.
    pub fn parse(entry: &str) -> Result<Rule> {
        let (scheme, rest) = match entry.split_once("://") {
            Some((word, rest)) => match Scheme::parse(word) {
                Some(scheme) => (scheme, rest),
                None => bail!("allow_hosts entry `{entry}`: scheme `{word}` is not http, https, smpp or smpps"),
            },
            None => (Scheme::Https, entry),
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            bail!("allow_hosts entry `{entry}` must be a host, optionally with scheme and port");
        }
        // The URL parser splits host and port, so IPv6 and IDNA agree with
        // how request URLs are read; a stream URL is read as one with an
        // authority, the same way.
        let wildcard = rest.starts_with("*.");
        let probe = format!("{}://{}", scheme.as_str(), if wildcard { &rest[2..] } else { rest });
        let url = Url::parse(&probe).map_err(|e| anyhow::anyhow!("allow_hosts entry `{entry}`: {e}"))?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if host.is_empty() {
            bail!("allow_hosts entry `{entry}` names no host");
        }
        if scheme.is_stream() && url.port().is_none() {
            bail!("allow_hosts entry `{entry}`: a {} entry names its port", scheme.as_str());
        }
        Ok(Rule { scheme, host: if wildcard { format!("*.{host}") } else { host }, port: url.port() })
    }

    /// Whether this rule lets `scheme://host:port` be reached; `port` None
    /// is the scheme's default.
    fn permits(&self, scheme: Scheme, host: &str, port: Option<u16>) -> bool {
        let host_ok = match self.host.strip_prefix("*.") {
            Some(suffix) => {
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix)
                    && host[..host.len() - suffix.len()].ends_with('.')
            }
            None => host == self.host,
        };
        host_ok && scheme == self.scheme && port == self.port
    }
}

/// A provider instance's allowlist.
#[derive(Debug, Clone, Default)]
pub struct Allowlist(Vec<Rule>);

impl Allowlist {
    pub fn parse(entries: &[String]) -> Result<Allowlist> {
        Ok(Allowlist(entries.iter().map(|e| Rule::parse(e)).collect::<Result<_>>()?))
    }

    /// Whether a request to `url` may leave.
    pub fn permits_url(&self, url: &Url) -> bool {
        let (Some(scheme), Some(host)) = (Scheme::parse(url.scheme()), url.host_str()) else { return false };
        self.0.iter().any(|r| r.permits(scheme, host, url.port()))
    }

    /// Whether a stream to `host:port` over `scheme` may be opened.
    pub fn permits_stream(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.0.iter().any(|r| r.permits(scheme, &host, Some(port)))
    }
}

/// Whether `ip` is in a network no provider is reached on: link-local
/// (169.254.0.0/16 holds the AWS, GCP, Azure and OpenStack metadata
/// services; fe80::/10), the other clouds' metadata addresses, and the
/// unspecified address.
pub fn denied(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            (a == 169 && b == 254) || [a, b, c, d] == [100, 100, 100, 200] || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || v6.is_unspecified()
        }
    }
}

/// Why the gate refused: said to the adapter and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Denied {}

/// The addresses of `host`, none of them in a denied network. A literal IP
/// address is taken as written: only an allowlist entry can name one.
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Denied> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Denied(format!("{host} does not resolve: {e}")))?
        .collect();
    checked(host, found)
}

/// `found`, the addresses `host` resolved to, unless one is denied: a name
/// that also points into a denied network is refused as a whole, so that
/// no retry or second address reaches it.
pub fn checked(host: &str, found: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Denied> {
    if let Some(bad) = found.iter().find(|a| denied(a.ip())) {
        return Err(Denied(format!(
            "{host} resolves to {}, in a network no provider is reached on (link-local or cloud metadata)",
            bad.ip()
        )));
    }
    if found.is_empty() {
        return Err(Denied(format!("{host} resolves to no address")));
    }
    Ok(found)
}

/// Which send the bytes about to leave belong to.
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

impl<'a> Exchange<'a> {
    /// Bytes are about to leave: the request is in doubt until
    /// [`Leaving::settled`] says the provider answered (or never got it).
    /// Dropped unsettled, it stays in doubt.
    pub fn leaving(self) -> Leaving<'a> {
        if let Some(doubt) = self.in_doubt {
            doubt.fetch_add(1, Ordering::SeqCst);
        }
        Leaving { in_doubt: self.in_doubt, settled: false }
    }
}

/// A request on its way; see [`Exchange::leaving`].
pub struct Leaving<'a> {
    in_doubt: Option<&'a AtomicU32>,
    settled: bool,
}

impl Leaving<'_> {
    /// The provider answered, or the request is known not to have reached it.
    pub fn settled(&mut self) {
        if !std::mem::replace(&mut self.settled, true)
            && let Some(doubt) = self.in_doubt
        {
            doubt.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Sees every exchange the allowlist admits, just before its bytes leave,
/// whatever the transport; a refusal keeps them from leaving.
#[async_trait::async_trait]
pub trait Interceptor: Send + Sync {
    async fn before_leaving(&self, exchange: Exchange<'_>) -> Result<(), Denied>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permits(rule: &str, url: &str) -> bool {
        Allowlist::parse(&[rule.to_string()]).unwrap().permits_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn urls_are_matched_as_parsed() {
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
        assert!(!permits("smpp://smsc.example:2775", "https://smsc.example:2775/"), "a stream rule admits no URL");
    }

    #[test]
    fn stream_rules_name_a_host_and_port() {
        let list = Allowlist::parse(&["smpps://SMSC.example:3550".into(), "smpp://10.0.0.7:2775".into()]).unwrap();
        assert!(list.permits_stream(Scheme::Smpps, "smsc.example", 3550));
        assert!(!list.permits_stream(Scheme::Smpp, "smsc.example", 3550), "TLS was asked for");
        assert!(!list.permits_stream(Scheme::Smpps, "smsc.example", 2775));
        assert!(list.permits_stream(Scheme::Smpp, "10.0.0.7", 2775));
        assert!(Rule::parse("smpp://smsc.example").is_err(), "no port");
        assert!(Rule::parse("ftp://x.example").is_err());
        assert!(Rule::parse("x.example/path").is_err());
        assert!(Rule::parse("").is_err());
    }

    #[test]
    fn link_local_and_metadata_addresses_are_denied() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "0.0.0.0",
        ] {
            assert!(denied(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.1", "10.0.0.7", "52.1.2.3", "::1", "2001:db8::1", "100.100.100.201"] {
            assert!(!denied(ip.parse().unwrap()), "{ip}");
        }
        let metadata: SocketAddr = "169.254.169.254:443".parse().unwrap();
        let public: SocketAddr = "52.1.2.3:443".parse().unwrap();
        let e = checked("api.example", vec![public, metadata]).unwrap_err();
        assert!(e.0.contains("169.254.169.254"), "{e}");
        assert_eq!(checked("api.example", vec![public]).unwrap(), vec![public]);
    }

    #[tokio::test]
    async fn a_literal_address_is_taken_as_written_and_a_name_is_resolved() {
        let at = resolve("169.254.169.254", 80).await.unwrap();
        assert_eq!(at, vec!["169.254.169.254:80".parse().unwrap()], "only an allowlist entry can name it");
        let local = resolve("localhost", 2775).await.unwrap();
        assert!(local.iter().all(|a| a.ip().is_loopback() && a.port() == 2775), "{local:?}");
    }

    #[test]
    fn an_exchange_stays_in_doubt_until_settled() {
        let doubt = AtomicU32::new(0);
        let exchange = Exchange { provider: "p", message_id: Some("m"), in_doubt: Some(&doubt) };
        let mut answered = exchange.leaving();
        let _unanswered = exchange.leaving();
        assert_eq!(doubt.load(Ordering::SeqCst), 2);
        answered.settled();
        answered.settled();
        assert_eq!(doubt.load(Ordering::SeqCst), 1, "the one without an answer stays in doubt");
    }
}
