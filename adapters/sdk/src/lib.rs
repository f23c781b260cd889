//! The smsbridge adapter SDK: everything an SMS provider adapter needs, so the
//! adapter itself reads as its provider's API and nothing else.
//!
//! An adapter is a type that implements [`Adapter`] and is exported with
//! [`export_adapter!`]. It builds to a WebAssembly component with
//! `cargo build --release --target wasm32-wasip2`.
//!
//! ```no_run
//! use smsbridge_sdk::{Accepted, Adapter, AdapterInfo, Message, SendError, config, http};
//!
//! struct Example;
//!
//! impl Adapter for Example {
//!     fn info() -> AdapterInfo {
//!         smsbridge_sdk::info!("example", "Example SMS")
//!             .secret("api_key", "Account API key")
//!             .host("sms.example.com")
//!             .build()
//!     }
//!
//!     fn send(msg: Message) -> Result<Accepted, SendError> {
//!         let key = config::require("api_key")?;
//!         let url = format!("{}/send", config::base_url("https://sms.example.com"));
//!         let resp = http::Request::post(&url)
//!             .bearer(&key)
//!             .form(&[("to", msg.to.as_str()), ("text", msg.body.as_str())])
//!             .send()?;
//!         if !resp.is_success() {
//!             return Err(resp.error(resp.text()));
//!         }
//!         Ok(Accepted { provider_id: resp.text(), status: None, segments: None })
//!     }
//! }
//!
//! smsbridge_sdk::export_adapter!(Example);
//! ```

extern crate self as smsbridge_sdk;

#[doc(hidden)]
pub use wit_bindgen;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "adapter",
        pub_export_macro: true,
        export_macro_name: "__export_adapter_world",
        default_bindings_module: "smsbridge_sdk::bindings",
        runtime_path: "smsbridge_sdk::wit_bindgen::rt",
    });
}

pub use bindings::exports::smsbridge::adapter::sender::Guest as Adapter;
pub use bindings::smsbridge::adapter::types::{Accepted, AdapterInfo, ConfigKey, Message, SendError};

/// Exports `$ty`, which implements [`Adapter`], as this component's `sender`.
///
/// ```ignore
/// smsbridge_sdk::export_adapter!(MyAdapter);
/// ```
#[macro_export]
macro_rules! export_adapter {
    ($ty:ident) => {
        $crate::bindings::__export_adapter_world!($ty with_types_in $crate::bindings);
    };
}

/// Starts an [`AdapterInfo`] for `name` (the `.wasm` file's stem) speaking to
/// `provider`. The version is the adapter crate's own.
///
/// ```
/// let info = smsbridge_sdk::info!("twilio", "Twilio Programmable Messaging")
///     .required("account_sid", "Account SID, on the Console dashboard")
///     .secret("auth_token", "Auth Token, on the Console dashboard")
///     .optional("from", "Sender number in E.164")
///     .host("api.twilio.com")
///     .build();
/// assert_eq!(info.config_keys.len(), 3);
/// ```
#[macro_export]
macro_rules! info {
    ($name:expr, $provider:expr) => {
        $crate::InfoBuilder::new($name, env!("CARGO_PKG_VERSION"), $provider)
    };
}

/// Builds an [`AdapterInfo`]; start one with [`info!`].
pub struct InfoBuilder(AdapterInfo);

impl InfoBuilder {
    #[doc(hidden)]
    pub fn new(name: &str, version: &str, provider: &str) -> Self {
        InfoBuilder(AdapterInfo {
            name: name.into(),
            version: version.into(),
            provider: provider.into(),
            config_keys: Vec::new(),
            default_hosts: Vec::new(),
        })
    }

    fn key(mut self, name: &str, required: bool, secret: bool, description: &str) -> Self {
        self.0.config_keys.push(ConfigKey { name: name.into(), required, secret, description: description.into() });
        self
    }

    /// A setting the adapter cannot work without.
    pub fn required(self, name: &str, description: &str) -> Self {
        self.key(name, true, false, description)
    }

    /// A setting with a sensible default.
    pub fn optional(self, name: &str, description: &str) -> Self {
        self.key(name, false, false, description)
    }

    /// A required credential: the host never shows its value.
    pub fn secret(self, name: &str, description: &str) -> Self {
        self.key(name, true, true, description)
    }

