//! `[provider.smpp]`: the binds the host keeps open to a provider's SMSC.
//! The adapter words each message; these settings are the session's.

use super::*;
use url::Url;

/// How the host binds to one provider instance's SMSC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmppBinds {
    /// `smpp://host:port` or `smpps://host:port` (TLS).
    pub url: String,
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    /// Sessions opened at once, each a transceiver.
    pub binds: u32,
    /// Outstanding `submit_sm` per bind.
    pub window: u32,
    /// Messages per second across the binds; 0 for no limit.
    pub tps: u32,
    pub enquire_link: Duration,
    /// Longest wait between two bind attempts; the first retry is after 1 s.
    pub reconnect_max: Duration,
    /// The pause after `ESME_RTHROTTLED` or `ESME_RMSGQFUL`.
    pub throttle_pause: Duration,
    /// CA certificates for `smpps://`; the system's roots when unset.
    pub ca_file: Option<PathBuf>,
    /// How `submit_sm_resp` and receipts write message ids.
    pub submit_ids: IdForm,
    pub receipt_ids: IdForm,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmpp {
    url: String,
    system_id: Spanned<RawSetting>,
    password: Spanned<RawSetting>,
    #[serde(default)]
    system_type: String,
    #[serde(default = "one")]
    binds: u32,
    #[serde(default = "ten")]
    window: u32,
    #[serde(default)]
    tps: u32,
    #[serde(default = "thirty")]
    enquire_link_s: u64,
    #[serde(default = "sixty")]
    reconnect_max_s: u64,
    #[serde(default = "pause_ms")]
    throttle_pause_ms: u64,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    submit_ids: IdForm,
    #[serde(default)]
    receipt_ids: IdForm,
}

/// How an SMSC writes message ids in one place (`submit_sm_resp` or the
/// receipt), as the provider's settings declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdForm {
    /// As given: compared without leading zeros and case-insensitively.
    #[default]
    Text,
    /// A decimal number.
    Decimal,
    /// A hexadecimal number.
    Hex,
}

fn one() -> u32 {
    1
}
fn ten() -> u32 {
    10
}
fn thirty() -> u64 {
    30
}
fn sixty() -> u64 {
    60
}
fn pause_ms() -> u64 {
    1000
}

impl SmppBinds {
    pub(super) fn from_raw(raw: RawSmpp, what: impl Fn() -> Place) -> Result<SmppBinds> {
        let url = Url::parse(&raw.url)
            .map_err(|e| what().refuse("smpp.url", format!("`smpp.url` {:?} is not a URL: {e}", raw.url)))?;
        let bare = !url.path().is_empty() && url.path() != "/";
        if !matches!(url.scheme(), "smpp" | "smpps") || url.host_str().is_none() || url.port().is_none() || bare {
            let why = format!("`smpp.url` must be smpp://host:port or smpps://host:port, not {:?}", raw.url);
            bail!(what().refuse("smpp.url", why));
        }
        let key = |k: &str| what().child(&format!("smpp.{k}"), &format!(": `smpp.{k}`"));
        let system_id = resolve(&raw.system_id, || key("system_id"))?.value;
        let password = resolve(&raw.password, || key("password"))?.value;
        // The SMPP 3.4 field sizes, less their terminating NUL.
        for (name, value, most) in
            [("system_id", &system_id, 15), ("password", &password, 8), ("system_type", &raw.system_type, 12)]
        {
            if value.len() > most || (name == "system_id" && value.is_empty()) {
                let why = format!("`smpp.{name}` must be 1 to {most} characters (SMPP 3.4), not {}", value.len());
                bail!(what().refuse(&format!("smpp.{name}"), why));
            }
        }
        let smpp = || what().child("smpp", ": `smpp`");
        Ok(SmppBinds {
            url: raw.url,
            system_id,
            password,
            system_type: raw.system_type,
            binds: within("binds", raw.binds, 1..=16, "binds", smpp)?,
            window: within("window", raw.window, 1..=1000, "submits", smpp)?,
            tps: within("tps", raw.tps, 0..=100_000, "messages per second", smpp)?,
            enquire_link: Duration::from_secs(within("enquire_link_s", raw.enquire_link_s, 1..=3600, "s", smpp)?),
            reconnect_max: Duration::from_secs(within("reconnect_max_s", raw.reconnect_max_s, 1..=3600, "s", smpp)?),
            throttle_pause: Duration::from_millis(within(
                "throttle_pause_ms",
                raw.throttle_pause_ms,
                1..=60_000,
                "ms",
                smpp,
            )?),
            ca_file: raw.ca_file,
            submit_ids: raw.submit_ids,
            receipt_ids: raw.receipt_ids,
        })
    }
}
