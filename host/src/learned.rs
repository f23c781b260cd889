//! Routes that learn which provider delivers: per provider and destination
//! country, the share of handoffs delivered and failed and the time from
//! acceptance to the `delivered` receipt, over the last hour and day. Read
//! from the message record, so every instance that shares it orders alike.
//!
//! The tally and the order are pure functions of the record's rows and a
//! clock, tested as such; [`Learned`] refreshes them in the background.

use crate::config::{Order, Route};
use crate::outcome::DeliveryState;
use crate::record::{HandoffFigure, MessageRecord, now_ms};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// A handoff with no final receipt this long after it was taken counts as
/// not delivered: a provider that goes quiet is a provider that fails.
pub const RECEIPT_WAIT_MS: u64 = 10 * 60 * 1000;

/// How often the figures are read again while a route orders by them.
const REFRESH: Duration = Duration::from_secs(5);
/// How often otherwise, for the exported ratios alone: a day of handoffs is
/// not read every few seconds for nothing.
const REFRESH_IDLE: Duration = Duration::from_secs(60);

/// One provider's figures for one country over one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Window {
    /// Handoffs taken.
    pub sent: u32,
    pub delivered: u32,
    /// `undelivered` and `failed` receipts.
    pub failed: u32,
    /// Handoffs delivered or not: a final receipt, or none in [`RECEIPT_WAIT_MS`].
    pub counted: u32,
    /// Any receipt at all, final or not.
    pub receipts: u32,
    pub p50_ms: Option<u64>,
    pub p90_ms: Option<u64>,
}

impl Window {
    /// Delivered over counted; `None` before anything counted.
    pub fn delivered_share(&self) -> Option<f64> {
        (self.counted > 0).then(|| f64::from(self.delivered) / f64::from(self.counted))
    }

    pub fn failed_share(&self) -> Option<f64> {
        (self.counted > 0).then(|| f64::from(self.failed) / f64::from(self.counted))
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub provider: String,
    /// ISO 3166 region; empty when unknown.
    pub country: String,
    pub hour: Window,
    pub day: Window,
    /// The provider sent no receipt of any kind today: its adapter or
    /// account gives none, and its place in a route is left as listed.
    pub no_receipts: bool,
}

/// Every provider × country with a handoff in the last day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Table {
    pub rows: Vec<Row>,
}

impl Table {
    pub fn row(&self, provider: &str, country: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.provider == provider && r.country == country)
    }
}

/// The table of `figures` at `now_ms`.
pub fn tally(figures: &[HandoffFigure], now_ms: u64) -> Table {
    #[derive(Default)]
    struct Acc {
        hour: (Window, Vec<u64>),
        day: (Window, Vec<u64>),
    }
    let mut acc: BTreeMap<(&str, &str), Acc> = BTreeMap::new();
    for f in figures.iter().filter(|f| f.at_ms + DAY_MS > now_ms) {
        let a = acc.entry((&f.provider, &f.country)).or_default();
        let windows = if f.at_ms + HOUR_MS > now_ms { vec![&mut a.hour, &mut a.day] } else { vec![&mut a.day] };
        for (w, waits) in windows {
            w.sent += 1;
            if f.status != DeliveryState::Queued && f.status != DeliveryState::Unknown {
                w.receipts += 1;
            }
            match f.status {
                DeliveryState::Delivered => {
                    w.delivered += 1;
                    w.counted += 1;
                    if let Some(at) = f.settled_ms {
                        waits.push(at.saturating_sub(f.at_ms));
                    }
                }
                DeliveryState::Undelivered | DeliveryState::Failed => {
                    w.failed += 1;
                    w.counted += 1;
                }
                _ if f.at_ms + RECEIPT_WAIT_MS <= now_ms => w.counted += 1,
                _ => {}
            }
        }
    }
    let finish = |(mut w, mut waits): (Window, Vec<u64>)| {
        waits.sort_unstable();
        w.p50_ms = percentile(&waits, 50);
        w.p90_ms = percentile(&waits, 90);
        w
    };
    let rows = acc
        .into_iter()
        .map(|((provider, country), a)| {
            let day = finish(a.day);
            Row {
                provider: provider.into(),
                country: country.into(),
                hour: finish(a.hour),
                no_receipts: day.receipts == 0,
                day,
            }
        })
        .collect();
    Table { rows }
}

/// The `p`th percentile of sorted `values`, nearest rank.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

/// The share a provider is ranked by for `country`: the last hour's when
/// it counted `min` handoffs, else the day's; `None` below `min` either way,
/// or when the provider gives no receipts.
fn ranked_share(table: &Table, provider: &str, country: &str, min: u32) -> Option<f64> {
    let row = table.row(provider, country)?;
    if row.no_receipts {
        return None;
    }
    [&row.hour, &row.day].into_iter().find(|w| w.counted >= min).and_then(Window::delivered_share)
}

