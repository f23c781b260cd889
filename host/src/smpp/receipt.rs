//! Delivery receipts as SMSCs send them in `deliver_sm`: the
//! `receipted_message_id` and `message_state` TLVs when present, else the
//! SMPP 3.4 Appendix B text (`id:… sub:… dlvrd:… submit date:… done date:…
//! stat:DELIVRD err:…`), and the matching of a receipt's id to the id
//! `submit_sm_resp` gave, which SMSCs write in different forms (hex in one
//! and decimal in the other, leading zeros dropped, letter case changed).

pub use crate::config::IdForm;
use crate::outcome::DeliveryState;

/// The form an id is compared in: a number when its form says so and it
/// reads as one, else its text without leading zeros, lower case.
pub fn id_key(id: &str, form: IdForm) -> String {
    let id = id.trim().trim_end_matches('\0');
    let number = match form {
        IdForm::Text => None,
        IdForm::Decimal => id.parse::<u128>().ok(),
        IdForm::Hex => u128::from_str_radix(id, 16).ok(),
    };
    match number {
        Some(n) => format!("#{n:x}"),
        None => {
            let trimmed = id.trim_start_matches('0');
            if trimmed.is_empty() && !id.is_empty() { "0".into() } else { trimmed.to_ascii_lowercase() }
        }
    }
}

/// Whether a receipt's id names the message `submit_sm_resp` called
/// `submitted`.
pub fn same_message(submitted: &str, submit_form: IdForm, receipted: &str, receipt_form: IdForm) -> bool {
    id_key(submitted, submit_form) == id_key(receipted, receipt_form)
}

/// What one receipt says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The message id, as the receipt writes it.
    pub id: String,
    pub state: DeliveryState,
    /// The SMSC's own status word (`DELIVRD`) or state number.
    pub stat: String,
    /// The network error code, when the text gives one.
    pub err: Option<String>,
    /// `done date` as written (`YYMMDDhhmm` or with seconds).
    pub done: Option<String>,
}

/// The state a `stat:` word stands for.
pub fn state_of_word(word: &str) -> Option<DeliveryState> {
    Some(match word.to_ascii_uppercase().as_str() {
        "DELIVRD" | "DELIVERED" => DeliveryState::Delivered,
        "ENROUTE" | "ACCEPTD" | "ACCEPTED" => DeliveryState::Sent,
        "EXPIRED" | "DELETED" | "UNDELIV" | "UNDELIVERABLE" => DeliveryState::Undelivered,
        "REJECTD" | "REJECTED" | "SKIPPED" => DeliveryState::Failed,
        "UNKNOWN" => DeliveryState::Unknown,
        _ => return None,
    })
}

/// The state a `message_state` TLV (0x0427) value stands for.
pub fn state_of_tlv(value: u8) -> Option<DeliveryState> {
    Some(match value {
        1 | 6 => DeliveryState::Sent,
        2 => DeliveryState::Delivered,
        3..=5 => DeliveryState::Undelivered,
        7 => DeliveryState::Unknown,
        8 | 9 => DeliveryState::Failed,
        _ => return None,
    })
}

/// Reads a receipt: the TLVs (`receipted_message_id`, `message_state`) win
/// over the text, which fills in what they leave out. None when neither
/// gives an id and a state.
pub fn read(short_message: &[u8], receipted_id: Option<&str>, message_state: Option<u8>) -> Option<Receipt> {
    let text = String::from_utf8_lossy(short_message);
    let fields = text_fields(&text);
    let field = |name: &str| fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_string());
    let id = receipted_id.map(|id| id.trim_end_matches('\0').to_string()).or_else(|| field("id"))?;
    let word = field("stat");
    let state = message_state.and_then(state_of_tlv).or_else(|| word.as_deref().and_then(state_of_word))?;
    let stat = word.unwrap_or_else(|| message_state.map(|s| s.to_string()).unwrap_or_default());
    Some(Receipt { id, state, stat, err: field("err"), done: field("done date") })
}

/// The `key:value` pairs of an Appendix B text. Keys may hold a space
/// (`submit date`); values run to the next space, but `text:` runs to the
/// end.
fn text_fields(text: &str) -> Vec<(String, String)> {
    const KEYS: &[&str] = &["id", "sub", "dlvrd", "submit date", "done date", "stat", "err", "text"];
    let lower = text.to_ascii_lowercase();
    let mut found: Vec<(usize, &str)> = Vec::new();
    for key in KEYS {
        let pattern = format!("{key}:");
        let mut from = 0;
        while let Some(at) = lower[from..].find(&pattern) {
            let at = from + at;
            // A key starts the text or follows a space: `id:` inside `sid:` is not one.
            if at == 0 || lower.as_bytes()[at - 1] == b' ' {
                found.push((at, key));
                break;
            }
            from = at + pattern.len();
        }
    }
    found.sort();
    let mut out = Vec::new();
    for (i, (at, key)) in found.iter().enumerate() {
        let start = at + key.len() + 1;
        let end = if *key == "text" { text.len() } else { found.get(i + 1).map_or(text.len(), |(next, _)| *next) };
        let value = text.get(start..end.max(start)).unwrap_or("").trim();
        let value = if *key == "text" { value } else { value.split(' ').next().unwrap_or("") };
        out.push((key.to_string(), value.to_string()));
    }
    out
}

