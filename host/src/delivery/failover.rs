//! The rules of one delivery across a route's providers: retries with
//! jittered backoff on transient failures, failover to the next provider,
//! circuits that skip an unwell provider, all within the route's deadline.
//!
//! Generic over [`Carrier`], the one thing it asks of a provider (send once),
//! so the rules are tested with fakes and tokio's paused clock; the real
//! carrier sends through a WebAssembly adapter (`delivery::RouteCarrier`).

use super::bulkhead::Wait;
use super::circuit::{Circuits, Trip};
use crate::outcome::{Attempt, Failure, Outcome};
use crate::telemetry;
use std::time::Duration;
use tokio::time::Instant;

/// How hard a route tries.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The whole delivery, every attempt and wait included.
    pub deadline: Duration,
    /// Extra attempts at one provider after a retryable failure.
    pub retries: u32,
    /// First wait before a retry; doubled each time, with full jitter.
    pub backoff: Duration,
    /// Also try the next provider after `rejected` or `invalid-recipient`.
    pub failover_on_permanent: bool,
    /// Also try the next provider after one that may have the message.
    pub failover_on_unknown: bool,
}

/// What failover asks of providers.
pub trait Carrier: Sync {
    /// Sends the message through `provider` once: its id for the message.
    /// A provider with no free slot answers `Busy` at once or after `wait`.
    fn send(&self, provider: &str, wait: Wait) -> impl Future<Output = Result<String, Failure>> + Send;
    /// When `provider`'s circuit opens.
    fn trip(&self, provider: &str) -> Trip;
    /// What the last send to `provider` came to when the deadline cut it
    /// short: `Busy` if it was still waiting for a slot, `MaybeSent` if a
    /// request of it may have arrived, else `Deadline`.
    fn cut_short(&self, provider: &str) -> Failure;
}

/// Names the message in logs: its id, route and masked number.
#[derive(Debug, Clone, Copy)]
pub struct Label<'a> {
    pub id: &'a str,
    pub route: &'a str,
    pub masked: &'a str,
}

/// A provider took the message.
#[derive(Debug)]
pub struct Delivered {
    pub provider: String,
    pub provider_id: String,
    /// Every try, in order; the last one delivered.
    pub attempts: Vec<Attempt>,
}

/// No provider took it: the last one tried, what went wrong there, and
/// every try.
#[derive(Debug)]
pub struct Undelivered {
    pub provider: String,
    pub failure: Failure,
    pub attempts: Vec<Attempt>,
}

/// Tries `providers` in order until one accepts, within `policy.deadline`.
/// Providers in `skip` may have the message already and are not sent to.
pub async fn deliver<C: Carrier>(
    policy: &Policy,
    providers: &[String],
    skip: &[String],
    circuits: &Circuits,
    carrier: &C,
    label: Label<'_>,
) -> Result<Delivered, Undelivered> {
    let deadline = Instant::now() + policy.deadline;
    let mut attempts = Vec::new();
    let mut last: Option<(String, Failure)> = None;
    'providers: for (at, name) in providers.iter().enumerate() {
        if skip.contains(name) {
            // A request to it was on its way when smsbridge stopped.
            attempts.push(Attempt { provider: name.clone(), outcome: Outcome::MaybeSent, ms: 0 });
            let why = "may have the message from before a restart; not sent again";
            last.get_or_insert((name.clone(), Failure::MaybeSent(why.into())));
            continue;
        }
        if !circuits.allows(name, Instant::now()) {
            attempts.push(Attempt { provider: name.clone(), outcome: Outcome::CircuitOpen, ms: 0 });
            last.get_or_insert((name.clone(), Failure::CircuitOpen));
            continue;
        }
        // A full provider is passed over at once when another may take the
        // message; the last one is waited for, within the deadline.
        let now = Instant::now();
        let another = providers[at + 1..].iter().any(|p| !skip.contains(p) && !circuits.is_open(p, now));
        let wait = if another { Wait::No } else { Wait::Until(deadline) };
        let mut retries = 0;
        loop {
            let started = Instant::now();
            let result = match tokio::time::timeout_at(deadline, carrier.send(name, wait)).await {
                Ok(result) => result,
                Err(_) => Err(carrier.cut_short(name)),
            };
            let took = started.elapsed();
            let ms = took.as_millis() as u64;
            let outcome = result.as_ref().map_or_else(Failure::outcome, |_| Outcome::Accepted);
            telemetry::attempt(name, outcome.as_str(), took);
            attempts.push(Attempt { provider: name.clone(), outcome, ms });
            // A full provider was not tried, and one this host could not run
            // was not at fault: its circuit hears nothing of either.
            if !matches!(result, Err(Failure::Busy | Failure::Host(_))) {
                let unwell = result.as_ref().is_err_and(Failure::counts_against_provider);
                circuits.record(name, carrier.trip(name), unwell, Instant::now());
            }
            let failure = match result {
                Ok(provider_id) => return Ok(Delivered { provider: name.clone(), provider_id, attempts }),
                Err(failure) => failure,
            };
            let Label { id, route, masked } = label;
            tracing::warn!(%id, %route, provider = %name, to = %masked, %outcome, ms, "not sent: {failure}");
            let wait = failure.retry_after().unwrap_or_else(|| backoff(policy.backoff, retries));
            // A provider that may have the message is never sent it again
            // (it is not retryable); the next one only where the route says.
            let fail_over = match &failure {
                Failure::MaybeSent(_) => policy.failover_on_unknown,
                f => f.is_transient() || (policy.failover_on_permanent && f.is_permanent()),
            };
            let retry = failure.is_retryable() && retries < policy.retries && Instant::now() + wait < deadline;
            last = Some((name.clone(), failure));
            if retry {
                retries += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            if fail_over && Instant::now() < deadline {
                continue 'providers;
            }
            break 'providers;
        }
    }
    let (provider, failure) = last.expect("a route names at least one provider");
    Err(Undelivered { provider, failure, attempts })
}