/// `providers` in the order to try for a number in `country`. Providers
/// with enough figures there are ranked by delivered share (ties keep the
/// listed order) in the places such providers hold in the list; the others
/// keep theirs. When `roll` (uniform in 0..1) falls below `explore`, the
/// provider at `1 + pick % (n - 1)` goes first instead, so that a provider
/// ranked last still hears about this country.
pub fn order(
    providers: &[String],
    country: &str,
    table: &Table,
    explore: f64,
    min_receipts: u32,
    roll: f64,
    pick: usize,
) -> Vec<String> {
    let shares: Vec<Option<f64>> = providers.iter().map(|p| ranked_share(table, p, country, min_receipts)).collect();
    let mut ranked: Vec<usize> = (0..providers.len()).filter(|&i| shares[i].is_some()).collect();
    let slots = ranked.clone();
    let slots_empty = slots.is_empty();
    // Stable: equal shares keep the listed order.
    ranked.sort_by(|&a, &b| shares[b].partial_cmp(&shares[a]).unwrap_or(std::cmp::Ordering::Equal));
    let mut out = providers.to_vec();
    for (slot, from) in slots.into_iter().zip(ranked) {
        out[slot] = providers[from].clone();
    }
    // Exploration starts once figures do: before, the list is the order.
    if out.len() > 1 && !slots_empty && roll < explore {
        let chosen = out.remove(1 + pick % (out.len() - 1));
        out.insert(0, chosen);
    }
    out
}

/// The table, read from the record every few seconds.
pub struct Learned {
    record: Option<Arc<dyn MessageRecord>>,
    table: RwLock<Arc<Table>>,
    /// When the table was last read.
    read_at: Mutex<Option<std::time::Instant>>,
    /// Ratios exported last, so that a row that left the table is zeroed.
    exported: Mutex<Vec<(String, String)>>,
}

impl Learned {
    pub fn new(record: Option<Arc<dyn MessageRecord>>) -> Learned {
        Learned { record, table: Default::default(), read_at: Default::default(), exported: Default::default() }
    }

    pub fn table(&self) -> Arc<Table> {
        self.table.read().unwrap().clone()
    }

    /// The table, read again first if it is older than `age`: what an
    /// operator looks at is at most that old.
    pub async fn table_within(&self, age: Duration) -> Arc<Table> {
        if self.read_at.lock().unwrap().is_none_or(|at| at.elapsed() > age) {
            self.refresh().await;
        }
        self.table()
    }

    /// The providers of `route` in the order to try for `country`.
    pub fn order(&self, route: &Route, country: &str) -> Vec<String> {
        match route.delivery.order {
            Order::Listed => route.providers.clone(),
            Order::Delivered { explore, min_receipts } => {
                let roll = f64::from(getrandom::u32().unwrap_or(u32::MAX)) / f64::from(u32::MAX);
                let pick = getrandom::u32().unwrap_or(0) as usize;
                order(&route.providers, country, &self.table(), explore, min_receipts, roll, pick)
            }
        }
    }

    /// Reads the last day's handoffs again.
    pub async fn refresh(&self) {
        let Some(record) = &self.record else { return };
        let now = now_ms();
        match record.handoffs_since(now.saturating_sub(DAY_MS)).await {
            Ok(figures) => {
                let table = tally(&figures, now);
                self.export(&table);
                *self.table.write().unwrap() = Arc::new(table);
                *self.read_at.lock().unwrap() = Some(std::time::Instant::now());
            }
            Err(e) => tracing::warn!("delivered-share figures not read (the last ones stand): {e:#}"),
        }
    }

    fn export(&self, table: &Table) {
        let mut exported = self.exported.lock().unwrap();
        for (provider, country) in exported.iter() {
            if table.row(provider, country).is_none() {
                crate::telemetry::delivered_ratio(provider, country, None);
            }
        }
        exported.clear();
        for row in &table.rows {
            crate::telemetry::delivered_ratio(&row.provider, &row.country, row.day.delivered_share());
            exported.push((row.provider.clone(), row.country.clone()));
        }
    }

