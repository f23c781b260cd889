//! HTTPS with a certificate the operator controls.
//!
//! MFA servers such as RSA AM pin the gateway's certificate, so it must not
//! change behind the operator's back: it comes from PEM files, or is
//! generated self-signed on first start and reused ever after. A replaced
//! file is picked up on the next connection, with no restart and no
//! connection dropped.

use crate::config::Tls as TlsConfig;
use anyhow::{Context, Result, anyhow, bail};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Creates a self-signed certificate and key at the configured paths when
/// neither exists yet; refuses a half-present pair.
pub fn prepare(tls: &TlsConfig) -> Result<()> {
    match (tls.cert.exists(), tls.key.exists()) {
        (true, true) => Ok(()),
        (false, false) => match &tls.self_signed {
            Some(s) => generate_self_signed(&s.names, s.days, &tls.cert, &tls.key),
            None => bail!("TLS certificate {} does not exist (set `self_signed` to generate one)", tls.cert.display()),
        },
        (true, false) => bail!("TLS key {} is missing beside certificate {}", tls.key.display(), tls.cert.display()),
        (false, true) => bail!("TLS certificate {} is missing beside key {}", tls.cert.display(), tls.key.display()),
    }
}

/// Writes a new self-signed certificate for `names`, valid for `days`, and
/// its key (readable by the owner only).
pub fn generate_self_signed(names: &[String], days: u32, cert: &Path, key: &Path) -> Result<()> {
    let mut params = rcgen::CertificateParams::new(names.to_vec()).context("invalid certificate names")?;
    params.distinguished_name.push(rcgen::DnType::CommonName, names.first().cloned().unwrap_or_default());
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days.into());
    let key_pair = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&key_pair)?;
    for path in [cert, key] {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    write_private(key, key_pair.serialize_pem().as_bytes())?;
    std::fs::write(cert, certificate.pem()).with_context(|| format!("cannot write {}", cert.display()))?;
    tracing::info!(cert = %cert.display(), "generated a self-signed certificate for {} valid {days} days", names.join(", "));
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, bytes)?;
    Ok(())
}

/// The server's rustls config, serving whatever the files hold now.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let resolver = Resolver::new(tls.cert.clone(), tls.key.clone())?;
    let mut config = rustls::ServerConfig::builder().with_no_client_auth().with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Hands out the certificate in the files, reloading it when they change.
#[derive(Debug)]
struct Resolver {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<(Option<SystemTime>, Option<SystemTime>, Arc<CertifiedKey>)>,
}

impl Resolver {
    fn new(cert: PathBuf, key: PathBuf) -> Result<Resolver> {
        let loaded = load(&cert, &key)?;
        let stamp = (modified(&cert), modified(&key));
        Ok(Resolver { cert, key, current: Mutex::new((stamp.0, stamp.1, loaded)) })
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().unwrap();
        let stamp = (modified(&self.cert), modified(&self.key));
        if (stamp.0, stamp.1) != (current.0, current.1) {
            // A pair caught mid-replacement fails to load and is retried on
            // the next connection; until then the old pair serves.
            match load(&self.cert, &self.key) {
                Ok(key) => {
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                    *current = (stamp.0, stamp.1, key);
                }
                Err(e) => tracing::warn!("TLS certificate not reloaded, the old one serves: {e:#}"),
            }
        }
        Some(current.2.clone())
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>> {
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| anyhow!("cannot read TLS key {}: {e}", key.display()))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| anyhow!("unusable TLS key: {e}"))?;
    let pair = CertifiedKey::new(chain, signer);
    // A certificate and key from different pairs (one replaced, not yet the
    // other) would fail every handshake: refuse it and keep the old pair.
    pair.keys_match().map_err(|e| anyhow!("TLS key does not match the certificate: {e}"))?;
    Ok(Arc::new(pair))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("cannot read TLS certificate {}: {e}", path.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(chain)
}

/// What an MFA administrator needs to pin the certificate.
pub struct Summary {
    /// SHA-256 of the leaf certificate, colon-separated hex.
    pub fingerprint: String,
    pub subject: String,
    pub names: Vec<String>,
    pub not_after: String,
    pub pem: String,
}

pub fn summary(cert: &Path) -> Result<Summary> {
    let chain = certificates(cert)?;
    let leaf = &chain[0];
    let digest = sha2::Sha256::digest(leaf.as_ref());
    let fingerprint = digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| anyhow!("cannot parse {}: {e}", cert.display()))?;
    let names = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
                    x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                        4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
                        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default()).to_string(),
                        _ => format!("{ip:?}"),
                    },
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let pem = std::fs::read_to_string(cert)?;
    Ok(Summary {
        fingerprint,
        subject: parsed.subject().to_string(),
        names,
        not_after: parsed.validity().not_after.to_string(),
        pem,
    })
}

/// A TLS client that trusts the certificates in `ca` when given, else the
/// system's roots; `what` names the setting in errors.
pub fn client_config(what: &str, ca: Option<&Path>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path).with_context(|| format!("{what} {}", path.display()))? {
                let cert = cert.with_context(|| format!("{what} {}: not a PEM certificate", path.display()))?;
                roots.add(cert).with_context(|| format!("{what} {}", path.display()))?;
            }
            if roots.is_empty() {
                anyhow::bail!("{what} {}: no certificate in the file", path.display());
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system root rustls cannot parse is skipped, as browsers do.
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
