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

#![warn(missing_docs)]

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

/// What an adapter implements: `info()` and `send()`. See the crate example.
pub use bindings::exports::smsbridge::adapter::sender::Guest as Adapter;
/// The contract's types, generated from `wit/adapter.wit`.
///
/// ```
/// use smsbridge_sdk::{Accepted, SendError};
/// let ok = Accepted { provider_id: "SM1".into(), status: Some("queued".into()), segments: Some(1) };
/// assert_eq!(ok.provider_id, "SM1");
/// // Permanent: the host does not fail over. Transient: it does.
/// let permanent = SendError::InvalidRecipient("not a mobile number".into());
/// let transient = SendError::Unavailable("HTTP 503".into());
/// # let _ = (permanent, transient);
/// ```
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
///
/// ```
/// let info = smsbridge_sdk::info!("acme", "Acme SMS").secret("api_key", "API key").build();
/// assert_eq!((info.name.as_str(), info.provider.as_str()), ("acme", "Acme SMS"));
/// assert!(info.config_keys[0].required && info.config_keys[0].secret);
/// ```
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

    /// A setting the adapter cannot work without: the host refuses a config
    /// that lacks it, naming it.
    ///
    /// ```
    /// let info = smsbridge_sdk::info!("acme", "Acme").required("account", "Account id").build();
    /// assert!(info.config_keys[0].required && !info.config_keys[0].secret);
    /// ```
    pub fn required(self, name: &str, description: &str) -> Self {
        self.key(name, true, false, description)
    }

    /// A setting with a sensible default.
    ///
    /// ```
    /// let info = smsbridge_sdk::info!("acme", "Acme").optional("from", "Sender id").build();
    /// assert!(!info.config_keys[0].required);
    /// ```
    pub fn optional(self, name: &str, description: &str) -> Self {
        self.key(name, false, false, description)
    }

    /// A required credential: the host never shows its value, and replaces
    /// it wherever it would appear in a log or an answer.
    ///
    /// ```
    /// let info = smsbridge_sdk::info!("acme", "Acme").secret("api_key", "API key").build();
    /// assert!(info.config_keys[0].secret);
    /// ```
    pub fn secret(self, name: &str, description: &str) -> Self {
        self.key(name, true, true, description)
    }

    /// A credential the adapter can do without in some setups.
    ///
    /// ```
    /// let info = smsbridge_sdk::info!("acme", "Acme").optional_secret("signing_key", "Signs requests").build();
    /// assert!(info.config_keys[0].secret && !info.config_keys[0].required);
    /// ```
    pub fn optional_secret(self, name: &str, description: &str) -> Self {
        self.key(name, false, true, description)
    }

    /// A host the adapter calls by default (`api.example.com`): allowed over
    /// HTTPS when the operator writes no `allow_hosts`.
    ///
    /// ```
    /// let info = smsbridge_sdk::info!("acme", "Acme").host("api.acme.test").build();
    /// assert_eq!(info.default_hosts, ["api.acme.test"]);
    /// ```
    pub fn host(mut self, host: &str) -> Self {
        self.0.default_hosts.push(host.into());
        self
    }

    /// The finished [`AdapterInfo`], for `Adapter::info`.
    ///
    /// ```
    /// let info = smsbridge_sdk::info!("acme", "Acme").build();
    /// assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    /// ```
    pub fn build(self) -> AdapterInfo {
        self.0
    }
}

/// This adapter instance's settings, as the operator wrote them under
/// `[provider.config]`. Secrets arrive resolved (`{ env = "NAME" }`).
pub mod config {
    use crate::SendError;
    use crate::bindings::smsbridge::adapter::config as host;

    /// The setting `key`, if the operator gave one (an empty value is none).
    ///
    /// ```no_run
    /// let from = smsbridge_sdk::config::get("from").unwrap_or_else(|| "Bank".into());
    /// ```
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
    ///
    /// ```no_run
    /// let url = format!("{}/v1/messages", smsbridge_sdk::config::base_url("https://api.example.com"));
    /// ```
    pub fn base_url(default: &str) -> String {
        get("base_url").unwrap_or_else(|| default.into()).trim_end_matches('/').into()
    }
}

/// Lines for the host's log, under the provider instance's name. The host
/// masks phone numbers and hides secrets in them; never log message text.
///
/// ```no_run
/// smsbridge_sdk::log::warn("provider answered 200 without a message id");
/// ```
pub mod log {
    use crate::bindings::smsbridge::adapter::log::{Level, write};

