//! The embedded record's own cases; the contract every backend meets is
//! in host/tests/contract.rs.

use super::schema::MIGRATIONS;
use super::*;
use crate::outcome::{Attempt, Outcome};
use crate::record::Queue;
use std::collections::HashSet;

fn entry<'a>(id: &'a str, to: &'a str, attempts: &'a [Attempt]) -> Entry<'a> {
    Entry {
        id,
        route: "/v1/send",
        to,
        provider: "twilio",
        provider_id: Some("SM1"),
        segments: 1,
        attempts,
        status: DeliveryState::Queued,
        country: "GB",
    }
}

#[tokio::test]
async fn a_message_is_found_by_id_and_number_and_keeps_its_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("var/messages.db");
    let attempts = [Attempt { provider: "twilio".into(), outcome: Outcome::Accepted, ms: 12 }];
    let record = SqliteRecord::open(&path, None).unwrap();
    record.add(&entry("m1", "+447400123456", &attempts)).await.unwrap();
    assert!(record.update_status("twilio", "SM1", DeliveryState::Delivered).await.unwrap());
    assert!(!record.update_status("twilio", "SM-unknown", DeliveryState::Delivered).await.unwrap());

    let m = record.get("m1").await.unwrap().unwrap();
    assert_eq!(m.to, "+4474****3456");
    assert_eq!(m.attempts, attempts);
    let timeline: Vec<&str> = m.statuses.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(timeline, ["queued", "delivered"]);
    assert_eq!(record.by_number("+447400123456", 10).await.unwrap(), vec![m.clone()]);
    assert_eq!(record.recent(10).await.unwrap(), vec![m]);
    assert!(record.by_number("+447400123457", 10).await.unwrap().is_empty());
    drop(record);

    // The key survives a restart, so lookups keep working; it lives in a
    // file of its own, not beside the hashes it keys; the database holds
    // no number in the clear.
    let key = std::fs::read(path.with_extension("db.key")).unwrap();
    let record = SqliteRecord::open(&path, None).unwrap();
    assert_eq!(record.by_number("+447400123456", 10).await.unwrap().len(), 1);
    drop(record);
    let bytes = std::fs::read(&path).unwrap();
    let wal = std::fs::read(path.with_extension("db-wal")).unwrap_or_default();
    for file in [&bytes, &wal] {
        assert!(!file.windows(12).any(|w| w == b"447400123456"), "the number is in the file");
        assert!(!file.windows(key.len()).any(|w| w == key), "the number key is in the database");
    }
}

#[tokio::test]
async fn the_providers_that_may_have_a_queued_message_are_a_list_no_name_splits() {
    let dir = tempfile::tempdir().unwrap();
    let record = SqliteRecord::open(&dir.path().join("m.db"), None).unwrap();
    async fn uncertain(record: &SqliteRecord) -> Vec<Vec<String>> {
        record.due(10, &HashSet::new()).await.unwrap().into_iter().map(|q| q.uncertain).collect()
    }
    record.enqueue("q1", "/v1/send", "+447400123456", "Code 1", Duration::from_secs(60)).await.unwrap();
    record.mark_sending("q1", "x,y").await.unwrap();
    assert_eq!(uncertain(&record).await, [vec!["x,y".to_string()]], "still marked as sending");
    assert_eq!(record.recover().await.unwrap(), 1);
    assert_eq!(uncertain(&record).await, [vec!["x,y".to_string()]], "after a restart");
    record.reschedule("q1", Duration::ZERO, &["x,y".into(), "z".into()]).await.unwrap();
    assert_eq!(uncertain(&record).await, [vec!["x,y".to_string(), "z".into()]]);
    // A file an older version wrote keeps its meaning.
    record.inner.db.lock().unwrap().execute("UPDATE queue SET uncertain = 'a,b,'", []).unwrap();
    assert_eq!(uncertain(&record).await, [vec!["a".to_string(), "b".into()]]);
}

#[test]
fn the_schema_is_versioned_and_a_newer_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    // A file from before versioning (the first schema, user_version 0)
    // adopts it as it is, and its sends become handoffs.
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch(MIGRATIONS[0]).unwrap();
    old.execute_batch(
        "INSERT INTO messages VALUES ('m0', 1, '/v1/send', '+4474****3456', 'h', 'twilio', 'SM0', 1);
         INSERT INTO statuses VALUES ('m0', 'queued', 1), ('m0', 'delivered', 2);",
    )
    .unwrap();
    drop(old);
    let record = SqliteRecord::open(&path, None).unwrap();
    let version = |record: &SqliteRecord| -> usize {
        record.inner.db.lock().unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(version(&record), MIGRATIONS.len());
    let handoff: (String, String, String) = record
        .inner
        .db
        .lock()
        .unwrap()
        .query_row("SELECT provider, provider_id, status FROM handoffs WHERE message_id = 'm0'", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(handoff, ("twilio".into(), "SM0".into(), "delivered".into()));
    drop(record);
    assert_eq!(version(&SqliteRecord::open(&path, None).unwrap()), MIGRATIONS.len());
    let newer = rusqlite::Connection::open(&path).unwrap();
    newer.pragma_update(None, "user_version", MIGRATIONS.len() + 1).unwrap();
    drop(newer);
    let e = format!("{:#}", SqliteRecord::open(&path, None).err().expect("a newer file is refused"));
    assert!(e.contains("from a newer smsbridge"), "{e}");
}

#[tokio::test]
async fn purge_removes_old_messages_with_their_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let record = SqliteRecord::open(&dir.path().join("m.db"), Some("operator-key")).unwrap();
    record.add(&entry("old", "+447400123456", &[])).await.unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(record.purge(Duration::from_millis(10)).await.unwrap(), 1);
    assert_eq!(record.get("old").await.unwrap(), None);
    record.add(&entry("new", "+447400123456", &[])).await.unwrap();
    assert_eq!(record.purge(Duration::from_secs(3600)).await.unwrap(), 0);
}
