//! Keyed digests and sealed text, under secrets kept outside the databases
//! they protect: a copy of the database, a backup or a replica alone cannot
//! be turned back into phone numbers, codes or queued messages.

use anyhow::{Result, anyhow};
use base64::Engine;
use hmac::{Hmac, Mac};
use ring::aead;

/// HMAC-SHA256 under one secret.
#[derive(Clone)]
pub struct Keyed {
    mac: Hmac<sha2::Sha256>,
}

impl Keyed {
    pub fn new(secret: &[u8]) -> Keyed {
        Keyed { mac: Hmac::new_from_slice(secret).expect("HMAC takes any key length") }
    }

    /// Under a secret made at random: for what lives in this process only.
    pub fn random() -> Keyed {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the OS has randomness");
        Keyed::new(&secret)
    }

    /// The MAC of `parts`, each length-prefixed so that no two lists of
    /// parts give the same input.
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// [`Keyed::tag`] of text parts, in hex.
    pub fn hex(&self, parts: &[&str]) -> String {
        let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
        hex::encode(self.tag(&parts))
    }

    /// A key of its own for `purpose`, derived from this one.
    pub fn derive(&self, purpose: &str) -> Keyed {
        Keyed::new(&self.tag(&[b"derive", purpose.as_bytes()]))
    }
}

/// Text sealed with ChaCha20-Poly1305 (ring) under a key derived for it,
/// bound to the row it belongs to: a sealed value copied to another row
/// does not open.
pub struct Sealer {
    key: aead::LessSafeKey,
}

/// What a sealed value starts with; a value without it is from before
/// sealing, and is read as it is.
const SEALED: &str = "sealed1:";

impl Sealer {
    pub fn new(keyed: &Keyed) -> Sealer {
        let bytes = keyed.derive("seal").tag(&[b"chacha20-poly1305"]);
        let key = aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &bytes).expect("a 32-byte key");
        Sealer { key: aead::LessSafeKey::new(key) }
    }

    /// `text` sealed for the row `row`, as text.
    pub fn seal(&self, row: &str, text: &str) -> String {
        let mut nonce = [0u8; aead::NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the OS has randomness");
        let mut data = text.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(row), &mut data)
            .expect("sealing fits in memory");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        format!("{SEALED}{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(out))
    }

    /// The text `sealed` holds, if it was sealed for `row` under this key.
    pub fn open(&self, row: &str, sealed: &str) -> Result<String> {
        let Some(encoded) = sealed.strip_prefix(SEALED) else { return Ok(sealed.to_string()) };
        let mut data = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(encoded)
            .map_err(|_| anyhow!("queued message {row}: sealed text is damaged"))?;
        if data.len() < aead::NONCE_LEN {
            return Err(anyhow!("queued message {row}: sealed text is damaged"));
        }
        let nonce: [u8; aead::NONCE_LEN] = data[..aead::NONCE_LEN].try_into().expect("the nonce's length");
        let open = self
            .key
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(row),
                &mut data[aead::NONCE_LEN..],
            )
            .map_err(|_| anyhow!("queued message {row}: sealed under another key, or altered"))?;
        String::from_utf8(open.to_vec()).map_err(|_| anyhow!("queued message {row}: sealed text is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_need_the_secret_and_parts_do_not_run_together() {
        let (a, b) = (Keyed::new(b"secret-a"), Keyed::new(b"secret-b"));
        assert_eq!(a.hex(&["x", "y"]), a.hex(&["x", "y"]));
        assert_ne!(a.hex(&["x", "y"]), b.hex(&["x", "y"]));
        assert_ne!(a.hex(&["xy", ""]), a.hex(&["x", "y"]));
        assert_ne!(a.derive("one").hex(&["x"]), a.derive("two").hex(&["x"]));
    }

    #[test]
    fn sealed_text_opens_for_its_row_under_its_key_only() {
        let sealer = Sealer::new(&Keyed::new(b"record-key"));
        let sealed = sealer.seal("m1", "+447400123456");
        assert!(!sealed.contains("447400"), "{sealed}");
        assert_ne!(sealed, sealer.seal("m1", "+447400123456"), "a fresh nonce each time");
        assert_eq!(sealer.open("m1", &sealed).unwrap(), "+447400123456");
        assert!(sealer.open("m2", &sealed).is_err(), "moved to another row");
        assert!(Sealer::new(&Keyed::new(b"other")).open("m1", &sealed).is_err(), "another key");
        let mut altered = sealed.clone();
        altered.replace_range(sealed.len() - 3.., "AAA");
        assert!(sealer.open("m1", &altered).is_err());
        assert_eq!(sealer.open("m1", "from before sealing").unwrap(), "from before sealing");
    }
}