    /// Refreshes the table while `self` lives: every few seconds while
    /// `ordering()` says a route orders by it, else once a minute.
    pub fn start(self: &Arc<Self>, ordering: impl Fn() -> bool + Send + 'static) {
        if self.record.is_none() {
            return;
        }
        let learned: Weak<Learned> = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(l) = learned.upgrade() {
                l.refresh().await;
                drop(l);
                tokio::time::sleep(if ordering() { REFRESH } else { REFRESH_IDLE }).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 10 * DAY_MS;

    fn handoff(provider: &str, country: &str, ago_ms: u64, status: DeliveryState, took_ms: u64) -> HandoffFigure {
        let at_ms = NOW - ago_ms;
        let settled_ms = crate::record::is_final(status).then_some(at_ms + took_ms);
        HandoffFigure { provider: provider.into(), country: country.into(), at_ms, status, settled_ms }
    }

    fn many(n: usize, provider: &str, country: &str, status: DeliveryState) -> Vec<HandoffFigure> {
        (0..n).map(|i| handoff(provider, country, 60_000 + i as u64, status, 1000 + i as u64 * 100)).collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn shares_and_percentiles_are_counted_per_window_and_a_silent_handoff_counts_once_it_is_late() {
        use DeliveryState::*;
        let figures = vec![
            handoff("a", "GB", 1000, Delivered, 2000),
            handoff("a", "GB", 2000, Delivered, 4000),
            handoff("a", "GB", 3000, Undelivered, 100),
            // Taken a minute ago and silent: not counted yet.
            handoff("a", "GB", 60_000, Queued, 0),
            // Silent for longer than the receipt wait: not delivered.
            handoff("a", "GB", RECEIPT_WAIT_MS + 1, Queued, 0),
            // Two hours ago: the day's, not the hour's.
            handoff("a", "GB", 2 * HOUR_MS, Delivered, 10_000),
            // Two days ago: neither.
            handoff("a", "GB", 2 * DAY_MS, Failed, 0),
        ];
        let table = tally(&figures, NOW);
        let row = table.row("a", "GB").unwrap();
        assert_eq!((row.hour.sent, row.hour.delivered, row.hour.failed, row.hour.counted), (5, 2, 1, 4));
        assert_eq!((row.day.sent, row.day.delivered, row.day.counted), (6, 3, 5));
        assert_eq!(row.hour.delivered_share(), Some(0.5));
        assert_eq!((row.hour.p50_ms, row.hour.p90_ms), (Some(2000), Some(4000)));
        assert_eq!((row.day.p50_ms, row.day.p90_ms), (Some(4000), Some(10_000)));
        assert!(!row.no_receipts);
    }

    #[test]
    fn a_provider_that_stops_delivering_in_one_country_goes_behind_there_only() {
        use DeliveryState::*;
        let mut figures = many(30, "a", "GB", Undelivered);
        figures.extend(many(30, "b", "GB", Delivered));
        figures.extend(many(30, "a", "US", Delivered));
        figures.extend(many(30, "b", "US", Delivered));
        let table = tally(&figures, NOW);
        let list = names(&["a", "b"]);
        assert_eq!(order(&list, "GB", &table, 0.05, 20, 0.5, 0), names(&["b", "a"]));
        assert_eq!(order(&list, "US", &table, 0.05, 20, 0.5, 0), names(&["a", "b"]), "a tie keeps the list");
        assert_eq!(order(&list, "FR", &table, 0.05, 20, 0.5, 0), names(&["a", "b"]), "no figures: as listed");
        assert_eq!(order(&list, "FR", &table, 0.05, 20, 0.01, 0), names(&["a", "b"]), "and no exploring");
        // The exploratory share still goes to a first.
        assert_eq!(order(&list, "GB", &table, 0.05, 20, 0.01, 7), names(&["a", "b"]));
        // Below the minimum of receipts, nothing moves.
        assert_eq!(order(&list, "GB", &table, 0.05, 31, 0.5, 0), names(&["a", "b"]));
    }

    #[test]
    fn a_provider_without_receipts_keeps_its_place_and_the_measured_ones_rank_around_it() {
        use DeliveryState::*;
        let mut figures = many(30, "a", "GB", Failed);
        figures.extend(many(30, "quiet", "GB", Queued));
        figures.extend(many(30, "c", "GB", Delivered));
        let table = tally(&figures, NOW);
        assert!(table.row("quiet", "GB").unwrap().no_receipts);
        let list = names(&["a", "quiet", "c"]);
        assert_eq!(order(&list, "GB", &table, 0.0, 20, 0.5, 0), names(&["c", "quiet", "a"]));
    }

    #[test]
    fn the_last_hour_outranks_the_day_once_it_has_enough() {
        use DeliveryState::*;
        // a delivered all day, and fails this hour.
        let mut figures: Vec<HandoffFigure> =
            (0..50).map(|i| handoff("a", "GB", 3 * HOUR_MS + i, Delivered, 1000)).collect();
        figures.extend(many(25, "a", "GB", Undelivered));
        figures.extend(many(25, "b", "GB", Delivered));
        let table = tally(&figures, NOW);
        assert_eq!(order(&names(&["a", "b"]), "GB", &table, 0.0, 20, 0.5, 0), names(&["b", "a"]));
    }
}
