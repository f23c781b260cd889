//! How a route authenticates its caller (`auth`), and `[auth]`'s keys.

use super::*;

/// The HMAC key of a Standard Webhooks secret: base64 after any `v1,` and
/// `whsec_`.
pub fn webhook_key(secret: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let text = secret.trim();
    let text = text.strip_prefix("v1,").unwrap_or(text);
    let text = text.strip_prefix("whsec_").unwrap_or(text);
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// The HMAC key of a JWT secret: its bytes, or their base64 decoding.
pub fn jwt_key(secret: &str, base64: bool) -> Option<Vec<u8>> {
    use base64::Engine;
    if !base64 {
        return Some(secret.as_bytes().to_vec());
    }
    let engines = [base64::engine::general_purpose::STANDARD, base64::engine::general_purpose::URL_SAFE];
    engines.iter().find_map(|e| e.decode(secret.trim()).ok())
}

/// Caller authentication for a route.
#[derive(Debug, Clone)]
pub enum CallerAuth {
    Basic {
        user: String,
        password: Setting,
        realm: String,
    },
    Digest {
        user: String,
        password: Setting,
        realm: String,
    },
    /// Credentials in the request's fields (RSA AM cannot send Basic).
    FormSecret {
        user_field: String,
        secret_field: String,
        user: String,
        secret: Setting,
    },
    Bearer {
        token: Setting,
    },
    /// A header the caller sends with a secret value (Okta's `authScheme`,
    /// Keycloak, PingOne): `name` in lower case.
    Header {
        name: String,
        value: Setting,
    },
    /// Standard Webhooks signatures (Supabase): HMAC-SHA256 of
    /// `id.timestamp.body` under `key`, the timestamp within `tolerance`.
    /// A `webhook-id` answered before is refused (see the route's repeats).
    Webhook {
        /// As the caller shows it (`v1,whsec_<base64>`); checked at load.
        secret: Setting,
        tolerance: Duration,
    },
    /// A bearer JWT signed with HS256 under `secret` (Auth0): the algorithm
    /// pinned, `exp` required, `aud` and (when set) `sub` checked.
    Jwt {
        secret: Setting,
        /// The secret is base64 (Auth0's `secret_base64_encoded`).
        base64: bool,
        audience: String,
        subject: Option<String>,
        /// `iss` must be this, when set.
        issuer: Option<String>,
        /// The longest `exp - iat` accepted: a token is good for one
        /// request, and a captured one for no longer than this.
        max_lifetime: Duration,
    },
}

/// `[auth]`: keys of caller authentication that outlive one request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuthKeys {
    pub(super) digest_key: Option<Spanned<RawSetting>>,
}

/// The longest JWT lifetime (`exp - iat`) accepted unless a route says.
const JWT_MAX_LIFETIME_S: u64 = 600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(super) enum RawAuth {
    Basic {
        user: String,
        password: Spanned<RawSetting>,
        realm: Option<String>,
    },
    Digest {
        user: String,
        password: Spanned<RawSetting>,
        realm: Option<String>,
    },
    FormSecret {
        user_field: String,
        secret_field: String,
        user: String,
        secret: Spanned<RawSetting>,
    },
    Bearer {
        token: Spanned<RawSetting>,
    },
    Header {
        name: String,
        value: Spanned<RawSetting>,
    },
    Webhook {
        secret: Spanned<RawSetting>,
        tolerance_s: Option<u64>,
    },
    Jwt {
        secret: Spanned<RawSetting>,
        secret_base64: Option<bool>,
        audience: String,
        subject: Option<String>,
        issuer: Option<String>,
        max_lifetime_s: Option<u64>,
    },
}

