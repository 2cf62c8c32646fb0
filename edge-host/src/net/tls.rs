//! TLS termination for client connections (`--tls-cert`, `--tls-key`, as
//! `spin up` has them): the certificate and key read from PEM files and
//! checked against each other, the acceptor offering `h2` and `http/1.1`
//! by ALPN, and the certificate reloaded on SIGHUP.
//!
//! The server configuration is built once and never replaced: its
//! certificate comes from a resolver ([`CurrentCertificate`]) whose
//! certified key is swapped by a reload. A handshake takes the key current
//! when it starts; connections already open keep theirs, so a reload drops
//! nothing. A new pair that cannot be used (missing, unparsable, key not
//! the certificate's) is refused and the old one kept, logged and recorded
//! for the status page ([`crate::observe::reloads`]).
//!
//! The handshake itself runs on the serving lane that serves the
//! connection, never on the accept thread, inside the connection's
//! watchdog: a client that goes silent mid-handshake is closed by the same
//! header timeout as one that never sends its request
//! ([`crate::net::connection`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// ALPN protocol ids offered to clients, preferred first.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN id of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Why a certificate and key cannot be served; its text names the file and
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertificateProblem(String);

/// TLS for a listener: the files it reads, the acceptor its connections
/// are handshaken with, and the certificate it currently serves.
#[derive(Clone)]
pub struct TlsTermination {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: Arc<CurrentCertificate>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl fmt::Debug for TlsTermination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTermination")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl TlsTermination {
    /// Reads and checks the certificate chain in `cert_file` and the
    /// private key in `key_file` (both PEM) and builds the acceptor.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<TlsTermination, CertificateProblem> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = certified_key(cert_file, key_file, &provider)?;
        let current = Arc::new(CurrentCertificate(RwLock::new(Arc::new(key))));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CertificateProblem(format!("TLS cannot be set up: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
        Ok(TlsTermination {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The acceptor client connections are handshaken with.
    pub(crate) fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }

    /// What is being served, in a few words: the certificate file, its
    /// chain's length and the SHA-256 fingerprint of its first certificate
    /// (what `openssl x509 -fingerprint -sha256` prints).
    pub fn summary(&self) -> String {
        summary(&self.cert_file, &self.current.get())
    }

    /// Reads both files again and serves the new pair from the next
    /// handshake on; if it cannot be used, keeps the current one. Says
    /// what is served now, or why the new pair was refused.
    pub fn reload(&self) -> Result<String, CertificateProblem> {
        let provider = rustls::crypto::ring::default_provider();
        let key = certified_key(&self.cert_file, &self.key_file, &provider)?;
        let summary = summary(&self.cert_file, &key);
        self.current.set(Arc::new(key));
        Ok(summary)
    }

    /// Reloads the certificate on every SIGHUP until dropped, logging and
    /// recording each outcome; every listener of the signal hears it, so
    /// the configuration's own reload runs beside this one.
    pub(crate) fn reload_on_hangups(&self) -> std::io::Result<HangupReloads> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())?;
        let tls = self.clone();
        let task = tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match tls.reload() {
                    Ok(summary) => {
                        tracing::info!("SIGHUP: TLS certificate reloaded: {summary}");
                        crate::observe::reloads::record("tls", Ok(summary));
                    }
                    Err(problem) => {
                        tracing::error!(
                            "SIGHUP: TLS certificate not reloaded, still serving the previous one: {problem}"
                        );
                        crate::observe::reloads::record("tls", Err(problem.to_string()));
                    }
                }
            }
        });
        Ok(HangupReloads(task))
    }
}

/// The SIGHUP listener of [`TlsTermination::reload_on_hangups`]; stops
/// listening when dropped.
pub(crate) struct HangupReloads(tokio::task::JoinHandle<()>);

impl Drop for HangupReloads {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The certified key handshakes take, swapped by a reload.
#[derive(Debug)]
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl CurrentCertificate {
    fn get(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = key;
    }
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The certificate chain of `cert_file` with the key of `key_file`, both
/// read, parsed and checked to belong together.
fn certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertificateProblem> {
    let cert_pem = read(cert_file, "certificate")?;
    let key_pem = read(key_file, "private key")?;
    let chain = certificates(cert_file, &cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        CertificateProblem(format!(
            "TLS private key {}: no usable private key in it ({}); expected a PEM \
             `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` section",
            key_file.display(),
            pem_problem(&e)
        ))
    })?;
    let signing = provider.key_provider.load_private_key(key).map_err(|e| {
        CertificateProblem(format!(
            "TLS private key {}: not a key TLS can sign with ({}); RSA, ECDSA P-256/P-384 \
             and Ed25519 keys are supported",
            key_file.display(),
            words(&e)
        ))
    })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(CertificateProblem(format!(
                "TLS private key {} is not the key of the certificate in {} (their public keys differ); \
                 give the key the certificate was issued for",
                key_file.display(),
                cert_file.display()
            )))
        }
        // The key cannot show its public half: nothing to compare, as
        // rustls's own `CertifiedKey::from_der` allows.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(e) => Err(CertificateProblem(format!(
            "TLS certificate {}: its first certificate cannot be read as X.509 ({})",
            cert_file.display(),
            words(&e)
        ))),
    }
}

