//! The console's pages, as maud templates: every value is escaped by the
//! template unless it is marked as markup, so no page can carry a
//! provider's, an adapter's or a caller's text as HTML.

use crate::config::Config;
use crate::learned::Table;
use crate::outcome::Attempt;
use crate::record::RecordedMessage;
use crate::registry::LoadError;
use crate::runtime::Adapter;
use crate::stats::{Snapshot, View};
use maud::{DOCTYPE, Markup, html};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A whole page around `body`.
pub(super) fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · smsbridge" }
                meta name="viewport" content="width=device-width, initial-scale=1";
                link rel="stylesheet" href="/admin/console.css";
            }
            body { (body) }
        }
    }
}

/// The sign-in form; `login` is its CSRF value (also in a cookie).
pub(super) fn sign_in(why: Option<&str>, login: &str) -> Markup {
    html! {
        main.narrow {
            h1 { "smsbridge" }
            h2 { "Sign in" }
            @if let Some(why) = why { p.bad { (why) } }
            form method="post" action="/admin/login" {
                input type="hidden" name="csrf" value=(login);
                label { "Admin token " input type="password" name="token" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
            p.quiet { "The token is " code { "[admin] token" } " of smsbridge's config." }
        }
    }
}

/// The console: its header, then each section.
pub(super) fn console(csrf: &str, sections: [Markup; 5]) -> Markup {
    html! {
        header {
            h1 { "smsbridge" }
            form method="post" action="/admin/logout" {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Sign out" }
            }
        }
        main { @for section in sections { (section) } }
    }
}

/// A provider as the "Now" table shows it.
pub(super) struct ProviderNow<'a> {
    pub name: &'a str,
    pub adapter: &'a str,
    pub circuit_open: bool,
    pub in_flight: u32,
    pub max_in_flight: u32,
    /// Its SMPP binds' state, when it binds to an SMSC.
    pub binds: Option<String>,
}

fn summary_cells(view: Option<&View>, last_5m: bool) -> Markup {
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.0} ms")).unwrap_or_else(|| "–".into());
    let Some(view) = view else {
        return html! { td { "0" } td { "0" } td { "–" } td { "–" } };
    };
    let s = if last_5m { &view.last_5m } else { &view.last_60m };
    let failed = s.total - s.outcomes.get("accepted").copied().unwrap_or(0);
    html! { td { (s.total) } td { (failed) } td { (ms(s.p50_ms)) } td { (ms(s.p99_ms)) } }
}

/// Is delivery working now: per provider and per route.
pub(super) fn now(snapshot: &Snapshot, providers: &[ProviderNow], config: &Config, now_s: u64) -> Markup {
    html! {
        section #now {
            h2 { "Now" }
            table {
                thead { tr {
                    th { "provider" } th { "adapter" } th { "circuit" } th { "in flight" }
                    th { "5 min: sends" } th { "failed" } th { "p50" } th { "p99" }
                    th { "60 min: sends" } th { "failed" } th { "p50" } th { "p99" }
                } }
                tbody {
                    @for p in providers {
                        @let view = snapshot.providers.get(p.name);
                        tr.provider {
                            td { (p.name) }
                            td {
                                (p.adapter)
                                @if let Some(binds) = &p.binds { br; small.binds { (binds) } }
                            }
                            td { @if p.circuit_open { span.bad { "open" } } @else { span.good { "closed" } } }
                            td { (p.in_flight) " / " (p.max_in_flight) }
                            (summary_cells(view, true))
                            (summary_cells(view, false))
                        }
                    }
                }
            }
            (chart(&snapshot.providers, now_s))
            table {
                thead { tr { th { "route" } th { "providers" } th { "sends (60 min)" } th { "refused (60 min)" } } }
                tbody {
                    @for r in &config.routes {
                        @let sends = snapshot.routes.get(&r.path).map(|v| v.last_60m.total).unwrap_or(0);
                        @let refusals = snapshot
                            .refusals
                            .get(&r.path)
                            .map(|v| v.last_60m.outcomes.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", "))
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "none".into());
                        tr.route { td { (r.path) } td { (r.providers.join(", ")) } td { (sends) } td { (refusals) } }
                    }
                }
            }
        }
    }
}

