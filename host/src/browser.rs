//! What a web page can make a browser do to smsbridge, refused: a request
//! to a `Host` that is not ours (DNS rebinding turns any page into a
//! same-origin one), and a request another site started (a form post, an
//! `<img>`). MFA servers send neither an `Origin` nor a `Sec-Fetch-Site`
//! header, so nothing they send is refused here.

use axum::http::{HeaderMap, Method, Uri, header};
use std::net::IpAddr;

/// The host the request names, lowercased and without its port: HTTP/2's
/// `:authority` or HTTP/1's `Host`. `None` when it names none (HTTP/1.0).
fn named_host(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let authority = match uri.authority() {
        Some(a) => a.as_str().to_string(),
        None => headers.get(header::HOST)?.to_str().unwrap_or("\u{0}").to_string(),
    };
    Some(strip_port(&authority).to_ascii_lowercase())
}

fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Whether the request is for a host this listener answers to: a loopback
/// address written as such, `localhost`, or a name in `names`. No DNS name
/// of another's can be made to mean any of them.
pub fn host_allowed(uri: &Uri, headers: &HeaderMap, names: &[String]) -> bool {
    let Some(host) = named_host(uri, headers) else { return true };
    if host == "localhost" || names.iter().any(|n| n.eq_ignore_ascii_case(&host)) {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Why a request is one another site's page started, if it is: a
/// `Sec-Fetch-Site` other than `same-origin` or `none` (typed by the user),
/// or an `Origin` that is not the host the request is for. A top-level
/// navigation (a link followed) is let through when `navigation_ok`.
pub fn cross_site(method: &Method, uri: &Uri, headers: &HeaderMap, navigation_ok: bool) -> Option<&'static str> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}").to_ascii_lowercase());
    if let Some(site) = text("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        let navigation = text("sec-fetch-mode").as_deref() == Some("navigate") && *method == Method::GET;
        if !(navigation_ok && navigation) {
            return Some("a request another site started (Sec-Fetch-Site)");
        }
    }
    // The browser vouches for it; its `Origin` may be `null` under a
    // no-referrer policy.
    if text("sec-fetch-site").as_deref() == Some("same-origin") {
        return None;
    }
    if let Some(origin) = text("origin") {
        let Some((scheme, from)) = origin.split_once("://") else { return Some("a request from another origin") };
        let default_port = if scheme == "https" { "443" } else { "80" };
        let own = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(String::from));
        let with_port = |authority: &str| {
            let authority = authority.to_ascii_lowercase();
            if strip_port(&authority).len() + authority.starts_with('[') as usize * 2 == authority.len() {
                format!("{authority}:{default_port}")
            } else {
                authority
            }
        };
        if own.is_none_or(|own| with_port(&own) != with_port(from)) {
            return Some("a request from another origin");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_loopback_literals_localhost_and_configured_names_are_our_host() {
        let uri: Uri = "/admin/".parse().unwrap();
        let ok = |host: &str, names: &[String]| host_allowed(&uri, &headers(&[("host", host)]), names);
        assert!(ok("127.0.0.1:8081", &[]));
        assert!(ok("127.8.0.1", &[]));
        assert!(ok("[::1]:8081", &[]));
        assert!(ok("LOCALHOST:8081", &[]));
        assert!(!ok("evil.example:8081", &[]), "a rebound name");
        assert!(!ok("10.0.0.5:8081", &[]));
        assert!(ok("sms-admin.bank.example:8081", &["sms-admin.bank.example".into()]));
        assert!(host_allowed(&uri, &HeaderMap::new(), &[]), "HTTP/1.0 names no host");
        let h2: Uri = "http://evil.example:8081/admin/".parse().unwrap();
        assert!(!host_allowed(&h2, &HeaderMap::new(), &[]), "HTTP/2's :authority counts");
    }

    #[test]
    fn another_sites_requests_are_named_and_our_own_are_not() {
        let uri: Uri = "/admin/console/send".parse().unwrap();
        let at = |pairs: &[(&'static str, &str)]| cross_site(&Method::POST, &uri, &headers(pairs), true);
        let host = ("host", "127.0.0.1:8081");
        assert!(at(&[host]).is_none(), "a server-side caller");
        assert!(at(&[host, ("origin", "http://127.0.0.1:8081"), ("sec-fetch-site", "same-origin")]).is_none());
        assert!(at(&[host, ("origin", "http://evil.example")]).is_some());
        assert!(at(&[host, ("origin", "http://127.0.0.1:3000")]).is_some(), "another port is another origin");
        assert!(at(&[host, ("origin", "null")]).is_some());
        let no_referrer = [host, ("origin", "null"), ("sec-fetch-site", "same-origin")];
        assert!(at(&no_referrer).is_none(), "a form of ours under Referrer-Policy: no-referrer");
        assert!(at(&[host, ("sec-fetch-site", "cross-site")]).is_some());
        assert!(at(&[host, ("sec-fetch-site", "same-site")]).is_some());
        let nav = [host, ("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "navigate")];
        assert!(cross_site(&Method::GET, &uri, &headers(&nav), true).is_none(), "a link followed");
        assert!(cross_site(&Method::GET, &uri, &headers(&nav), false).is_some());
        assert!(cross_site(&Method::POST, &uri, &headers(&nav), true).is_some(), "a form posted from elsewhere");
    }
}
