//! The `smsbridge` command: serve, check a config, or send one message.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use smsbridge::config::Config;
use smsbridge::gateway::Gateway;
use smsbridge::listen::Limits;
use smsbridge::runtime::Runtime;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Prints a line on stdout. A reader that went away (`smsbridge check |
/// head`) ends the process quietly rather than with a panic.
macro_rules! say {
    ($($arg:tt)*) => { say(format_args!($($arg)*)) };
}

fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout(), "{line}")
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

#[derive(Parser)]
#[command(name = "smsbridge", version, about = "On-premises SMS gateway for MFA servers")]
struct Cli {
    /// Log as human-readable text or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: smsbridge::telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Config file; without it, the embedded default (the outbox adapter).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address, overriding `server.listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Admin listen address, overriding `admin.listen`.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
    },
    /// Validate the config and adapters; list each provider with its adapter.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Work with adapter files.
    Adapter {
        #[command(subcommand)]
        command: AdapterCommand,
    },
    /// The HTTPS certificate, for MFA servers that pin it.
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// Send one message through a route, without a server.
    Send {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Phone number, in any format the route accepts.
        #[arg(long)]
        to: String,
        #[arg(long)]
        message: String,
        /// Route path; defaults to the first route.
        #[arg(long)]
        route: Option<String>,
    },
}

#[derive(Subcommand)]
enum AdapterCommand {
    /// Create a standalone adapter crate on the SDK: a sample info() and
    /// send(), fixtures for `adapter test`, and a README with every command.
    New {
        /// Adapter and crate name: lowercase letters, digits and `-`.
        name: String,
        /// Folder to create; defaults to ./NAME.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The provider's display name.
        #[arg(long)]
        provider: Option<String>,
        /// The provider's API host, allowed by default.
        #[arg(long)]
        host: Option<String>,
        /// The SDK crate's folder (`adapters/sdk` in an smsbridge checkout);
        /// defaults to the one this binary was built from.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// What a .wasm file is, what it imports and exports, whether this host
    /// can load it, and its info().
    Inspect { file: PathBuf },
    /// Run an adapter with its HTTP calls answered from a fixture, and
    /// report every request it made and every difference from the fixture.
    Test {
        file: PathBuf,
        #[arg(long)]
        fixture: PathBuf,
    },
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Print the certificate's SHA-256 fingerprint, names, expiry and PEM;
    /// generate it first if the config asks for a self-signed one.
    Show {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Config::load(p),
        None => Ok(Config::embedded()),
    }
}

async fn gateway(path: Option<&Path>) -> Result<Gateway> {
    let config = load_config(path)?;
    smsbridge::telemetry::set_log_level(&config.log.level);
    let runtime = Runtime::for_sends(config.sends_in_flight())?;
    Gateway::new(config, runtime).await
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    smsbridge::telemetry::init_logging(cli.log_format, "info");
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve { config, listen, admin_listen } => serve(config.as_deref(), listen, admin_listen).await,
        Command::Check { config } => check(config.as_deref()).await,
        Command::Tls { command: TlsCommand::Show { config } } => tls_show(config.as_deref()),
        Command::Adapter { command: AdapterCommand::New { name, dir, provider, host, sdk } } => {
            adapter_new(smsbridge::scaffold::Scaffold { name, provider, host, sdk }, dir)
        }
        Command::Adapter { command: AdapterCommand::Inspect { file } } => inspect(&file).await,
        Command::Adapter { command: AdapterCommand::Test { file, fixture } } => adapter_test(&file, &fixture).await,
        Command::Send { config, to, message, route } => send(config.as_deref(), &to, &message, route.as_deref()).await,
    }
}

/// Open connections the admin listener keeps: operators and a scraper.
const ADMIN_CONNECTIONS: usize = 64;
/// Of those, what one address may hold.
const ADMIN_PER_PEER: usize = 16;
/// How long the admin listener waits for a request's header.
const ADMIN_HEADER_READ: Duration = Duration::from_secs(2);

