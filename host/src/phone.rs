//! Phone numbers: what callers send, turned into E.164, and masked for logs.
//!
//! MFA servers send numbers in every shape: with or without `+`, with
//! separators, in national format, with a `00` prefix, and with a `+` that an
//! unencoded form body turned into a space. Parsing and validity come from
//! libphonenumber's metadata (the `phonenumber` crate).

mod classify;

use phonenumber::country::Id as Country;
use phonenumber::{PhoneNumber, Type};

/// The number types whose lengths make a number possible.
pub(crate) const NUMBER_TYPES: &[Type] = &[
    Type::FixedLine,
    Type::Mobile,
    Type::TollFree,
    Type::PremiumRate,
    Type::SharedCost,
    Type::PersonalNumber,
    Type::Voip,
    Type::Pager,
    Type::Uan,
];

/// Why a number could not be normalised; the text is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneError {
    Empty,
    BadCharacter(char),
    NoCountry,
    Invalid,
}

impl std::fmt::Display for PhoneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PhoneError::Empty => f.write_str("is empty"),
            PhoneError::BadCharacter(c) => {
                write!(f, "contains {c:?}; only digits, a leading + and the separators . - ( ) / and space are allowed")
            }
            PhoneError::NoCountry => f.write_str("has no country code (+CC) and the route sets no default_country"),
            PhoneError::Invalid => f.write_str("is not a valid phone number"),
        }
    }
}

/// Normalises `raw` to E.164 (`+447700900123`).
///
/// A number without `+` is read in `default_country` first and, if that is
/// not a valid number, as international digits (RSA AM sends both shapes).
pub fn normalise(raw: &str, default_country: Option<Country>) -> Result<String, PhoneError> {
    // `+44…` in a form body that was not percent-encoded arrives as ` 44…`.
    let plus_as_space = raw.starts_with(' ') && raw.trim_start().starts_with(|c: char| ('1'..='9').contains(&c));
    let raw = raw.trim();
    // `+44 (0)7700 …`: the bracketed trunk prefix is not dialled from abroad.
    let raw = &raw.replacen("(0)", "", 1);
    if raw.is_empty() {
        return Err(PhoneError::Empty);
    }
    let mut digits = String::with_capacity(raw.len() + 1);
    for (i, c) in raw.char_indices() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' | '\t' => {}
            other => return Err(PhoneError::BadCharacter(other)),
        }
    }
    if plus_as_space {
        digits.insert(0, '+');
    }
    if let Some(rest) = digits.strip_prefix("00") {
        digits = format!("+{rest}");
    }
    if digits.trim_start_matches('+').is_empty() {
        return Err(PhoneError::Empty);
    }

    if let Some(international) = digits.strip_prefix('+') {
        return classify::as_written(international).or_else(|| parse_valid(None, &digits)).ok_or(PhoneError::Invalid);
    }
    if let Some(country) = default_country
        && let Some(n) = parse_valid(Some(country), &digits)
    {
        return Ok(n);
    }
    match classify::as_written(&digits).or_else(|| parse_valid(None, &format!("+{digits}"))) {
        Some(n) => Ok(n),
        None if default_country.is_none() && digits.starts_with('0') => Err(PhoneError::NoCountry),
        None => Err(PhoneError::Invalid),
    }
}

/// The number in E.164 if it parses and has a length its country uses.
///
/// Length, not the full validity rules: numbers reserved for drama and tests
/// (`+44 7700 900xxx`, `+1 555 01xx`) must pass, and numbering plans change
/// faster than metadata.
pub(crate) fn parse_valid(country: Option<Country>, text: &str) -> Option<String> {
    let number: PhoneNumber = phonenumber::parse(country, text).ok()?;
    let national = number.national().to_string();
    let national_len = national.len() as u16;
    // Every region sharing the country code (44: GB, GG, IM, JE).
    let regions = phonenumber::metadata::DATABASE.by_code(&number.code().value())?;
    let possible = regions.iter().any(|meta| {
        NUMBER_TYPES
            .iter()
            .any(|kind| meta.descriptors().get(*kind).is_some_and(|d| d.possible_length().contains(&national_len)))
    });
    // What the crate's E.164 formatter writes, without its search for a
    // national format it does not use.
    possible.then(|| format!("+{}{national}", number.code().value()))
}

/// The region (`GB`) and number type of an E.164 number, from
/// libphonenumber's metadata. A number that fits no type's pattern of its
/// region, including ranges kept for drama and tests, is `Unknown`.
pub fn classify(e164: &str) -> (Option<Country>, Type) {
    classify::classify(e164)
}

/// The config and answer word for a number type: `premium_rate`.
pub fn type_name(kind: Type) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(Into::into)).unwrap_or_else(|| "unknown".into())
}

/// A number fit for logs: country code and first digits, the last four, and
/// no more (`+447700900123` → `+4477****0123`).
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 8 {
        return "****".into();
    }
    let head_len = if number.starts_with('+') { 5 } else { 4 };
    let head: String = chars[..head_len].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// `text` with every phone number masked: a run of seven or more digits,
