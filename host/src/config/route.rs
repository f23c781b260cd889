//! `[[route]]`: a path callers send to, the fields it reads, its providers
//! and delivery rules, and the presets that suit each MFA product.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub path: String,
    pub methods: Vec<Method>,
    pub fields: Fields,
    /// Provider names, in the order they are tried.
    pub providers: Vec<String>,
    pub default_country: Option<phonenumber::country::Id>,
    /// Sender id / from number for this route, overriding the provider's.
    pub sender: Option<String>,
    /// How callers prove who they are; `None` leaves the route open.
    pub auth: Option<CallerAuth>,
    /// Caller networks allowed; empty allows any.
    pub allow_networks: Vec<ipnet::IpNet>,
    /// A text answer on success instead of JSON, e.g. `RESULT:OK {id}`.
    pub success_body: Option<String>,
    /// The text built from `fields.code` when the caller sends only a
    /// code: `Your code is {code}`.
    pub template: Option<String>,
    /// The shape of the answers.
    pub answer: Answer,
    /// Digits without `+` are read as an international number.
    pub international_numbers: bool,
    pub delivery: Delivery,
    pub limits: Limits,
}

/// The shape of a route's answers: smsbridge's own, or the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    #[default]
    Json,
    /// Okta's telephony inline hook: `commands` with a status, or an `error`.
    Okta,
    /// Supabase's Send SMS hook: `{}`, or `{"error": {"http_code", "message"}}`.
    Supabase,
}

/// How hard a route tries: retries, failover and their deadline.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The whole send, every attempt and wait included.
    pub deadline: Duration,
    /// Extra attempts at one provider after a transient failure.
    pub retries: u32,
    /// First wait before a retry; doubled each time, with full jitter.
    pub backoff: Duration,
    /// Also try the next provider after `rejected` or `invalid-recipient`.
    pub failover_on_permanent: bool,
    /// Also try the next provider after one that may have the message (its
    /// answer did not come): at least once across providers, not at most.
    pub failover_on_unknown: bool,
    /// What the caller hears when a provider may have the message but did
    /// not confirm it.
    pub on_unknown: OnUnknown,
    /// How long a repeated request (same number and message, or the same
    /// `Idempotency-Key`) gets the first answer instead of a second SMS.
    /// Zero turns it off.
    pub idempotency_window: Duration,
    /// Answer 202 once the message is durably queued; deliver in the
    /// background, across restarts, until `validity` has passed.
    pub queued: bool,
    pub validity: Duration,
    /// Send again through the next provider when no `delivered` receipt
    /// came this long after a provider took the message (at once on an
    /// `undelivered` one); `None` never sends a message twice.
    pub fallback_after: Option<Duration>,
    /// The order providers are tried in.
    pub order: Order,
}

/// How a route orders its providers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Order {
    /// As listed.
    Listed,
    /// By each provider's delivered share for the number's country, once
    /// it has `min_receipts` receipts there; `explore` of the sends (0 to 1)
    /// go first to another provider, so every provider's figures stay fresh.
    Delivered { explore: f64, min_receipts: u32 },
}

/// The answer for a message a provider may have, unconfirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnUnknown {
    /// 200 `pending`, marked `unconfirmed`: the user waits for the SMS
    /// rather than asking for another one that may arrive as well.
    #[default]
    Pending,
    /// 503 `unconfirmed`: the MFA server decides.
    Failed,
}

/// The names of the caller's fields: every MFA product lets its admin choose.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fields {
    pub phone: String,
    pub message: String,
    /// The field with the one-time code alone, for callers that send no
    /// text (the route's `template` makes it).
    pub code: Option<String>,
}

impl Default for Fields {
    fn default() -> Fields {
        Fields { phone: defaults::phone_field(), message: defaults::message_field(), code: None }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) path: Spanned<String>,
    #[serde(default = "defaults::methods")]
    pub(super) methods: Vec<Method>,
    pub(super) fields: Option<Fields>,
    pub(super) providers: Spanned<Vec<Spanned<String>>>,
    pub(super) default_country: Option<Spanned<String>>,
    pub(super) sender: Option<String>,
    pub(super) auth: Option<Spanned<RawAuth>>,
    #[serde(default)]
    pub(super) allow_networks: Vec<Spanned<String>>,
    pub(super) success_body: Option<String>,
    pub(super) template: Option<String>,
    pub(super) answer: Option<Answer>,
    /// A product whose request and answer shapes the route takes.
    pub(super) caller: Option<Spanned<String>>,
    /// Digits without `+` are an international number (Supabase drops the `+`).
    pub(super) international_numbers: Option<bool>,
    pub(super) deadline_ms: Option<u64>,
    #[serde(default = "defaults::retries")]
    pub(super) retries: u32,
    #[serde(default = "defaults::backoff_ms")]
    pub(super) backoff_ms: u64,
    #[serde(default)]
    pub(super) failover_on_permanent: bool,
    #[serde(default)]
    pub(super) failover_on_unknown: bool,
    #[serde(default)]
    pub(super) on_unknown: OnUnknown,
    pub(super) idempotency_window_s: Option<u64>,
    pub(super) limits: Option<Spanned<RawLimits>>,
    #[serde(default)]
    pub(super) queued: bool,
    #[serde(default = "defaults::validity_s")]
    pub(super) validity_s: u64,
    pub(super) fallback_after_s: Option<Spanned<u64>>,
    pub(super) order: Option<Spanned<String>>,
    #[serde(default = "defaults::explore_percent")]
    pub(super) explore_percent: u32,
    #[serde(default = "defaults::min_receipts")]
    pub(super) min_receipts: u32,
}

