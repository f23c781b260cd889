//! One contract for every storage backend: the same cases run against each
//! implementation of `SharedState` (memory, PostgreSQL), `MessageRecord` and
//! `Queue` (SQLite, PostgreSQL), so the backends cannot drift apart. A case
//! says what the gateway relies on; a backend that answers otherwise fails
//! here, named.

mod common;

use smsbridge::config::{OnStateFailure, Setting, StateConfig};
use smsbridge::outcome::{Attempt, DeliveryState, Outcome};
use smsbridge::postgres::Postgres;
use smsbridge::record::{Entry, MessageRecord, NewHandoff, Queue, SqliteRecord};
use smsbridge::state::{Bucket, Claim, MemoryState, SharedState};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const KEY: &str = "contract-number-key";
const A: &str = "+447400123456";
const B: &str = "+447400654321";

/// How long a PostgreSQL instance's claim on a queued message lasts here:
/// short, so that a second instance can take over within a case.
const LEASE: Duration = Duration::from_millis(300);

/// A PostgreSQL server for one test, with a fresh database per case.
struct Server {
    pg: common::pg::Postgres,
    databases: std::sync::atomic::AtomicU32,
}

impl Server {
    fn start() -> Server {
        Server { pg: common::pg::Postgres::start(), databases: Default::default() }
    }

    /// The URL of a new, empty database.
    fn fresh(&self) -> String {
        let n = self.databases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.pg.execute(&format!("CREATE DATABASE case{n}"));
        format!("postgres://postgres@127.0.0.1:{}/case{n}", self.pg.port)
    }
}

/// An instance on the database at `url`, as `[state]` opens it.
fn postgres(url: &str) -> Arc<Postgres> {
    let config = StateConfig {
        url: Setting { value: url.to_string(), from_env: false },
        on_failure: OnStateFailure::Closed,
        ca: None,
        pool: 4,
        timeout: Duration::from_secs(10),
        lease: LEASE,
    };
    Postgres::open(&config, KEY).unwrap()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

// ---- SharedState ----

fn bucket(key: &str, limit: u32, window: Duration) -> Bucket {
    Bucket { key: key.into(), limit, window }
}

async fn limits(store: &dyn SharedState) {
    let minute = Duration::from_secs(60);
    let buckets = [bucket("route", 100, minute), bucket("number", 2, minute)];
    assert_eq!(store.admit(&buckets).await.unwrap(), Ok(()));
    assert_eq!(store.admit(&buckets).await.unwrap(), Ok(()));
    let full = store.admit(&buckets).await.unwrap().expect_err("the number's bucket is full");
    assert_eq!(full.index, 1, "the first full bucket is named");
    assert!(full.retry_after > Duration::from_secs(55) && full.retry_after <= minute, "{:?}", full.retry_after);
    // The route counted the two admitted events and not the refused one.
    assert!(store.admit(&[bucket("route", 2, minute)]).await.unwrap().is_err(), "two counted");
    assert_eq!(store.admit(&[bucket("route", 3, minute)]).await.unwrap(), Ok(()), "the refused one not");
    // Another key has its own window.
    assert_eq!(store.admit(&[bucket("other", 2, minute)]).await.unwrap(), Ok(()));

    // The window slides.
    let short = [bucket("sliding", 1, Duration::from_millis(400))];
    assert_eq!(store.admit(&short).await.unwrap(), Ok(()));
    assert!(store.admit(&short).await.unwrap().is_err());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.admit(&short).await.unwrap(), Ok(()), "room again once the event left the window");
}

