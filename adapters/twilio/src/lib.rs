//! Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.

use smsbridge_receipts::{Callback, CallbackError, Receipts, StatusUpdate, twilio};
use smsbridge_sdk::{Accepted, Adapter, AdapterInfo, Message, SendError, config, twilio_compat};

struct Twilio;

impl Adapter for Twilio {
    fn info() -> AdapterInfo {
        smsbridge_sdk::info!("twilio", "Twilio Programmable Messaging")
            .required("account_sid", "Account SID (AC…), Console → Account Info")
            .secret("auth_token", "Auth Token, Console → Account Info (or an API key secret with api_key_sid)")
            .optional("api_key_sid", "API key SID (SK…) to authenticate with instead of the Account SID")
            .optional("from", "Sender number in E.164 or alphanumeric sender id, Console → Phone Numbers")
            .optional("messaging_service_sid", "Messaging Service SID (MG…), used instead of `from`")
            .optional("status_callback", "URL Twilio posts delivery status to")
            .optional("validity_period", "Seconds (1–36000) Twilio keeps trying to deliver")
            .optional_secret(
                "signing_token",
                "Auth Token that signs status callbacks, when auth_token is an API key secret",
            )
            .optional("base_url", "Replaces https://api.twilio.com (regional edge, proxy, test mock)")
            .host("api.twilio.com")
            .build()
    }

    fn send(msg: Message) -> Result<Accepted, SendError> {
        let sid = config::require("account_sid")?;
        let token = config::require("auth_token")?;
        let user = config::get("api_key_sid").unwrap_or_else(|| sid.clone());
        let url = format!("{}/2010-04-01/Accounts/{sid}/Messages.json", config::base_url("https://api.twilio.com"));

        let mut form = vec![("To", msg.to.clone())];
        match (config::get("messaging_service_sid"), msg.sender.or_else(|| config::get("from"))) {
            (Some(service), _) => form.push(("MessagingServiceSid", service)),
            (None, Some(from)) => form.push(("From", from)),
            (None, None) => return Err(SendError::Misconfigured("set `from` or `messaging_service_sid`".into())),
        }
        form.push(("Body", msg.body));
        if let Some(url) = config::get("status_callback") {
            form.push(("StatusCallback", url));
        }
        if let Some(secs) = config::get("validity_period") {
            form.push(("ValidityPeriod", secs));
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        twilio_compat::create(&url, &user, &token, &form)
    }
}

impl Receipts for Twilio {
    /// Status callbacks, signed with the account's Auth Token.
    fn verify(cb: Callback) -> Result<Vec<StatusUpdate>, CallbackError> {
        let token = config::get("signing_token").or_else(|| config::get("auth_token")).ok_or_else(|| {
            CallbackError::Misconfigured("set `auth_token` (or `signing_token`) to check callback signatures".into())
        })?;
        twilio::read(&token, &cb, "X-Twilio-Signature")
    }
}

smsbridge_receipts::export_adapter_with_receipts!(Twilio);