impl Route {
    /// Checks one `[[route]]` against the providers and the routes before it.
    pub(super) fn from_raw(
        mut r: RawRoute,
        providers: &[Provider],
        defined: &[Route],
        has_record: bool,
        src: Source,
    ) -> Result<Route> {
        if let Some(caller) = r.caller.take() {
            preset(&mut r, caller.get_ref())
                .map_err(|e| anyhow!(src.refuse(caller.span(), "route.caller", format!("route: {e}"))))?;
        }
        let deadline_ms = r.deadline_ms.unwrap_or_else(defaults::deadline_ms);
        let idempotency_window_s = r.idempotency_window_s.unwrap_or_else(defaults::idempotency_window_s);
        let path = r.path.get_ref().clone();
        let path_span = r.path.span();
        let at_path = |key: &str, why: String| src.refuse(path_span.clone(), key, why);
        if !path.starts_with('/') {
            bail!(at_path("route.path", format!("route path `{path}` must start with `/`")));
        }
        if defined.iter().any(|q| q.path == path) {
            bail!(at_path("route.path", format!("route `{path}` is defined twice")));
        }
        if r.providers.get_ref().is_empty() {
            let why = format!("route `{path}`: `providers` must name at least one provider");
            bail!(src.refuse(r.providers.span(), "route.providers", why));
        }
        for name in r.providers.get_ref() {
            if !providers.iter().any(|p| &p.name == name.get_ref()) {
                let why = format!("route `{path}`: provider `{}` is not defined", name.get_ref());
                bail!(src.refuse(name.span(), "route.providers", why));
            }
        }
        let default_country = match &r.default_country {
            None => None,
            Some(c) => Some(c.get_ref().to_uppercase().parse::<phonenumber::country::Id>().map_err(|_| {
                let why = format!(
                    "route `{path}`: `default_country` `{}` is not an ISO 3166 country code such as GB or US",
                    c.get_ref()
                );
                anyhow!(src.refuse(c.span(), "route.default_country", why))
            })?),
        };
        let auth = match &r.auth {
            None => None,
            Some(a) => Some(CallerAuth::from_raw(a.get_ref(), &path, src)?),
        };
        let mut allow_networks = Vec::new();
        for net in &r.allow_networks {
            let text = net.get_ref();
            // A bare address is a network of one.
            let parsed =
                text.parse::<ipnet::IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            allow_networks.push(parsed.map_err(|_| {
                let why = format!("route `{path}`: `allow_networks` entry `{text}` is not an address or CIDR network");
                anyhow!(src.refuse(net.span(), "route.allow_networks", why))
            })?);
        }
        if r.methods.is_empty() {
            bail!(at_path("route.methods", format!("route `{path}`: `methods` must not be empty")));
        }
        let what = || src.place(path_span.clone(), "route", format!("route `{path}`"));
        let deadline = duration_ms("deadline_ms", deadline_ms, what)?;
        let backoff = duration_ms("backoff_ms", r.backoff_ms, what)?;
        // 0 keeps no answers: every request is a new send.
        let idempotency_window = Duration::from_secs(within(
            "idempotency_window_s",
            idempotency_window_s,
            0..=MAX_DURATION_MS / 1000,
            "seconds (30 days)",
            what,
        )?);
        let validity = duration_s("validity_s", r.validity_s, what)?;
        let retries = within("retries", r.retries, 0..=100, "retries", what)?;
        let limits_span = r.limits.as_ref().map(|l| l.span()).unwrap_or(r.path.span());
        let limits = Limits::from_raw(r.limits.map(Spanned::into_inner).unwrap_or_default(), &path, limits_span, src)?;
        if let Some(CallerAuth::Webhook { tolerance, .. }) = &auth
            && idempotency_window_s < tolerance.as_secs()
        {
            bail!(at_path(
                "route.idempotency_window_s",
                format!(
                    "route `{path}`: `idempotency_window_s` ({idempotency_window_s}) must be at least the webhook \
                     `tolerance_s` ({}): a replayed webhook-id is caught by the repeats",
                    tolerance.as_secs()
                )
            ));
        }
        let fields = r.fields.unwrap_or_default();
        match (&fields.code, &r.template) {
            (Some(_), None) => bail!(at_path(
                "route.template",
                format!(
                    "route `{path}`: `fields.code` needs a `template` for the text, such as \"Your code is {{code}}\""
                )
            )),
            (_, Some(t)) if !t.contains("{code}") => {
                bail!(at_path("route.template", format!("route `{path}`: `template` must contain {{code}}")))
            }
            (None, Some(_)) => {
                let why = format!("route `{path}`: `template` needs `fields.code`, the field the code is in");
                bail!(at_path("route.template", why))
            }
            _ => {}
        }
        if r.queued && !has_record {
            let why =
                format!("route `{path}`: `queued = true` keeps messages in the message record: add a [record] section");
            bail!(at_path("route.queued", why));
        }
        let fallback_after = match &r.fallback_after_s {
            None => None,
            Some(after) => {
                let at =
                    |why: String| src.refuse(after.span(), "route.fallback_after_s", format!("route `{path}`: {why}"));
                if !has_record {
                    bail!(at(
                        "`fallback_after_s` waits for receipts in the message record: add a [record] section".into()
                    ));
                }
                if r.providers.get_ref().len() < 2 {
                    bail!(at("`fallback_after_s` needs a second provider in `providers` to fall back to".into()));
                }
                let after = *after.get_ref();
                if after == 0 || after >= r.validity_s {
                    bail!(at(format!(
                        "`fallback_after_s` ({after}) must be at least 1 and less than `validity_s` ({}): \
                         a fallback after the code expired is a wasted SMS",
                        r.validity_s
                    )));
                }
                Some(Duration::from_secs(after))
            }
        };
        let order = match &r.order {
            None => Order::Listed,
            Some(o) => match o.get_ref().as_str() {
                "listed" => Order::Listed,
                "delivered" => {
                    let explore = within("explore_percent", r.explore_percent, 0..=50, "percent", what)?;
                    let min_receipts = within("min_receipts", r.min_receipts, 1..=1_000_000, "receipts", what)?;
                    Order::Delivered { explore: f64::from(explore) / 100.0, min_receipts }
                }
                other => {
                    let why = format!("route `{path}`: `order` `{other}` is not one of listed, delivered");
                    bail!(src.refuse(o.span(), "route.order", why))
                }
            },
        };
        Ok(Route {
            methods: r.methods,
            fields,
            template: r.template,
            answer: r.answer.unwrap_or_default(),
            international_numbers: r.international_numbers.unwrap_or(false),
            providers: r.providers.into_inner().into_iter().map(Spanned::into_inner).collect(),
            default_country,
            sender: r.sender,
            auth,
            allow_networks,
            success_body: r.success_body,
            delivery: Delivery {
                deadline,
                retries,
                backoff: if r.backoff_ms == 0 { Duration::ZERO } else { backoff },
                failover_on_permanent: r.failover_on_permanent,
                failover_on_unknown: r.failover_on_unknown,
                on_unknown: r.on_unknown,
                // Zero turns repeated-request answers off.
                idempotency_window: if idempotency_window_s == 0 { Duration::ZERO } else { idempotency_window },
                queued: r.queued,
                validity,
                fallback_after,
                order,
            },
            limits,
            path,
        })
    }
}

