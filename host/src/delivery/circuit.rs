//! Circuit breakers, one per provider: closed while the provider answers;
//! open (skipped) for a cool-down after repeated transient failures; then a
//! single probe closes it again or reopens it.
//!
//! Time is passed in, never read here, so the rules are tested by moving a
//! clock by hand. Circuits outlive config reloads and are per process.

use crate::telemetry;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// When a provider's circuit opens, and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trip {
    /// Consecutive transient failures that open the circuit.
    pub failures: u32,
    /// How long an open circuit skips the provider before one probe.
    pub cooldown: Duration,
}

#[derive(Default)]
struct Circuit {
    failures: u32,
    open_until: Option<Instant>,
    cooldown: Duration,
    /// When the probe of an open circuit started; another may start if this
    /// one never reports (its caller went away).
    probe: Option<Instant>,
}

/// Every provider's circuit, by provider name.
#[derive(Default)]
pub struct Circuits {
    by_provider: Mutex<HashMap<String, Circuit>>,
}

impl Circuits {
    /// Whether `provider` may be tried at `now`; claims the probe of an open
    /// circuit whose cool-down is over.
    pub fn allows(&self, provider: &str, now: Instant) -> bool {
        let mut circuits = self.by_provider.lock().unwrap();
        let Some(circuit) = circuits.get_mut(provider) else { return true };
        match circuit.open_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) => {
                // One probe at a time; a probe that never reported is
                // replaced after another cool-down.
                if circuit.probe.is_some_and(|p| now.duration_since(p) < circuit.cooldown) {
                    return false;
                }
                circuit.probe = Some(now);
                true
            }
        }
    }

    /// Whether `provider`'s circuit is open now (no probe is let through).
    pub fn is_open(&self, provider: &str, now: Instant) -> bool {
        let circuits = self.by_provider.lock().unwrap();
        circuits.get(provider).and_then(|c| c.open_until).is_some_and(|until| now < until)
    }

    /// Counts an attempt at `provider` that ended at `now`: `transient` when
    /// the provider failed in a way that says it is unwell.
    pub fn record(&self, provider: &str, trip: Trip, transient: bool, now: Instant) {
        let mut circuits = self.by_provider.lock().unwrap();
        let circuit = circuits.entry(provider.to_string()).or_default();
        let was_open = circuit.open_until.is_some();
        if transient {
            circuit.failures += 1;
            if circuit.probe.is_some() || circuit.failures >= trip.failures.max(1) {
                circuit.open_until = Some(now + trip.cooldown);
                circuit.cooldown = trip.cooldown;
                circuit.probe = None;
                if !was_open {
                    tracing::warn!(
                        provider,
                        failures = circuit.failures,
                        "circuit open: provider skipped for {:?}",
                        trip.cooldown
                    );
                    telemetry::circuit(provider, true);
                }
            }
        } else {
            // An answer, even a refusal, means the provider is up.
            *circuit = Circuit::default();
            if was_open {
                tracing::info!(provider, "circuit closed: provider answered");
                telemetry::circuit(provider, false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRIP: Trip = Trip { failures: 3, cooldown: Duration::from_secs(30) };

    /// Circuits with `p`'s opened now, and now.
    fn opened() -> (Circuits, Instant) {
        let circuits = Circuits::default();
        let now = Instant::now();
        for _ in 0..TRIP.failures {
            circuits.record("p", TRIP, true, now);
        }
        (circuits, now)
    }

    #[test]
    fn opens_after_consecutive_failures_and_an_answer_resets_the_count() {
        let circuits = Circuits::default();
        let t0 = Instant::now();
        circuits.record("p", TRIP, true, t0);
        circuits.record("p", TRIP, true, t0);
        circuits.record("p", TRIP, false, t0);
        circuits.record("p", TRIP, true, t0);
        circuits.record("p", TRIP, true, t0);
        assert!(circuits.allows("p", t0), "two in a row since the answer");
        circuits.record("p", TRIP, true, t0);
        assert!(!circuits.allows("p", t0), "the third in a row opens it");
        assert!(!circuits.allows("p", t0 + Duration::from_secs(29)));
        assert!(circuits.allows("other", t0), "circuits are per provider");
    }

    #[test]
    fn after_the_cooldown_one_probe_decides() {
        let (circuits, t0) = opened();
        let later = t0 + TRIP.cooldown;
        assert!(circuits.allows("p", later), "the probe");
        assert!(!circuits.allows("p", later), "one probe at a time");
        // A failed probe reopens it at once, for another cool-down.
        circuits.record("p", TRIP, true, later);
        assert!(!circuits.allows("p", later + Duration::from_secs(1)));
        let after = later + TRIP.cooldown;
        assert!(circuits.allows("p", after));
        circuits.record("p", TRIP, false, after);
        assert!(circuits.allows("p", after) && circuits.allows("p", after), "closed: everyone may try");
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_after_another_cooldown() {
        let (circuits, t0) = opened();
        let probe = t0 + TRIP.cooldown;
        assert!(circuits.allows("p", probe));
        assert!(!circuits.allows("p", probe + TRIP.cooldown - Duration::from_millis(1)));
        assert!(circuits.allows("p", probe + TRIP.cooldown));
    }
}