    /// Shown with `SMSBRIDGE_LOG=debug`.
    ///
    /// ```no_run
    /// smsbridge_sdk::log::debug("retrying with the legacy endpoint");
    /// ```
    pub fn debug(msg: &str) {
        write(Level::Debug, msg)
    }
    /// ```no_run
    /// smsbridge_sdk::log::info("account balance is low");
    /// ```
    pub fn info(msg: &str) {
        write(Level::Info, msg)
    }
    /// ```no_run
    /// smsbridge_sdk::log::warn("sender id replaced by the provider");
    /// ```
    pub fn warn(msg: &str) {
        write(Level::Warn, msg)
    }
    /// ```no_run
    /// smsbridge_sdk::log::error("provider changed its answer format");
    /// ```
    pub fn error(msg: &str) {
        write(Level::Error, msg)
    }
}

/// Form encoding (`application/x-www-form-urlencoded`).
pub mod form {
    /// The pairs, in order, escaped: `+` becomes `%2B` and a space `+`.
    ///
    /// ```
    /// let body = smsbridge_sdk::form::encode(&[("To", "+447700900123"), ("Body", "a b&c")]);
    /// assert_eq!(body, "To=%2B447700900123&Body=a+b%26c");
    /// ```
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
///
/// ```
/// let body = smsbridge_sdk::json::json!({"to": "+447700900123", "text": "hi"});
/// assert_eq!(body["to"], "+447700900123");
/// ```
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
        /// A request with any method.
        ///
        /// ```no_run
        /// let req = smsbridge_sdk::http::Request::new("PUT", "https://api.example.com/v1/messages/1");
        /// ```
        pub fn new(method: &str, url: &str) -> Self {
            Request(host::Request { method: method.into(), url: url.into(), headers: Vec::new(), body: Vec::new() })
        }

        /// ```no_run
        /// let req = smsbridge_sdk::http::Request::get("https://api.example.com/v1/balance");
        /// ```
        pub fn get(url: &str) -> Self {
            Self::new("GET", url)
        }

        /// ```no_run
        /// let req = smsbridge_sdk::http::Request::post("https://api.example.com/v1/messages");
        /// ```
        pub fn post(url: &str) -> Self {
            Self::new("POST", url)
        }

        /// Adds a header. The host sets `Host`, `Content-Length` and framing
        /// itself and refuses a request that tries to.
        ///
        /// ```no_run
        /// # use smsbridge_sdk::http::Request;
        /// let req = Request::post("https://api.example.com/sms").header("X-Api-Key", "k");
        /// ```
        pub fn header(mut self, name: &str, value: &str) -> Self {
            self.0.headers.push((name.into(), value.into()));
            self
        }

        /// HTTP Basic credentials.
        ///
        /// ```no_run
        /// # use smsbridge_sdk::http::Request;
        /// let req = Request::post("https://api.example.com/sms").basic_auth("AC1", "token");
        /// ```
        pub fn basic_auth(self, user: &str, password: &str) -> Self {
            self.header("Authorization", &crate::basic_auth(user, password))
        }

        /// An `Authorization: Bearer` token.
        ///
        /// ```no_run
        /// # use smsbridge_sdk::http::Request;
        /// let req = Request::post("https://api.example.com/sms").bearer("key");
        /// ```
        pub fn bearer(self, token: &str) -> Self {
            self.header("Authorization", &format!("Bearer {token}"))
        }

