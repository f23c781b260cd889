//! The region and number type of an E.164 number, by libphonenumber's rules
//! and metadata, with each region's patterns compiled once.
//!
//! The `phonenumber` crate answers the same question, but parses the number
//! again and looks every pattern up in one shared, locked cache of 100
//! compiled regexes, hashing the pattern text each time; with traffic to
//! many countries the cache thrashes and patterns are compiled again. Here
//! each region's patterns are compiled on its first number and kept.

use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use phonenumber::{Type, country::Id as Country};
use regex::{Regex, RegexBuilder};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

/// One region's patterns, in the order libphonenumber tries them.
struct Region {
    id: Option<Country>,
    /// Numbers starting with this belong to the region, for a country code
    /// that several regions share.
    leading: Option<Regex>,
    general: Pattern,
    /// Premium rate, toll free, shared cost, VoIP, personal, pager, UAN and
    /// voicemail: the first that matches is the type.
    special: Vec<(Type, Pattern)>,
    fixed_line: Option<Pattern>,
    mobile: Option<Pattern>,
    /// Fixed-line and mobile numbers share one pattern here.
    fixed_is_mobile: bool,
    /// What parsing strips from the start of a national number here: the
    /// national prefix, and the pattern libphonenumber reads it by.
    national_prefix: Option<String>,
    prefix_for_parsing: Option<Regex>,
    /// The lengths of a possible national number, any type.
    possible: Vec<u16>,
}

struct Pattern {
    lengths: Vec<u16>,
    /// Anchored at the start, as libphonenumber matches.
    regex: Regex,
}

impl Pattern {
    fn new(d: &Descriptor) -> Pattern {
        Pattern { lengths: d.possible_length().to_vec(), regex: anchored(d.national_number().as_str()) }
    }

    fn matches(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16))) && self.regex.is_match(national)
    }
}

fn anchored(pattern: &str) -> Regex {
    // The metadata's patterns are written to be read with whitespace ignored.
    RegexBuilder::new(&format!("^(?:{pattern})"))
        .ignore_whitespace(true)
        .build()
        .unwrap_or_else(|_| Regex::new("$.^").expect("a regex that matches nothing"))
}

impl Region {
    fn new(meta: &Metadata) -> Region {
        let d = meta.descriptors();
        let special = [
            Type::PremiumRate,
            Type::TollFree,
            Type::SharedCost,
            Type::Voip,
            Type::PersonalNumber,
            Type::Pager,
            Type::Uan,
            Type::Voicemail,
        ]
        .into_iter()
        .filter_map(|kind| d.get(kind).map(|desc| (kind, Pattern::new(desc))))
        .collect();
        let same = |a: Option<&Descriptor>, b: Option<&Descriptor>| {
            a.map(|d| d.national_number().as_str()) == b.map(|d| d.national_number().as_str())
        };
        Region {
            id: meta.id().parse().ok(),
            leading: meta.leading_digits().map(|r| anchored(r.as_str())),
            general: Pattern::new(d.general()),
            special,
            fixed_line: d.fixed_line().map(Pattern::new),
            mobile: d.mobile().map(Pattern::new),
            fixed_is_mobile: same(d.fixed_line(), d.mobile()),
            national_prefix: meta.national_prefix().map(String::from),
            prefix_for_parsing: meta.national_prefix_for_parsing().map(|r| anchored(r.as_str())),
            possible: crate::phone::NUMBER_TYPES
                .iter()
                .filter_map(|kind| d.get(*kind))
                .flat_map(|desc| desc.possible_length().iter().copied())
                .collect(),
        }
    }

    /// Whether parsing may strip something from the start of `national`.
    fn may_strip(&self, national: &str) -> bool {
        self.national_prefix.as_ref().is_some_and(|p| national.starts_with(p.as_str()))
            || self.prefix_for_parsing.as_ref().is_some_and(|r| r.is_match(national))
    }

