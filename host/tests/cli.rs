//! The `smsbridge` binary as a new user runs it: `serve` on the embedded
//! default, `check`, `send`, and config errors that name file and line.

mod common;

use common::request;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn smsbridge(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smsbridge"));
    cmd.current_dir(dir).env("SMSBRIDGE_LOG", "info");
    cmd
}

#[test]
fn serve_on_the_embedded_default_delivers_to_the_outbox_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = smsbridge(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve prints where it listens").unwrap();
        if let Some(at) = line.find("listening on http://") {
            break line[at + "listening on http://".len()..].split_whitespace().next().unwrap().to_string();
        }
    };
    // As `curl -d phone=+447400123456 -d 'message=Your code is 123456'` sends it.
    let (status, body) = request(&addr, "POST", "/v1/send", "", "phone=+447400123456&message=Your code is 123456");
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["status"], "pending");

    let outbox = std::fs::read_to_string(dir.path().join("var/outbox/outbox.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(outbox.trim()).unwrap();
    assert_eq!(line["to"], "+447400123456");
    assert_eq!(line["body"], "Your code is 123456");
    assert_eq!(line["id"], answer["id"]);

    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exits 0 on SIGTERM: {status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let log = rest.join("\n");
    assert!(log.contains("+4474****3456"), "the log masks the number: {log}");
    assert!(!log.contains("447400123456"), "the log never has the number in clear: {log}");
    assert!(!log.contains("123456"), "the log never has the message: {log}");
}

#[test]
fn check_lists_each_provider_with_its_adapter_info() {
    let dir = tempfile::tempdir().unwrap();
    let out = smsbridge(dir.path()).arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("config: embedded default (ok)"), "{stdout}");
    assert!(stdout.contains("provider outbox: adapter outbox 0.1.0"), "{stdout}");
    assert!(stdout.contains("route /v1/send: fields phone/message, providers outbox"), "{stdout}");
    assert!(stdout.contains("warning: route /v1/send has no caller auth"), "{stdout}");
}

#[test]
fn config_errors_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    std::fs::write(
        &file,
        "[[provider]]\nname = \"outbox\"\nadapter = \"outbox\"\n\n[[route]]\npath = \"/x\"\nproviders = [\"outbox\", \"twilio\"]\n",
    )
    .unwrap();
    let out = smsbridge(dir.path()).args(["check", "--config", "gw.toml"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: gw.toml:7: route `/x`: provider `twilio` is not defined"), "{stderr}");

    std::fs::write(&file, "[[provider]]\nname = \"p\"\nadapter = \"carrier-pigeon\"\n").unwrap();
    let out = smsbridge(dir.path()).args(["check", "--config", "gw.toml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("provider `p`: adapter `carrier-pigeon` is not bundled and not in the adapters folder"),
        "{stderr}"
    );
}

#[test]
fn send_delivers_one_message_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = smsbridge(dir.path()).args(["send", "--to", "+44 7400 123456", "--message", "hello"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["status"], "pending");
    let outbox = std::fs::read_to_string(dir.path().join("var/outbox/outbox.jsonl")).unwrap();
    assert_eq!(outbox.lines().count(), 1);

    let out = smsbridge(dir.path()).args(["send", "--to", "not a number", "--message", "hello"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not sent (HTTP 400)") && stderr.contains("invalid_phone"), "{stderr}");
}

#[test]
fn check_accepts_every_example_config() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples");
    let dir = tempfile::tempdir().unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut cmd = smsbridge(dir.path());
        cmd.arg("check").arg("--config").arg(&path);
        // Every secret an example reads from the environment.
        for var in text.split("env = \"").skip(1).map(|rest| rest.split('"').next().unwrap()) {
            // SMPP 3.4 caps a password at 8 characters.
            cmd.env(var, if var.starts_with("SMPP_") { "exsecret" } else { "example-secret-value" });
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        let adapter = path.file_stem().unwrap().to_str().unwrap();
        assert!(stdout.contains(&format!(": adapter {adapter} 0.1.0")), "{}: {stdout}", path.display());
        assert!(!stdout.contains("MISSING"), "{}: {stdout}", path.display());
        assert!(
            !stdout.contains("example-secret-value") && !stdout.contains("exsecret"),
            "check never prints a secret"
        );
        seen += 1;
    }
    assert_eq!(seen, 9, "one example per bundled provider adapter");
}

#[test]
fn inspect_explains_what_a_wasm_file_is_and_whether_it_loads() {
    let dir = tempfile::tempdir().unwrap();
    let inspect = |file: &str| {
        let out = smsbridge(dir.path()).args(["adapter", "inspect", file]).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, stdout, _) = inspect(smsbridge::artifacts::TWILIO_WASM);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("kind:     WebAssembly component"), "{stdout}");
    assert!(stdout.contains("import:   smsbridge:adapter/http@0.1.2"), "{stdout}");
    assert!(stdout.contains("export:   smsbridge:adapter/sender@0.1.2"), "{stdout}");
    assert!(stdout.contains("adapter:  twilio 0.1.0 (Twilio Programmable Messaging)"), "{stdout}");
    assert!(stdout.contains("hosts:    api.twilio.com"), "{stdout}");
    assert!(stdout.contains("auth_token"), "{stdout}");
    assert!(stdout.ends_with("loadable: yes\n"), "{stdout}");

    let (ok, stdout, stderr) = inspect(smsbridge::artifacts::WRONG_WORLD_WASM);
    assert!(!ok);
    assert!(stdout.contains("export:   wasi:cli/run@0.2.0") && stdout.contains("loadable: no"), "{stdout}");
    assert!(stderr.contains("does not export smsbridge:adapter/sender@0.1"), "{stderr}");

    let (ok, _, stderr) = inspect(smsbridge::artifacts::BAD_INFO_WASM);
    assert!(!ok);
    assert!(stderr.contains("info() failed") && stderr.contains("info() traps on purpose"), "{stderr}");

    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let (ok, _, stderr) = inspect(core.to_str().unwrap());
    assert!(!ok && stderr.contains("a core WebAssembly module, not a component"), "{stderr}");

    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "hello").unwrap();
    let (ok, _, stderr) = inspect(text.to_str().unwrap());
    assert!(!ok && stderr.contains("not WebAssembly at all"), "{stderr}");
}

#[test]
fn adapter_test_runs_the_bundled_fixtures_and_reports_differences() {
    let adapters = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters");
    let dir = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for (name, wasm) in [("twilio", smsbridge::artifacts::TWILIO_WASM), ("vonage", smsbridge::artifacts::VONAGE_WASM)] {
        for fixture in std::fs::read_dir(adapters.join(name).join("fixtures")).unwrap() {
            let fixture = fixture.unwrap().path();
            let out =
                smsbridge(dir.path()).args(["adapter", "test", wasm, "--fixture"]).arg(&fixture).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{}: {stdout}", fixture.display());
            assert!(stdout.contains("request 1: POST https://"), "{stdout}");
            ran += 1;
        }
    }
    assert_eq!(ran, 3);

    // A fixture the adapter does not meet: each difference by name.
    let text = std::fs::read_to_string(adapters.join("twilio/fixtures/accepted.toml")).unwrap();
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(&wrong, text.replace("From = \"+15005550006\", Body", "From = \"+15550000000\", Body")).unwrap();
    let out = smsbridge(dir.path())
        .args(["adapter", "test", smsbridge::artifacts::TWILIO_WASM, "--fixture"])
        .arg(&wrong)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout
            .contains("MISMATCH request 1: form field `From`\n    expected: +15550000000\n    got:      +15005550006"),
        "{stdout}"
    );
}

#[test]
fn check_into_a_closed_pipe_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = smsbridge(dir.path()).arg("check").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // The reader goes away before the first line, as `| head -0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
