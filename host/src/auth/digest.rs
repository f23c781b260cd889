//! HTTP Digest (RFC 7616): stateless nonces under a key, the replay
//! counts of nonces that proved a password, and the response check.

use super::{Refused, Request, eq, now_ms, scheme_value};
use base64::Engine;
use sha2::Digest as _;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long a Digest nonce may be used.
pub(super) const NONCE_TTL: Duration = Duration::from_secs(300);

/// Digest nonces that carry their own proof: the time they were issued and
/// random bytes, with an HMAC over both. Issuing one stores nothing, so
/// refusing a flood of unauthenticated requests costs no memory; any
/// instance with the same key accepts another's nonce. Only after a request
/// proves the password is its `nc` remembered (to refuse replays), in a
/// bounded set that forgets nonces once they expire.
pub struct Nonces {
    key: Vec<u8>,
    /// Nonce → (when it expires, highest `nc` accepted).
    pub(super) seen: Mutex<HashMap<String, (Instant, u64)>>,
}

/// Nonces whose replays are tracked at once; past it, the oldest go first.
const MAX_TRACKED: usize = 100_000;
/// A nonce's parts: issue time (ms since the epoch), random bytes, MAC.
const NONCE_TIME: usize = 8;
const NONCE_RANDOM: usize = 8;
const NONCE_MAC: usize = 16;

impl Default for Nonces {
    /// Nonces under a random key: valid at this process only.
    fn default() -> Nonces {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).expect("the OS has randomness");
        Nonces::with_key(&key)
    }
}

impl Nonces {
    /// Nonces under `key`, which instances behind one load balancer share.
    pub fn with_key(key: &[u8]) -> Nonces {
        Nonces { key: key.to_vec(), seen: Mutex::new(HashMap::new()) }
    }

    fn mac(&self, body: &[u8]) -> [u8; NONCE_MAC] {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(body);
        mac.finalize().into_bytes()[..NONCE_MAC].try_into().expect("a SHA-256 MAC is long enough")
    }

    pub(super) fn issue(&self) -> String {
        let mut body = [0u8; NONCE_TIME + NONCE_RANDOM];
        body[..NONCE_TIME].copy_from_slice(&now_ms().to_be_bytes());
        getrandom::fill(&mut body[NONCE_TIME..]).expect("the OS has randomness");
        let mut nonce = body.to_vec();
        nonce.extend_from_slice(&self.mac(&body));
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce)
    }

    /// Whether `nonce` was issued under this key and has not expired.
    pub(super) fn verify(&self, nonce: &str) -> Result<(), &'static str> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(nonce).unwrap_or_default();
        if bytes.len() != NONCE_TIME + NONCE_RANDOM + NONCE_MAC {
            return Err("unknown digest nonce");
        }
        let (body, mac) = bytes.split_at(NONCE_TIME + NONCE_RANDOM);
        if !bool::from(self.mac(body)[..].ct_eq(mac)) {
            return Err("unknown digest nonce");
        }
        let issued = u64::from_be_bytes(body[..NONCE_TIME].try_into().expect("eight bytes"));
        let age = now_ms().saturating_sub(issued);
        // A little skew between instances' clocks is forgiven.
        if age >= NONCE_TTL.as_millis() as u64 || issued > now_ms() + 5_000 {
            return Err("expired digest nonce");
        }
        Ok(())
    }

    /// Accepts `nc` for an authenticated request with `nonce` if `nc` is new.
    pub(super) fn accept(&self, nonce: &str, nc: u64) -> Result<(), &'static str> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap();
        if seen.len() >= MAX_TRACKED {
            seen.retain(|_, (expires, _)| *expires > now);
            if seen.len() >= MAX_TRACKED {
                // Still full of live nonces: forget the one expiring first.
                let oldest = seen.iter().min_by_key(|(_, (expires, _))| *expires).map(|(k, _)| k.clone());
                seen.remove(&oldest.expect("the set is full"));
            }
        }
        let (_, last) = seen.entry(nonce.to_string()).or_insert((now + NONCE_TTL, 0));
        if nc <= *last {
            return Err("replayed digest request");
        }
        *last = nc;
        Ok(())
    }
}

pub(super) fn digest_challenges(realm: &str, nonces: &Nonces, stale: bool) -> Vec<String> {
    let nonce = nonces.issue();
    let stale = if stale { ", stale=true" } else { "" };
    ["SHA-256", "MD5"]
        .iter()
        .map(|alg| {
            format!("Digest realm=\"{realm}\", qop=\"auth,auth-int\", algorithm={alg}, nonce=\"{nonce}\"{stale}")
        })
        .collect()
}

/// RFC 7616: the response is H(H(user:realm:password):nonce:nc:cnonce:qop:
/// H(method:uri)), with `qop=auth-int` H(method:uri:H(body)), so the body
/// is covered too. The nonce and its count, once accepted.
pub(super) fn digest(
    user: &str,
    password: &str,
    realm: &str,
    req: &Request<'_>,
    authorization: &str,
    nonces: &Nonces,
) -> Result<String, Refused> {
    let refuse = |reason, stale| Err(Refused { reason, challenges: digest_challenges(realm, nonces, stale) });
    let Some(params) = scheme_value(authorization, "Digest") else { return refuse("no Digest credentials", false) };
    let p = parse_params(params);
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let hash: fn(&[u8]) -> String = match get("algorithm") {
        "" | "MD5" => |s| hex::encode(md5::Md5::digest(s)),
        "SHA-256" => |s| hex::encode(sha2::Sha256::digest(s)),
        _ => return refuse("unsupported digest algorithm", false),
    };
    let qop = get("qop");
    if !matches!(qop, "auth" | "auth-int") || get("realm") != realm || get("uri") != req.uri || get("cnonce").is_empty()
    {
        return refuse("malformed digest credentials", false);
    }
    let Ok(nc) = u64::from_str_radix(get("nc"), 16) else { return refuse("malformed digest nc", false) };
    let ha1 = hash(format!("{user}:{realm}:{password}").as_bytes());
    let ha2 = match qop {
        "auth-int" => hash(format!("{}:{}:{}", req.method, req.uri, hash(req.body)).as_bytes()),
        _ => hash(format!("{}:{}", req.method, req.uri).as_bytes()),
    };
    let expected = hash(format!("{ha1}:{}:{}:{}:{qop}:{ha2}", get("nonce"), get("nc"), get("cnonce")).as_bytes());
    if !(eq(get("username"), user) & eq(get("response"), &expected)) {
        return refuse("wrong digest credentials", false);
    }
    if let Err(reason) = nonces.verify(get("nonce")) {
        return refuse(reason, true);
    }
    match nonces.accept(get("nonce"), nc) {
        Ok(()) => Ok(format!("digest\0{}\0{nc}", get("nonce"))),
        Err(reason) => refuse(reason, true),
    }
}

/// `k=v, k="v, with comma"` pairs of an auth header.
pub(super) fn parse_params(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else { break };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        out.insert(key, value.to_string());
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}