/// The file's bytes, or why they cannot be read.
fn read(file: &Path, what: &str) -> Result<Vec<u8>, CertificateProblem> {
    std::fs::read(file).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_owned(),
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (edge-host must be able to read it)".to_owned()
            }
            _ => e.to_string(),
        };
        CertificateProblem(format!(
            "TLS {what} {}: cannot read it: {why}",
            file.display()
        ))
    })
}

/// Every certificate in `pem`, the server's first.
fn certificates(
    file: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, CertificateProblem> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            CertificateProblem(format!(
                "TLS certificate {}: not a readable PEM file ({})",
                file.display(),
                pem_problem(&e)
            ))
        })?;
    if chain.is_empty() {
        return Err(CertificateProblem(format!(
            "TLS certificate {}: no certificate in it; expected PEM `CERTIFICATE` sections, \
             the server's certificate first, then its intermediates",
            file.display()
        )));
    }
    Ok(chain)
}

/// A PEM reading problem in words.
fn pem_problem(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::NoItemsFound => "no such PEM section".to_owned(),
        Error::MissingSectionEnd { .. } => "a section has no END line".to_owned(),
        Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".to_owned(),
        Error::Base64Decode(_) => "a section's base64 is damaged".to_owned(),
        Error::SectionTooLarge => "a section is too large".to_owned(),
        other => other.to_string(),
    }
}

/// A rustls error in words (its `Display`, which names no Rust type for
/// the errors a certificate or key can raise).
fn words(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(_) => "its encoding is damaged".to_owned(),
        other => other.to_string(),
    }
}

/// `cert.pem: 2 certificates, SHA-256 AB:CD:…`.
fn summary(cert_file: &Path, key: &CertifiedKey) -> String {
    let count = key.cert.len();
    let fingerprint = key
        .cert
        .first()
        .map(|cert| fingerprint(cert.as_ref()))
        .unwrap_or_default();
    format!(
        "{}: {count} certificate{}, SHA-256 fingerprint {fingerprint}",
        cert_file.display(),
        if count == 1 { "" } else { "s" }
    )
}

/// The SHA-256 of `der` as colon-separated hex pairs.
fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `name` and its key, as PEM.
    fn pair(name: &str) -> (String, String) {
        let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (generated.cert.pem(), generated.signing_key.serialize_pem())
    }

    fn files(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_file, cert).unwrap();
        std::fs::write(&key_file, key).unwrap();
        (cert_file, key_file)
    }

    fn problem(dir: &Path, cert: &str, key: &str) -> String {
        let (cert_file, key_file) = files(dir, cert, key);
        TlsTermination::load(&cert_file, &key_file)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn each_broken_pair_is_refused_naming_its_file_and_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("edge.test");
        let (_, other_key) = pair("other.test");
        let cases = [
            (
                cert.as_str(),
                other_key.as_str(),
                "key.pem is not the key of the certificate in",
            ),
            ("", key.as_str(), "cert.pem: no certificate in it"),
            (key.as_str(), key.as_str(), "cert.pem: no certificate in it"),
            (cert.as_str(), "", "key.pem: no usable private key"),
            (
                cert.as_str(),
                cert.as_str(),
                "key.pem: no usable private key",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
                key.as_str(),
                "cert.pem: not a readable PEM file",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                key.as_str(),
                "cert.pem: its first certificate cannot be read as X.509",
            ),
        ];
        for (cert, key, expected) in cases {
            let said = problem(dir.path(), cert, key);
            assert!(said.contains(expected), "{said:?} lacks {expected:?}");
            assert!(!said.contains("Error") && !said.contains("::"), "{said}");
        }
        let missing =
            TlsTermination::load(&dir.path().join("absent.pem"), &dir.path().join("key.pem"))
                .unwrap_err()
                .to_string();
        assert!(
            missing.contains("absent.pem: cannot read it: no such file"),
            "{missing}"
        );
    }

    #[test]
    fn a_reload_swaps_a_good_pair_in_and_keeps_the_old_one_for_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("first.test");
        let (cert_file, key_file) = files(dir.path(), &cert, &key);
        let tls = TlsTermination::load(&cert_file, &key_file).unwrap();
        let first = tls.summary();
        assert!(
            first.contains("1 certificate, SHA-256 fingerprint "),
            "{first}"
        );

        let (cert, key) = pair("second.test");
        files(dir.path(), &cert, &key);
        let second = tls.reload().unwrap();
        assert_ne!(second, first);
        assert_eq!(tls.summary(), second);

        std::fs::write(&key_file, "broken").unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(tls.summary(), second, "the previous pair still served");
    }

    #[test]
    fn fingerprints_are_colon_separated_sha_256() {
        // SHA-256 of the empty string.
        assert!(fingerprint(b"").starts_with("E3:B0:C4:42:98:FC:1C:14"));
        assert_eq!(fingerprint(b"").len(), 32 * 3 - 1);
    }
}