/// The request and answer shapes of a product that calls smsbridge, filled
/// in where the route leaves them out: every one can be overridden.
fn preset(r: &mut RawRoute, caller: &str) -> Result<(), String> {
    let fields = |phone: &str, message: &str, code: &str| Fields {
        phone: phone.into(),
        message: message.into(),
        code: Some(code.into()),
    };
    match caller {
        "okta" => {
            r.fields.get_or_insert_with(|| {
                fields(
                    "data.messageProfile.phoneNumber",
                    "data.messageProfile.msgTemplate",
                    "data.messageProfile.otpCode",
                )
            });
            r.template.get_or_insert_with(|| "Your verification code is {code}".into());
            r.answer.get_or_insert(Answer::Okta);
            // Okta falls back to its own providers after 3 s.
            r.deadline_ms.get_or_insert(2500);
        }
        "supabase" => {
            r.fields.get_or_insert_with(|| fields("user.phone", "sms.message", "sms.otp"));
            r.template.get_or_insert_with(|| "Your code is {code}".into());
            r.answer.get_or_insert(Answer::Supabase);
            r.international_numbers.get_or_insert(true);
            // Supabase gives up after 5 s.
            r.deadline_ms.get_or_insert(4000);
            // A replayed webhook-id is refused for as long as a signature is valid.
            r.idempotency_window_s.get_or_insert(300);
        }
        "auth0" => {
            r.fields.get_or_insert_with(|| Fields { phone: "recipient".into(), message: "body".into(), code: None });
        }
        "authentik" => {
            // `Body` is the code alone, `Message` the whole text.
            r.fields.get_or_insert_with(|| fields("To", "Message", "Body"));
            r.template.get_or_insert_with(|| "Your code is {code}".into());
        }
        other => {
            return Err(format!("`caller` `{other}` is not a known product (okta, supabase, auth0, authentik)"));
        }
    }
    Ok(())
}
