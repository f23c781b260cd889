//! smsbridge: an on-premises SMS gateway for MFA servers. A caller's request
//! is authenticated, its number normalised to E.164, and the message handed
//! to a sandboxed WebAssembly adapter that speaks one provider's API.

pub mod admin;
pub mod auth;
pub mod browser;
pub mod config;
pub mod console;
pub mod delivery;
pub mod egress;
pub mod fixture;
pub mod gateway;
pub mod keyed;
pub mod keyfile;
pub mod learned;
pub mod listen;
pub mod outbound;
pub mod outcome;
pub mod phone;
pub mod postgres;
pub mod record;
pub mod registry;
pub mod routing;
pub mod runtime;
pub mod scaffold;
pub mod server;
pub mod smpp;
pub mod state;
pub mod stats;
pub mod storage;
pub mod telemetry;
pub mod tls;
pub mod trust;
pub mod watch;

/// Components built from `adapters/` by the build script.
pub mod artifacts {
    include!(concat!(env!("OUT_DIR"), "/adapters.rs"));
}