/// Attempts per minute over the last hour, all providers, accepted and not:
/// an inline SVG, drawn with attributes only (the CSP allows no inline style).
fn chart(providers: &BTreeMap<String, View>, now_s: u64) -> Markup {
    let now = now_s / 60;
    let mut per_minute = [(0u64, 0u64); 60];
    for view in providers.values() {
        for m in &view.per_minute {
            let age = now.saturating_sub(m.at_ms / 60_000);
            if age < 60 {
                let slot = &mut per_minute[59 - age as usize];
                for (outcome, n) in &m.outcomes {
                    if *outcome == "accepted" { slot.0 += n } else { slot.1 += n }
                }
            }
        }
    }
    let top = per_minute.iter().map(|(a, f)| a + f).max().unwrap_or(0).max(1);
    let height = |n: u64| n as f64 / top as f64 * 80.0;
    let px = |v: f64| format!("{v:.1}");
    html! {
        figure {
            svg viewBox="0 0 600 80" width="600" height="80" role="img" aria-label="attempts per minute, last hour" {
                @for (i, (accepted, failed)) in per_minute.iter().enumerate() {
                    @let (ha, hf) = (height(*accepted), height(*failed));
                    rect x=(i * 10) y=(px(80.0 - ha)) width="8" height=(px(ha)) fill="#2e7d32" {}
                    rect x=(i * 10) y=(px(80.0 - ha - hf)) width="8" height=(px(hf)) fill="#c62828" {}
                }
            }
            figcaption { "Attempts per minute over the last hour: accepted (green), failed (red). Top: " (top) "." }
        }
    }
}

/// The test-send form, with the result of the last one.
pub(super) fn send(config: &Config, csrf: &str, result: Option<Markup>) -> Markup {
    html! {
        section #send {
            h2 { "Send a test message" }
            @if let Some(result) = result { (result) }
            form method="post" action="/admin/console/send" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Route " select name="route" { @for r in &config.routes { option { (r.path) } } } }
                label { "Number " input name="phone" inputmode="tel" required placeholder="+44…"; }
                label { "Text " input name="message" required value="smsbridge test message"; }
                button type="submit" { "Send" }
            }
            p.quiet { "Goes through the route's limits and providers like any send; the caller's auth is not asked." }
        }
    }
}

/// A test send that went out (or was queued); `to` masked.
pub(super) fn sent(queued: bool, id: &str, to: &str, via: &str, attempts: &[Attempt]) -> Markup {
    html! {
        div.result.good {
            p { (if queued { "queued" } else { "sent" }) ": message " code { (id) } " to " (to) " through " (via) }
            (attempts_list(attempts))
        }
    }
}

/// A test send refused as the caller would be told, the number masked.
pub(super) fn refused(status: u16, code: &str, message: &str, attempts: &[Attempt]) -> Markup {
    html! {
        div.result.bad {
            p { "not sent: " (status) " " code { (code) } ", " (message) }
            (attempts_list(attempts))
        }
    }
}

fn attempts_list(attempts: &[Attempt]) -> Markup {
    html! {
        @if !attempts.is_empty() {
            ol.attempts {
                @for a in attempts { li { (a.provider) " — " (a.outcome.as_str()) " in " (a.ms) " ms" } }
            }
        }
    }
}

/// What the messages section lists.
pub(super) enum Listing {
    NoRecord,
    BadNumber(String),
    Recent(anyhow::Result<Vec<RecordedMessage>>),
    /// Messages to a number, masked.
    To(String, anyhow::Result<Vec<RecordedMessage>>),
}

pub(super) fn messages(listing: &Listing, csrf: &str) -> Markup {
    let list = match listing {
        Listing::Recent(list) | Listing::To(_, list) => Some(list),
        _ => None,
    };
    html! {
        section #messages {
            h2 { "Messages" }
            form method="post" action="/admin/" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Number " input name="number" inputmode="tel" placeholder="+44…"; }
                button type="submit" { "Find" }
            }
            @match listing {
                Listing::NoRecord => p.quiet { "No message record: add a [record] section to keep one." },
                Listing::BadNumber(why) => p.bad { "That number " (why) },
                Listing::To(masked, _) => p { "Messages to " (masked) },
                Listing::Recent(_) => {},
            }
            @match list {
                Some(Ok(list)) if list.is_empty() => p.quiet { "No messages." },
                Some(Ok(list)) => table {
                    thead { tr {
                        th { "when" } th { "id" } th { "route" } th { "to" } th { "provider" } th { "attempts" } th { "status" }
                    } }
                    tbody { @for m in list { (message_row(m)) } }
                },
                Some(Err(_)) => p.bad { "The message record could not be read." },
                None => {},
            }
        }
    }
}

fn message_row(m: &RecordedMessage) -> Markup {
    let when = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(m.created_ms));
    let timeline: Vec<String> = m
        .statuses
        .iter()
        .map(|s| match &s.provider {
            Some(p) => format!("{p}: {}", s.status.as_str()),
            None => s.status.as_str().to_string(),
        })
        .collect();
    html! {
        tr.message {
            td { (when) }
            td { code { (m.id) } }
            td { (m.route) }
            // The record keeps numbers masked; masked again in case.
            td { (crate::phone::mask_in(&m.to)) }
            td {
                (m.provider)
                @for h in m.handoffs.iter().skip(1) {
                    br; small.fallback { "fallback to " (h.provider) " (" (h.segments) " parts): " (h.why) }
                }
            }
            td { (attempts_list(&m.attempts)) }
            td { (timeline.join(" → ")) }
        }
    }
}

