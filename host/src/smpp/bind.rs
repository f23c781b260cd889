//! One bind's life: connect through the egress gate (TLS for `smpps://`),
//! `bind_transceiver`, answer what the SMSC sends, and bind again with
//! jittered backoff when the connection ends, until the session is dropped.

use super::encode;
use super::session::{Bind, Inner, rand_u8};
use crate::config::SmppBinds;
use crate::egress;
use crate::telemetry;
use futures_util::StreamExt;
use rusmpp::pdus::BindTransceiver;
use rusmpp::values::InterfaceVersion;
use rusmppc::error::Error as ClientError;
use rusmppc::{Client, ConnectionBuilder, Event};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

/// A connect plus bind that takes longer is given up and tried again.
const BIND_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait before binding again; it doubles up to `reconnect_max`.
const FIRST_RETRY: Duration = Duration::from_secs(1);

type Events = Pin<Box<dyn futures_util::Stream<Item = Event> + Send>>;

/// Keeps bind `n` up until the session is dropped.
pub(super) async fn keep_bound(inner: Arc<Inner>, bind: Arc<Bind>, n: usize, mut stop: watch::Receiver<()>) {
    let provider = inner.provider.clone();
    let mut wait = FIRST_RETRY;
    let mut attempts = 0u64;
    loop {
        let connected = tokio::select! {
            r = tokio::time::timeout(BIND_TIMEOUT, connect(&inner.settings)) => r.unwrap_or_else(|_| Err((None, "no bind_transceiver_resp in time".into()))),
            _ = stop.changed() => return,
        };
        match connected {
            Ok((client, mut events)) => {
                attempts += 1;
                if attempts > 1 {
                    bind.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    telemetry::smpp_reconnect(&provider);
                }
                telemetry::smpp_bound(&provider, n, true);
                tracing::info!(%provider, bind = n, "SMPP bind up");
                *bind.last_error.lock().unwrap() = None;
                *bind.client.lock().unwrap() = Some(client.clone());
                bind.up.send_replace(true);
                wait = FIRST_RETRY;
                let why = loop {
                    tokio::select! {
                        event = events.next() => match event {
                            Some(Event::Incoming(command)) => inner.inbound.answer(&bind.stats, &client, command).await,
                            Some(Event::Error(e)) => tracing::debug!(%provider, bind = n, "SMPP: {e}"),
                            None => break "the connection closed".to_string(),
                        },
                        _ = stop.changed() => {
                            bind.up.send_replace(false);
                            let _ = tokio::time::timeout(Duration::from_secs(2), client.unbind()).await;
                            let _ = client.close().await;
                            return;
                        }
                    }
                };
                bind.up.send_replace(false);
                telemetry::smpp_bound(&provider, n, false);
                bind.client.lock().unwrap().take();
                tracing::warn!(%provider, bind = n, "SMPP bind down: {why}; binding again");
            }
            Err((code, why)) => {
                let mut last = bind.last_error.lock().unwrap();
                if last.as_ref().map(|l| &l.1) != Some(&why) {
                    tracing::error!(%provider, bind = n, "SMPP bind failed: {why}; trying again, at most every {}s", inner.settings.reconnect_max.as_secs());
                }
                *last = Some((code, why));
            }
        }
        // Jittered, so that many binds refused at once do not come back at once.
        let jitter = 0.5 + f64::from(rand_u8()) / 255.0;
        tokio::select! {
            _ = tokio::time::sleep(wait.mul_f64(jitter)) => {}
            _ = stop.changed() => return,
        }
        wait = (wait * 2).min(inner.settings.reconnect_max);
    }
}

/// Connects through the egress gate and binds as a transceiver.
async fn connect(settings: &SmppBinds) -> Result<(Client, Events), (Option<u32>, String)> {
    let url = url::Url::parse(&settings.url).map_err(|e| (None, e.to_string()))?;
    let (host, port) = (url.host_str().unwrap_or_default().to_string(), url.port().unwrap_or(2775));
    let addrs = egress::resolve(&host, port).await.map_err(|d| (None, d.0))?;
    let tcp = tokio::net::TcpStream::connect(&addrs[..])
        .await
        .map_err(|e| (None, format!("cannot connect to {host}:{port}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let builder = ConnectionBuilder::new()
        .enquire_link_interval(settings.enquire_link)
        .disable_interface_version_check()
        .no_response_timeout();
    let (client, events): (Client, Events) = if url.scheme() == "smpps" {
        let config = crate::tls::client_config("`smpp.ca_file`", settings.ca_file.as_deref())
            .map_err(|e| (None, format!("{e:#}")))?;
        let name =
            rustls_pki_types::ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string())
                .map_err(|e| (None, format!("{host}: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| (None, format!("TLS with {host}:{port}: {e}")))?;
        let (c, e) = builder.connected(tls);
        (c, Box::pin(e))
    } else {
        let (c, e) = builder.connected(tcp);
        (c, Box::pin(e))
    };
    let refused = |e| (None, e);
    let bind = BindTransceiver::builder()
        .system_id(encode::text_field("system_id", &settings.system_id).map_err(refused)?)
        .password(encode::text_field("password", &settings.password).map_err(refused)?)
        .system_type(encode::text_field("system_type", &settings.system_type).map_err(refused)?)
        .interface_version(InterfaceVersion::Smpp3_4)
        .build();
    match client.response_timeout(BIND_TIMEOUT).bind_transceiver(bind).await {
        Ok(_) => Ok((client, events)),
        Err(ClientError::UnexpectedResponse { response }) => {
            let code = u32::from(response.status());
            let why = match code {
                0x0E => "the SMSC refused the password (command_status 0x0e)".to_string(),
                0x0F => "the SMSC refused the system_id (command_status 0x0f)".to_string(),
                _ => format!("the SMSC refused the bind (command_status {code:#x})"),
            };
            Err((Some(code), why))
        }
        Err(e) => Err((None, format!("bind: {e}"))),
    }
}
