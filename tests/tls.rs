//! HTTPS that an MFA server can pin: a self-signed certificate generated
//! once and reused across restarts, and a replaced certificate served to new
//! connections without a restart.

use smsbridge::config::Config;
use smsbridge::gateway::Gateway;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
[server.tls]
listen = "127.0.0.1:0"
cert = "{dir}/tls/cert.pem"
key = "{dir}/tls/key.pem"
self_signed = { names = ["localhost", "127.0.0.1"], days = 3650 }

[[provider]]
name = "outbox"
adapter = "outbox"
data_dir = "{dir}/outbox"

[[route]]
path = "/v1/send"
providers = ["outbox"]
"#;

/// Starts the HTTPS listener as `smsbridge serve` does; the returned sender
/// stops it.
async fn start(dir: &Path) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let config = Config::parse(&CONFIG.replace("{dir}", dir.to_str().unwrap()), "tls.toml").unwrap();
    let tls = config.server.tls.clone().unwrap();
    smsbridge::tls::prepare(&tls).unwrap();
    let server_config = smsbridge::tls::server_config(&tls).unwrap();
    let gateway = Arc::new(Gateway::new(config, smsbridge_tests::runtime()).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(smsbridge::server::serve_tls(gateway, listener, server_config, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// A client that trusts exactly the certificate in `pem`, as RSA AM does
/// after "Import Certificate".
fn pinned(pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(pem).unwrap()]).build().unwrap()
}

async fn send(client: &reqwest::Client, addr: SocketAddr) -> Result<u16, reqwest::Error> {
    let url = format!("https://localhost:{}/v1/send", addr.port());
    let resp = client.post(url).form(&[("phone", "+447400123456"), ("message", "Your code is 123456")]).send().await?;
    Ok(resp.status().as_u16())
}

#[tokio::test]
async fn a_pinned_self_signed_certificate_survives_restarts_and_can_be_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let cert_file = dir.path().join("tls/cert.pem");

    let (addr, stop) = start(dir.path()).await;
    let first_pem = std::fs::read(&cert_file).expect("a self-signed certificate was generated");
    let summary = smsbridge::tls::summary(&cert_file).unwrap();
    assert_eq!(summary.names, ["localhost", "127.0.0.1"]);
    assert_eq!(summary.fingerprint.len(), 32 * 3 - 1);
    assert_eq!(send(&pinned(&first_pem), addr).await.unwrap(), 200);
    // A client that trusts something else refuses the connection.
    let other = tempfile::tempdir().unwrap();
    smsbridge::tls::generate_self_signed(
        &["localhost".into()],
        1,
        &other.path().join("c.pem"),
        &other.path().join("k.pem"),
    )
    .unwrap();
    assert!(send(&pinned(&std::fs::read(other.path().join("c.pem")).unwrap()), addr).await.is_err());

    // Restart: the same certificate, so the pin still holds.
    stop.send(()).unwrap();
    let (addr, _stop) = start(dir.path()).await;
    assert_eq!(std::fs::read(&cert_file).unwrap(), first_pem, "the certificate is reused, not regenerated");
    assert_eq!(send(&pinned(&first_pem), addr).await.unwrap(), 200);

    // Rotation: the operator replaces both files; new connections get the
    // new certificate with no restart.
    let staged = tempfile::tempdir().unwrap();
    let (new_cert, new_key) = (staged.path().join("cert.pem"), staged.path().join("key.pem"));
    smsbridge::tls::generate_self_signed(&["localhost".into()], 365, &new_cert, &new_key).unwrap();
    std::fs::copy(&new_key, dir.path().join("tls/key.pem")).unwrap();
    std::fs::copy(&new_cert, &cert_file).unwrap();
    let new_pem = std::fs::read(&new_cert).unwrap();
    assert_eq!(send(&pinned(&new_pem), addr).await.unwrap(), 200);
    assert!(send(&pinned(&first_pem), addr).await.is_err(), "the old certificate is no longer served");
}