/// possibly after a `+` and with spaces, dashes, dots or brackets between
/// them (`+44 7400 900123`, `(0740) 090-0123`). For text from adapters and
/// providers that may carry a number.
pub fn mask_in(text: &str) -> String {
    const SEPARATORS: &[char] = &[' ', '-', '.', '(', ')'];
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i].is_ascii_digit()
            || (matches!(chars[i], '+' | '(') && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        if !starts {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // The run ends at its last digit: trailing separators stay text.
        let (mut end, mut j) = (i, i);
        while j < chars.len() && (chars[j].is_ascii_digit() || SEPARATORS.contains(&chars[j]) || j == i) {
            if chars[j].is_ascii_digit() {
                end = j + 1;
            }
            j += 1;
        }
        let run: String = chars[i..end].iter().collect();
        let compact: String = run.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect();
        if compact.chars().filter(char::is_ascii_digit).count() >= 7 {
            out.push_str(&mask(&compact));
        } else {
            out.push_str(&run);
        }
        i = end.max(i + 1);
    }
    out
}

/// The runs of four or more digits in `text` (a message's codes), to be
/// kept out of logs and error texts.
pub fn digit_runs(text: &str) -> Vec<String> {
    let mut runs: Vec<String> =
        text.split(|c: char| !c.is_ascii_digit()).filter(|r| r.len() >= 4).map(String::from).collect();
    // Longest first, so a run inside another does not leave part of it.
    runs.sort_by_key(|r| std::cmp::Reverse(r.len()));
    runs.dedup();
    runs
}

/// `text` with every occurrence of `runs` replaced by `****`.
pub fn redact(text: &str, runs: &[String]) -> String {
    let mut out = text.to_string();
    for run in runs {
        out = out.replace(run.as_str(), "****");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: Option<Country> = Some(Country::GB);

    #[test]
    fn numbers_in_text_are_masked_however_they_are_written() {
        for (text, masked) in [
            ("to +447400900123 failed", "to +4474****0123 failed"),
            ("to +44 7400 900123 failed", "to +4474****0123 failed"),
            ("to 07400-900-123.", "to 0740****0123."),
            ("call (0740) 090 0123 now", "call 0740****0123 now"),
            ("error 21211 at 12:30", "error 21211 at 12:30"),
            ("+44 7400", "+44 7400"),
        ] {
            assert_eq!(mask_in(text), masked, "{text:?}");
        }
    }

    #[test]
    fn a_messages_codes_are_redacted_from_text() {
        let runs = digit_runs("Your code is 123456; ref 99 and 4321");
        assert_eq!(runs, ["123456", "4321"]);
        assert_eq!(redact("rejected: 'Your code is 123456' (4321)", &runs), "rejected: 'Your code is ****' (****)");
    }

    #[test]
    fn accepts_the_shapes_callers_send() {
        for raw in [
            "+447700900123",
            "+44 7700 900123",
            "+44 (0)7700-900.123",
            "447700900123",
            "00447700900123",
            " 447700900123",
            "07700 900123",
            "(07700) 900-123",
        ] {
            assert_eq!(normalise(raw, GB), Ok("+447700900123".into()), "{raw:?}");
        }
        assert_eq!(normalise("+1 (201) 555-0123", None), Ok("+12015550123".into()));
        assert_eq!(normalise("2015550123", Some(Country::US)), Ok("+12015550123".into()));
        assert_eq!(normalise("447700900123", None), Ok("+447700900123".into()));
        assert_eq!(normalise(" 447700900123", None), Ok("+447700900123".into()));
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        assert_eq!(normalise("", GB), Err(PhoneError::Empty));
        assert_eq!(normalise("  + ", GB), Err(PhoneError::Empty));
        assert_eq!(normalise("+44 7700 abc", GB), Err(PhoneError::BadCharacter('a')));
        assert_eq!(normalise("44+7700", GB), Err(PhoneError::BadCharacter('+')));
        assert_eq!(normalise("+44 12", GB), Err(PhoneError::Invalid));
        assert_eq!(normalise("07700 900123", None), Err(PhoneError::NoCountry));
        assert_eq!(normalise("+999 1234567", None), Err(PhoneError::Invalid));
    }

    #[test]
    fn classifies_region_and_type() {
        assert_eq!(classify("+447400123456"), (Some(Country::GB), Type::Mobile));
        assert_eq!(classify("+449098765432"), (Some(Country::GB), Type::PremiumRate));
        assert_eq!(classify("+34901123456").1, Type::SharedCost);
        // The drama range fits no pattern.
        assert_eq!(classify("+447700900123").1, Type::Unknown);
        assert_eq!(classify("+2348031234567"), (Some(Country::NG), Type::Mobile));
        assert_eq!(type_name(Type::PremiumRate), "premium_rate");
    }

    #[test]
    fn masks_numbers() {
        assert_eq!(mask("+447700900123"), "+4477****0123");
        assert_eq!(mask("+12"), "****");
        assert_eq!(mask_in("cannot send to +447700900123 (code 21211)"), "cannot send to +4477****0123 (code 21211)");
        assert_eq!(mask_in("447700900123"), "4477****0123");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a caller sends: an E.164 number or an error, never a
        /// panic; and a number normalises to itself.
        #[test]
        fn normalise_gives_e164_or_an_error(raw in "[ +0-9().\\-/a-z]{0,24}", gb in any::<bool>()) {
            let country = gb.then_some(Country::GB);
            if let Ok(n) = normalise(&raw, country) {
                prop_assert!(n.starts_with('+') && n.len() <= 16 && n[1..].chars().all(|c| c.is_ascii_digit()), "{}", n);
                prop_assert_eq!(normalise(&n, None), Ok(n.clone()));
                let masked = mask(&n);
                prop_assert!(!masked.contains(&n[5..n.len() - 4]) || n.len() <= 9, "{}", masked);
            }
        }
    }
}
