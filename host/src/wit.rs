//! The WIT contract (`wit/adapter.wit`) as Rust: the generated bindings,
//! kept private, and the few types the rest of the host may name. Every
//! conversion between a generated type and a host type is here, once.
//!
//! Only `runtime` (which implements the imports and calls the exports) and
//! `outbound` (which serves the `http` import) use this module; nothing
//! above `runtime` names a type of the contract.

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        // The superset world: `receipts` is looked up per adapter, as only
        // some export it.
        world: "adapter-with-receipts",
        imports: { "smsbridge:adapter/http.send": async },
        exports: { default: async },
    });
}

use crate::outcome::{Callback, DeliveryState, Failure, Outgoing, Receipt, ReceiptRefusal};

pub use generated::smsbridge::adapter::http::{Error as HttpError, Request as HttpRequest, Response as HttpResponse};
use generated::smsbridge::adapter::types::Message;
pub use generated::smsbridge::adapter::types::{AdapterInfo, ConfigKey};

/// What `runtime` needs to link and call a component.
pub(crate) mod host {
    pub use super::generated::exports::smsbridge::adapter::receipts::GuestIndices as ReceiptsIndices;
    pub use super::generated::exports::smsbridge::adapter::sender::GuestIndices as SenderIndices;
    pub use super::generated::smsbridge::adapter::config::Host as ConfigHost;
    pub use super::generated::smsbridge::adapter::http::Host as HttpHost;
    pub use super::generated::smsbridge::adapter::log::{Host as LogHost, Level as LogLevel};
    pub use super::generated::smsbridge::adapter::{config as config_import, http as http_import, log as log_import};
}

use generated::exports::smsbridge::adapter::receipts::{self, CallbackError, DeliveryStatus, StatusUpdate};
use generated::smsbridge::adapter::types::SendError;

impl From<SendError> for Failure {
    fn from(e: SendError) -> Failure {
        match e {
            SendError::InvalidRecipient(s) => Failure::InvalidRecipient(s),
            SendError::Rejected(s) => Failure::Rejected(s),
            SendError::Unauthorized(s) => Failure::Unauthorized(s),
            SendError::RateLimited(secs) => Failure::RateLimited(secs),
            SendError::Unavailable(s) => Failure::Unavailable(s),
            SendError::Misconfigured(s) => Failure::Misconfigured(s),
        }
    }
}

impl From<Outgoing> for Message {
    fn from(m: Outgoing) -> Message {
        Message { id: m.id, to: m.to, body: m.body, sender: m.sender, params: Vec::new() }
    }
}

impl From<CallbackError> for ReceiptRefusal {
    fn from(e: CallbackError) -> ReceiptRefusal {
        match e {
            CallbackError::BadSignature(why) => ReceiptRefusal::BadSignature(why),
            CallbackError::Malformed(why) => ReceiptRefusal::Malformed(why),
            CallbackError::Misconfigured(why) => ReceiptRefusal::Failed(why),
        }
    }
}

impl From<StatusUpdate> for Receipt {
    fn from(u: StatusUpdate) -> Receipt {
        let state = match u.status {
            DeliveryStatus::Queued => DeliveryState::Queued,
            DeliveryStatus::Sent => DeliveryState::Sent,
            DeliveryStatus::Delivered => DeliveryState::Delivered,
            DeliveryStatus::Undelivered => DeliveryState::Undelivered,
            DeliveryStatus::Failed => DeliveryState::Failed,
        };
        Receipt { provider_id: u.provider_id, state }
    }
}

impl From<Callback> for receipts::Callback {
    fn from(c: Callback) -> receipts::Callback {
        receipts::Callback { method: c.method, url: c.url, headers: c.headers, body: c.body }
    }
}

/// `secret`, `required` or `optional`, as `check` and `inspect` show a setting.
pub fn key_kind(key: &ConfigKey) -> &'static str {
    if key.secret {
        "secret"
    } else if key.required {
        "required"
    } else {
        "optional"
    }
}
