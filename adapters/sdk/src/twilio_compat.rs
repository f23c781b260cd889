//! Twilio's REST conventions, which SignalWire's Compatibility API and Twilio
//! Verify share: HTTP Basic, form bodies, and errors shaped
//! `{"code": 21211, "message": "…", "status": 400}`.

use crate::http::{Request, Response};

use crate::{Accepted, SendError};

/// POSTs `form` to `url` with Basic `user:password` and reads a created
/// resource: `sid`, `status` and (for messages) `num_segments`.
///
/// ```no_run
/// # fn f() -> Result<(), smsbridge_sdk::SendError> {
/// let url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json";
/// let form = [("To", "+447700900123"), ("From", "+15005550006"), ("Body", "Your code is 123456")];
/// let accepted = smsbridge_sdk::twilio_compat::create(url, "AC1", "token", &form)?;
/// # Ok(()) }
/// ```
pub fn create(url: &str, user: &str, password: &str, form: &[(&str, &str)]) -> Result<Accepted, SendError> {
    create_with(url, user, password, form, |_, _| None)
}

/// [`create`], with `special` mapping an API's own error codes first
/// (code, then the provider's text) before the shared ones.
///
/// ```no_run
/// # fn f() -> Result<(), smsbridge_sdk::SendError> {
/// use smsbridge_sdk::{SendError, twilio_compat};
/// let url = "https://verify.twilio.com/v2/Services/VA1/Verifications";
/// let accepted = twilio_compat::create_with(url, "AC1", "token", &[("To", "+447700900123")], |code, text| {
///     (code == 60200).then(|| SendError::InvalidRecipient(text))
/// })?;
/// # Ok(()) }
/// ```
pub fn create_with(
    url: &str,
    user: &str,
    password: &str,
    form: &[(&str, &str)],
    special: impl Fn(u64, String) -> Option<SendError>,
) -> Result<Accepted, SendError> {
    let resp = Request::post(url).basic_auth(user, password).form(form).send()?;
    if !resp.is_success() {
        let (code, message) = code_and_message(&resp);
        let detail = format!("{} {message}", code.unwrap_or_default());
        return Err(code
            .and_then(|c| special(c, detail))
            .unwrap_or_else(|| error_for(resp.status(), code, &message, resp.retry_after())));
    }
    let sid = resp.json_str("/sid")?;
    let v = resp.json()?;
    // Twilio sends `num_segments` as a string, SignalWire as a number.
    let segments = match &v["num_segments"] {
        serde_json::Value::String(s) => s.parse().ok(),
        n => n.as_u64().map(|n| n as u32),
    };
    Ok(Accepted { provider_id: sid, status: v["status"].as_str().map(Into::into), segments })
}

/// The provider's error code and message, when the body has them; else the
/// body as the message.
///
/// ```
/// use smsbridge_sdk::{http::Response, twilio_compat::code_and_message};
/// let resp = Response::new(400, vec![], r#"{"code":21211,"message":"Invalid 'To'","status":400}"#);
/// assert_eq!(code_and_message(&resp), (Some(21211), "Invalid 'To'".to_string()));
/// ```
pub fn code_and_message(resp: &Response) -> (Option<u64>, String) {
    let v = resp.json().unwrap_or_default();
    let code = v["code"].as_u64();
    let message = v["message"].as_str().map(Into::into).unwrap_or_else(|| resp.text());
    (code, message)
}

/// The contract's error for a Twilio-shaped failure.
///
/// ```
/// use smsbridge_sdk::{SendError, twilio_compat::error_for};
/// assert!(matches!(error_for(400, Some(21211), "bad To", None), SendError::InvalidRecipient(_)));
/// assert!(matches!(error_for(401, Some(20003), "auth", None), SendError::Unauthorized(_)));
/// assert!(matches!(error_for(429, Some(20429), "slow", Some(2)), SendError::RateLimited(Some(2))));
/// assert!(matches!(error_for(400, Some(21408), "region", None), SendError::Rejected(_)));
/// ```
pub fn error_for(status: u16, code: Option<u64>, message: &str, retry_after: Option<u32>) -> SendError {
    let detail = match code {
        Some(code) => format!("{code} {message}"),
        None => message.to_string(),
    };
    match code {
        // Invalid `To`, not a mobile number, unsubscribed, not SMS-capable.
        Some(21211 | 21614 | 21610 | 21612) => SendError::InvalidRecipient(detail),
        Some(20003) => SendError::Unauthorized(detail),
        Some(20429) => SendError::RateLimited(retry_after),
        _ => crate::http::status_error(status, retry_after, detail),
    }
}
