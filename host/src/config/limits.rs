//! A route's `limits`: send rates per number, prefix, country and route
//! (the rate grammar, `5/10m`), and the countries and number types allowed.

use super::*;

/// Limits against SMS pumping (toll fraud).
#[derive(Debug, Clone)]
pub struct Limits {
    pub per_number: Option<Rate>,
    /// Per number without its last 4 digits: a run through a number range.
    pub per_prefix: Option<Rate>,
    pub per_country: Option<Rate>,
    pub per_route: Option<Rate>,
    pub countries: Countries,
    /// Number types refused (libphonenumber's: `premium_rate`, `unknown`, …).
    pub refuse_number_types: Vec<phonenumber::Type>,
}

/// At most `limit` sends per `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub limit: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Countries {
    Any,
    Allow(Vec<phonenumber::country::Id>),
    Deny(Vec<phonenumber::country::Id>),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) per_number: Option<Spanned<String>>,
    pub(super) per_prefix: Option<Spanned<String>>,
    pub(super) per_country: Option<Spanned<String>>,
    pub(super) per_route: Option<Spanned<String>>,
    pub(super) allow_countries: Option<Vec<Spanned<String>>>,
    pub(super) deny_countries: Option<Vec<Spanned<String>>>,
    pub(super) refuse_number_types: Option<Vec<phonenumber::Type>>,
}

impl Limits {
    /// Checks a route's `limits`; `span` locates it (or the route) in errors.
    pub(super) fn from_raw(raw: RawLimits, path: &str, span: std::ops::Range<usize>, src: Source) -> Result<Limits> {
        let rate = |key: &str, value: &Option<Spanned<String>>, default: &str| -> Result<Option<Rate>> {
            let (text, span) = match value {
                Some(v) => (v.get_ref().as_str(), v.span()),
                None => (default, span.clone()),
            };
            parse_rate(text).map_err(|why| {
                anyhow!(src.refuse(
                    span,
                    &format!("route.limits.{key}"),
                    format!("route `{path}`: limits `{key}` {why}")
                ))
            })
        };
        let country_list = |key: &str, list: &Vec<Spanned<String>>| -> Result<Vec<phonenumber::country::Id>> {
            list.iter()
                .map(|c| {
                    c.get_ref().to_uppercase().parse().map_err(|_| {
                        let why = format!(
                            "route `{path}`: limits `{key}`: `{}` is not an ISO 3166 country code such as GB",
                            c.get_ref()
                        );
                        anyhow!(src.refuse(c.span(), &format!("route.limits.{key}"), why))
                    })
                })
                .collect()
        };
        let countries = match (&raw.allow_countries, &raw.deny_countries) {
            (Some(_), Some(_)) => bail!(src.refuse(
                span.clone(),
                "route.limits",
                format!("route `{path}`: limits: set `allow_countries` or `deny_countries`, not both")
            )),
            (Some(allow), None) => Countries::Allow(country_list("allow_countries", allow)?),
            (None, Some(deny)) => Countries::Deny(country_list("deny_countries", deny)?),
            (None, None) => Countries::Any,
        };
        Ok(Limits {
            per_number: rate("per_number", &raw.per_number, defaults::per_number())?,
            per_prefix: rate("per_prefix", &raw.per_prefix, defaults::per_prefix())?,
            per_country: rate("per_country", &raw.per_country, defaults::per_country())?,
            per_route: rate("per_route", &raw.per_route, defaults::per_route())?,
            countries,
            refuse_number_types: raw.refuse_number_types.unwrap_or_else(defaults::refuse_number_types),
        })
    }
}

/// `5/10m`: at most 5 per 10 minutes; `off`: no limit.
fn parse_rate(text: &str) -> Result<Option<Rate>, String> {
    if text.trim() == "off" {
        return Ok(None);
    }
    let shape = || format!("`{text}` is not a rate: write COUNT/WINDOW such as 5/10m, or off");
    let (count, window) = text.split_once('/').ok_or_else(shape)?;
    let limit: u32 = count.trim().parse().map_err(|_| shape())?;
    let window = humantime::parse_duration(window.trim()).map_err(|_| shape())?;
    if limit == 0 || window.is_zero() {
        return Err(format!("`{text}`: count and window must be greater than 0 (use off for no limit)"));
    }
    Ok(Some(Rate { limit, window }))
}