/// The status of a message sent as several parts: the worst of its parts'
/// (a part still on its way keeps the whole on its way).
pub fn worst(parts: impl IntoIterator<Item = DeliveryState>) -> Option<DeliveryState> {
    let rank = |s: &DeliveryState| match s {
        DeliveryState::Delivered => 0,
        DeliveryState::Queued | DeliveryState::Sent => 1,
        DeliveryState::Unknown => 2,
        DeliveryState::Undelivered => 3,
        DeliveryState::Failed => 4,
    };
    parts.into_iter().max_by_key(rank)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const APPENDIX_B: &str = "id:0123456789 sub:001 dlvrd:001 submit date:2612031015 done date:2612031016 stat:DELIVRD err:000 text:Your code is 123456";

    #[test]
    fn the_appendix_b_text_is_read_field_by_field() {
        let r = read(APPENDIX_B.as_bytes(), None, None).unwrap();
        assert_eq!(r.id, "0123456789");
        assert_eq!((r.state, r.stat.as_str()), (DeliveryState::Delivered, "DELIVRD"));
        assert_eq!(r.err.as_deref(), Some("000"));
        assert_eq!(r.done.as_deref(), Some("2612031016"));
        let failed = read(
            b"id:7 sub:001 dlvrd:000 submit date:2612031015 done date:2612031020 stat:UNDELIV err:034",
            None,
            None,
        );
        assert_eq!(failed.unwrap().state, DeliveryState::Undelivered);
        let lower = read(b"id:ab12 stat:rejectd err:9", None, None).unwrap();
        assert_eq!(lower.state, DeliveryState::Failed, "SMSCs that write lower case");
        assert_eq!(read(b"not a receipt", None, None), None);
        assert_eq!(read(b"id:5 stat:SOMETHING", None, None), None, "an unknown word is not a state");
    }

    #[test]
    fn the_tlvs_win_over_the_text() {
        let r = read(APPENDIX_B.as_bytes(), Some("FF00\0"), Some(5)).unwrap();
        assert_eq!((r.id.as_str(), r.state), ("FF00", DeliveryState::Undelivered));
        let bare = read(b"", Some("42"), Some(2)).unwrap();
        assert_eq!((bare.id.as_str(), bare.state, bare.stat.as_str()), ("42", DeliveryState::Delivered, "2"));
        assert_eq!(read(b"", Some("42"), Some(0)), None, "state 0 is no state");
    }

    #[test]
    fn ids_match_across_the_forms_smscs_write_them_in() {
        // Vonage: hex in submit_sm_resp, decimal in the receipt.
        assert!(same_message("0A1B2C3D", IdForm::Hex, "169552957", IdForm::Decimal));
        assert!(!same_message("0A1B2C3D", IdForm::Hex, "169552958", IdForm::Decimal));
        // Leading zeros dropped, letter case changed.
        assert!(same_message("000abc", IdForm::Text, "ABC", IdForm::Text));
        assert!(same_message("0042", IdForm::Decimal, "42", IdForm::Decimal));
        assert!(!same_message("42", IdForm::Decimal, "42", IdForm::Hex), "42 hex is 66");
        // An id that is not the number its form says is compared as text.
        assert!(same_message("msg-7f", IdForm::Decimal, "MSG-7F", IdForm::Text));
        assert_eq!(id_key("000", IdForm::Text), "0");
    }

    #[test]
    fn a_long_message_is_as_good_as_its_worst_part() {
        use DeliveryState::*;
        assert_eq!(worst([Delivered, Delivered]), Some(Delivered));
        assert_eq!(worst([Delivered, Sent]), Some(Sent), "a part still on its way");
        assert_eq!(worst([Delivered, Undelivered, Sent]), Some(Undelivered));
        assert_eq!(worst([Failed, Undelivered]), Some(Failed));
        assert_eq!(worst([]), None);
    }

    proptest! {
        /// Any bytes: a receipt or none, never a panic.
        #[test]
        fn any_short_message_reads_or_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = read(&bytes, None, None);
        }

        /// A decimal id and the hex of the same number are one message.
        #[test]
        fn decimal_and_hex_of_one_number_match(n in any::<u64>(), zeros in 0usize..4) {
            let hex = format!("{}{n:X}", "0".repeat(zeros));
            prop_assert!(same_message(&hex, IdForm::Hex, &n.to_string(), IdForm::Decimal));
        }
    }
}
