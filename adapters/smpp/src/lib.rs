//! SMPP 3.4 to a standard SMSC, through the binds the host keeps open for
//! this provider instance (`[provider.smpp]`). The adapter is the dialect:
//! the addresses' TON/NPI, `service_type`, the coding, whether to ask for
//! receipts, and what each `command_status` means for the message.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "smpp-adapter",
        with: {
            "smsbridge:adapter/types@0.1.2": smsbridge_sdk::bindings::smsbridge::adapter::types,
            "smsbridge:adapter/http@0.1.2": smsbridge_sdk::bindings::smsbridge::adapter::http,
            "smsbridge:adapter/config@0.1.2": smsbridge_sdk::bindings::smsbridge::adapter::config,
            "smsbridge:adapter/log@0.1.2": smsbridge_sdk::bindings::smsbridge::adapter::log,
        },
        runtime_path: "smsbridge_sdk::wit_bindgen::rt",
    });
}

use bindings::smsbridge::adapter::smpp::{self, Address, Coding, Error, Submission};
use smsbridge_sdk::{Accepted, AdapterInfo, Message, SendError, config};

struct Smpp;

impl bindings::exports::smsbridge::adapter::sender::Guest for Smpp {
    fn info() -> AdapterInfo {
        smsbridge_sdk::info!("smpp", "an SMSC over SMPP 3.4 (the host's binds, [provider.smpp])")
            .optional("source_ton", "TON of the sender: default 5 (alphanumeric) for a name, 1 for digits")
            .optional("source_npi", "NPI of the sender: default 0 for a name, 1 for digits")
            .optional("dest_ton", "TON of the recipient (default 1, international)")
            .optional("dest_npi", "NPI of the recipient (default 1, E.164)")
            .optional("service_type", "service_type, when the SMSC wants one (default empty)")
            .optional("receipts", "`yes` (default) asks for delivery receipts, `no` does not")
            .optional("coding", "`auto` (default: GSM 03.38, else UCS-2), `gsm7`, `latin1` or `ucs2`")
            .build()
    }

    fn send(msg: Message) -> Result<Accepted, SendError> {
        let number = |key: &str, default: u8| -> Result<u8, SendError> {
            match config::get(key) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| SendError::Misconfigured(format!("setting `{key}` must be 0 to 255, not {v:?}"))),
            }
        };
        let sender = msg.sender.clone().unwrap_or_default();
        let digits = !sender.is_empty() && sender.trim_start_matches('+').chars().all(|c| c.is_ascii_digit());
        let (ton, npi) = match (sender.is_empty(), digits) {
            (true, _) => (0, 0),
            (false, true) => (1, 1),
            (false, false) => (5, 0),
        };
        let coding = match config::get("coding").as_deref() {
            None | Some("auto") => Coding::Auto,
            Some("gsm7") => Coding::Gsm7,
            Some("latin1") => Coding::Latin1,
            Some("ucs2") => Coding::Ucs2,
            Some(other) => {
                return Err(SendError::Misconfigured(format!(
                    "setting `coding` must be auto, gsm7, latin1 or ucs2, not {other:?}"
                )));
            }
        };
        let receipts = match config::get("receipts").as_deref() {
            None | Some("yes") => 1,
            Some("no") => 0,
            Some(other) => {
                return Err(SendError::Misconfigured(format!("setting `receipts` must be yes or no, not {other:?}")));
            }
        };
        let submit = Submission {
            source: Address {
                ton: number("source_ton", ton)?,
                npi: number("source_npi", npi)?,
                addr: sender.trim_start_matches('+').to_string(),
            },
            destination: Address {
                ton: number("dest_ton", 1)?,
                npi: number("dest_npi", 1)?,
                addr: msg.to.trim_start_matches('+').to_string(),
            },
            service_type: config::get("service_type").unwrap_or_default(),
            registered_delivery: receipts,
            coding,
            text: msg.body,
        };
        match smpp::submit(&submit) {
            Ok(taken) => Ok(Accepted { provider_id: taken.reference, status: None, segments: Some(taken.parts) }),
            Err(e) => Err(failure(e)),
        }
    }
}

/// What an SMPP failure means for the message.
fn failure(e: Error) -> SendError {
    match e {
        Error::Status(code) => match code {
            0x58 | 0x14 => SendError::RateLimited(None),
            0x0B => SendError::InvalidRecipient(format!("the SMSC refused the destination (command_status {code:#x})")),
            0x0A => SendError::Rejected(format!("the SMSC refused the source address (command_status {code:#x})")),
            0x45 | 0x08 => SendError::Unavailable(format!("the SMSC could not take it now (command_status {code:#x})")),
            _ => SendError::Rejected(format!("the SMSC refused the message (command_status {code:#x})")),
        },
        Error::Timeout => SendError::Unavailable("no submit_sm_resp in time; the SMSC may have it".into()),
        Error::Unbound((Some(0x0E | 0x0F), why)) => SendError::Unauthorized(why),
        Error::Unbound((_, why)) => SendError::Unavailable(format!("no SMPP bind is up: {why}")),
        Error::Busy => SendError::Unavailable("every bind's window was full until the deadline".into()),
        Error::Unencodable(why) => SendError::Rejected(why),
        Error::Denied(why) => SendError::Misconfigured(why),
    }
}

bindings::export!(Smpp with_types_in bindings);