    /// A credential the adapter can do without in some setups.
    pub fn optional_secret(self, name: &str, description: &str) -> Self {
        self.key(name, false, true, description)
    }

    /// A host the adapter calls by default (`api.example.com`).
    pub fn host(mut self, host: &str) -> Self {
        self.0.default_hosts.push(host.into());
        self
    }

    pub fn build(self) -> AdapterInfo {
        self.0
    }
}

/// This adapter instance's settings, as the operator wrote them.
pub mod config {
    use crate::SendError;
    use crate::bindings::smsbridge::adapter::config as host;

    /// The setting `key`, if the operator gave one.
    pub fn get(key: &str) -> Option<String> {
        host::get(key).filter(|v| !v.is_empty())
    }

    /// The setting `key`, or a `misconfigured` error naming it.
    ///
    /// ```no_run
    /// # fn f() -> Result<(), smsbridge_sdk::SendError> {
    /// let sid = smsbridge_sdk::config::require("account_sid")?;
    /// # Ok(()) }
    /// ```
    pub fn require(key: &str) -> Result<String, SendError> {
        get(key).ok_or_else(|| SendError::Misconfigured(format!("setting `{key}` is required")))
    }

    /// The `base_url` setting without a trailing `/`, else `default`: lets an
    /// operator use a regional endpoint or a proxy, and tests a mock.
    pub fn base_url(default: &str) -> String {
        get("base_url").unwrap_or_else(|| default.into()).trim_end_matches('/').into()
    }
}

/// Lines for the host's log; phone numbers in them are masked by the host.
pub mod log {
    use crate::bindings::smsbridge::adapter::log::{Level, write};

    pub fn debug(msg: &str) {
        write(Level::Debug, msg)
    }
    pub fn info(msg: &str) {
        write(Level::Info, msg)
    }
    pub fn warn(msg: &str) {
        write(Level::Warn, msg)
    }
    pub fn error(msg: &str) {
        write(Level::Error, msg)
    }
}

/// Form encoding (`application/x-www-form-urlencoded`).
///
/// ```
/// let body = smsbridge_sdk::form::encode(&[("To", "+447700900123"), ("Body", "a b&c")]);
/// assert_eq!(body, "To=%2B447700900123&Body=a+b%26c");
/// ```
pub mod form {
    pub fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            out.append_pair(k.as_ref(), v.as_ref());
        }
        out.finish()
    }
}

/// The value of an HTTP Basic `Authorization` header.
///
/// ```
/// assert_eq!(smsbridge_sdk::basic_auth("user", "pass"), "Basic dXNlcjpwYXNz");
/// ```
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

pub mod twilio_compat;

/// JSON bodies, with `serde_json` re-exported.
pub use serde_json as json;

/// Outbound HTTP through the host: only the hosts this provider instance is
/// allowed to reach, no redirects, bounded time and size.
pub mod http {
    use crate::SendError;
    use crate::bindings::smsbridge::adapter::http as host;

    /// An outbound request; send it with [`Request::send`].
    ///
    /// ```no_run
    /// # fn f() -> Result<(), smsbridge_sdk::SendError> {
    /// use smsbridge_sdk::http::Request;
    /// let resp = Request::post("https://api.example.com/sms")
    ///     .header("X-Api-Key", "k")
    ///     .json(&smsbridge_sdk::json::json!({"to": "+447700900123", "text": "hi"}))
    ///     .send()?;
    /// assert!(resp.is_success());
    /// # Ok(()) }
    /// ```
    pub struct Request(host::Request);

    impl Request {
        pub fn new(method: &str, url: &str) -> Self {
            Request(host::Request { method: method.into(), url: url.into(), headers: Vec::new(), body: Vec::new() })
        }

        pub fn get(url: &str) -> Self {
            Self::new("GET", url)
        }

        pub fn post(url: &str) -> Self {
            Self::new("POST", url)
        }

        pub fn header(mut self, name: &str, value: &str) -> Self {
            self.0.headers.push((name.into(), value.into()));
            self
        }

        /// HTTP Basic credentials.
        pub fn basic_auth(self, user: &str, password: &str) -> Self {
            self.header("Authorization", &crate::basic_auth(user, password))
        }

        /// An `Authorization: Bearer` token.
        pub fn bearer(self, token: &str) -> Self {
            self.header("Authorization", &format!("Bearer {token}"))
        }