impl CallerAuth {
    /// Resolves a route's `auth` and its secret.
    pub(super) fn from_raw(raw: &RawAuth, path: &str, src: Source) -> Result<CallerAuth> {
        let secret = |key: &str, s: &Spanned<RawSetting>| {
            secret(s, || src.place(s.span(), &format!("route.auth.{key}"), format!("route `{path}`: auth `{key}`")))
        };
        let realm = |r: &Option<String>| r.clone().unwrap_or_else(|| "smsbridge".into());
        Ok(match raw {
            RawAuth::Basic { user, password, realm: r } => {
                CallerAuth::Basic { user: user.clone(), password: secret("password", password)?, realm: realm(r) }
            }
            RawAuth::Digest { user, password, realm: r } => {
                CallerAuth::Digest { user: user.clone(), password: secret("password", password)?, realm: realm(r) }
            }
            RawAuth::FormSecret { user_field, secret_field, user, secret: s } => CallerAuth::FormSecret {
                user_field: user_field.clone(),
                secret_field: secret_field.clone(),
                user: user.clone(),
                secret: secret("secret", s)?,
            },
            RawAuth::Bearer { token } => CallerAuth::Bearer { token: secret("token", token)? },
            RawAuth::Header { name, value } => {
                let Ok(name) = axum::http::HeaderName::from_bytes(name.as_bytes()) else {
                    let why = format!("route `{path}`: auth header `name` {name:?} is not a header name");
                    bail!(src.refuse(value.span(), "route.auth.name", why));
                };
                CallerAuth::Header { name: name.as_str().to_string(), value: secret("value", value)? }
            }
            RawAuth::Jwt { secret: s, secret_base64, audience, subject, issuer, max_lifetime_s } => {
                let setting = secret("secret", s)?;
                let base64 = secret_base64.unwrap_or(false);
                if base64 && jwt_key(&setting.value, true).is_none() {
                    let why = format!("route `{path}`: auth `secret` is not base64 (`secret_base64 = true`)");
                    bail!(src.refuse(s.span(), "route.auth.secret", why));
                }
                if audience.trim().is_empty() {
                    bail!(src.refuse(
                        s.span(),
                        "route.auth.audience",
                        format!("route `{path}`: auth `audience` is empty")
                    ));
                }
                let lifetime = max_lifetime_s.unwrap_or(JWT_MAX_LIFETIME_S);
                if lifetime == 0 || lifetime > 86_400 {
                    let why = format!(
                        "route `{path}`: auth `max_lifetime_s` must be between 1 and 86400 seconds, not {lifetime}"
                    );
                    bail!(src.refuse(s.span(), "route.auth.max_lifetime_s", why));
                }
                CallerAuth::Jwt {
                    secret: setting,
                    base64,
                    audience: audience.clone(),
                    subject: subject.clone(),
                    issuer: issuer.clone(),
                    max_lifetime: Duration::from_secs(lifetime),
                }
            }
            RawAuth::Webhook { secret: s, tolerance_s } => {
                let setting = secret("secret", s)?;
                let at = src.place(s.span(), "route.auth.secret", format!("route `{path}`: auth `secret`"));
                let Some(key) = webhook_key(&setting.value) else {
                    bail!(at.refuse("", "write it as v1,whsec_<base64>, as the caller shows it"));
                };
                if key.len() < 16 {
                    bail!(at.refuse("", format!("the key is {} bytes; a webhook secret needs at least 16", key.len())));
                }
                let tolerance = tolerance_s.unwrap_or(300);
                if !(1..=3600).contains(&tolerance) {
                    let why = format!("route `{path}`: auth `tolerance_s` must be 1 to 3600 (got {tolerance})");
                    bail!(src.refuse(s.span(), "route.auth.tolerance_s", why));
                }
                CallerAuth::Webhook { secret: setting, tolerance: Duration::from_secs(tolerance) }
            }
        })
    }
}

/// `[auth] digest_key`, checked as a secret.
pub(super) fn digest_key(raw: Option<&RawAuthKeys>, src: Source) -> Result<Option<Setting>> {
    match raw.and_then(|a| a.digest_key.as_ref()) {
        None => Ok(None),
        Some(k) => Ok(Some(secret(k, || src.place(k.span(), "auth.digest_key", "auth `digest_key`"))?)),
    }
}
