//! How a value of the file is read: where it is (file and line, for every
//! error), secrets (inline or `{ env = "NAME" }`), durations and ranges.

use super::*;

/// A provider setting. Values read from the environment are secrets; so are
/// values of keys the adapter declares secret (see `runtime`).
#[derive(Clone)]
pub struct Setting {
    pub value: String,
    pub from_env: bool,
}

impl std::fmt::Debug for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Setting(***)")
    }
}

/// The text being parsed and its name, for error locations.
#[derive(Clone, Copy)]
pub(super) struct Source<'a> {
    pub text: &'a str,
    pub name: &'a str,
}

impl Source<'_> {
    /// Where `span` is, for the value at dotted `key`, which errors call `label`.
    pub fn place(&self, span: std::ops::Range<usize>, key: &str, label: impl Into<String>) -> Place {
        let line = Some(line_of(self.text, span.start));
        Place { file: self.name.to_string(), line, key: key.to_string(), label: label.into() }
    }

    /// The file as a whole, for a value that has no line (a missing section key).
    pub fn file(&self, key: &str, label: impl Into<String>) -> Place {
        Place { file: self.name.to_string(), line: None, key: key.to_string(), label: label.into() }
    }

    /// The error for the value at `span`, dotted `key`: `message` says why.
    pub fn refuse(&self, span: std::ops::Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        self.place(span, key, "").says("", message.into())
    }
}

/// A value the config refuses: the file and line it is on, its key as a
/// dotted path (`provider.timeout_ms`, `route.auth.secret`), and why. Shown
/// as `file:line: why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where a group of values is (a provider, a route, `[server]`), and how
/// errors about them begin.
#[derive(Debug, Clone)]
pub struct Place {
    file: String,
    line: Option<usize>,
    /// The dotted path of the group.
    key: String,
    /// How the group is named in errors: "provider `sms`".
    label: String,
}

impl Place {
    /// The error for the group's `key` (empty for the group itself): its
    /// label, then `text` as written (it brings its own separator).
    pub fn says(&self, key: &str, text: String) -> ConfigError {
        let key = match (self.key.is_empty(), key.is_empty()) {
            (_, true) => self.key.clone(),
            (true, false) => key.to_string(),
            (false, false) => format!("{}.{key}", self.key),
        };
        ConfigError { file: self.file.clone(), line: self.line, key, message: format!("{}{text}", self.label) }
    }

    /// A part of the group: its `key` below the group's, and `suffix` after
    /// the group's label.
    pub fn child(&self, key: &str, suffix: &str) -> Place {
        let mut place = self.clone();
        place.key = if self.key.is_empty() { key.to_string() } else { format!("{}.{key}", self.key) };
        place.label.push_str(suffix);
        place
    }

    /// [`Place::says`] for a message after `label: `.
    pub fn refuse(&self, key: &str, text: impl std::fmt::Display) -> ConfigError {
        let sep = if self.label.is_empty() { "" } else { ": " };
        self.says(key, format!("{sep}{text}"))
    }
}

/// 1-based line number of byte `offset` in `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawSetting {
    Text(String),
    Integer(i64),
    Bool(bool),
    Env { env: String },
}

/// The longest duration any setting may name: an OTP is long useless by
/// then, and a larger one could overflow the clock's arithmetic.
pub(super) const MAX_DURATION_MS: u64 = 30 * 86_400_000;

/// Checks that `key` (in milliseconds) is greater than 0 and at most
/// [`MAX_DURATION_MS`]; `what` names where it is.
pub(super) fn duration_ms(key: &str, ms: u64, what: impl Fn() -> Place) -> Result<Duration> {
    if ms == 0 || ms > MAX_DURATION_MS {
        bail!(what().refuse(key, format!("`{key}` must be between 1 and {MAX_DURATION_MS} (30 days), not {ms}")));
    }
    Ok(Duration::from_millis(ms))
}

/// Checks that `key` is within `range`, counted in `unit`; `what` names
/// where it is. Nothing is raised, lowered or wrapped in silence.
pub(super) fn within<T>(
    key: &str,
    value: T,
    range: RangeInclusive<T>,
    unit: &str,
    what: impl Fn() -> Place,
) -> Result<T>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if !range.contains(&value) {
        let (low, high) = (range.start(), range.end());
        bail!(what().refuse(key, format!("`{key}` must be between {low} and {high} {unit}, not {value}")));
    }
    Ok(value)
}

/// A duration set in seconds, bounded as [`duration_ms`] is and refused in
/// its own unit.
pub(super) fn duration_s(key: &str, s: u64, what: impl Fn() -> Place) -> Result<Duration> {
    let max = MAX_DURATION_MS / 1000;
    Ok(Duration::from_secs(within(key, s, 1..=max, "seconds (30 days)", what)?))
}

/// Whether `name` may name a provider: it is written into logs, metrics
/// labels and the queue's records, so nothing there can be confused by it.
pub(super) fn safe_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The fewest characters a secret of smsbridge's own may have: caller
/// passwords, form secrets and bearer tokens, the admin token, and keys.
pub const MIN_SECRET_CHARS: usize = 12;

/// A secret of smsbridge's own, resolved and long enough; `what` names it.
pub(super) fn secret(value: &Spanned<RawSetting>, what: impl Fn() -> Place) -> Result<Setting> {
    let setting = resolve(value, &what)?;
    let chars = setting.value.chars().count();
    if chars == 0 {
        bail!(what().says("", " is empty".into()));
    }
    if chars < MIN_SECRET_CHARS {
        bail!(what().says("", format!(" is {chars} characters long; a secret needs at least {MIN_SECRET_CHARS}")));
    }
    Ok(setting)
}

/// A setting's value, from the file or the environment; `what` names it in
/// the error for an unset variable. The one place settings are resolved.
pub(super) fn resolve(value: &Spanned<RawSetting>, what: impl Fn() -> Place) -> Result<Setting> {
    Ok(match value.get_ref() {
        RawSetting::Text(s) => Setting { value: s.clone(), from_env: false },
        RawSetting::Integer(n) => Setting { value: n.to_string(), from_env: false },
        RawSetting::Bool(b) => Setting { value: b.to_string(), from_env: false },
        RawSetting::Env { env } => match std::env::var(env) {
            Ok(v) => Setting { value: v, from_env: true },
            Err(_) => bail!(what().says("", format!(" reads environment variable `{env}`, which is not set"))),
        },
    })
}
