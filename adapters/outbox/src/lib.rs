//! The embedded default adapter: delivers nothing, and appends each message
//! as one JSON line to `outbox.jsonl` in the one directory the host grants
//! this provider instance (its `data_dir`). A new install works end to end
//! with no provider account, and tests can read what was "sent".

use smsbridge_sdk::{Accepted, Adapter, AdapterInfo, Message, SendError, json::json};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

struct Outbox;

/// The file inside the granted directory (the host mounts it as `.`).
const OUTBOX_FILE: &str = "outbox.jsonl";

impl Adapter for Outbox {
    fn info() -> AdapterInfo {
        smsbridge_sdk::info!("outbox", "none: writes messages to outbox.jsonl")
            .optional("status", "Status word to report (default `queued`)")
            .build()
    }

    fn send(msg: Message) -> Result<Accepted, SendError> {
        let segments = smsbridge_segments::count(&msg.body).count;
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let line = json!({
            "id": msg.id,
            "to": msg.to,
            "body": msg.body,
            "sender": msg.sender,
            "segments": segments,
            "time_ms": ms as u64,
        });
        // One write of the whole line, so concurrent sends never interleave.
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(OUTBOX_FILE)
            .and_then(|mut f| f.write_all(&bytes))
            .map_err(|e| {
            SendError::Misconfigured(format!("cannot append to {OUTBOX_FILE} (is `data_dir` set and writable?): {e}"))
        })?;
        Ok(Accepted {
            provider_id: msg.id,
            status: Some(smsbridge_sdk::config::get("status").unwrap_or_else(|| "queued".into())),
            segments: Some(segments),
        })
    }
}

smsbridge_sdk::export_adapter!(Outbox);