async fn repeats(store: &dyn SharedState) {
    let ttl = Duration::from_secs(60);
    assert_eq!(store.claim("k", "f", ttl).await.unwrap(), Claim::New);
    assert_eq!(store.claim("k", "f", ttl).await.unwrap(), Claim::InFlight);
    store.complete("k", b"answer".to_vec(), ttl).await.unwrap();
    assert_eq!(store.claim("k", "f", ttl).await.unwrap(), Claim::Done(b"answer".to_vec()));
    assert_eq!(store.claim("k", "g", ttl).await.unwrap(), Claim::Conflict, "a key stands for one request");
    // A released key may be sent again.
    assert_eq!(store.claim("j", "f", ttl).await.unwrap(), Claim::New);
    store.release("j").await.unwrap();
    assert_eq!(store.claim("j", "f", ttl).await.unwrap(), Claim::New);
    // An expired answer is forgotten, even for another request.
    assert_eq!(store.claim("e", "f", ttl).await.unwrap(), Claim::New);
    store.complete("e", b"old".to_vec(), Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.claim("e", "g", ttl).await.unwrap(), Claim::New);
    // An abandoned claim runs out with its ttl.
    assert_eq!(store.claim("a", "f", Duration::from_millis(200)).await.unwrap(), Claim::New);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.claim("a", "f", ttl).await.unwrap(), Claim::New, "the crashed sender's claim ran out");
}

async fn sessions(store: &dyn SharedState) {
    let (idle, max) = (Duration::from_millis(400), Duration::from_millis(1000));
    store.session_open("s", idle, max).await.unwrap();
    assert!(store.session_touch("s", idle).await.unwrap());
    assert!(!store.session_touch("never-opened", idle).await.unwrap());
    store.session_close("s").await.unwrap();
    assert!(!store.session_touch("s", idle).await.unwrap(), "closed");

    store.session_open("idle", idle, max).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!store.session_touch("idle", idle).await.unwrap(), "idle too long");

    store.session_open("old", idle, max).await.unwrap();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let _ = store.session_touch("old", idle).await.unwrap();
    }
    assert!(!store.session_touch("old", idle).await.unwrap(), "past its most, used or not");
}

#[test]
fn shared_state_in_memory() {
    runtime().block_on(async {
        limits(&MemoryState::default()).await;
        repeats(&MemoryState::default()).await;
        sessions(&MemoryState::default()).await;
    });
}

#[test]
fn shared_state_on_postgres() {
    let server = Server::start();
    runtime().block_on(async {
        limits(&*postgres(&server.fresh())).await;
        repeats(&*postgres(&server.fresh())).await;
        sessions(&*postgres(&server.fresh())).await;
    });
}

// ---- MessageRecord ----

fn entry<'a>(id: &'a str, to: &'a str, provider_id: Option<&'a str>, attempts: &'a [Attempt]) -> Entry<'a> {
    Entry {
        id,
        route: "/v1/send",
        to,
        provider: "twilio",
        provider_id,
        segments: 2,
        attempts,
        status: DeliveryState::Queued,
        country: "GB",
    }
}

fn attempt(provider: &str, outcome: Outcome, ms: u64) -> Attempt {
    Attempt { provider: provider.into(), outcome, ms }
}

async fn a_message_reads_back_as_written(log: &dyn MessageRecord) {
    let attempts = [attempt("vonage", Outcome::Unavailable, 30), attempt("twilio", Outcome::Accepted, 12)];
    let before = now_ms();
    log.add(&entry("m1", A, Some("SM1"), &attempts)).await.unwrap();
    let after = now_ms();
    let m = log.get("m1").await.unwrap().expect("the message is found by id");
    assert_eq!(
        (m.id.as_str(), m.route.as_str(), m.to.as_str(), m.provider.as_str(), m.provider_id.as_deref(), m.segments),
        ("m1", "/v1/send", "+4474****3456", "twilio", Some("SM1"), 2),
        "the number is kept masked"
    );
    assert_eq!(m.attempts, attempts, "every attempt, in order");
    assert!(
        m.created_ms + 1000 >= before && m.created_ms <= after + 1000,
        "created {} not in {before}..{after}",
        m.created_ms
    );
    let timeline: Vec<DeliveryState> = m.statuses.iter().map(|s| s.status).collect();
    assert_eq!(timeline, [DeliveryState::Queued]);
    assert_eq!(m.statuses[0].at_ms, m.created_ms, "the first status is the message's");
    assert_eq!(log.get("no-such-id").await.unwrap(), None);

    // A send no provider took has no provider id, and no receipt finds it.
    log.add(&Entry { status: DeliveryState::Failed, ..entry("m2", B, None, &[]) }).await.unwrap();
    let m2 = log.get("m2").await.unwrap().unwrap();
    assert_eq!((m2.provider_id, m2.attempts.len()), (None, 0));
    assert_eq!(m2.statuses.iter().map(|s| s.status).collect::<Vec<_>>(), [DeliveryState::Failed]);
}