    fn number_type(&self, national: &str) -> Type {
        if !self.general.matches(national) {
            return Type::Unknown;
        }
        if let Some((kind, _)) = self.special.iter().find(|(_, p)| p.matches(national)) {
            return *kind;
        }
        let mobile = || self.mobile.as_ref().is_some_and(|p| p.matches(national));
        if self.fixed_line.as_ref().is_some_and(|p| p.matches(national)) {
            return if self.fixed_is_mobile || mobile() { Type::FixedLineOrMobile } else { Type::FixedLine };
        }
        if mobile() { Type::Mobile } else { Type::Unknown }
    }
}

/// The regions of each country code seen so far, compiled.
static REGIONS: LazyLock<RwLock<HashMap<u16, Arc<Vec<Region>>>>> = LazyLock::new(Default::default);

fn regions(code: u16) -> Option<Arc<Vec<Region>>> {
    if let Some(known) = REGIONS.read().unwrap().get(&code) {
        return Some(known.clone());
    }
    let metas = DATABASE.by_code(&code)?;
    let compiled = Arc::new(metas.into_iter().map(Region::new).collect::<Vec<_>>());
    REGIONS.write().unwrap().insert(code, compiled.clone());
    Some(compiled)
}

/// `(region, type)` of `e164` (`+` and digits); `(None, Unknown)` for a
/// number no region's metadata describes.
pub fn classify(e164: &str) -> (Option<Country>, Type) {
    let digits = e164.trim_start_matches('+');
    // Country codes are prefix-free: the first 1 to 3 digits that name one.
    for len in 1..=3.min(digits.len()) {
        let Ok(code) = digits[..len].parse::<u16>() else { break };
        let Some(regions) = regions(code) else { continue };
        let national = &digits[len..];
        if let [only] = regions.as_slice() {
            return (only.id, only.number_type(national));
        }
        // Shared code (+1, +44, +7): the first region whose leading digits
        // match, or, lacking those, whose patterns describe the number.
        for region in regions.iter() {
            let belongs = match &region.leading {
                Some(leading) => leading.is_match(national),
                None => region.number_type(national) != Type::Unknown,
            };
            if belongs {
                return (region.id, region.number_type(national));
            }
        }
        return (None, Type::Unknown);
    }
    (None, Type::Unknown)
}