async fn serve(config: Option<&Path>, listen: Option<SocketAddr>, admin_listen: Option<SocketAddr>) -> Result<()> {
    smsbridge::telemetry::metrics();
    let gateway = Arc::new(gateway(config).await?);
    gateway.start_queue();
    // The handlers are in place before anything says it listens: a signal
    // sent the moment it is ready must not find the default action (death).
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    // One signal, seen by every listener and by the grace timer.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = term.recv() => {},
        }
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let routing = gateway.routing();
    // Connections never take the descriptors a send needs: the soft limit
    // is raised to the hard one, and the cap fitted under it.
    let files = smsbridge::listen::raise_file_limit();
    let server = &routing.config.server;
    let listeners = 1 + usize::from(server.tls.is_some());
    let fixed = if routing.config.admin.is_some() { ADMIN_CONNECTIONS } else { 0 };
    let budget = smsbridge::listen::connection_budget(server.max_connections, listeners, fixed, files);
    if budget < server.max_connections {
        tracing::warn!(
            "max_connections is {budget} per listener, not {}: the open-file limit is {files} (raise LimitNOFILE)",
            server.max_connections
        );
    } else {
        tracing::info!("max_connections {budget} per listener; open-file limit {files}");
    }
    let limits = Limits { max_connections: budget, ..Limits::of(server) };
    let addr = listen.unwrap_or(routing.config.server.listen);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(config = %routing.config.source, "listening on http://{local}");
    for route in &routing.config.routes {
        tracing::info!("route {} -> {}", route.path, route.providers.join(", "));
    }
    if let Some(admin) = &routing.config.admin {
        let admin_addr = admin_listen.unwrap_or(admin.listen);
        if admin.token.is_none() && !admin_addr.ip().is_loopback() {
            anyhow::bail!("admin would listen on {admin_addr}, which is not loopback, without `admin.token`");
        }
        let admin_listener = tokio::net::TcpListener::bind(admin_addr)
            .await
            .with_context(|| format!("cannot listen on {admin_addr}"))?;
        gateway.admin_bound(admin_addr);
        let router = smsbridge::admin::router(gateway.clone());
        // One address cannot hold every admin connection (a health check
        // from the load balancer gets through), and a silent one goes soon.
        let limits = Limits {
            max_connections: ADMIN_CONNECTIONS,
            per_peer: Some(ADMIN_PER_PEER),
            header_read: limits.header_read.min(ADMIN_HEADER_READ),
            h2c: false,
            ..limits
        };
        let acceptor = match &admin.tls {
            Some(tls) => {
                smsbridge::tls::prepare(tls)?;
                Some(tokio_rustls::TlsAcceptor::from(smsbridge::tls::server_config(tls)?))
            }
            None => None,
        };
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        tracing::info!("admin on {scheme}://{}/admin/adapters", admin_listener.local_addr()?);
        tokio::spawn(smsbridge::listen::serve(admin_listener, router, acceptor, limits, stopped()));
    }
    let mut tls_server = None;
    if let Some(tls) = &routing.config.server.tls {
        smsbridge::tls::prepare(tls)?;
        let config = smsbridge::tls::server_config(tls)?;
        let tls_listener = tokio::net::TcpListener::bind(tls.listen)
            .await
            .with_context(|| format!("cannot listen on {}", tls.listen))?;
        let fingerprint = smsbridge::tls::summary(&tls.cert)?.fingerprint;
        tracing::info!(%fingerprint, "listening on https://{}", tls_listener.local_addr()?);
        let serving = smsbridge::server::serve_within(gateway.clone(), tls_listener, Some(config), limits, stopped());
        tls_server = Some(tokio::spawn(serving));
    }
    let _watch = smsbridge::watch::start(gateway.clone())?;
    let hup = gateway.clone();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config");
            hup.reload_config().await;
        }
    });
    let grace = Duration::from_millis(routing.config.server.shutdown_grace_ms);
    let http_server = smsbridge::server::serve_within(gateway, listener, None, limits, {
        let stopped = stopped();
        async move {
            stopped.await;
            tracing::info!("shutting down: no new requests; in-flight sends have {} ms to finish", grace.as_millis());
        }
    });
    // Both listeners drain before the process exits.
    let server = async move {
        http_server.await?;
        if let Some(tls) = tls_server {
            tls.await.map_err(std::io::Error::other)??;
        }
        Ok::<(), std::io::Error>(())
    };
    let deadline = async {
        stopped().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = server => served?,
        _ = deadline => tracing::warn!("grace period over; exiting with sends still in flight"),
    }
    tracing::info!("stopped");
    Ok(())
}

async fn check(config: Option<&Path>) -> Result<()> {
    let gateway = gateway(config).await?;
    let routing = gateway.routing();
    say!("config: {} (ok)", routing.config.source);
    for (name, adapter) in gateway.registry.list() {
        say!(
            "adapter {name}: {} {} ({}), {}",
            adapter.info.name,
            adapter.info.version,
            adapter.info.provider,
            adapter.source
        );
    }
    for p in &routing.config.providers {
        let adapter = gateway.registry.get(&p.adapter).expect("checked by Gateway::new");
        let info = &adapter.info;
        say!("provider {}: adapter {} {} — {}", p.name, info.name, info.version, info.provider);
        for key in &info.config_keys {
            let state = match (p.settings.contains_key(&key.name), key.required) {
                (true, _) => "set",
                (false, true) => "MISSING",
                (false, false) => "not set",
            };
            say!("  {:<20} {:<8} {:<9} {}", key.name, key.kind(), state, key.description);
        }
        let hosts = p.sandbox.allow_hosts.clone().unwrap_or_else(|| info.default_hosts.clone());
        say!("  allow_hosts: {}", if hosts.is_empty() { "(none)".into() } else { hosts.join(", ") });
    }
    for session in gateway.smpp_sessions() {
        // A bind takes a moment: it is given a few seconds before it counts as not made.
        let binds = session.wait_bound(std::time::Duration::from_secs(5)).await;
        for (n, b) in binds.iter().enumerate() {
            match (&b.up, &b.last_error) {
                (true, _) => say!("provider {}: SMPP bind {n} to {} up", session.provider(), session.settings().url),
                (false, why) => say!(
                    "warning: provider {}: SMPP bind {n} to {} not made: {}",
                    session.provider(),
                    session.settings().url,
                    why.as_deref().unwrap_or("no answer yet")
                ),
            }
        }
    }
    for r in &routing.config.routes {
        say!("route {}: fields {}/{}, providers {}", r.path, r.fields.phone, r.fields.message, r.providers.join(", "));
    }
    let secret_keys = |adapter: &str| {
        let info = gateway.registry.get(adapter).map(|a| a.info.config_keys.clone()).unwrap_or_default();
        info.into_iter().filter(|k| k.secret).map(|k| k.name).collect()
    };
    for warning in smsbridge::config::audit::risks(&routing.config, secret_keys) {
        say!("warning: {warning}");
    }
    Ok(())
}