/// Which provider delivers where: per provider and destination country,
/// the last hour and day.
pub(super) fn delivered(table: &Table) -> Markup {
    let share = |v: Option<f64>| v.map(|v| format!("{:.0} %", v * 100.0)).unwrap_or_else(|| "–".into());
    let ms = |v: Option<u64>| v.map(|v| format!("{:.1} s", v as f64 / 1000.0)).unwrap_or_else(|| "–".into());
    html! {
        section #delivered {
            h2 { "Delivered" }
            @if table.rows.is_empty() {
                p.quiet { "No handoffs in the last day." }
            } @else {
                table {
                    thead { tr {
                        th { "provider" } th { "country" }
                        th { "hour: sent" } th { "delivered" } th { "failed" } th { "p50" } th { "p90" }
                        th { "day: sent" } th { "delivered" } th { "failed" } th { "p50" } th { "p90" }
                    } }
                    tbody {
                        @for r in &table.rows {
                            tr.delivered {
                                td { (r.provider) }
                                td { (r.country) }
                                @for w in [&r.hour, &r.day] {
                                    td { (w.sent) }
                                    @if r.no_receipts {
                                        td colspan="4" { span.quiet { "no receipts" } }
                                    } @else {
                                        td { (share(w.delivered_share())) }
                                        td { (share(w.failed_share())) }
                                        td { (ms(w.p50_ms)) }
                                        td { (ms(w.p90_ms)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The adapters loaded and failed, and the latest reloads.
pub(super) fn adapters(
    loaded: &[(String, std::sync::Arc<Adapter>)],
    errors: &BTreeMap<String, LoadError>,
    reloads: &[(SystemTime, String, &'static str)],
) -> Markup {
    let unloaded = errors.iter().filter(|(n, _)| !loaded.iter().any(|(l, _)| l == *n));
    html! {
        section #adapters {
            h2 { "Adapters" }
            table {
                thead { tr { th { "name" } th { "version" } th { "source" } th { "SHA-256" } th { "loaded" } th { "last error" } } }
                tbody {
                    @for (name, a) in loaded {
                        tr.adapter {
                            td { (name) }
                            td { (a.info.version) }
                            td { (a.source) }
                            td { code { (a.sha256[..a.sha256.len().min(16)]) } }
                            td { (humantime::format_rfc3339_seconds(a.loaded_at)) }
                            td { @if let Some(e) = errors.get(name) { (e.message) } }
                        }
                    }
                    @for (name, e) in unloaded {
                        tr.adapter { td { (name) } td colspan="4" { "not loaded" } td.bad { (e.message) } }
                    }
                }
            }
            h3 { "Recent reloads" }
            @if reloads.is_empty() {
                p.quiet { "None since start." }
            } @else {
                ol.reloads {
                    @for (at, adapter, result) in reloads.iter().rev() {
                        li { (humantime::format_rfc3339_seconds(*at)) " " (adapter) " " (result) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_by_the_template() {
        let html = sign_in(Some("<script>alert('x')</script> & \"q\""), "v").into_string();
        assert!(html.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; &quot;q&quot;"), "{html}");
        assert!(!html.contains("<script>"));
        let attr = sign_in(None, "\"><img src=x>").into_string();
        assert!(attr.contains("value=\"&quot;&gt;&lt;img src=x&gt;\""), "{attr}");
    }

    #[test]
    fn a_message_row_shows_each_fallback_why_and_whose_receipt_each_status_was() {
        use crate::outcome::DeliveryState::*;
        use crate::record::{Handoff, StatusAt};
        let handoff = |provider: &str, why: &str, status| Handoff {
            provider: provider.into(),
            provider_id: format!("{provider}-1"),
            why: why.into(),
            segments: 2,
            at_ms: 0,
            status,
            settled_ms: None,
        };
        let status = |status, provider: Option<&str>| StatusAt { status, at_ms: 0, provider: provider.map(Into::into) };
        let m = RecordedMessage {
            id: "m1".into(),
            route: "/v1/send".into(),
            to: "+4474****3456".into(),
            provider: "a".into(),
            provider_id: Some("a-1".into()),
            segments: 2,
            created_ms: 0,
            attempts: Vec::new(),
            statuses: vec![status(Queued, None), status(Undelivered, Some("a")), status(Queued, Some("b"))],
            handoffs: vec![handoff("a", "first", Undelivered), handoff("b", "a reported it undelivered", Queued)],
        };
        let html = message_row(&m).into_string();
        assert!(html.contains("fallback to b (2 parts): a reported it undelivered"), "{html}");
        assert!(html.contains("queued → a: undelivered → b: queued"), "{html}");
    }
}
