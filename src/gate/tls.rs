//! TLS server set-up from PEM files (rustls with the ring provider), shared by
//! the SMPP TLS listener and the SMTP hop's STARTTLS. Errors name the config
//! key they came from.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

/// A rustls server config from a PEM certificate chain and private key;
/// `key_prefix` (`"smpp.tls"`, `"smtp.hop.tls"`) names the config section in errors.
pub fn server_config(
    cert: &Path,
    key: &Path,
    key_prefix: &str,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("{key_prefix}.cert {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "{key_prefix}.cert {}: not a PEM certificate chain",
                cert.display()
            )
        })?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{key_prefix}.key {}: not a PEM private key", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .with_context(|| format!("{key_prefix}: certificate and key do not match"))?;
    Ok(Arc::new(config))
}

/// A TLS acceptor from PEM files (see [`server_config`]).
pub fn acceptor(
    cert: &Path,
    key: &Path,
    key_prefix: &str,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    Ok(tokio_rustls::TlsAcceptor::from(server_config(
        cert, key, key_prefix,
    )?))
}