        /// A form-encoded body, with its content type.
        pub fn form<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
            self.header("Content-Type", "application/x-www-form-urlencoded")
                .body(crate::form::encode(pairs).into_bytes())
        }

        /// A JSON body, with its content type.
        pub fn json(self, value: &serde_json::Value) -> Self {
            self.header("Content-Type", "application/json").body(value.to_string().into_bytes())
        }

        pub fn body(mut self, body: Vec<u8>) -> Self {
            self.0.body = body;
            self
        }

        /// Sends the request. A transport failure becomes `unavailable` (worth
        /// failing over); a host the operator did not allow, `misconfigured`.
        pub fn send(self) -> Result<Response, SendError> {
            host::send(&self.0).map(Response).map_err(|e| match e {
                host::Error::Denied(why) => SendError::Misconfigured(format!("request refused: {why}")),
                host::Error::Timeout => SendError::Unavailable("provider did not answer in time".into()),
                host::Error::Connect(why) => SendError::Unavailable(format!("cannot connect: {why}")),
                host::Error::Protocol(why) => SendError::Unavailable(format!("bad HTTP exchange: {why}")),
            })
        }
    }

    /// A provider's answer.
    pub struct Response(host::Response);

    impl Response {
        pub fn status(&self) -> u16 {
            self.0.status
        }

        pub fn is_success(&self) -> bool {
            (200..300).contains(&self.0.status)
        }

        /// The first header named `name` (any case).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.0.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        }

        pub fn body(&self) -> &[u8] {
            &self.0.body
        }

        /// The body as text (lossy UTF-8).
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.body).into_owned()
        }

        /// The body as JSON, or `unavailable` naming the status when it is not
        /// JSON (a proxy's HTML error page, a truncated answer).
        pub fn json(&self) -> Result<serde_json::Value, SendError> {
            serde_json::from_slice(&self.0.body)
                .map_err(|e| SendError::Unavailable(format!("HTTP {}: answer is not JSON: {e}", self.0.status)))
        }

        /// The string at JSON `pointer` in the body (`/id`, `/messages/0/id`),
        /// or `unavailable` saying it is missing: an answer without the
        /// provider's id cannot be trusted as accepted.
        ///
        /// ```no_run
        /// # fn f(resp: smsbridge_sdk::http::Response) -> Result<(), smsbridge_sdk::SendError> {
        /// let id = resp.json_str("/id")?;
        /// # Ok(()) }
        /// ```
        pub fn json_str(&self, pointer: &str) -> Result<String, SendError> {
            self.json()?
                .pointer(pointer)
                .and_then(|v| v.as_str())
                .map(Into::into)
                .ok_or_else(|| SendError::Unavailable(format!("HTTP {}: answer has no `{pointer}`", self.0.status)))
        }

        /// `Retry-After` in seconds, when given as a number.
        pub fn retry_after(&self) -> Option<u32> {
            self.header("Retry-After")?.trim().parse().ok()
        }

        /// The contract's error for this (non-2xx) status; `detail` is the
        /// provider's own code and text.
        ///
        /// 401 and 403 are `unauthorized`, 429 `rate-limited` (with
        /// `Retry-After`), 5xx and 408 `unavailable`, any other status
        /// `rejected`.
        pub fn error(&self, detail: impl Into<String>) -> SendError {
            status_error(self.0.status, self.retry_after(), detail.into())
        }
    }

    /// Maps an HTTP status to the contract's error; see [`Response::error`].
    ///
    /// ```
    /// use smsbridge_sdk::{SendError, http::status_error};
    /// assert!(matches!(status_error(429, Some(3), "slow down".into()), SendError::RateLimited(Some(3))));
    /// assert!(matches!(status_error(503, None, "".into()), SendError::Unavailable(_)));
    /// assert!(matches!(status_error(401, None, "".into()), SendError::Unauthorized(_)));
    /// assert!(matches!(status_error(400, None, "".into()), SendError::Rejected(_)));
    /// ```
    pub fn status_error(status: u16, retry_after: Option<u32>, detail: String) -> SendError {
        let detail = if detail.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {detail}") };
        match status {
            401 | 403 => SendError::Unauthorized(detail),
            429 => SendError::RateLimited(retry_after),
            408 | 500..=599 => SendError::Unavailable(detail),
            _ => SendError::Rejected(detail),
        }
    }
}
