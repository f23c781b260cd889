//! What an operator sees with no Prometheus: per provider and per route,
//! the last hour minute by minute (outcomes and latency), kept in the
//! process. Labels are provider names, route paths and fixed outcome words:
//! never a number, a text or a secret.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Minutes kept.
const MINUTES: u64 = 60;

/// Latency buckets: four per doubling from 1 ms, so a percentile is read to
/// within 19 %; the last holds everything above 2^24 ms.
const BUCKETS: usize = 97;

#[derive(Clone)]
struct Minute {
    /// Minutes since the Unix epoch.
    at: u64,
    outcomes: BTreeMap<&'static str, u64>,
    latency: Vec<u32>,
}

#[derive(Default)]
struct Series {
    minutes: VecDeque<Minute>,
}

/// Counts and percentiles over some minutes.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub total: u64,
    pub outcomes: BTreeMap<&'static str, u64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// One minute's outcomes, for a chart.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MinuteCounts {
    /// The minute's start, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub outcomes: BTreeMap<&'static str, u64>,
}

/// A provider's or a route's last 5 and 60 minutes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct View {
    pub last_5m: Summary,
    pub last_60m: Summary,
    /// Oldest first; minutes with nothing are left out.
    pub per_minute: Vec<MinuteCounts>,
}

fn bucket(took: Duration) -> usize {
    let ms = took.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        return 0;
    }
    ((ms.log2() * 4.0).floor() as usize + 1).min(BUCKETS - 1)
}

/// The upper edge of bucket `i`, in milliseconds.
fn bucket_ms(i: usize) -> f64 {
    2f64.powf(i as f64 / 4.0)
}

impl Series {
    fn record(&mut self, now: u64, outcome: &'static str, took: Option<Duration>) {
        if self.minutes.back().is_none_or(|m| m.at != now) {
            self.minutes.push_back(Minute { at: now, outcomes: BTreeMap::new(), latency: vec![0; BUCKETS] });
        }
        while self.minutes.front().is_some_and(|m| m.at + MINUTES <= now) {
            self.minutes.pop_front();
        }
        let minute = self.minutes.back_mut().expect("pushed above");
        *minute.outcomes.entry(outcome).or_default() += 1;
        if let Some(took) = took {
            minute.latency[bucket(took)] += 1;
        }
    }

    fn summary(&self, now: u64, minutes: u64) -> Summary {
        let mut summary = Summary::default();
        let mut latency = vec![0u64; BUCKETS];
        for m in self.minutes.iter().filter(|m| m.at + minutes > now) {
            for (outcome, n) in &m.outcomes {
                *summary.outcomes.entry(outcome).or_default() += n;
                summary.total += n;
            }
            for (i, n) in m.latency.iter().enumerate() {
                latency[i] += u64::from(*n);
            }
        }
        let timed: u64 = latency.iter().sum();
        let at = |q: f64| {
            let rank = ((timed as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            latency.iter().enumerate().find_map(|(i, n)| {
                seen += n;
                (seen >= rank).then(|| bucket_ms(i))
            })
        };
        if timed > 0 {
            summary.p50_ms = at(0.5);
            summary.p99_ms = at(0.99);
        }
        summary
    }

    fn view(&self, now: u64) -> View {
        View {
            last_5m: self.summary(now, 5),
            last_60m: self.summary(now, MINUTES),
            per_minute: self
                .minutes
                .iter()
                .filter(|m| m.at + MINUTES > now)
                .map(|m| MinuteCounts { at_ms: m.at * 60_000, outcomes: m.outcomes.clone() })
                .collect(),
        }
    }
}

/// The windows of every provider and route seen.
#[derive(Default)]
pub struct Stats {
    providers: Mutex<HashMap<String, Series>>,
    routes: Mutex<HashMap<String, Series>>,
    refusals: Mutex<HashMap<String, Series>>,
    /// The latest adapter loads from files: when, which, and the result.
    reloads: Mutex<VecDeque<(SystemTime, String, &'static str)>>,
}

/// Adapter reloads kept for the console.
const RELOADS: usize = 20;

/// Everything, as the console reads it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    /// Attempts at each provider, by outcome.
    pub providers: BTreeMap<String, View>,
    /// Finished sends through each route, by outcome.
    pub routes: BTreeMap<String, View>,
    /// Requests each route refused before any provider, by reason.
    pub refusals: BTreeMap<String, View>,
}

fn minute_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() / 60).unwrap_or(0)
}

