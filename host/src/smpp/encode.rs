//! A text as `submit_sm` parts: GSM 03.38 (unpacked, as SMSCs take it on
//! data_coding 0) with its extension table when every character is in it,
//! else UCS-2; long texts as concatenated parts with a UDH.

use super::{Coding, Submit};
use rusmpp::extra::concatenation::SubmitSmMultipartExt;
use rusmpp::extra::encoding::gsm7bit::Gsm7BitUnpacked;
use rusmpp::pdus::SubmitSm;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{DataCoding, Npi, RegisteredDelivery, ServiceType, Ton};

/// One GSM-7 part holds 160 septets; with a 6-octet UDH (7 septets), 153.
const GSM7_SINGLE: usize = 160;
const GSM7_WITH_UDH: usize = 153 + 6;

/// The parts of `submit`, each a whole `submit_sm`. `reference` ties the
/// parts of one long message together.
pub fn parts(submit: &Submit, reference: u8) -> Result<Vec<SubmitSm>, String> {
    let base = SubmitSm::builder()
        .service_type(ServiceType::new(text_field("service_type", &submit.service_type)?))
        .source_addr_ton(Ton::from(submit.source.ton))
        .source_addr_npi(Npi::from(submit.source.npi))
        .source_addr(text_field("source address", &submit.source.addr)?)
        .dest_addr_ton(Ton::from(submit.destination.ton))
        .dest_addr_npi(Npi::from(submit.destination.npi))
        .destination_addr(text_field("destination address", &submit.destination.addr)?)
        .registered_delivery(RegisteredDelivery::from(submit.registered_delivery))
        .build();
    let text = submit.text.as_str();
    let gsm7 = || Gsm7BitUnpacked::new().encode_to_vec(text).map_err(|e| format!("{e}"));
    let coding = match submit.coding {
        Coding::Auto if gsm7().is_ok() => Coding::Gsm7,
        Coding::Auto => Coding::Ucs2,
        other => other,
    };
    let built = match coding {
        Coding::Gsm7 => {
            let encoded = gsm7().map_err(|e| format!("the text is not in the GSM 03.38 alphabet: {e}"))?;
            if encoded.len() <= GSM7_SINGLE {
                let sm = OctetString::from_vec(encoded).map_err(|e| e.to_string())?;
                return Ok(vec![base.with_short_message(sm).with_data_coding(DataCoding::McSpecific)]);
            }
            base.multipart(text)
                .max_short_message_size(GSM7_WITH_UDH)
                .reference_u8(reference)
                .build()
                .map_err(|e| e.to_string())
        }
        Coding::Latin1 => base.multipart(text).latin1().reference_u8(reference).build().map_err(|e| e.to_string()),
        Coding::Ucs2 | Coding::Auto => {
            base.multipart(text).ucs2().reference_u8(reference).build().map_err(|e| e.to_string())
        }
    };
    let name = match coding {
        Coding::Gsm7 => "GSM 03.38",
        Coding::Latin1 => "Latin-1",
        Coding::Ucs2 | Coding::Auto => "UCS-2",
    };
    built.map_err(|e| format!("the text cannot be sent as {name}: {e}"))
}

/// `value` as a NUL-terminated field of at most `MAX` octets.
pub fn text_field<const MIN: usize, const MAX: usize>(
    what: &str,
    value: &str,
) -> Result<COctetString<MIN, MAX>, String> {
    COctetString::from_string(value.to_string())
        // The value is left out: it may be a number or a password.
        .map_err(|e| format!("{what} does not fit its SMPP field ({} characters at most): {e}", MAX - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smpp::Address;

    fn submit(text: &str, coding: Coding) -> Submit {
        let addr = |a: &str| Address { ton: 1, npi: 1, addr: a.into() };
        Submit {
            source: addr("447700900001"),
            destination: addr("447700900123"),
            service_type: String::new(),
            registered_delivery: 1,
            coding,
            text: text.into(),
        }
    }

    fn sizes(text: &str, coding: Coding) -> Vec<usize> {
        parts(&submit(text, coding), 7).unwrap().iter().map(|p| p.short_message().len()).collect()
    }

    #[test]
    fn gsm_texts_fill_160_septets_then_153_per_part() {
        assert_eq!(sizes(&"a".repeat(160), Coding::Auto), vec![160]);
        assert_eq!(sizes(&"a".repeat(161), Coding::Auto), vec![159, 14]);
        assert_eq!(sizes(&"a".repeat(300), Coding::Auto), vec![159, 153]);
        // An extension character takes two septets.
        assert_eq!(sizes(&"€".repeat(80), Coding::Auto), vec![160]);
    }

    #[test]
    fn a_character_outside_gsm_makes_the_whole_text_ucs2() {
        let parts = parts(&submit("Ваш код 123456", Coding::Auto), 1).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(u8::from(parts[0].data_coding), 8);
        assert_eq!(sizes(&"ж".repeat(70), Coding::Auto), vec![140]);
        assert_eq!(sizes(&"ж".repeat(71), Coding::Auto), vec![140, 14]);
    }

    #[test]
    fn a_character_beyond_ucs2_is_refused_by_name() {
        let e = parts(&submit("Your code is 123456 🔐", Coding::Auto), 1).unwrap_err();
        assert!(e.contains("UCS-2"), "{e}");
    }

    #[test]
    fn gsm_asked_for_a_text_it_cannot_carry_is_refused_by_name() {
        let e = parts(&submit("код", Coding::Gsm7), 1).unwrap_err();
        assert!(e.contains("GSM 03.38"), "{e}");
    }
}