/// The wait before retry number `retries + 1`: `base` doubled per retry,
/// with full jitter so callers that failed together do not retry together.
fn backoff(base: Duration, retries: u32) -> Duration {
    let ceiling = base.saturating_mul(1 << retries.min(16));
    let fraction = f64::from(getrandom::u32().unwrap_or(u32::MAX / 2)) / f64::from(u32::MAX);
    ceiling.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Each provider answers from its script, in order, after `delay`; the
    /// last answer repeats.
    struct Script {
        answers: Mutex<HashMap<String, Vec<Result<String, Failure>>>>,
        delay: Duration,
        sent: Mutex<Vec<String>>,
        /// Whether each send could wait for a slot.
        waited: Mutex<Vec<bool>>,
    }

    impl Script {
        fn new(delay_ms: u64, answers: &[(&str, &[Result<&str, Failure>])]) -> Script {
            let answers = answers
                .iter()
                .map(|(p, a)| (p.to_string(), a.iter().rev().map(|r| r.clone().map(String::from)).collect()))
                .collect();
            Script {
                answers: Mutex::new(answers),
                delay: Duration::from_millis(delay_ms),
                sent: Default::default(),
                waited: Default::default(),
            }
        }
        fn sent(&self) -> Vec<String> {
            self.sent.lock().unwrap().clone()
        }
    }

    impl Carrier for Script {
        async fn send(&self, provider: &str, wait: Wait) -> Result<String, Failure> {
            self.sent.lock().unwrap().push(provider.into());
            self.waited.lock().unwrap().push(matches!(wait, Wait::Until(_)));
            tokio::time::sleep(self.delay).await;
            let mut answers = self.answers.lock().unwrap();
            let script = answers.get_mut(provider).expect("a scripted provider");
            if script.len() > 1 { script.pop().unwrap() } else { script[0].clone() }
        }
        fn trip(&self, _provider: &str) -> Trip {
            Trip { failures: 3, cooldown: Duration::from_secs(30) }
        }
        fn cut_short(&self, _provider: &str) -> Failure {
            Failure::Deadline
        }
    }

    const POLICY: Policy = Policy {
        deadline: Duration::from_secs(10),
        retries: 2,
        backoff: Duration::from_millis(200),
        failover_on_permanent: false,
        failover_on_unknown: false,
    };
    const LABEL: Label = Label { id: "m1", route: "/v1/send", masked: "+4474****3456" };

    fn down() -> Failure {
        Failure::Unavailable("503".into())
    }
    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }
    fn outcomes(attempts: &[Attempt]) -> Vec<(&str, Outcome)> {
        attempts.iter().map(|a| (a.provider.as_str(), a.outcome)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_provider_is_retried_then_the_next_one_takes_it() {
        let script = Script::new(5, &[("a", &[Err(down())]), ("b", &[Ok("B1")])]);
        let circuits = Circuits::default();
        let done = deliver(&POLICY, &names(&["a", "b"]), &[], &circuits, &script, LABEL).await.unwrap();
        assert_eq!(done.provider, "b");
        assert_eq!(done.provider_id, "B1");
        use Outcome::*;
        assert_eq!(
            outcomes(&done.attempts),
            [("a", Unavailable), ("a", Unavailable), ("a", Unavailable), ("b", Accepted)]
        );
        // Three transient failures in a row opened a's circuit: it is skipped.
        let done = deliver(&POLICY, &names(&["a", "b"]), &[], &circuits, &script, LABEL).await.unwrap();
        assert_eq!(outcomes(&done.attempts), [("a", CircuitOpen), ("b", Accepted)]);
        assert_eq!(script.sent(), ["a", "a", "a", "b", "b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_stops_unless_the_route_fails_over_on_it() {
        let script = Script::new(1, &[("a", &[Err(Failure::Rejected("sender id".into()))]), ("b", &[Ok("B1")])]);
        let circuits = Circuits::default();
        let refused = deliver(&POLICY, &names(&["a", "b"]), &[], &circuits, &script, LABEL).await.unwrap_err();
        assert_eq!((refused.provider.as_str(), refused.failure.outcome()), ("a", Outcome::Rejected));
        assert_eq!(refused.attempts.len(), 1, "a refusal is not retried");
        let policy = Policy { failover_on_permanent: true, ..POLICY };
        let done = deliver(&policy, &names(&["a", "b"]), &[], &circuits, &script, LABEL).await.unwrap();
        assert_eq!(outcomes(&done.attempts), [("a", Outcome::Rejected), ("b", Outcome::Accepted)]);
        assert!(circuits.allows("a", Instant::now()), "a refusal says the provider is up");
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_bounds_every_retry() {
        let script = Script::new(300, &[("slow", &[Err(down())])]);
        let policy =
            Policy { deadline: Duration::from_secs(1), retries: 10, backoff: Duration::from_millis(1), ..POLICY };
        let started = Instant::now();
        let refused = deliver(&policy, &names(&["slow"]), &[], &Circuits::default(), &script, LABEL).await.unwrap_err();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_millis(1010),
            "stopped at the deadline: {took:?}"
        );
        assert_eq!(refused.failure, Failure::Deadline);
        let tries = refused.attempts.len();
        assert!((3..=4).contains(&tries), "about deadline / delay attempts, got {tries}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_that_does_not_fit_the_deadline_fails_over_at_once() {
        let script = Script::new(1, &[("a", &[Err(Failure::RateLimited(Some(60)))]), ("b", &[Ok("B1")])]);
        let started = Instant::now();
        let done = deliver(&POLICY, &names(&["a", "b"]), &[], &Circuits::default(), &script, LABEL).await.unwrap();
        assert_eq!(outcomes(&done.attempts), [("a", Outcome::RateLimited), ("b", Outcome::Accepted)]);
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());

        let script = Script::new(1, &[("a", &[Err(Failure::RateLimited(Some(2))), Ok("A1")])]);
        let started = Instant::now();
        let done = deliver(&POLICY, &names(&["a"]), &[], &Circuits::default(), &script, LABEL).await.unwrap();
        assert_eq!(done.provider_id, "A1");
        assert!(started.elapsed() >= Duration::from_secs(2), "the provider's wait was honoured");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unconfirmed_send_is_not_retried_and_fails_over_only_where_the_route_says() {
        let unknown = || Failure::MaybeSent("timed out".into());
        let script = Script::new(1, &[("a", &[Err(unknown())]), ("b", &[Ok("B1")])]);
        let refused =
            deliver(&POLICY, &names(&["a", "b"]), &[], &Circuits::default(), &script, LABEL).await.unwrap_err();
        assert_eq!(outcomes(&refused.attempts), [("a", Outcome::MaybeSent)]);
        assert_eq!(script.sent(), ["a"], "not retried, not failed over");
        let policy = Policy { failover_on_unknown: true, ..POLICY };
        let done = deliver(&policy, &names(&["a", "b"]), &[], &Circuits::default(), &script, LABEL).await.unwrap();
        assert_eq!(outcomes(&done.attempts), [("a", Outcome::MaybeSent), ("b", Outcome::Accepted)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_provider_that_may_have_the_message_is_never_sent_it_again() {
        let script = Script::new(1, &[("a", &[Ok("A1")]), ("b", &[Ok("B1")])]);
        let done =
            deliver(&POLICY, &names(&["a", "b"]), &names(&["a"]), &Circuits::default(), &script, LABEL).await.unwrap();
        assert_eq!(outcomes(&done.attempts), [("a", Outcome::MaybeSent), ("b", Outcome::Accepted)]);
        assert_eq!(script.sent(), ["b"]);
        let refused =
            deliver(&POLICY, &names(&["a"]), &names(&["a"]), &Circuits::default(), &script, LABEL).await.unwrap_err();
        assert_eq!(refused.failure.outcome(), Outcome::MaybeSent);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_provider_is_passed_over_at_once_and_its_circuit_stays_closed() {
        let script = Script::new(1, &[("a", &[Err(Failure::Busy)]), ("b", &[Ok("B1")])]);
        let circuits = Circuits::default();
        for _ in 0..10 {
            let done = deliver(&POLICY, &names(&["a", "b"]), &[], &circuits, &script, LABEL).await.unwrap();
            assert_eq!(outcomes(&done.attempts), [("a", Outcome::Busy), ("b", Outcome::Accepted)]);
        }
        assert!(!circuits.is_open("a", Instant::now()), "being full is not being unwell");
        // Only the last provider a route can try waits for a slot.
        assert_eq!(script.waited.lock().unwrap()[..2], [false, true]);
        let refused = deliver(&POLICY, &names(&["a"]), &[], &circuits, &script, LABEL).await.unwrap_err();
        assert_eq!(refused.failure, Failure::Busy);
        assert_eq!(script.waited.lock().unwrap().last(), Some(&true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_provider_is_waited_for_when_the_others_circuits_are_open() {
        let script = Script::new(1, &[("a", &[Ok("A1")]), ("b", &[Err(down())])]);
        let circuits = Circuits::default();
        let trip = Trip { failures: 1, cooldown: Duration::from_secs(30) };
        circuits.record("b", trip, true, Instant::now());
        deliver(&POLICY, &names(&["a", "b"]), &[], &circuits, &script, LABEL).await.unwrap();
        assert_eq!(script.waited.lock().unwrap()[..], [true]);
    }
}
