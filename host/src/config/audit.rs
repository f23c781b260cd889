//! Settings that work but that a bank's security review would flag, for
//! `smsbridge check`. Each finding is one sentence that says what to do.

use super::{CallerAuth, Config};

/// The findings for `config`; `secret_keys(adapter)` names the settings an
/// adapter declares secret (none when the adapter is not loaded).
pub fn risks(config: &Config, secret_keys: impl Fn(&str) -> Vec<String>) -> Vec<String> {
    let mut risks = Vec::new();
    if !config.server.listen.ip().is_loopback() {
        risks.push(format!(
            "plain HTTP on {}, which is not loopback: credentials and codes cross the network in clear (use [server.tls])",
            config.server.listen
        ));
    }
    for r in &config.routes {
        let inline = match &r.auth {
            None => {
                risks.push(format!("route {} has no caller auth: anyone who reaches it can send SMS", r.path));
                continue;
            }
            Some(CallerAuth::Basic { password: s, .. } | CallerAuth::Digest { password: s, .. }) => !s.from_env,
            Some(CallerAuth::FormSecret { secret, .. }) => !secret.from_env,
            Some(CallerAuth::Bearer { token: s } | CallerAuth::Header { value: s, .. }) => !s.from_env,
            Some(CallerAuth::Webhook { secret, .. } | CallerAuth::Jwt { secret, .. }) => !secret.from_env,
        };
        if matches!(r.auth, Some(CallerAuth::Digest { .. })) && config.server.tls.is_none() {
            risks.push(format!(
                "route {}: Digest over plain HTTP: with `qop=auth` the body is not covered, so whoever can alter \
                 traffic can change the number and text of a request; serve it over [server.tls] (or have the \
                 caller use qop=auth-int)",
                r.path
            ));
        }
        if inline {
            risks.push(format!(
                "route {}: its auth secret is written inline; read it with {{ env = \"NAME\" }}",
                r.path
            ));
        }
    }
    for p in &config.providers {
        for key in secret_keys(&p.adapter) {
            if p.settings.get(&key).is_some_and(|s| !s.from_env) {
                risks.push(format!(
                    "provider {}: secret `config.{key}` is written inline; read it with {{ env = \"NAME\" }}",
                    p.name
                ));
            }
        }
    }
    if let Some(admin) = &config.admin {
        if admin.token.is_none() {
            risks.push(format!(
                "admin on {} has no token: every local user and process can use the console, read the message \
                 record and send test messages; set [admin] token",
                admin.listen
            ));
        }
        if admin.tls.is_none() && !admin.listen.ip().is_loopback() {
            risks.push(format!(
                "admin on {} speaks plain HTTP off loopback: the admin token and console cookies cross the \
                 network in clear (use [admin.tls])",
                admin.listen
            ));
        }
    }
    if config.admin.as_ref().and_then(|a| a.token.as_ref()).is_some_and(|t| !t.from_env) {
        risks.push("admin token is written inline; read it with { env = \"NAME\" }".into());
    }
    if config.digest_key.is_some() && config.state.is_none() {
        risks.push(
            "[auth] digest_key has no effect without [state]: nonces are good at the process that issued them \
             (the nonce counts live there); give the instances [state] to share them"
                .into(),
        );
    }
    if let Some(state) = &config.state {
        let pg: Option<tokio_postgres::Config> = state.url.value.parse().ok();
        if !state.url.from_env && pg.as_ref().is_some_and(|c| c.get_password().is_some()) {
            risks.push("state `url` holds a password inline; read the URL with { env = \"NAME\" }".into());
        }
        if pg.is_some_and(|c| c.get_ssl_mode() != tokio_postgres::config::SslMode::Require) {
            risks.push(
                "state `url` does not set sslmode=require: limits, repeats and queued codes may cross the network in clear"
                    .into(),
            );
        }
    }
    risks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_secrets_open_routes_and_plain_http_off_loopback_are_flagged() {
        // SAFETY: no other test reads this variable.
        unsafe { std::env::set_var("SMSBRIDGE_AUDIT_TOKEN", "tok-from-env") };
        let text = r#"
[server]
listen = "0.0.0.0:8080"
[admin]
token = "inline-admin"
[[provider]]
name = "tw"
adapter = "twilio"
[provider.config]
auth_token = "inline-token"
account_sid = "AC1"
[[route]]
path = "/open"
providers = ["tw"]
[[route]]
path = "/inline"
providers = ["tw"]
auth = { bearer = { token = "inline-bearer" } }
[[route]]
path = "/env"
providers = ["tw"]
auth = { bearer = { token = { env = "SMSBRIDGE_AUDIT_TOKEN" } } }
"#;
        let config = Config::parse(text, "t.toml").unwrap();
        let found = risks(&config, |adapter| if adapter == "twilio" { vec!["auth_token".into()] } else { vec![] });
        let has = |needle: &str| found.iter().any(|r| r.contains(needle));
        assert!(has("plain HTTP on 0.0.0.0:8080"), "{found:?}");
        assert!(has("route /open has no caller auth"), "{found:?}");
        assert!(has("route /inline: its auth secret is written inline"), "{found:?}");
        assert!(!has("route /env"), "{found:?}");
        assert!(has("provider tw: secret `config.auth_token` is written inline"), "{found:?}");
        assert!(!has("account_sid"), "{found:?}");
        assert!(has("admin token is written inline"), "{found:?}");
        assert_eq!(found.len(), 5, "{found:?}");
    }

    #[test]
    fn an_open_console_and_a_plain_admin_off_loopback_are_flagged() {
        let found = |text: &str| risks(&Config::parse(text, "t.toml").unwrap(), |_| vec![]);
        let open = found("[admin]\nlisten = \"127.0.0.1:8081\"\n");
        assert!(open.iter().any(|r| r.contains("has no token: every local user")), "{open:?}");
        let plain = found("[admin]\nlisten = \"0.0.0.0:8081\"\ntoken = \"t0k-9f2c41d8a7\"\n");
        assert!(plain.iter().any(|r| r.contains("plain HTTP off loopback")), "{plain:?}");
        let tls = "[admin]\nlisten = \"0.0.0.0:8081\"\ntoken = \"t0k-9f2c41d8a7\"\n[admin.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";
        assert!(!found(tls).iter().any(|r| r.contains("plain HTTP") || r.contains("no token")), "{:?}", found(tls));
    }

    #[test]
    fn digest_over_plain_http_and_a_digest_key_without_state_are_flagged() {
        let route = "[[provider]]\nname = \"p\"\nadapter = \"outbox\"\n[[route]]\npath = \"/v1/linotp\"\nproviders = [\"p\"]\n\
                     auth = { digest = { user = \"linotp\", password = \"lo-digest-pass-2b7d\" } }\n";
        let found = risks(
            &Config::parse(&format!("[auth]\ndigest_key = \"digest-key-5e1f\"\n{route}"), "t.toml").unwrap(),
            |_| vec![],
        );
        assert!(found.iter().any(|r| r.contains("route /v1/linotp: Digest over plain HTTP")), "{found:?}");
        assert!(found.iter().any(|r| r.contains("digest_key has no effect without [state]")), "{found:?}");
        let tls = "[server.tls]\nlisten = \"127.0.0.1:8443\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n";
        let found = risks(&Config::parse(&format!("{tls}{route}"), "t.toml").unwrap(), |_| vec![]);
        assert!(!found.iter().any(|r| r.contains("Digest") || r.contains("digest_key")), "{found:?}");
    }

    #[test]
    fn a_state_url_with_an_inline_password_or_without_tls_is_flagged() {
        let found = |url: &str| {
            let text = format!("[record]\nnumber_key = \"number-key-123456\"\n[state]\nurl = \"{url}\"\n");
            risks(&Config::parse(&text, "t.toml").unwrap(), |_| vec![])
        };
        let inline = found("postgres://sb:pw-inline-1@db.example/sb?sslmode=require");
        assert_eq!(inline.len(), 1, "{inline:?}");
        assert!(inline[0].contains("holds a password inline"), "{inline:?}");
        assert!(!inline[0].contains("pw-inline-1"), "the password is not repeated: {inline:?}");
        let plain = found("postgres://sb@db.example/sb");
        assert_eq!(plain.len(), 1, "{plain:?}");
        assert!(plain[0].contains("sslmode=require"), "{plain:?}");
        assert!(found("postgres://sb@db.example/sb?sslmode=require").is_empty());
    }
}
