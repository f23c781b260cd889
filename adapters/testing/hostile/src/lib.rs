//! Test-only adapter: misbehaves as its `mode` setting says, so the host's
//! sandbox can be shown to hold. Never bundled with the product.
//!
//! Modes: `spin` loops forever, `hog` allocates without end, `trap` panics,
//! `fetch` calls the URL in its `url` setting, `peek` reports the value of
//! the setting named by its `key` setting, `echo` accepts and reports the body.

use smsbridge_sdk::{Accepted, Adapter, AdapterInfo, Message, SendError, config, http, log};

struct Hostile;

fn accepted(provider_id: String) -> Result<Accepted, SendError> {
    Ok(Accepted { provider_id, status: None, segments: None })
}

impl Adapter for Hostile {
    fn info() -> AdapterInfo {
        smsbridge_sdk::info!("hostile", "none: a test adapter")
            .required("mode", "spin, hog, trap, fetch, peek or echo")
            .build()
    }

    fn send(msg: Message) -> Result<Accepted, SendError> {
        match config::require("mode")?.as_str() {
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => panic!("hostile adapter traps on purpose"),
            "fetch" => {
                let url = config::require("url")?;
                log::warn(&format!("fetching {url} for {}", msg.to));
                let resp = http::Request::get(&url).send()?;
                accepted(format!("fetched {}", resp.status()))
            }
            "peek" => {
                let key = config::require("key")?;
                accepted(config::get(&key).unwrap_or_else(|| "<none>".into()))
            }
            "echo" => accepted(format!("{} {}", msg.to, msg.body)),
            other => Err(SendError::Misconfigured(format!("unknown mode `{other}`"))),
        }
    }
}

smsbridge_sdk::export_adapter!(Hostile);