/// `+digits` in E.164, when the digits already are what the full parse
/// would make of them: a country code, then a national number that none of
/// that code's regions would strip a national prefix from, of a length one
/// of them uses. `None` leaves the answer to the full parse, which is slower
/// (it matches every region's patterns through a shared cache).
pub fn as_written(digits: &str) -> Option<String> {
    // The crate refuses more than 17 digits in all, country code included.
    if !(3..=17).contains(&digits.len()) || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    for len in 1..=3.min(digits.len()) {
        let code = digits[..len].parse::<u16>().ok()?;
        let Some(regions) = regions(code) else { continue };
        let national = &digits[len..];
        if national.len() < 2 || regions.iter().any(|r| r.may_strip(national)) {
            return None;
        }
        let possible = regions.iter().any(|r| r.possible.contains(&(national.len() as u16)));
        return possible.then(|| format!("+{digits}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the `phonenumber` crate itself answers, where it reads the
    /// national number as E.164 writes it. It drops an Italian number's
    /// leading zeros when choosing the region, and strips a national prefix
    /// (Russia's 8) from some international numbers: there it is not a
    /// reference, and `None`.
    fn reference(e164: &str) -> Option<(Option<Country>, Type)> {
        let n = phonenumber::parse(None, e164).ok()?;
        let code = n.code().value().to_string();
        let national = n.national().to_string();
        (e164 == format!("+{code}{national}") && !national.starts_with('0'))
            .then(|| (n.country().id(), n.number_type(&DATABASE)))
    }

    #[test]
    fn every_example_number_of_every_region_is_classified_as_libphonenumber_does() {
        let mut checked = 0;
        for code in 1..1000u16 {
            let Some(metas) = DATABASE.by_code(&code) else { continue };
            for meta in metas {
                let d = meta.descriptors();
                let types = crate::phone::NUMBER_TYPES.iter().chain([&Type::Voicemail]);
                let all = [d.general()].into_iter().chain(types.filter_map(|k| d.get(*k)));
                for example in all.filter_map(|desc| desc.example()) {
                    let e164 = format!("+{code}{example}");
                    if let Some(expected) = reference(&e164) {
                        assert_eq!(classify(&e164), expected, "{e164}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1000, "the metadata's examples were found: {checked}");
    }

    #[test]
    fn numbers_the_crate_misreads_follow_libphonenumber_rules() {
        // Milan fixed line: the leading zero is part of the number.
        assert_eq!(classify("+390212345678"), (Some(Country::IT), Type::FixedLine));
        // A Russian toll-free number: 8 here is not a national prefix.
        assert_eq!(classify("+78001234567"), (Some(Country::RU), Type::TollFree));
        assert_eq!(classify("+447400123456"), (Some(Country::GB), Type::Mobile));
        // No region of +44 describes it.
        assert_eq!(classify("+4470"), (None, Type::Unknown));
        assert_eq!(classify("+999123"), (None, Type::Unknown));
        assert_eq!(classify("+"), (None, Type::Unknown));
    }

    /// The full parse, as `normalise` did it before `as_written`.
    fn parsed(e164: &str) -> Option<String> {
        crate::phone::parse_valid(None, e164)
    }

    #[test]
    fn every_example_number_written_as_e164_reads_as_the_full_parse_reads_it() {
        let (mut fast, mut checked) = (0, 0);
        for code in 1..1000u16 {
            let Some(metas) = DATABASE.by_code(&code) else { continue };
            for meta in metas {
                let d = meta.descriptors();
                let all = [d.general()].into_iter().chain(crate::phone::NUMBER_TYPES.iter().filter_map(|k| d.get(*k)));
                for example in all.filter_map(|desc| desc.example()) {
                    // As written, with the national prefix left in, and cut short.
                    let prefix = meta.national_prefix().unwrap_or("0");
                    for digits in [
                        format!("{code}{example}"),
                        format!("{code}{prefix}{example}"),
                        format!("{code}{}", &example[..example.len() / 2]),
                    ] {
                        let e164 = format!("+{digits}");
                        let quick = as_written(&digits);
                        if quick.is_some() {
                            assert_eq!(quick, parsed(&e164), "{e164}");
                            fast += 1;
                        }
                        checked += 1;
                    }
                }
            }
        }
        // Those written as E.164 do; those with a prefix or cut short do not.
        assert!(fast > checked / 3, "the quick path is taken: {fast} of {checked}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20000))]
        /// Any digits after any real country code: where the quick path
        /// answers, the full parse answers the same.
        #[test]
        fn the_quick_path_answers_as_the_full_parse(
            code in prop::sample::select((1..1000u16).filter(|c| DATABASE.by_code(c).is_some()).collect::<Vec<_>>()),
            national in "[0-9]{0,18}",
        ) {
            let digits = format!("{code}{national}");
            if let Some(quick) = as_written(&digits) {
                prop_assert_eq!(Some(quick), parsed(&format!("+{digits}")), "+{}", digits);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Any number that normalises, after a real country code, as
        /// libphonenumber says.
        #[test]
        fn any_number_is_classified_as_libphonenumber_does(
            code in prop::sample::select(vec![1u16, 7, 33, 39, 44, 49, 61, 86, 91, 234, 262, 358, 590, 971]),
            national in "[0-9]{4,13}",
        ) {
            if let Ok(e164) = crate::phone::normalise(&format!("+{code}{national}"), None)
                && let Some(expected) = reference(&e164)
            {
                prop_assert_eq!(classify(&e164), expected, "{}", e164);
            }
        }
    }
}