impl Stats {
    /// The process's windows.
    pub fn global() -> &'static Stats {
        static STATS: OnceLock<Stats> = OnceLock::new();
        STATS.get_or_init(Stats::default)
    }

    fn record(map: &Mutex<HashMap<String, Series>>, key: &str, at: u64, outcome: &'static str, took: Option<Duration>) {
        let mut map = map.lock().unwrap();
        match map.get_mut(key) {
            Some(series) => series.record(at, outcome, took),
            None => map.entry(key.to_string()).or_default().record(at, outcome, took),
        }
    }

    pub fn attempt(&self, provider: &str, outcome: &'static str, took: Duration) {
        Self::record(&self.providers, provider, minute_now(), outcome, Some(took));
    }

    pub fn send(&self, route: &str, outcome: &'static str, took: Duration) {
        Self::record(&self.routes, route, minute_now(), outcome, Some(took));
    }

    pub fn refused(&self, route: &str, reason: &'static str) {
        Self::record(&self.refusals, route, minute_now(), reason, None);
    }

    pub fn reload(&self, adapter: &str, result: &'static str) {
        let mut reloads = self.reloads.lock().unwrap();
        if reloads.len() == RELOADS {
            reloads.pop_front();
        }
        reloads.push_back((SystemTime::now(), adapter.to_string(), result));
    }

    /// The latest adapter reloads, oldest first.
    pub fn reloads(&self) -> Vec<(SystemTime, String, &'static str)> {
        self.reloads.lock().unwrap().iter().cloned().collect()
    }

    pub fn snapshot(&self) -> Snapshot {
        let now = minute_now();
        let views = |map: &Mutex<HashMap<String, Series>>| {
            map.lock().unwrap().iter().map(|(k, s)| (k.clone(), s.view(now))).collect()
        };
        Snapshot { providers: views(&self.providers), routes: views(&self.routes), refusals: views(&self.refusals) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_roll_and_percentiles_come_from_the_buckets() {
        let mut s = Series::default();
        for i in 0..100u64 {
            s.record(1000, "accepted", Some(Duration::from_millis(10 + i)));
        }
        s.record(1000, "unavailable", Some(Duration::from_millis(5000)));
        s.record(1003, "accepted", Some(Duration::from_millis(20)));
        let last5 = s.summary(1003, 5);
        assert_eq!((last5.total, last5.outcomes["accepted"], last5.outcomes["unavailable"]), (102, 101, 1));
        let (p50, p99) = (last5.p50_ms.unwrap(), last5.p99_ms.unwrap());
        assert!((50.0..=72.0).contains(&p50), "p50 {p50}");
        assert!((100.0..=130.0).contains(&p99), "p99 {p99}");
        // Four minutes later only the last minute is within 5 minutes; an
        // hour on, nothing is left.
        assert_eq!(s.summary(1007, 5).total, 1);
        s.record(1000 + MINUTES + 3, "accepted", None);
        assert_eq!(s.view(1000 + MINUTES + 3).per_minute.len(), 1);
        assert_eq!(s.summary(1000 + MINUTES + 3, MINUTES).p50_ms, None, "no latency recorded");
    }

    #[test]
    fn buckets_are_ordered_and_bounded() {
        assert_eq!(bucket(Duration::from_micros(300)), 0);
        assert!(bucket(Duration::from_millis(10)) < bucket(Duration::from_millis(12)));
        assert_eq!(bucket(Duration::from_secs(1_000_000)), BUCKETS - 1);
        let ms = 250.0;
        let edge = bucket_ms(bucket(Duration::from_millis(250)));
        assert!(edge >= ms && edge < ms * 1.2, "{edge}");
    }
}
