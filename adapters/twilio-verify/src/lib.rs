//! Twilio Verify v2: `POST https://verify.twilio.com/v2/Services/{ServiceSid}/Verifications`
//! with `Channel=sms` and a `CustomCode`.
//!
//! MFA servers send a whole message ("Your tokencode is 12345678"); Verify
//! wants the code alone and writes its own message, so the code is taken from
//! the text by `code_pattern`.

use smsbridge_sdk::{Accepted, Adapter, AdapterInfo, Message, SendError, config, twilio_compat};

struct TwilioVerify;

impl Adapter for TwilioVerify {
    fn info() -> AdapterInfo {
        smsbridge_sdk::info!("twilio-verify", "Twilio Verify v2 (SMS)")
            .required("service_sid", "Verify Service SID (VA…), Console → Verify → Services")
            .required("account_sid", "Account SID (AC…), Console → Account Info")
            .secret("auth_token", "Auth Token, Console → Account Info (or an API key secret with api_key_sid)")
            .optional("api_key_sid", "API key SID (SK…) to authenticate with instead of the Account SID")
            .optional(
                "code_pattern",
                "Regex finding the code in the message; its last match (group 1 if any) is sent. Default: the last run of 4–10 digits",
            )
            .optional("locale", "Language of Verify's message, e.g. `en`, `de`")
            .optional("base_url", "Replaces https://verify.twilio.com (proxy, test mock)")
            .host("verify.twilio.com")
            .build()
    }

    fn send(msg: Message) -> Result<Accepted, SendError> {
        let service = config::require("service_sid")?;
        let sid = config::require("account_sid")?;
        let token = config::require("auth_token")?;
        let user = config::get("api_key_sid").unwrap_or(sid);
        let code = match config::get("code_pattern") {
            Some(pattern) => code_by_pattern(&msg.body, &pattern)?,
            None => last_digit_run(&msg.body),
        }
        .ok_or_else(|| SendError::Rejected("the message contains no code to send (see `code_pattern`)".into()))?;
        let url = format!("{}/v2/Services/{service}/Verifications", config::base_url("https://verify.twilio.com"));

        let mut form = vec![("To", msg.to.as_str()), ("Channel", "sms"), ("CustomCode", code.as_str())];
        let locale = config::get("locale");
        if let Some(locale) = &locale {
            form.push(("Locale", locale));
        }
        twilio_compat::create_with(&url, &user, &token, &form, verify_error)
    }
}

/// Verify's own error codes.
fn verify_error(code: u64, detail: String) -> Option<SendError> {
    match code {
        // Max send attempts for this number (HTTP 429 with Retry-After is handled as any 429).
        60202 | 60203 => Some(SendError::RateLimited(None)),
        // Invalid parameter: the host has validated everything but the number.
        60200 => Some(SendError::InvalidRecipient(detail)),
        // Fraud Guard blocked the prefix; geo permissions block the country.
        60410 | 60605 => Some(SendError::Rejected(detail)),
        _ => None,
    }
}

/// The last run of 4 to 10 digits in `text`.
fn last_digit_run(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit()).rfind(|run| (4..=10).contains(&run.len())).map(Into::into)
}

/// The last match of `pattern` in `text`: its first group, or the whole match.
fn code_by_pattern(text: &str, pattern: &str) -> Result<Option<String>, SendError> {
    let re = regex_lite::Regex::new(pattern)
        .map_err(|e| SendError::Misconfigured(format!("`code_pattern` is not a valid regex: {e}")))?;
    Ok(re.captures_iter(text).last().and_then(|c| c.get(1).or_else(|| c.get(0))).map(|m| m.as_str().to_string()))
}

smsbridge_sdk::export_adapter!(TwilioVerify);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_code_in_the_message() {
        assert_eq!(last_digit_run("Your tokencode is 12345678").as_deref(), Some("12345678"));
        assert_eq!(last_digit_run("PIN 1234, valid 5 min. Ref 987654").as_deref(), Some("987654"));
        assert_eq!(last_digit_run("Code 123 or 12345678901"), None);
        assert_eq!(last_digit_run("no code"), None);
        let p = r"code[: ]+(\w+)";
        assert_eq!(code_by_pattern("Your code: AB12CD", p).unwrap().as_deref(), Some("AB12CD"));
        assert!(code_by_pattern("x", "(").is_err());
    }
}
