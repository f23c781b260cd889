//! Whether a message may be sent at all, decided before any provider is
//! tried: the number normalised and of an allowed country and type, the
//! text non-empty and not too long, the route's limits against SMS pumping
//! not reached, and a repeated request answered with its first result.

use super::{Refusal, Sent};
use crate::config::{Countries, OnStateFailure, Route};
use crate::keyed::Keyed;
use crate::phone;
use crate::state::{Bucket, Claim, SharedState};
use std::time::Duration;
use tokio::time::Instant;

/// Longest message accepted: ten concatenated GSM-7 parts.
pub const MAX_MESSAGE_CHARS: usize = 1530;

/// A message that passed the route's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// E.164.
    pub to: String,
    /// ISO 3166 region code, or `unknown`.
    pub region: String,
}

/// Why `body` holds what no phone should get, if it does: a control
/// character other than a newline (CRLF counts as one), or a bidirectional
/// override or isolate, which can show a code or a sender reversed.
fn unsendable(body: &str) -> Option<String> {
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        let newline = c == '\n' || (c == '\r' && chars.peek() == Some(&'\n'));
        if c.is_control() && !newline {
            return Some(format!("contains U+{:04X}, a control character; only a newline is allowed", c as u32));
        }
        if matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') {
            return Some(format!("contains U+{:04X}, a bidirectional override that can disguise the text", c as u32));
        }
    }
    None
}

/// Checks the number and the text against `route`'s rules.
pub fn check(route: &Route, phone: &str, body: &str) -> Result<Admitted, Refusal> {
    let to = phone::normalise(phone, route.default_country).map_err(Refusal::Phone)?;
    if body.trim().is_empty() {
        return Err(Refusal::Message("is empty".into()));
    }
    if body.chars().count() > MAX_MESSAGE_CHARS {
        return Err(Refusal::Message(format!("is longer than {MAX_MESSAGE_CHARS} characters")));
    }
    if let Some(why) = unsendable(body) {
        return Err(Refusal::Message(why));
    }
    let (country, kind) = phone::classify(&to);
    let region = country.map(|c| c.as_ref().to_string()).unwrap_or_else(|| "unknown".into());
    let limits = &route.limits;
    if limits.refuse_number_types.contains(&kind) {
        let kind = phone::type_name(kind);
        tracing::warn!(route = %route.path, to = %phone::mask(&to), number_type = %kind, "refused: number type");
        return Err(Refusal::NumberType(kind));
    }
    let country_allowed = match &limits.countries {
        Countries::Any => true,
        Countries::Allow(list) => country.is_some_and(|c| list.contains(&c)),
        Countries::Deny(list) => !country.is_some_and(|c| list.contains(&c)),
    };
    if !country_allowed {
        tracing::warn!(route = %route.path, to = %phone::mask(&to), country = %region, "refused: country");
        return Err(Refusal::Country(region));
    }
    Ok(Admitted { to, region })
}

/// Counts the send against the route's limits, or names the one reached.
/// The keys are MACs under `keys`: the store never holds a number or a
/// prefix a copy of it could be searched for.
pub async fn count(
    state: &dyn SharedState,
    keys: &Keyed,
    on_failure: OnStateFailure,
    route: &Route,
    admitted: &Admitted,
) -> Result<(), Refusal> {
    let l = &route.limits;
    let (path, to, region) = (route.path.as_str(), admitted.to.as_str(), admitted.region.as_str());
    // A prefix is the number without its last 4 digits: 10 000 numbers.
    let prefix = &to[..to.len().saturating_sub(4)];
    let mut buckets = Vec::new();
    let mut names = Vec::new();
    for (name, rate, parts) in [
        ("per_number", l.per_number, ["number", path, to]),
        ("per_prefix", l.per_prefix, ["prefix", path, prefix]),
        ("per_country", l.per_country, ["country", path, region]),
        ("per_route", l.per_route, ["route", path, ""]),
    ] {
        if let Some(rate) = rate {
            buckets.push(Bucket { key: format!("limit|{}", keys.hex(&parts)), limit: rate.limit, window: rate.window });
            names.push(name);
        }
    }
    if buckets.is_empty() {
        return Ok(());
    }
    let full = match state.admit(&buckets).await {
        Ok(full) => full,
        Err(e) => return unreachable(on_failure, "limits", e),
    };
    if let Err(full) = full {
        let limit = names[full.index];
        tracing::warn!(route = %path, to = %phone::mask(to), limit, "refused: limit reached");
        return Err(Refusal::Limited { limit, retry_after: full.retry_after });
    }
    Ok(())
}

