//! Test-only adapter whose `info()` traps: the host must refuse to load it.

use smsbridge_sdk::{Accepted, Adapter, AdapterInfo, Message, SendError};

struct BadInfo;

impl Adapter for BadInfo {
    fn info() -> AdapterInfo {
        panic!("info() traps on purpose")
    }

    fn send(msg: Message) -> Result<Accepted, SendError> {
        Ok(Accepted { provider_id: msg.id, status: None, segments: None })
    }
}

smsbridge_sdk::export_adapter!(BadInfo);
