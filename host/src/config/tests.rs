use super::*;

#[test]
fn embedded_default_routes_to_outbox() {
    let c = Config::embedded();
    let route = c.route("/v1/send").unwrap();
    assert_eq!(route.providers, ["outbox"]);
    assert_eq!(c.provider("outbox").unwrap().adapter, "outbox");
}

#[test]
fn max_in_flight_defaults_to_1000_and_must_be_1_to_10000() {
    let provider = |extra: &str| format!("[[provider]]\nname = \"a\"\nadapter = \"outbox\"\n{extra}\n");
    let config = Config::parse(&provider(""), "gw.toml").unwrap();
    assert_eq!(config.providers[0].max_in_flight, 1000);
    let two = format!("{}{}", provider("max_in_flight = 7"), provider("").replace("\"a\"", "\"b\""));
    assert_eq!(Config::parse(&two, "gw.toml").unwrap().sends_in_flight(), 1007);
    for bad in ["0", "10001", "-1"] {
        let err = Config::parse(&provider(&format!("max_in_flight = {bad}")), "gw.toml").unwrap_err().to_string();
        assert!(err.starts_with("gw.toml:1: provider `a`: `max_in_flight` must be 1 to 10000"), "{err}");
        assert!(err.contains(&format!("got {bad}")), "{err}");
    }
}

#[test]
fn errors_name_file_line_and_key() {
    let text =
        "[[provider]]\nname = \"a\"\nadapter = \"outbox\"\n\n[[route]]\npath = \"/x\"\nproviders = [\"a\", \"nope\"]\n";
    let err = Config::parse(text, "gw.toml").unwrap_err().to_string();
    assert_eq!(err, "gw.toml:7: route `/x`: provider `nope` is not defined");

    // One error type carries the place and the key as values, not only text.
    let value = |text: &str| Config::parse(text, "gw.toml").unwrap_err().downcast::<ConfigError>().unwrap();
    let e = value(text);
    assert_eq!((e.file.as_str(), e.line, e.key.as_str()), ("gw.toml", Some(7), "route.providers"));
    let e = value("[[provider]]\nname = \"a\"\nadapter = \"outbox\"\ntimeout_ms = 0\n");
    assert_eq!((e.line, e.key.as_str()), (Some(1), "provider.timeout_ms"), "{e}");
    let e = value(
        "[[provider]]\nname = \"a\"\nadapter = \"x\"\n[provider.config]\nkey = { env = \"SMSBRIDGE_UNSET_9\" }\n",
    );
    assert_eq!((e.line, e.key.as_str()), (Some(5), "provider.config.key"), "{e}");
    assert_eq!(
        e.message,
        "provider `a`: `config.key` reads environment variable `SMSBRIDGE_UNSET_9`, which is not set"
    );
    let e = value(
        "[record]\nnumber_key = \"shared-number-key-5d1c\"\n[state]\nurl = \"postgres://db/sb\"\nlease_ms = 10\n",
    );
    assert_eq!(e.key, "state.lease_ms", "{e}");

    let err = Config::parse("[server]\nlisten = \"127.0.0.1:1\"\nlisten_typo = 1\n", "gw.toml").unwrap_err();
    assert!(err.to_string().starts_with("gw.toml:3: unknown field `listen_typo`"), "{err}");

    let text =
        "[[provider]]\nname = \"a\"\nadapter = \"x\"\nconfig = { token = { env = \"SMSBRIDGE_SURELY_UNSET\" } }\n";
    let err = Config::parse(text, "gw.toml").unwrap_err().to_string();
    assert_eq!(
        err,
        "gw.toml:4: provider `a`: `config.token` reads environment variable `SMSBRIDGE_SURELY_UNSET`, which is not set"
    );

    let text = "[[provider]]\nname = \"a\"\nadapter = \"x\"\n[[route]]\npath = \"/x\"\nproviders = [\"a\"]\ndefault_country = \"Britain\"\n";
    let err = Config::parse(text, "gw.toml").unwrap_err().to_string();
    assert!(err.starts_with("gw.toml:7: route `/x`: `default_country` `Britain`"), "{err}");
}

#[test]
fn admin_off_loopback_needs_a_token() {
    let err = Config::parse("[admin]\nlisten = \"0.0.0.0:8081\"\n", "gw.toml").unwrap_err().to_string();
    assert_eq!(err, "gw.toml:1: admin listens on 0.0.0.0:8081, which is not loopback: set `token`");
    let c = Config::parse("[admin]\nlisten = \"0.0.0.0:8081\"\ntoken = \"t0k-9f2c41d8a7\"\n", "gw.toml").unwrap();
    assert_eq!(c.admin.unwrap().token.unwrap().value, "t0k-9f2c41d8a7");
    assert_eq!(Config::parse("[admin]\n", "gw.toml").unwrap().admin.unwrap().listen.to_string(), "127.0.0.1:8081");
}

