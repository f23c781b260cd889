//! SignalWire's Compatibility (LaML) API, which mirrors Twilio's Messages
//! resource: `POST https://{space}.signalwire.com/api/laml/2010-04-01/Accounts/{ProjectID}/Messages.json`.

use smsbridge_receipts::{Callback, CallbackError, Receipts, StatusUpdate, twilio};
use smsbridge_sdk::{Accepted, Adapter, AdapterInfo, Message, SendError, config, twilio_compat};

struct SignalWire;

impl Adapter for SignalWire {
    fn info() -> AdapterInfo {
        smsbridge_sdk::info!("signalwire", "SignalWire Compatibility API")
            .required("space", "Space name: the `acme` of acme.signalwire.com")
            .required("project_id", "Project ID, Dashboard → API")
            .secret("api_token", "API token, Dashboard → API → Tokens")
            .optional("from", "Sender number in E.164, Dashboard → Phone Numbers")
            .optional("status_callback", "URL SignalWire posts delivery status to")
            .optional_secret("signing_key", "Signing Key for status callbacks, Dashboard → API (else api_token)")
            .optional("base_url", "Replaces https://{space}.signalwire.com (proxy, test mock)")
            .host("*.signalwire.com")
            .build()
    }

    fn send(msg: Message) -> Result<Accepted, SendError> {
        let space = config::require("space")?;
        let project = config::require("project_id")?;
        let token = config::require("api_token")?;
        let from = msg
            .sender
            .or_else(|| config::get("from"))
            .ok_or_else(|| SendError::Misconfigured("set `from` to a SignalWire number in E.164".into()))?;
        let base = config::base_url(&format!("https://{space}.signalwire.com"));
        let url = format!("{base}/api/laml/2010-04-01/Accounts/{project}/Messages.json");

        let mut form = vec![("To", msg.to.as_str()), ("From", from.as_str()), ("Body", msg.body.as_str())];
        let callback = config::get("status_callback");
        if let Some(url) = &callback {
            form.push(("StatusCallback", url));
        }
        twilio_compat::create(&url, &project, &token, &form)
    }
}

impl Receipts for SignalWire {
    /// Status callbacks, signed the Twilio way with the Signing Key.
    fn verify(cb: Callback) -> Result<Vec<StatusUpdate>, CallbackError> {
        let key = config::get("signing_key").or_else(|| config::get("api_token")).ok_or_else(|| {
            CallbackError::Misconfigured("set `signing_key` (or `api_token`) to check callback signatures".into())
        })?;
        let header =
            if cb.header("X-SignalWire-Signature").is_some() { "X-SignalWire-Signature" } else { "X-Twilio-Signature" };
        twilio::read(&key, &cb, header)
    }
}

smsbridge_receipts::export_adapter_with_receipts!(SignalWire);
