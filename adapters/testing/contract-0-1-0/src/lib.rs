//! An adapter as built before `smsbridge:adapter@0.1.1`: bindings straight
//! from the 0.1.0 contract (`wit/`), no SDK. It accepts every message and
//! answers with the message id, so a test can see it ran.

wit_bindgen::generate!({ path: "wit", world: "adapter" });

use exports::smsbridge::adapter::sender::Guest;
use smsbridge::adapter::types::{Accepted, AdapterInfo, Message, SendError};

struct Old;

impl Guest for Old {
    fn info() -> AdapterInfo {
        AdapterInfo {
            name: "contract-0-1-0".into(),
            version: "0.1.0".into(),
            provider: "An adapter built for smsbridge:adapter@0.1.0".into(),
            config_keys: Vec::new(),
            default_hosts: Vec::new(),
        }
    }

    fn send(msg: Message) -> Result<Accepted, SendError> {
        Ok(Accepted { provider_id: format!("old-{}", msg.id), status: Some("queued".into()), segments: Some(1) })
    }
}

export!(Old);