#[test]
fn empty_and_short_secrets_are_refused_with_their_key() {
    let route = |auth: &str| {
        format!(
            "[[provider]]\nname = \"a\"\nadapter = \"outbox\"\n[[route]]\npath = \"/x\"\nproviders = [\"a\"]\nauth = {auth}\n"
        )
    };
    let err = |text: &str| Config::parse(text, "gw.toml").unwrap_err().to_string();
    assert_eq!(err(&route("{ bearer = { token = \"\" } }")), "gw.toml:7: route `/x`: auth `token` is empty");
    assert_eq!(
        err(&route("{ basic = { user = \"u\", password = \"short\" } }")),
        "gw.toml:7: route `/x`: auth `password` is 5 characters long; a secret needs at least 12"
    );
    assert!(
        err(&route("{ form_secret = { user_field = \"u\", secret_field = \"s\", user = \"VA1\", secret = \"abc\" } }"))
            .contains("auth `secret` is 3 characters long")
    );
    // SAFETY: no other test reads this variable.
    unsafe { std::env::set_var("SMSBRIDGE_TEST_EMPTY_TOKEN", "") };
    assert_eq!(err("[admin]\ntoken = { env = \"SMSBRIDGE_TEST_EMPTY_TOKEN\" }\n"), "gw.toml:2: admin `token` is empty");
    assert!(err("[auth]\ndigest_key = \"k\"\n").contains("auth `digest_key` is 1 characters long"));
    assert!(err("[record]\npath = \"m.db\"\nnumber_key = \"\"\n").contains("record `number_key` is empty"));
    assert!(Config::parse(&route("{ bearer = { token = \"twelve-chars\" } }"), "gw.toml").is_ok());
}

#[test]
fn durations_are_bounded() {
    let err = |text: &str| Config::parse(text, "gw.toml").unwrap_err().to_string();
    assert!(
        err("[[provider]]\nname = \"a\"\nadapter = \"x\"\ntimeout_ms = 18446744073709551615\n")
            .contains("`timeout_ms` must be between 1 and 2592000000")
    );
    assert!(err("[server]\nheader_read_timeout_ms = 0\n").contains("[server]: `header_read_timeout_ms` must be"));
    assert!(err("[server]\nmax_connections = 0\n").contains("`max_connections` must be between 1"));
    let route = "[[provider]]\nname = \"a\"\nadapter = \"x\"\n[[route]]\npath = \"/x\"\nproviders = [\"a\"]\n";
    assert!(err(&format!("{route}validity_s = 99999999999\n")).contains("`validity_s` must be between"));
}

#[test]
fn no_value_is_coerced_in_silence_and_each_is_refused_in_its_own_unit() {
    let err = |text: &str| Config::parse(text, "gw.toml").unwrap_err().to_string();
    let provider = |extra: &str| format!("[[provider]]\nname = \"a\"\nadapter = \"x\"\n{extra}\n");
    let route = |extra: &str| format!("{}[[route]]\npath = \"/x\"\nproviders = [\"a\"]\n{extra}\n", provider(""));
    let cases = [
        (provider("memory_mb = 17592186044416"), "`memory_mb` must be between 1 and 256 MiB, not 17592186044416"),
        (provider("max_response_bytes = 0"), "`max_response_bytes` must be between 1 and 16777216 bytes, not 0"),
        (provider("circuit_failures = 0"), "`circuit_failures` must be between 1 and 10000 failures, not 0"),
        (provider("circuit_cooldown_ms = 0"), "`circuit_cooldown_ms` must be between 1 and 2592000000"),
        (route("validity_s = 0"), "`validity_s` must be between 1 and 2592000 seconds (30 days), not 0"),
        (route("validity_s = 2592001"), "`validity_s` must be between 1 and 2592000 seconds (30 days), not 2592001"),
        (route("idempotency_window_s = 2592001"), "`idempotency_window_s` must be between 0 and 2592000 seconds"),
        (route("retries = 4000000000"), "`retries` must be between 0 and 100 retries, not 4000000000"),
        (route("backoff_ms = 0"), "`backoff_ms` must be between 1 and 2592000000"),
        (
            "[record]\npath = \"m.db\"\nretention_days = 0\n".to_string(),
            "`retention_days` must be between 1 and 36500 days, not 0",
        ),
    ];
    for (text, expected) in cases {
        let e = err(&text);
        assert!(e.contains(expected), "{text}: {e}");
    }
    // 0 is documented as off, and means off.
    let off = Config::parse(&route("idempotency_window_s = 0"), "gw.toml").unwrap();
    assert_eq!(off.routes[0].delivery.idempotency_window, Duration::ZERO);
}

