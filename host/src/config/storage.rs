//! `[record]` and `[state]`: where messages are recorded, and the database
//! that instances share.

use super::*;

/// `[record]`: where the message record lives and how long it keeps messages.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    /// The embedded (SQLite) record; none when `[state]` keeps it.
    pub path: Option<PathBuf>,
    pub retention: Duration,
    /// Keys the number hashes; when absent, one is made and kept in the database.
    pub number_key: Option<Setting>,
}

/// `[state]`: the shared database.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// `postgres://…`; may carry a password, so it is a secret.
    pub url: Setting,
    /// What a non-queued route does with its limits and repeats while the
    /// database cannot be reached.
    pub on_failure: OnStateFailure,
    /// PEM CA certificates the database's certificate must chain to;
    /// without it, the system's roots.
    pub ca: Option<PathBuf>,
    /// Connections per instance.
    pub pool: usize,
    /// Longest wait for one database operation, connecting included.
    pub timeout: Duration,
    /// How long a queued message claimed by an instance is its alone; an
    /// instance that dies gives it up when this runs out.
    pub lease: Duration,
}

/// See [`StateConfig::on_failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStateFailure {
    /// Refuse the send (503): no limit can be checked, no repeat found.
    Closed,
    /// Send unchecked: logins keep working, the limits and repeats do not.
    Open,
}

/// `[state]`: the PostgreSQL database that instances share.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub(super) url: Spanned<RawSetting>,
    #[serde(default)]
    pub(super) on_failure: Option<Spanned<String>>,
    pub(super) ca: Option<PathBuf>,
    #[serde(default = "defaults::state_pool")]
    pub(super) pool: usize,
    #[serde(default = "defaults::state_timeout_ms")]
    pub(super) timeout_ms: u64,
    #[serde(default = "defaults::lease_ms")]
    pub(super) lease_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecord {
    pub(super) path: Option<PathBuf>,
    #[serde(default = "defaults::retention_days")]
    pub(super) retention_days: u64,
    pub(super) number_key: Option<Spanned<RawSetting>>,
}

impl RecordConfig {
    /// `[record]`; with `[state]`, the record is in the shared database and
    /// `[record]` only tunes it.
    pub(super) fn from_raw(r: Option<RawRecord>, shared: bool, src: Source) -> Result<Option<RecordConfig>> {
        let r = match r {
            Some(r) => r,
            None if shared => RawRecord { path: None, retention_days: defaults::retention_days(), number_key: None },
            None => return Ok(None),
        };
        let number_key = match &r.number_key {
            Some(k) => Some(secret(k, || src.place(k.span(), "record.number_key", "record `number_key`"))?),
            None => None,
        };
        match (&r.path, shared) {
            (Some(_), true) => bail!(src.file("record.path", "").refuse(
                "",
                "[record] `path` is the embedded record; with [state] the record is in PostgreSQL: remove `path`"
            )),
            (None, false) => {
                bail!(
                    src.file("record.path", "")
                        .refuse("", "[record] needs `path`, the SQLite file of the message record")
                )
            }
            (None, true) if number_key.is_none() => bail!(src.file("record.number_key", "").refuse(
                "",
                "with [state], set [record] `number_key` (the same on every instance): the record finds \
                 messages by a keyed hash of the number, and every instance must compute the same one"
            )),
            _ => {}
        }
        Ok(Some(RecordConfig {
            path: r.path,
            retention: Duration::from_secs(
                within("retention_days", r.retention_days, 1..=36_500, "days", || src.file("record", "[record]"))?
                    * 86_400,
            ),
            number_key,
        }))
    }
}

impl StateConfig {
    pub(super) fn from_raw(raw: Spanned<RawState>, src: Source) -> Result<StateConfig> {
        let at = |key: &str, why: String| src.refuse(raw.span(), key, why);
        let url_at = |why: String| src.refuse(raw.get_ref().url.span(), "state.url", why);
        let s = raw.get_ref();
        let url = resolve(&s.url, || src.place(s.url.span(), "state.url", "state `url`"))?;
        if !(url.value.starts_with("postgres://") || url.value.starts_with("postgresql://")) {
            // Never the URL itself: it may hold a password.
            bail!(url_at("state `url` must start with postgres:// (or postgresql://)".into()));
        }
        if let Err(e) = url.value.parse::<tokio_postgres::Config>() {
            bail!(url_at(format!("state `url` is not a PostgreSQL URL: {e}")));
        }
        let on_failure = match s.on_failure.as_ref().map(|v| (v.get_ref().as_str(), v.span())) {
            None | Some(("closed", _)) => OnStateFailure::Closed,
            Some(("open", _)) => OnStateFailure::Open,
            Some((other, span)) => {
                let why = format!("state `on_failure` must be \"closed\" or \"open\" (got \"{other}\")");
                bail!(src.refuse(span, "state.on_failure", why))
            }
        };
        if !(1..=1000).contains(&s.pool) {
            bail!(at("state.pool", format!("state `pool` must be 1 to 1000 (got {})", s.pool)));
        }
        if !(100..=60_000).contains(&s.timeout_ms) {
            bail!(at("state.timeout_ms", format!("state `timeout_ms` must be 100 to 60000 (got {})", s.timeout_ms)));
        }
        if !(1_000..=600_000).contains(&s.lease_ms) {
            bail!(at("state.lease_ms", format!("state `lease_ms` must be 1000 to 600000 (got {})", s.lease_ms)));
        }
        Ok(StateConfig {
            url,
            on_failure,
            ca: s.ca.clone(),
            pool: s.pool,
            timeout: Duration::from_millis(s.timeout_ms),
            lease: Duration::from_millis(s.lease_ms),
        })
    }
}
