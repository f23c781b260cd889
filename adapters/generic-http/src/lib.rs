//! Any HTTP SMS API, configured the way MFA products configure their
//! "Generic" SMS sender: a URL, a method, an encoding, parameters and headers
//! with placeholders, and a rule that tells success from failure.
//!
//! Placeholders: `{to}` (E.164), `{to_digits}` (without `+`), `{body}`,
//! `{id}`, `{sender}`, and `{config.NAME}` for another setting of this
//! provider, so credentials stay in their own (secret) settings.

use smsbridge_sdk::http::Request;
use smsbridge_sdk::{Accepted, Adapter, AdapterInfo, Message, SendError, config};

struct GenericHttp;

impl Adapter for GenericHttp {
    fn info() -> AdapterInfo {
        smsbridge_sdk::info!("generic-http", "any HTTP SMS API")
            .required("url", "The provider's send URL; placeholders allowed in the query")
            .optional("method", "GET or POST (default POST)")
            .optional("encoding", "Where parameters go: query, form or json (default: form for POST, query for GET)")
            .optional("params", "Parameters as name=value, separated by & or by new lines, with placeholders")
            .optional("headers", "Extra headers, one `Name: value` per line, with placeholders")
            .optional("username", "HTTP Basic user name")
            .optional_secret("password", "HTTP Basic password, or a secret for {config.password}")
            .optional_secret("api_key", "A secret for {config.api_key}")
            .optional_secret("token", "A secret for {config.token}")
            .optional("success_status", "Comma-separated statuses meaning success (default: any 2xx)")
            .optional("success_contains", "Text the body must contain on success")
            .optional("success_regex", "Regex the body must match on success")
            .optional("id_pointer", "JSON pointer to the provider's message id, e.g. /messages/0/id")
            .optional("id_regex", "Regex whose first group is the provider's message id")
            .optional("from", "Sender id or number for {sender}")
            .optional("base_url", "Replaces the scheme and host of `url` (proxy, test mock)")
            .build()
    }

    fn send(msg: Message) -> Result<Accepted, SendError> {
        let sender = msg.sender.clone().or_else(|| config::get("from")).unwrap_or_default();
        let fill = |template: &str| fill(template, &msg, &sender, |v| v.to_string());
        // A value placed into the URL is percent-encoded: `&`, `#` or `+` in
        // the text can neither corrupt nor add a parameter.
        let url_part = |v: &str| percent_encoding::utf8_percent_encode(v, URL_VALUE).to_string();
        let url = with_base(&self::fill(&config::require("url")?, &msg, &sender, url_part))?;
        let method = config::get("method").unwrap_or_else(|| "POST".into()).to_ascii_uppercase();
        let encoding = config::get("encoding").unwrap_or_else(|| if method == "GET" { "query" } else { "form" }.into());

        let params: Vec<(String, String)> = split_params(&config::get("params").unwrap_or_default())
            .into_iter()
            .map(|(k, v)| (k.to_string(), fill(v)))
            .collect();
        let mut req = match encoding.as_str() {
            "query" => {
                let sep = if url.contains('?') { '&' } else { '?' };
                let query = smsbridge_sdk::form::encode(&params);
                Request::new(&method, &if query.is_empty() { url } else { format!("{url}{sep}{query}") })
            }
            "form" => Request::new(&method, &url).form(&params),
            "json" => {
                let object: smsbridge_sdk::json::Map<String, smsbridge_sdk::json::Value> =
                    params.into_iter().map(|(k, v)| (k, v.into())).collect();
                Request::new(&method, &url).json(&object.into())
            }
            other => {
                return Err(SendError::Misconfigured(format!("`encoding` is `{other}`; use query, form or json")));
            }
        };
        for line in config::get("headers").unwrap_or_default().lines().filter(|l| !l.trim().is_empty()) {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| SendError::Misconfigured("each line of `headers` must be `Name: value`".into()))?;
            req = req.header(name.trim(), fill(value.trim()).as_str());
        }
        if let Some(user) = config::get("username") {
            req = req.basic_auth(&user, &config::get("password").unwrap_or_default());
        }

