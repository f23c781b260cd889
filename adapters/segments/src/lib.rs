//! How many SMS parts a message takes, by the GSM 03.38 and UCS-2 rules.
//!
//! A message that uses only the GSM 7-bit alphabet fits 160 septets in one
//! part and 153 per part when concatenated; the extension characters take two
//! septets. Anything else sends the whole message as UCS-2: 70 UTF-16 units,
//! 67 per part. An escape pair or a surrogate pair is never split.

#![no_std]

/// The GSM 03.38 default alphabet (one septet each), less the escape code.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The extension table: escape + code, two septets each.
const GSM7_EXTENDED: &str = "\u{c}^{}\\[~]|€";

/// The encoding a message is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// The encoding and number of parts for `text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    pub encoding: Encoding,
    pub count: u32,
}

/// Septets a character takes in GSM-7, or `None` when it is not in the alphabet.
fn gsm7_septets(c: char) -> Option<u32> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENDED.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Packs units into parts of `single` (one part) or `multi` (each of several),
/// never splitting one character's units.
fn pack(units: impl Iterator<Item = u32> + Clone, single: u32, multi: u32) -> u32 {
    if units.clone().sum::<u32>() <= single {
        return 1;
    }
    let (mut parts, mut used) = (1, 0);
    for n in units {
        if used + n > multi {
            parts += 1;
            used = 0;
        }
        used += n;
    }
    parts
}

/// Counts the parts `text` is sent in. An empty text is one (empty) part.
pub fn count(text: &str) -> Segments {
    if text.chars().all(|c| gsm7_septets(c).is_some()) {
        let septets = text.chars().map(|c| gsm7_septets(c).unwrap_or(1));
        Segments { encoding: Encoding::Gsm7, count: pack(septets, 160, 153) }
    } else {
        let units = text.chars().map(|c| c.len_utf16() as u32);
        Segments { encoding: Encoding::Ucs2, count: pack(units, 70, 67) }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    fn repeat(s: &str, n: usize) -> String {
        s.repeat(n)
    }

    #[test]
    fn gsm7_boundaries() {
        assert_eq!(count(""), Segments { encoding: Encoding::Gsm7, count: 1 });
        assert_eq!(count(&repeat("a", 160)).count, 1);
        assert_eq!(count(&repeat("a", 161)).count, 2);
        assert_eq!(count(&repeat("a", 306)).count, 2);
        assert_eq!(count(&repeat("a", 307)).count, 3);
        assert_eq!(count("Your code is 123456").encoding, Encoding::Gsm7);
    }

    #[test]
    fn extension_characters_take_two_septets_and_are_not_split() {
        assert_eq!(count(&repeat("€", 80)).count, 1);
        assert_eq!(count(&repeat("€", 81)).count, 2);
        // 152 septets then an escape pair: the pair moves to part two.
        let text = repeat("a", 152) + "{" + &repeat("a", 10);
        assert_eq!(count(&text).count, 2);
        let text = repeat("a", 152) + &repeat("{", 77);
        assert_eq!(count(&text), Segments { encoding: Encoding::Gsm7, count: 3 });
    }

    #[test]
    fn ucs2_boundaries_and_surrogates() {
        assert_eq!(count(&repeat("ж", 70)), Segments { encoding: Encoding::Ucs2, count: 1 });
        assert_eq!(count(&repeat("ж", 71)).count, 2);
        assert_eq!(count(&repeat("ж", 134)).count, 2);
        assert_eq!(count(&repeat("ж", 135)).count, 3);
        // An emoji is two UTF-16 units: 35 fill one part, 36 need two.
        assert_eq!(count(&repeat("😀", 35)).count, 1);
        assert_eq!(count(&repeat("😀", 36)).count, 2);
        // 66 units then a surrogate pair: the pair moves to part two.
        let text = repeat("ж", 66) + "😀" + &repeat("ж", 3);
        assert_eq!(count(&text).count, 2);
        assert_eq!(count(&(repeat("a", 100) + "ж")).encoding, Encoding::Ucs2);
    }
}