/// Where a repeated request finds its first answer, and what it must be to
/// be a repeat. Each is a MAC under the gateway's keys: a copy of the store
/// cannot be searched for a number and a code.
#[derive(Debug, Clone, PartialEq)]
pub struct RepeatKey {
    /// The caller's own key (within one route and caller), or the number
    /// and the text, within one route.
    pub key: String,
    /// The number and the text: a caller's key stands for this request only.
    pub fingerprint: String,
    /// Where the conflicts a caller's key met are counted.
    pub conflicts: String,
    /// How long the answer is kept.
    pub window: Duration,
}

/// Who sent a request and the idempotency key it named.
#[derive(Debug, Default, Clone, Copy)]
pub struct Repeat<'a> {
    /// Who authenticated: one caller's keys are not another's.
    pub caller: &'a str,
    /// The caller's own key, if it sent one.
    pub key: Option<&'a str>,
    /// The answer is kept at least this long (a webhook's own window).
    pub keep_at_least: Option<Duration>,
}

/// The repeat key of a request; `None` when the route keeps no answers.
pub fn repeat_key(keys: &Keyed, route: &Route, to: &str, body: &str, repeat: &Repeat<'_>) -> Option<RepeatKey> {
    let window = route.delivery.idempotency_window;
    if window.is_zero() {
        return None;
    }
    let fingerprint = keys.hex(&["fingerprint", to, body]);
    let key = match repeat.key {
        Some(k) => keys.hex(&["key", &route.path, repeat.caller, k]),
        None => keys.hex(&["message", &route.path, &fingerprint]),
    };
    let conflicts = format!("limit|{}", keys.hex(&["conflicts", &key]));
    let window = window.max(repeat.keep_at_least.unwrap_or_default());
    Some(RepeatKey { key: format!("idempotency|{key}"), fingerprint, conflicts, window })
}

/// Conflicts a caller's key may meet before it answers nothing but
/// `idempotency_key_reused` for the rest of its window: guessing a code by
/// replaying a key with other texts gets this many tries.
pub const LOCK_AFTER_CONFLICTS: u32 = 3;

/// The answer stored for a key locked by conflicts.
const LOCKED: &[u8] = b"locked";

/// Owns `key`, or waits (within the route's deadline) for the identical
/// request that owns it and returns its answer. A caller's key used for
/// another request is refused.
pub async fn claim(
    state: &dyn SharedState,
    on_failure: OnStateFailure,
    repeat: &RepeatKey,
    route: &Route,
) -> Result<Option<Sent>, Refusal> {
    let key = repeat.key.as_str();
    // Held while the send runs, which the route's deadline bounds: a claim
    // left by an instance that died frees itself soon after.
    let hold = repeat.window.min(route.delivery.deadline + CLAIM_MARGIN);
    let until = Instant::now() + route.delivery.deadline;
    loop {
        let claimed = match state.claim(key, &repeat.fingerprint, hold).await {
            Ok(claimed) => claimed,
            Err(e) => return unreachable(on_failure, "repeats", e).map(|()| None),
        };
        match claimed {
            Claim::Conflict => {
                let window = repeat.window;
                let bucket = Bucket { key: repeat.conflicts.clone(), limit: LOCK_AFTER_CONFLICTS - 1, window };
                if let Ok(Err(_)) = state.admit(&[bucket]).await {
                    tracing::warn!(route = %route.path, "idempotency key locked after repeated conflicts");
                    if let Err(e) = state.complete(key, LOCKED.to_vec(), window).await {
                        tracing::debug!("idempotency key not locked: {e:#}");
                    }
                }
                return Err(Refusal::KeyReused);
            }
            Claim::Done(stored) if stored == LOCKED => return Err(Refusal::KeyReused),
            Claim::New => return Ok(None),
            Claim::Done(stored) => {
                if let Ok(mut sent) = serde_json::from_slice::<Sent>(&stored) {
                    sent.replayed = true;
                    return Ok(Some(sent));
                }
                // Unreadable: better a second send than none.
                if let Err(e) = state.release(key).await {
                    return unreachable(on_failure, "repeats", e).map(|()| None);
                }
            }
            Claim::InFlight if Instant::now() < until => tokio::time::sleep(Duration::from_millis(25)).await,
            Claim::InFlight => return Err(Refusal::InFlight),
        }
    }
}