        let resp = req.send()?;
        let body = resp.text();
        let excerpt: String = body.chars().take(200).collect();
        let status_ok = match config::get("success_status") {
            Some(list) => list.split(',').any(|s| s.trim() == resp.status().to_string()),
            None => resp.is_success(),
        };
        if !status_ok {
            return Err(resp.error(excerpt));
        }
        if let Some(needle) = config::get("success_contains")
            && !body.contains(&needle)
        {
            return Err(SendError::Rejected(format!("answer lacks `{needle}`: {excerpt}")));
        }
        if let Some(pattern) = config::get("success_regex")
            && !regex(&pattern)?.is_match(&body)
        {
            return Err(SendError::Rejected(format!("answer does not match `success_regex`: {excerpt}")));
        }
        let provider_id = if let Some(pointer) = config::get("id_pointer") {
            let v = resp.json()?;
            match v.pointer(&pointer) {
                Some(smsbridge_sdk::json::Value::String(s)) => s.clone(),
                Some(other) if !other.is_null() => other.to_string(),
                _ => {
                    return Err(SendError::Unavailable(format!("answer has nothing at `{pointer}`: {excerpt}")));
                }
            }
        } else if let Some(pattern) = config::get("id_regex") {
            regex(&pattern)?
                .captures(&body)
                .and_then(|c| c.get(1))
                .map(|m| m.as_str().to_string())
                .ok_or_else(|| SendError::Unavailable(format!("`id_regex` found no id in: {excerpt}")))?
        } else {
            msg.id.clone()
        };
        Ok(Accepted { provider_id, status: None, segments: None })
    }
}

/// `url` with its scheme and host replaced by the `base_url` setting, if any.
fn with_base(url: &str) -> Result<String, SendError> {
    let Some(base) = config::get("base_url") else {
        return Ok(url.into());
    };
    let after_scheme = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| SendError::Misconfigured(format!("`url` {url} has no scheme")))?;
    let path = after_scheme.find('/').map(|i| &after_scheme[i..]).unwrap_or("");
    Ok(format!("{}{path}", base.trim_end_matches('/')))
}

/// `name=value` pairs, separated by new lines when there are any (so values
/// may contain `&`), else by `&`.
fn split_params(template: &str) -> Vec<(&str, &str)> {
    let parts: Vec<&str> =
        if template.contains('\n') { template.lines().collect() } else { template.split('&').collect() };
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').map(|(k, v)| (k.trim(), v.trim())).unwrap_or((p, "")))
        .collect()
}

/// Bytes left as they are in a URL value: RFC 3986's unreserved ones.
const URL_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `template` with each placeholder replaced by its value, put through
/// `escape` (as where it lands requires).
fn fill(template: &str, msg: &Message, sender: &str, escape: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + msg.body.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else { break };
        let name = &rest[start + 1..start + len];
        let value = match name {
            "to" => Some(msg.to.clone()),
            "to_digits" => Some(msg.to.trim_start_matches('+').to_string()),
            "body" => Some(msg.body.clone()),
            "id" => Some(msg.id.clone()),
            "sender" => Some(sender.to_string()),
            _ => name.strip_prefix("config.").map(|key| config::get(key).unwrap_or_default()),
        };
        match value {
            Some(v) => out.push_str(&escape(&v)),
            None => out.push_str(&rest[start..=start + len]),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

fn regex(pattern: &str) -> Result<regex_lite::Regex, SendError> {
    regex_lite::Regex::new(pattern).map_err(|e| SendError::Misconfigured(format!("invalid regex `{pattern}`: {e}")))
}

smsbridge_sdk::export_adapter!(GenericHttp);