async fn inspect(file: &Path) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let report = Runtime::new()?.inspect(&bytes).await;
    say!("file:     {} ({} bytes)", file.display(), report.size);
    say!("sha256:   {}", report.sha256);
    say!("kind:     {}", report.kind);
    for name in &report.imports {
        say!("import:   {name}");
    }
    for name in &report.exports {
        say!("export:   {name}");
    }
    if let Some(info) = &report.info {
        say!("adapter:  {} {} ({})", info.name, info.version, info.provider);
        say!(
            "hosts:    {}",
            if info.default_hosts.is_empty() { "(none)".into() } else { info.default_hosts.join(", ") }
        );
        for key in &info.config_keys {
            say!("setting:  {:<22} {:<8} {}", key.name, key.kind(), key.description);
        }
    }
    match report.problem {
        None => {
            say!("loadable: yes");
            Ok(())
        }
        Some(problem) => {
            say!("loadable: no");
            anyhow::bail!("{} cannot be loaded: {problem}", file.display())
        }
    }
}

fn adapter_new(spec: smsbridge::scaffold::Scaffold, dir: Option<PathBuf>) -> Result<()> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(&spec.name));
    let files = smsbridge::scaffold::create(&spec, &dir)?;
    say!("created adapter `{}` in {}:", spec.name, dir.display());
    for file in files {
        say!("  {}", file.strip_prefix(&dir).unwrap_or(&file).display());
    }
    let wasm = format!("target/wasm32-wasip2/release/{}.wasm", spec.name.replace('-', "_"));
    say!("\nnext:\n  cd {}", dir.display());
    say!("  cargo build --release --target wasm32-wasip2");
    say!("  smsbridge adapter test {wasm} --fixture fixtures/accepted.toml");
    Ok(())
}

async fn adapter_test(file: &Path, fixture: &Path) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let fixture = smsbridge::fixture::Fixture::load(fixture)?;
    let runtime = Runtime::new()?;
    let report = smsbridge::fixture::run(&runtime, &bytes, fixture).await?;
    for (i, request) in report.requests.iter().enumerate() {
        say!("request {}: {request}", i + 1);
    }
    say!("result: {}", report.result);
    if report.mismatches.is_empty() {
        say!("ok: every request and the result match the fixture");
        return Ok(());
    }
    for m in &report.mismatches {
        say!("MISMATCH {m}");
    }
    anyhow::bail!("{} differences from the fixture", report.mismatches.len())
}

fn tls_show(config: Option<&Path>) -> Result<()> {
    let config = load_config(config)?;
    let tls = config.server.tls.as_ref().context("the config has no [server.tls] section")?;
    smsbridge::tls::prepare(tls)?;
    let s = smsbridge::tls::summary(&tls.cert)?;
    say!("certificate: {}", tls.cert.display());
    say!("subject:     {}", s.subject);
    say!("names:       {}", s.names.join(", "));
    say!("expires:     {}", s.not_after);
    say!("SHA-256:     {}", s.fingerprint);
    say!("{}", s.pem.trim_end());
    Ok(())
}

async fn send(config: Option<&Path>, to: &str, message: &str, route: Option<&str>) -> Result<()> {
    let gateway = gateway(config).await?;
    let routing = gateway.routing();
    let route = match route {
        Some(path) => routing.config.route(path).with_context(|| format!("no route `{path}` in the config"))?,
        None => routing.config.routes.first().context("the config has no routes")?,
    };
    match gateway.send(&routing, route, to, message, Default::default()).await {
        Ok(sent) if sent.queued => {
            // The running server's queue delivers it, or the next `serve` does.
            say!("{}", serde_json::json!({"status": "queued", "id": sent.id}));
            Ok(())
        }
        Ok(sent) => {
            say!(
                "{}",
                serde_json::json!({"status": "pending", "id": sent.id, "provider": sent.provider,
                    "provider_id": sent.provider_id, "segments": sent.segments})
            );
            Ok(())
        }
        Err(refusal) => {
            let (status, body) = smsbridge::server::refusal_answer(route, refusal);
            anyhow::bail!("not sent (HTTP {status}): {body}")
        }
    }
}