/// Keeps a success as the answer to repeats of `key`; gives the key up after
/// a failure, so a retry may send.
pub async fn settle(state: &dyn SharedState, repeat: &RepeatKey, route: &Route, result: &Result<Sent, Refusal>) {
    let key = repeat.key.as_str();
    let written = match result {
        Ok(sent) => state.complete(key, serde_json::to_vec(sent).unwrap_or_default(), repeat.window).await,
        Err(_) => state.release(key).await,
    };
    // The send is done either way; a repeat meanwhile may send again.
    if let Err(e) = written {
        tracing::debug!(route = %route.path, "answer not kept for repeats: {e:#}");
    }
}

/// Extra time an in-flight claim is held past the route's deadline.
const CLAIM_MARGIN: Duration = Duration::from_secs(30);

/// A send whose limits or repeats cannot be checked: refused, or sent
/// unchecked, as `[state] on_failure` says. The store logs the outage.
fn unreachable(on_failure: OnStateFailure, what: &str, e: anyhow::Error) -> Result<(), Refusal> {
    tracing::debug!("shared state unreachable for {what}: {e:#}");
    match on_failure {
        OnStateFailure::Closed => Err(Refusal::StateDown),
        OnStateFailure::Open => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::state::MemoryState;

    const C: OnStateFailure = OnStateFailure::Closed;

    fn keys() -> Keyed {
        Keyed::new(b"gateway-keys-for-tests")
    }

    fn rk(route: &Route, to: &str, body: &str, caller: &str, key: Option<&str>) -> Option<RepeatKey> {
        repeat_key(&keys(), route, to, body, &Repeat { caller, key, keep_at_least: None })
    }

    fn route(extra: &str) -> Route {
        let text = format!(
            "[[provider]]\nname = \"box\"\nadapter = \"outbox\"\n[[route]]\npath = \"/v1/send\"\nproviders = [\"box\"]\n{extra}"
        );
        Config::parse(&text, "test.toml").unwrap().routes.remove(0)
    }

    fn sent(id: &str) -> Sent {
        Sent {
            id: id.into(),
            to: "+447400123456".into(),
            provider: "box".into(),
            provider_id: "b1".into(),
            segments: 1,
            attempts: Vec::new(),
            replayed: false,
            queued: false,
            unconfirmed: false,
        }
    }

    #[test]
    fn the_number_and_text_are_checked_before_anything_is_counted() {
        let r = route("");
        let ok = check(&r, "+44 7400 123456", "Your code is 1").unwrap();
        assert_eq!(ok, Admitted { to: "+447400123456".into(), region: "GB".into() });
        assert!(matches!(check(&r, "not a number", "x"), Err(Refusal::Phone(_))));
        assert!(matches!(check(&r, "+447400123456", "  "), Err(Refusal::Message(m)) if m == "is empty"));
        let long = "x".repeat(MAX_MESSAGE_CHARS + 1);
        assert!(matches!(check(&r, "+447400123456", &long), Err(Refusal::Message(_))));
        // Premium rate is refused by default.
        assert!(matches!(check(&r, "+449098790000", "x"), Err(Refusal::NumberType(t)) if t == "premium_rate"));
    }

    #[test]
    fn countries_are_allowed_or_denied_by_region() {
        let deny = route("limits = { deny_countries = [\"NG\"] }");
        assert!(matches!(check(&deny, "+2348031234567", "x"), Err(Refusal::Country(c)) if c == "NG"));
        assert!(check(&deny, "+447400123456", "x").is_ok());
        let allow = route("limits = { allow_countries = [\"IE\"] }");
        assert!(matches!(check(&allow, "+447400123456", "x"), Err(Refusal::Country(c)) if c == "GB"));
        assert!(check(&allow, "+353851234567", "x").is_ok());
    }

    #[tokio::test]
    async fn the_first_limit_reached_is_named_and_nothing_is_counted() {
        let r = route("limits = { per_number = \"2/10m\", per_prefix = \"3/10m\" }");
        let state = MemoryState::default();
        let a = check(&r, "+447400123456", "x").unwrap();
        let b = check(&r, "+447400123457", "x").unwrap();
        count(&state, &keys(), C, &r, &a).await.unwrap();
        count(&state, &keys(), C, &r, &a).await.unwrap();
        let refused = count(&state, &keys(), C, &r, &a).await.unwrap_err();
        assert!(matches!(refused, Refusal::Limited { limit: "per_number", .. }), "{refused:?}");
        // The refused send did not count against the prefix: one more fits.
        count(&state, &keys(), C, &r, &b).await.unwrap();
        assert!(matches!(count(&state, &keys(), C, &r, &b).await, Err(Refusal::Limited { limit: "per_prefix", .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeat_gets_the_first_answer_and_a_failure_frees_the_key() {
        let r = route("");
        let state = MemoryState::default();
        let key = rk(&r, "+447400123456", "code 1", "", None).unwrap();
        assert_ne!(Some(&key), rk(&r, "+447400123456", "code 2", "", None).as_ref());
        assert_ne!(Some(&key), rk(&r, "+447400123456", "code 1", "", Some("k1")).as_ref());
        // A caller's key with another number is not a repeat.
        let k1 = rk(&r, "+447400123456", "code 1", "", Some("k1")).unwrap();
        let k1_other = rk(&r, "+447400654321", "code 1", "", Some("k1")).unwrap();
        assert_eq!(k1.key, k1_other.key);
        assert!(claim(&state, C, &k1, &r).await.unwrap().is_none());
        assert!(matches!(claim(&state, C, &k1_other, &r).await, Err(Refusal::KeyReused)));
        assert!(claim(&state, C, &key, &r).await.unwrap().is_none(), "the first one owns the key");
        settle(&state, &key, &r, &Ok(sent("m1"))).await;
        let again = claim(&state, C, &key, &r).await.unwrap().unwrap();
        assert_eq!((again.id.as_str(), again.replayed), ("m1", true));

        let other = rk(&r, "+447400123456", "code 3", "", None).unwrap();
        assert!(claim(&state, C, &other, &r).await.unwrap().is_none());
        settle(&state, &other, &r, &Err(Refusal::InFlight)).await;
        assert!(claim(&state, C, &other, &r).await.unwrap().is_none(), "a failed send may be sent again");
        // While it is in flight, a repeat waits for the route's deadline.
        let started = Instant::now();
        assert!(matches!(claim(&state, C, &other, &r).await, Err(Refusal::InFlight)));
        assert!(started.elapsed() >= r.delivery.deadline);
        assert!(rk(&route("idempotency_window_s = 0"), "+447400123456", "x", "", None).is_none());
    }

    #[test]
    fn repeat_keys_need_the_secret_and_are_the_callers_own() {
        let r = route("");
        let k = rk(&r, "+447400123456", "code 908172", "alice", Some("k1")).unwrap();
        let plain = hex::encode(<sha2::Sha256 as sha2::Digest>::digest("+447400123456\0code 908172"));
        assert_ne!(k.fingerprint, plain, "an unkeyed digest is a brute force away from the code");
        let repeat = Repeat { caller: "alice", key: Some("k1"), keep_at_least: None };
        let other_secret = repeat_key(&Keyed::new(b"x"), &r, "+447400123456", "code 908172", &repeat);
        assert_ne!(Some(&k), other_secret.as_ref());
        let bob = rk(&r, "+447400123456", "code 908172", "bob", Some("k1")).unwrap();
        assert_ne!(k.key, bob.key, "another caller's key of the same name is another key");
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_locks_after_a_few_conflicts_even_for_the_right_text() {
        let r = route("");
        let state = MemoryState::default();
        let right = rk(&r, "+447400123456", "code 908172", "", Some("k1")).unwrap();
        assert!(claim(&state, C, &right, &r).await.unwrap().is_none());
        settle(&state, &right, &r, &Ok(sent("m1"))).await;
        for guess in 0..LOCK_AFTER_CONFLICTS {
            let wrong = rk(&r, "+447400123456", &format!("code {guess:06}"), "", Some("k1")).unwrap();
            assert!(matches!(claim(&state, C, &wrong, &r).await, Err(Refusal::KeyReused)));
        }
        assert!(
            matches!(claim(&state, C, &right, &r).await, Err(Refusal::KeyReused)),
            "locked: the right text tells nothing"
        );
    }
}