#[test]
fn provider_names_are_of_a_safe_alphabet() {
    let err = |name: &str| {
        let text = format!("[[provider]]\nname = \"{name}\"\nadapter = \"x\"\n");
        Config::parse(&text, "gw.toml").err().map(|e| e.to_string())
    };
    for bad in ["x,y", "a b", "é", "a/b", "", &"a".repeat(65)] {
        let e = err(bad).unwrap_or_else(|| panic!("`{bad}` taken as a provider name"));
        assert!(e.contains("gw.toml:2: provider `name`"), "{e}");
    }
    for good in ["twilio", "Twilio-EU_2", "sms.example"] {
        assert_eq!(err(good), None, "{good}");
    }
}

#[test]
fn settings_take_text_numbers_and_environment() {
    // SAFETY: no other test reads this variable.
    unsafe { std::env::set_var("SMSBRIDGE_TEST_TOKEN", "s3cret") };
    let text = "[[provider]]\nname = \"a\"\nadapter = \"x\"\n[provider.config]\nsid = \"AC1\"\nvalidity = 600\ntoken = { env = \"SMSBRIDGE_TEST_TOKEN\" }\n";
    let c = Config::parse(text, "t").unwrap();
    let s = &c.provider("a").unwrap().settings;
    assert_eq!(s["sid"].value, "AC1");
    assert_eq!(s["validity"].value, "600");
    assert!(s["token"].from_env && s["token"].value == "s3cret");
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn state_errors_name_the_key_and_never_echo_the_url() {
    let err = |text: &str| Config::parse(text, "gw.toml").unwrap_err().to_string();
    let key = "[record]\nnumber_key = \"number-key-123456\"\n";
    let ok = Config::parse(&format!("{key}[state]\nurl = \"postgres://sb@db/sb\"\n"), "gw.toml").unwrap();
    let state = ok.state.unwrap();
    assert_eq!((state.on_failure, state.pool, state.lease), (OnStateFailure::Closed, 16, Duration::from_secs(30)));
    assert_eq!(ok.record.unwrap().path, None);
    let e = err("[state]\nurl = \"postgres://sb@db/sb\"\n");
    assert!(e.contains("set [record] `number_key`"), "{e}");
    let e = err("[record]\npath = \"m.db\"\nnumber_key = \"number-key-123456\"\n[state]\nurl = \"postgres://db/sb\"\n");
    assert!(e.contains("remove `path`"), "{e}");
    let e = err(&format!("{key}[state]\nurl = \"mysql://u:hunter2-secret@db/sb\"\n"));
    assert!(e.contains("gw.toml:4: state `url` must start with postgres://") && !e.contains("hunter2"), "{e}");
    let e = err(&format!("{key}[state]\nurl = \"postgres://u:hunter2-secret@db/sb?sslmode=sometimes\"\n"));
    assert!(e.contains("state `url` is not a PostgreSQL URL") && !e.contains("hunter2"), "{e}");
    let e = err(&format!("{key}[state]\nurl = \"postgres://db/sb\"\non_failure = \"maybe\"\n"));
    assert!(e.contains("gw.toml:5: state `on_failure` must be \"closed\" or \"open\""), "{e}");
    let e = err(&format!("{key}[state]\nurl = \"postgres://db/sb\"\nlease_ms = 10\n"));
    assert!(e.contains("state `lease_ms` must be 1000 to 600000 (got 10)"), "{e}");
    let e = err("[record]\nretention_days = 3\n");
    assert!(e.contains("[record] needs `path`"), "{e}");
    // A queued route needs a record, which [state] provides.
    let queued = "[[provider]]\nname = \"a\"\nadapter = \"outbox\"\n[[route]]\npath = \"/q\"\nproviders = [\"a\"]\nqueued = true\n";
    Config::parse(&format!("{key}[state]\nurl = \"postgres://db/sb\"\n{queued}"), "gw.toml").unwrap();
}

#[test]
fn presets_fill_what_a_route_leaves_out_and_yield_to_what_it_sets() {
    let base = "[[provider]]\nname = \"a\"\nadapter = \"outbox\"\n[[route]]\npath = \"/o\"\nproviders = [\"a\"]\n";
    let route = |extra: &str| Config::parse(&format!("{base}{extra}"), "gw.toml").map(|mut c| c.routes.remove(0));
    let okta = route("caller = \"okta\"\n").unwrap();
    assert_eq!(okta.fields.phone, "data.messageProfile.phoneNumber");
    assert_eq!(okta.fields.code.as_deref(), Some("data.messageProfile.otpCode"));
    assert_eq!((okta.answer, okta.delivery.deadline), (Answer::Okta, Duration::from_millis(2500)));
    let own = route("caller = \"okta\"\ndeadline_ms = 2000\ntemplate = \"Code: {code}\"\n").unwrap();
    assert_eq!((own.delivery.deadline, own.template.as_deref()), (Duration::from_millis(2000), Some("Code: {code}")));
    let supabase = route("caller = \"supabase\"\n").unwrap();
    assert!(supabase.international_numbers);
    assert_eq!((supabase.answer, supabase.delivery.idempotency_window), (Answer::Supabase, Duration::from_secs(300)));
    let err = |extra: &str| route(extra).unwrap_err().to_string();
    assert!(err("caller = \"nokia\"\n").contains("gw.toml:7: route: `caller` `nokia` is not a known product"));
    assert!(err("fields = { code = \"otp\" }\n").contains("`fields.code` needs a `template`"));
    assert!(err("fields = { code = \"otp\" }\ntemplate = \"Hi\"\n").contains("`template` must contain {code}"));
    let webhook = "auth = { webhook = { secret = \"v1,whsec_c21zYnJpZGdlLXN1cGFiYXNlLWhvb2stc2VjcmV0\" } }\n";
    assert!(err(webhook).contains("`idempotency_window_s` (60) must be at least the webhook `tolerance_s` (300)"));
    assert!(route(&format!("caller = \"supabase\"\n{webhook}")).is_ok());
    let bad = "auth = { webhook = { secret = \"v1,whsec_not base64!!\" } }\nidempotency_window_s = 300\n";
    assert!(err(bad).contains("write it as v1,whsec_<base64>"));
    let jwt = "auth = { jwt = { secret = \"auth0-secret-0123456789\", audience = \"\" } }\n";
    assert!(err(jwt).contains("auth `audience` is empty"));
}

#[test]
fn fallback_and_learned_order_are_checked_with_the_line_and_the_reason() {
    let providers =
        "[[provider]]\nname = \"a\"\nadapter = \"outbox\"\n[[provider]]\nname = \"b\"\nadapter = \"outbox\"\n";
    let record = "[record]\npath = \"m.db\"\n";
    let route = |head: &str, list: &str, extra: &str| {
        let text = format!("{head}{providers}[[route]]\npath = \"/o\"\nproviders = [{list}]\n{extra}");
        Config::parse(&text, "gw.toml").map(|mut c| c.routes.remove(0))
    };
    let ok = route(record, "\"a\", \"b\"", "fallback_after_s = 30\norder = \"delivered\"\n").unwrap();
    assert_eq!(ok.delivery.fallback_after, Some(Duration::from_secs(30)));
    assert_eq!(ok.delivery.order, Order::Delivered { explore: 0.05, min_receipts: 20 });
    let plain = route("", "\"a\"", "").unwrap();
    assert_eq!((plain.delivery.fallback_after, plain.delivery.order), (None, Order::Listed));
    let err = |head: &str, list: &str, extra: &str| route(head, list, extra).unwrap_err().to_string();
    let e = err("", "\"a\", \"b\"", "fallback_after_s = 30\n");
    assert!(e.contains("gw.toml:10: route `/o`: `fallback_after_s` waits for receipts in the message record"), "{e}");
    let e = err(record, "\"a\"", "fallback_after_s = 30\n");
    assert!(e.contains("gw.toml:12: route `/o`: `fallback_after_s` needs a second provider"), "{e}");
    let e = err(record, "\"a\", \"b\"", "fallback_after_s = 600\n");
    assert!(e.contains("`fallback_after_s` (600) must be at least 1 and less than `validity_s` (600)"), "{e}");
    let e = err(record, "\"a\", \"b\"", "order = \"cheapest\"\n");
    assert!(e.contains("gw.toml:12: route `/o`: `order` `cheapest` is not one of listed, delivered"), "{e}");
    let e = err(record, "\"a\", \"b\"", "order = \"delivered\"\nexplore_percent = 90\n");
    assert!(e.contains("`explore_percent` must be between 0 and 50"), "{e}");
}
