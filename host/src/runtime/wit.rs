//! The WIT contract (`wit/adapter.wit`) as Rust: the generated bindings,
//! and every conversion between a generated type and the host's own, once.
//!
//! This module is private to `runtime`, which implements the imports and
//! calls the exports: a generated type named anywhere else does not
//! compile. The rest of the host speaks `outcome` and `outbound` types.

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        // The superset world: `receipts` is looked up per adapter, as only
        // some export it; `smpp` is linked for all, used by some.
        world: "host",
        imports: { "smsbridge:adapter/http.send": async, "smsbridge:adapter/smpp.submit": async },
        exports: { default: async },
    });
}

use crate::outbound;
use crate::outcome::{AdapterInfo, Callback, ConfigKey, DeliveryState, Failure, Outgoing, Receipt, ReceiptRefusal};

use generated::smsbridge::adapter::http;
use generated::smsbridge::adapter::types::{self, Message};

/// What `runtime` needs to link and call a component.
pub(super) mod host {
    pub use super::generated::exports::smsbridge::adapter::receipts::GuestIndices as ReceiptsIndices;
    pub use super::generated::exports::smsbridge::adapter::sender::GuestIndices as SenderIndices;
    pub use super::generated::smsbridge::adapter::config::Host as ConfigHost;
    pub use super::generated::smsbridge::adapter::http::Host as HttpHost;
    pub use super::generated::smsbridge::adapter::http::{
        Error as HttpError, Request as HttpRequest, Response as HttpResponse,
    };
    pub use super::generated::smsbridge::adapter::log::{Host as LogHost, Level as LogLevel};
    pub use super::generated::smsbridge::adapter::smpp::{
        Error as SmppError, Host as SmppHost, Submission as SmppSubmit, Submitted as SmppSubmitted,
    };
    pub use super::generated::smsbridge::adapter::{
        config as config_import, http as http_import, log as log_import, smpp as smpp_import,
    };
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

impl From<types::AdapterInfo> for AdapterInfo {
    fn from(i: types::AdapterInfo) -> AdapterInfo {
        AdapterInfo {
            name: i.name,
            version: i.version,
            provider: i.provider,
            config_keys: i.config_keys.into_iter().map(ConfigKey::from).collect(),
            default_hosts: i.default_hosts,
        }
    }
}

impl From<types::ConfigKey> for ConfigKey {
    fn from(k: types::ConfigKey) -> ConfigKey {
        ConfigKey { name: k.name, required: k.required, secret: k.secret, description: k.description }
    }
}

impl From<http::Request> for outbound::Request {
    fn from(r: http::Request) -> outbound::Request {
        outbound::Request { method: r.method, url: r.url, headers: r.headers, body: r.body }
    }
}

impl From<outbound::Response> for http::Response {
    fn from(r: outbound::Response) -> http::Response {
        http::Response { status: r.status, headers: r.headers, body: r.body }
    }
}

impl From<outbound::Error> for http::Error {
    fn from(e: outbound::Error) -> http::Error {
        match e {
            outbound::Error::Denied(why) => http::Error::Denied(why),
            outbound::Error::Timeout => http::Error::Timeout,
            outbound::Error::Connect(why) => http::Error::Connect(why),
            outbound::Error::Protocol(why) => http::Error::Protocol(why),
        }
    }
}

mod smpp_conversions {
    use super::generated::smsbridge::adapter::smpp::{Address, Coding, Error, Submission as Submit, Submitted};
    use crate::smpp;

    impl From<Submit> for smpp::Submit {
        fn from(s: Submit) -> smpp::Submit {
            let address = |a: Address| smpp::Address { ton: a.ton, npi: a.npi, addr: a.addr };
            smpp::Submit {
                source: address(s.source),
                destination: address(s.destination),
                service_type: s.service_type,
                registered_delivery: s.registered_delivery,
                coding: match s.coding {
                    Coding::Auto => smpp::Coding::Auto,
                    Coding::Gsm7 => smpp::Coding::Gsm7,
                    Coding::Latin1 => smpp::Coding::Latin1,
                    Coding::Ucs2 => smpp::Coding::Ucs2,
                },
                text: s.text,
            }
        }
    }

    impl From<smpp::Submitted> for Submitted {
        fn from(s: smpp::Submitted) -> Submitted {
            Submitted { message_ids: s.message_ids, reference: s.reference, parts: s.parts }
        }
    }

    impl From<smpp::SmppError> for Error {
        fn from(e: smpp::SmppError) -> Error {
            match e {
                smpp::SmppError::Denied(why) => Error::Denied(why),
                smpp::SmppError::Unencodable(why) => Error::Unencodable(why),
                smpp::SmppError::Status(code) => Error::Status(code),
                smpp::SmppError::Timeout => Error::Timeout,
                smpp::SmppError::Unbound(code, why) => Error::Unbound((code, why)),
                smpp::SmppError::Busy => Error::Busy,
            }
        }
    }
}