        /// A form-encoded body, with its content type.
        ///
        /// ```no_run
        /// # use smsbridge_sdk::http::Request;
        /// let req = Request::post("https://api.example.com/sms").form(&[("to", "+447700900123"), ("text", "hi")]);
        /// ```
        pub fn form<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
            self.header("Content-Type", "application/x-www-form-urlencoded")
                .body(crate::form::encode(pairs).into_bytes())
        }

        /// A JSON body, with its content type.
        ///
        /// ```no_run
        /// # use smsbridge_sdk::http::Request;
        /// let req = Request::post("https://api.example.com/sms").json(&smsbridge_sdk::json::json!({"to": "+447700900123"}));
        /// ```
        pub fn json(self, value: &serde_json::Value) -> Self {
            self.header("Content-Type", "application/json").body(value.to_string().into_bytes())
        }

        /// A raw body; set its `Content-Type` with [`Request::header`].
        ///
        /// ```no_run
        /// # use smsbridge_sdk::http::Request;
        /// let req = Request::post("https://api.example.com/sms")
        ///     .header("Content-Type", "application/xml")
        ///     .body(b"<sms><to>+447700900123</to></sms>".to_vec());
        /// ```
        pub fn body(mut self, body: Vec<u8>) -> Self {
            self.0.body = body;
            self
        }

        /// Sends the request. A transport failure becomes `unavailable` (worth
        /// failing over); a host the operator did not allow, `misconfigured`.
        ///
        /// ```no_run
        /// # fn f() -> Result<(), smsbridge_sdk::SendError> {
        /// # use smsbridge_sdk::http::Request;
        /// let resp = Request::get("https://api.example.com/v1/balance").bearer("key").send()?;
        /// # Ok(()) }
        /// ```
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
        /// An answer made by hand: for unit tests of an adapter's answer
        /// mapping, which then run natively with `cargo test`.
        ///
        /// ```
        /// use smsbridge_sdk::http::Response;
        /// let resp = Response::new(201, vec![("Content-Type".into(), "application/json".into())], r#"{"id":"m1"}"#);
        /// assert_eq!(resp.json_str("/id").unwrap(), "m1");
        /// ```
        pub fn new(status: u16, headers: Vec<(String, String)>, body: impl Into<Vec<u8>>) -> Self {
            Response(host::Response { status, headers, body: body.into() })
        }

        /// ```
        /// # use smsbridge_sdk::http::Response;
        /// assert_eq!(Response::new(202, vec![], "").status(), 202);
        /// ```
        pub fn status(&self) -> u16 {
            self.0.status
        }

        /// Any 2xx.
        ///
        /// ```
        /// # use smsbridge_sdk::http::Response;
        /// assert!(Response::new(204, vec![], "").is_success());
        /// assert!(!Response::new(302, vec![], "").is_success());
        /// ```
        pub fn is_success(&self) -> bool {
            (200..300).contains(&self.0.status)
        }

        /// The first header named `name` (any case).
        ///
        /// ```
        /// # use smsbridge_sdk::http::Response;
        /// let resp = Response::new(200, vec![("X-Request-Id".into(), "r1".into())], "");
        /// assert_eq!(resp.header("x-request-id"), Some("r1"));
        /// ```
        pub fn header(&self, name: &str) -> Option<&str> {
            self.0.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        }

        /// The raw body.
        ///
        /// ```
        /// # use smsbridge_sdk::http::Response;
        /// assert_eq!(Response::new(200, vec![], "OK").body(), b"OK");
        /// ```
        pub fn body(&self) -> &[u8] {
            &self.0.body
        }

        /// The body as text (lossy UTF-8).
        ///
        /// ```
        /// # use smsbridge_sdk::http::Response;
        /// assert_eq!(Response::new(200, vec![], "ID: 42").text(), "ID: 42");
        /// ```
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.body).into_owned()
        }

        /// The body as JSON, or `unavailable` naming the status when it is not
        /// JSON (a proxy's HTML error page, a truncated answer).
        ///
        /// ```
        /// # use smsbridge_sdk::{SendError, http::Response};
        /// assert_eq!(Response::new(200, vec![], r#"{"ok":true}"#).json().unwrap()["ok"], true);
        /// let html = Response::new(502, vec![], "<html>Bad Gateway</html>");
        /// assert!(matches!(html.json(), Err(SendError::Unavailable(_))));
        /// ```
        pub fn json(&self) -> Result<serde_json::Value, SendError> {
            serde_json::from_slice(&self.0.body)
                .map_err(|e| SendError::Unavailable(format!("HTTP {}: answer is not JSON: {e}", self.0.status)))
        }

        /// The string at JSON `pointer` in the body (`/id`, `/messages/0/id`),
        /// or `unavailable` saying it is missing: an answer without the
        /// provider's id cannot be trusted as accepted.
        ///
        /// ```
        /// # use smsbridge_sdk::{SendError, http::Response};
        /// let resp = Response::new(200, vec![], r#"{"messages":[{"id":"m1"}]}"#);
        /// assert_eq!(resp.json_str("/messages/0/id").unwrap(), "m1");
        /// assert!(matches!(resp.json_str("/id"), Err(SendError::Unavailable(_))));
        /// ```
        pub fn json_str(&self, pointer: &str) -> Result<String, SendError> {
            self.json()?
                .pointer(pointer)
                .and_then(|v| v.as_str())
                .map(Into::into)
                .ok_or_else(|| SendError::Unavailable(format!("HTTP {}: answer has no `{pointer}`", self.0.status)))
        }

        /// `Retry-After` in seconds, when given as a number.
        ///
        /// ```
        /// # use smsbridge_sdk::http::Response;
        /// let resp = Response::new(429, vec![("Retry-After".into(), "3".into())], "");
        /// assert_eq!(resp.retry_after(), Some(3));
        /// ```
        pub fn retry_after(&self) -> Option<u32> {
            self.header("Retry-After")?.trim().parse().ok()
        }

        /// The contract's error for this (non-2xx) status; `detail` is the
        /// provider's own code and text.
        ///
        /// 401 and 403 are `unauthorized`, 429 `rate-limited` (with
        /// `Retry-After`), 5xx and 408 `unavailable`, any other status
        /// `rejected`.
        ///
        /// ```
        /// # use smsbridge_sdk::{SendError, http::Response};
        /// let resp = Response::new(429, vec![("Retry-After".into(), "5".into())], "");
        /// assert!(matches!(resp.error("slow down"), SendError::RateLimited(Some(5))));
        /// ```
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
