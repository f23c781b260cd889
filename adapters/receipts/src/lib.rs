//! Delivery receipts for smsbridge adapters. An adapter that can verify its
//! provider's status callbacks implements [`Receipts`] beside
//! [`smsbridge_sdk::Adapter`] and is exported with
//! [`export_adapter_with_receipts!`], targeting the `adapter-with-receipts`
//! world. Its imports and types are the SDK's own.

#![warn(missing_docs)]

extern crate self as smsbridge_receipts;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "adapter-with-receipts",
        with: {
            "smsbridge:adapter/types@0.1.2": smsbridge_sdk::bindings::smsbridge::adapter::types,
            "smsbridge:adapter/http@0.1.2": smsbridge_sdk::bindings::smsbridge::adapter::http,
            "smsbridge:adapter/config@0.1.2": smsbridge_sdk::bindings::smsbridge::adapter::config,
            "smsbridge:adapter/log@0.1.2": smsbridge_sdk::bindings::smsbridge::adapter::log,
        },
        pub_export_macro: true,
        export_macro_name: "__export_adapter_with_receipts_world",
        default_bindings_module: "smsbridge_receipts::bindings",
        runtime_path: "smsbridge_sdk::wit_bindgen::rt",
    });
}

use smsbridge_sdk::{Accepted, Adapter, AdapterInfo, Message, SendError};

/// What an adapter that verifies delivery receipts implements.
pub use bindings::exports::smsbridge::adapter::receipts::Guest as Receipts;
/// A status callback, the statuses read from it, and why one is refused.
///
/// ```
/// use smsbridge_receipts::{DeliveryStatus, StatusUpdate};
/// let update = StatusUpdate { provider_id: "SM1".into(), status: DeliveryStatus::Delivered, detail: None };
/// assert!(matches!(update.status, DeliveryStatus::Delivered));
/// ```
pub use bindings::exports::smsbridge::adapter::receipts::{Callback, CallbackError, DeliveryStatus, StatusUpdate};

// One `Adapter` impl serves both worlds.
impl<T: Adapter> bindings::exports::smsbridge::adapter::sender::Guest for T {
    fn info() -> AdapterInfo {
        <T as Adapter>::info()
    }
    fn send(msg: Message) -> Result<Accepted, SendError> {
        <T as Adapter>::send(msg)
    }
}

/// Exports `$ty`, which implements [`smsbridge_sdk::Adapter`] and
/// [`Receipts`], as this component's `sender` and `receipts`.
///
/// ```ignore
/// smsbridge_receipts::export_adapter_with_receipts!(MyAdapter);
/// ```
#[macro_export]
macro_rules! export_adapter_with_receipts {
    ($ty:ident) => {
        $crate::bindings::__export_adapter_with_receipts_world!($ty with_types_in $crate::bindings);
    };
}

/// Lowercase hex of the SHA-256 of `bytes`.
///
/// ```
/// assert_eq!(&smsbridge_receipts::hex_sha256(b"")[..8], "e3b0c442");
/// ```
pub fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Whether `a` and `b` are equal, in time independent of where they differ:
/// for comparing signatures.
///
/// ```
/// assert!(smsbridge_receipts::same("abc", "abc") && !smsbridge_receipts::same("abc", "abd"));
/// ```
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub mod messagebird;
pub mod twilio;

impl Callback {
    /// The first header named `name` (any case).
    ///
    /// ```
    /// let cb = smsbridge_receipts::Callback {
    ///     method: "POST".into(),
    ///     url: "https://sms.example.com/callbacks/twilio".into(),
    ///     headers: vec![("X-Twilio-Signature".into(), "abc=".into())],
    ///     body: Vec::new(),
    /// };
    /// assert_eq!(cb.header("x-twilio-signature"), Some("abc="));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The URL's query parameters, in order.
    ///
    /// ```
    /// let cb = smsbridge_receipts::Callback {
    ///     method: "GET".into(),
    ///     url: "https://sms.example.com/callbacks/mb?id=mb-1&status=sent".into(),
    ///     headers: Vec::new(),
    ///     body: Vec::new(),
    /// };
    /// assert_eq!(cb.query()[0], ("id".to_string(), "mb-1".to_string()));
    /// ```
    pub fn query(&self) -> Vec<(String, String)> {
        match self.url.split_once('?') {
            Some((_, q)) => form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
            None => Vec::new(),
        }
    }

    /// The form-encoded body's fields, in order.
    ///
    /// ```
    /// let cb = smsbridge_receipts::Callback {
    ///     method: "POST".into(),
    ///     url: "https://sms.example.com/callbacks/twilio".into(),
    ///     headers: Vec::new(),
    ///     body: b"MessageSid=SM1&MessageStatus=delivered".to_vec(),
    /// };
    /// assert_eq!(cb.form()[1], ("MessageStatus".to_string(), "delivered".to_string()));
    /// ```
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}