async fn receipts_extend_the_timeline(log: &dyn MessageRecord) {
    log.add(&entry("m1", A, Some("SM1"), &[])).await.unwrap();
    assert!(log.update_status("twilio", "SM1", DeliveryState::Sent).await.unwrap());
    assert!(log.update_status("twilio", "SM1", DeliveryState::Delivered).await.unwrap());
    assert!(!log.update_status("twilio", "SM-unknown", DeliveryState::Delivered).await.unwrap(), "no such message");
    assert!(!log.update_status("vonage", "SM1", DeliveryState::Delivered).await.unwrap(), "ids are per provider");
    let m = log.get("m1").await.unwrap().unwrap();
    let timeline: Vec<DeliveryState> = m.statuses.iter().map(|s| s.status).collect();
    assert_eq!(timeline, [DeliveryState::Queued, DeliveryState::Sent, DeliveryState::Delivered], "in arrival order");
    assert!(m.statuses.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
}

async fn listings_are_newest_first(log: &dyn MessageRecord) {
    for id in ["a1", "b1", "a2", "a3"] {
        let to = if id.starts_with('a') { A } else { B };
        log.add(&entry(id, to, None, &[])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let ids = |ms: Vec<smsbridge::record::RecordedMessage>| ms.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(ids(log.by_number(A, 10).await.unwrap()), ["a3", "a2", "a1"]);
    assert_eq!(ids(log.by_number(A, 2).await.unwrap()), ["a3", "a2"], "the latest, up to the limit");
    assert_eq!(ids(log.by_number(B, 10).await.unwrap()), ["b1"]);
    assert!(log.by_number("+447400000000", 10).await.unwrap().is_empty());
    assert_eq!(ids(log.recent(3).await.unwrap()), ["a3", "a2", "b1"]);
    let wanted = vec!["b1".to_string(), "gone".into(), "a1".into()];
    assert_eq!(ids(log.get_all(wanted).await.unwrap()), ["b1", "a1"], "in the order asked, the missing left out");
    let all = log.recent(10).await.unwrap();
    assert!(all.iter().all(|m| m.statuses.len() == 1), "each listed message carries its own timeline");
}

async fn callbacks_apply_once(log: &dyn MessageRecord) {
    assert!(log.first_callback("cb1").await.unwrap());
    assert!(!log.first_callback("cb1").await.unwrap(), "seen before");
    assert!(log.first_callback("cb2").await.unwrap());
    log.forget_callback("cb1").await.unwrap();
    assert!(log.first_callback("cb1").await.unwrap(), "forgotten: its retry applies");
}

async fn purge_removes_what_is_old(log: &dyn MessageRecord) {
    let attempts = [attempt("twilio", Outcome::Accepted, 1)];
    log.add(&entry("old", A, Some("SM-old"), &attempts)).await.unwrap();
    assert!(log.first_callback("old-callback").await.unwrap());
    tokio::time::sleep(Duration::from_millis(50)).await;
    log.add(&entry("new", A, Some("SM-new"), &attempts)).await.unwrap();
    assert_eq!(log.purge(Duration::from_millis(25)).await.unwrap(), 1);
    assert_eq!(log.get("old").await.unwrap(), None);
    assert!(!log.update_status("twilio", "SM-old", DeliveryState::Delivered).await.unwrap(), "its statuses went too");
    assert!(log.first_callback("old-callback").await.unwrap(), "callbacks seen are purged with the messages");
    assert!(log.get("new").await.unwrap().is_some(), "newer messages stay");
    assert_eq!(log.purge(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(log.by_number(A, 10).await.unwrap().len(), 1);
}

/// Every `MessageRecord` case, each on a store from `fresh`.
async fn message_log<L: MessageRecord + 'static>(fresh: impl Fn() -> Arc<L>) {
    a_message_reads_back_as_written(&*fresh()).await;
    receipts_extend_the_timeline(&*fresh()).await;
    listings_are_newest_first(&*fresh()).await;
    callbacks_apply_once(&*fresh()).await;
    purge_removes_what_is_old(&*fresh()).await;
}

#[test]
fn message_log_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicU32::new(0);
    let fresh = || {
        let path = dir.path().join(format!("m{}.db", n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
        Arc::new(SqliteRecord::open(&path, Some(KEY)).unwrap())
    };
    runtime().block_on(message_log(fresh));
}

#[test]
fn message_log_on_postgres() {
    let server = Server::start();
    runtime().block_on(message_log(|| postgres(&server.fresh())));
}

// ---- Queue ----

fn none() -> HashSet<String> {
    HashSet::new()
}

fn ids(queued: &[smsbridge::record::Queued]) -> Vec<&str> {
    queued.iter().map(|q| q.id.as_str()).collect()
}

async fn due_messages_come_oldest_first_with_their_text(queue: &dyn Queue) {
    let minute = Duration::from_secs(60);
    queue.enqueue("q1", "/v1/queued", A, "Code 111111", minute).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    queue.enqueue("q2", "/v1/queued", B, "Code 222222", Duration::from_secs(120)).await.unwrap();
    let due = queue.due(10, &none()).await.unwrap();
    assert_eq!(ids(&due), ["q1", "q2"]);
    let q1 = &due[0];
    assert_eq!((q1.route.as_str(), q1.to.as_str(), q1.body.as_str()), ("/v1/queued", A, "Code 111111"));
    assert_eq!((q1.tries, q1.uncertain.len()), (0, 0));
    let expires = now_ms() + 60_000;
    assert!(q1.expires_ms.abs_diff(expires) < 2000, "valid for its validity: {} vs {expires}", q1.expires_ms);
    assert!(due[1].expires_ms > q1.expires_ms);
    // What a worker holds is not handed out again.
    let busy: HashSet<String> = ["q1".to_string(), "q2".into()].into();
    assert!(queue.due(10, &busy).await.unwrap().is_empty());
    queue.dequeue("q1").await.unwrap();
    queue.reschedule("q2", Duration::ZERO, &[]).await.unwrap();
    let due = queue.due(10, &none()).await.unwrap();
    assert_eq!(ids(&due), ["q2"], "a dequeued message is gone");
    assert_eq!(due[0].tries, 1, "a rescheduled message counts its tries");
}

async fn the_limit_and_busy_messages_are_respected(queue: &dyn Queue) {
    for id in ["l1", "l2", "l3"] {
        queue.enqueue(id, "/v1/queued", A, "Code", Duration::from_secs(60)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let busy: HashSet<String> = ["l1".to_string()].into();
    let first = queue.due(1, &busy).await.unwrap();
    assert_eq!(ids(&first), ["l2"], "the oldest that is not busy, up to the limit");
    let busy: HashSet<String> = ["l1".to_string(), "l2".into()].into();
    assert_eq!(ids(&queue.due(5, &busy).await.unwrap()), ["l3"]);
}

async fn a_later_try_waits_and_remembers_who_may_have_it(queue: &dyn Queue) {
    queue.enqueue("r1", "/v1/queued", A, "Code", Duration::from_secs(60)).await.unwrap();
    assert_eq!(ids(&queue.due(10, &none()).await.unwrap()), ["r1"]);
    queue.mark_sending("r1", "twilio").await.unwrap();
    queue.reschedule("r1", Duration::from_millis(400), &["twilio".into()]).await.unwrap();
    assert!(queue.due(10, &none()).await.unwrap().is_empty(), "not due before its wait");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let due = queue.due(10, &none()).await.unwrap();
    assert_eq!(ids(&due), ["r1"]);
    assert_eq!(due[0].uncertain, ["twilio"], "a provider that may have it is never sent it again");
    // A refusal clears the mark: the provider left nothing.
    queue.mark_sending("r1", "vonage").await.unwrap();
    queue.clear_sending("r1").await.unwrap();
    queue.reschedule("r1", Duration::ZERO, &["twilio".into()]).await.unwrap();
    assert_eq!(queue.due(10, &none()).await.unwrap()[0].uncertain, ["twilio"]);
}

/// A message whose request was on its way when its instance stopped: the
/// instance that takes it over (a restart, or another instance) treats that
/// provider as one that may have it.
async fn a_send_cut_short_stays_in_doubt<Q: Queue + ?Sized>(first: Arc<Q>, next: impl AsyncFnOnce() -> Arc<Q>) {
    first.enqueue("c1", "/v1/queued", A, "Code 333333", Duration::from_secs(60)).await.unwrap();
    assert_eq!(ids(&first.due(10, &none()).await.unwrap()), ["c1"]);
    first.mark_sending("c1", "twilio").await.unwrap();
    drop(first);
    let next = next().await;
    next.recover().await.unwrap();
    let due = next.due(10, &none()).await.unwrap();
    assert_eq!(ids(&due), ["c1"], "the message is not lost");
    assert_eq!(due[0].uncertain, ["twilio"]);
    assert_eq!(due[0].body, "Code 333333");
}

/// A delivered message waits for its receipt in the queue: an
/// `undelivered` receipt from the provider it waits on makes it due at
/// once, a late one from an earlier provider does nothing, and `delivered`
/// from any provider ends the wait. Each provider that took it is a handoff.
async fn a_fallback_waits_for_the_receipt<R: MessageRecord + Queue + ?Sized>(r: &R) {
    let attempts = [attempt("twilio", Outcome::Accepted, 12)];
    r.add(&entry("w1", A, Some("SM1"), &attempts)).await.unwrap();
    let (validity, after) = (Duration::from_secs(60), Duration::from_millis(400));
    r.watch("w1", "/v1/send", A, "Code 444444", validity, after, &["twilio".into()]).await.unwrap();
    assert!(r.due(10, &none()).await.unwrap().is_empty(), "not due before its time");
    assert!(r.update_status("twilio", "SM1", DeliveryState::Sent).await.unwrap());
    assert!(r.due(10, &none()).await.unwrap().is_empty(), "`sent` says nothing of delivery");
    assert!(r.update_status("twilio", "SM1", DeliveryState::Undelivered).await.unwrap());
    let due = r.due(10, &none()).await.unwrap();
    assert_eq!(ids(&due), ["w1"], "undelivered: due at once");
    assert_eq!((due[0].watching.as_deref(), &due[0].uncertain[..]), (Some("twilio"), &["twilio".to_string()][..]));
    assert_eq!((due[0].to.as_str(), due[0].body.as_str()), (A, "Code 444444"));

    let why = "twilio reported it undelivered";
    let fallback = [attempt("vonage", Outcome::Unavailable, 5), attempt("vonage", Outcome::Accepted, 9)];
    let handoff = NewHandoff { provider: "vonage", provider_id: "VN1", why, segments: 3, country: "GB" };
    r.add_fallback("w1", &fallback, Some(handoff)).await.unwrap();
    r.watch_next("w1", after, &["twilio".into(), "vonage".into()]).await.unwrap();
    // A late receipt from the first provider moves nothing.
    assert!(r.update_status("twilio", "SM1", DeliveryState::Failed).await.unwrap());
    assert!(r.due(10, &none()).await.unwrap().is_empty(), "a receipt after the fallback sends nothing");

    let m = r.get("w1").await.unwrap().unwrap();
    let tried: Vec<(&str, Outcome)> = m.attempts.iter().map(|a| (a.provider.as_str(), a.outcome)).collect();
    assert_eq!(tried, [("twilio", Outcome::Accepted), ("vonage", Outcome::Unavailable), ("vonage", Outcome::Accepted)]);
    let handoffs: Vec<(&str, &str, &str, u32, DeliveryState)> = m
        .handoffs
        .iter()
        .map(|h| (h.provider.as_str(), h.provider_id.as_str(), h.why.as_str(), h.segments, h.status))
        .collect();
    assert_eq!(
        handoffs,
        [("twilio", "SM1", "first", 2, DeliveryState::Failed), ("vonage", "VN1", why, 3, DeliveryState::Queued)]
    );
    assert!(m.handoffs[0].settled_ms.is_some(), "settled by its first final receipt");
    let timeline: Vec<(DeliveryState, Option<&str>)> =
        m.statuses.iter().map(|s| (s.status, s.provider.as_deref())).collect();
    use DeliveryState::*;
    assert_eq!(
        timeline,
        [
            (Queued, None),
            (Sent, Some("twilio")),
            (Undelivered, Some("twilio")),
            (Queued, Some("vonage")),
            (Failed, Some("twilio"))
        ]
    );

    assert!(r.update_status("vonage", "VN1", DeliveryState::Delivered).await.unwrap());
    tokio::time::sleep(after + Duration::from_millis(100)).await;
    assert!(r.due(10, &none()).await.unwrap().is_empty(), "delivered: the wait is over");
    let figures = r.handoffs_since(0).await.unwrap();
    let mut read: Vec<(&str, &str, DeliveryState, bool)> =
        figures.iter().map(|f| (f.provider.as_str(), f.country.as_str(), f.status, f.settled_ms.is_some())).collect();
    read.sort_by_key(|f| f.0);
    assert_eq!(read, [("twilio", "GB", Failed, true), ("vonage", "GB", Delivered, true)]);
    assert!(r.handoffs_since(now_ms() + 60_000).await.unwrap().is_empty(), "only those since");
}

#[test]
fn queue_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicU32::new(0);
    let path = |n: u32| dir.path().join(format!("q{n}.db"));
    let fresh = || {
        Arc::new(SqliteRecord::open(&path(n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)), Some(KEY)).unwrap())
    };
    runtime().block_on(async {
        due_messages_come_oldest_first_with_their_text(&*fresh()).await;
        the_limit_and_busy_messages_are_respected(&*fresh()).await;
        a_later_try_waits_and_remembers_who_may_have_it(&*fresh()).await;
        a_fallback_waits_for_the_receipt(&*fresh()).await;
        let first = fresh();
        let again = path(n.load(std::sync::atomic::Ordering::Relaxed) - 1);
        a_send_cut_short_stays_in_doubt(first, async || Arc::new(SqliteRecord::open(&again, Some(KEY)).unwrap())).await;
    });
}

#[test]
fn queue_on_postgres() {
    let server = Server::start();
    runtime().block_on(async {
        due_messages_come_oldest_first_with_their_text(&*postgres(&server.fresh())).await;
        the_limit_and_busy_messages_are_respected(&*postgres(&server.fresh())).await;
        a_later_try_waits_and_remembers_who_may_have_it(&*postgres(&server.fresh())).await;
        a_fallback_waits_for_the_receipt(&*postgres(&server.fresh())).await;
        let url = server.fresh();
        let next = async || {
            // Another instance takes the message once the first one's claim ran out.
            tokio::time::sleep(LEASE + Duration::from_millis(100)).await;
            postgres(&url)
        };
        a_send_cut_short_stays_in_doubt(postgres(&url), next).await;
    });
}
