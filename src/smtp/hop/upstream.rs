//! The hop's SMTP client towards the next hop: connect, greeting, EHLO,
//! STARTTLS when the next hop offers it (and `next_hop_starttls` is on),
//! then commands written as the session hands them over and replies read
//! one at a time, each appended byte for byte to the caller's buffer.
//!
//! **Why not lettre.** The design card names lettre for relaying, but its
//! SMTP transport sends a whole message as one call: it has no PIPELINING,
//! and a recipient refused by the server fails the whole send. The hop needs
//! the opposite: the sender's MAIL and RCPT lines forwarded as they come
//! (pipelined when the next hop offers PIPELINING), each next-hop reply
//! mirrored to the sender for its own command, DATA streamed as it arrives
//! with the final dot held back, and the transaction abandoned mid-DATA by
//! closing the connection. So this is a client of its own, about two
//! hundred lines over the `reply` codec; lettre is not a dependency.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::smtp::codec::reply::{self, Capabilities};

/// A byte stream the hop reads and writes (plain TCP or TLS over it).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A boxed [`Io`].
pub type BoxIo = Box<dyn Io>;

/// How to reach the next hop (from `[smtp.hop]`, built once).
pub struct NextHop {
    /// `host:port`.
    pub addr: String,
    /// The name the hop gives in EHLO.
    pub hostname: String,
    /// STARTTLS when offered, with this connector and server name.
    pub tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// Connect, greeting and EHLO together.
    pub connect_timeout: Duration,
}

/// Why the next hop failed; `kind` is the metric label.
#[derive(Debug, Clone, thiserror::Error)]
#[error("next hop {kind}: {detail}")]
pub struct UpError {
    /// `connect`, `timeout`, `closed`, `protocol`, `refused`, `tls`, `io`.
    pub kind: &'static str,
    /// What happened.
    pub detail: String,
}

fn err(kind: &'static str, detail: impl Into<String>) -> UpError {
    UpError {
        kind,
        detail: detail.into(),
    }
}

/// One open connection to the next hop, greeted and EHLO'd.
pub struct Upstream {
    io: BoxIo,
    buf: Vec<u8>,
    pos: usize,
    /// What its EHLO offered (after STARTTLS, the second EHLO).
    pub caps: Capabilities,
    /// Whether the connection runs over TLS.
    pub tls: bool,
}

impl Upstream {
    /// Connect, read the greeting, EHLO (HELO if EHLO is refused), STARTTLS
    /// when offered and configured, all within `connect_timeout`.
    pub async fn connect(hop: &NextHop) -> Result<Upstream, UpError> {
        match tokio::time::timeout(hop.connect_timeout, Self::open(hop)).await {
            Ok(r) => r,
            Err(_) => Err(err(
                "timeout",
                format!("no greeting and EHLO within {:?}", hop.connect_timeout),
            )),
        }
    }

    async fn open(hop: &NextHop) -> Result<Upstream, UpError> {
        let tcp = TcpStream::connect(&hop.addr)
            .await
            .map_err(|e| err("connect", format!("{}: {e}", hop.addr)))?;
        let _ = tcp.set_nodelay(true);
        let mut up = Upstream {
            io: Box::new(tcp),
            buf: Vec::with_capacity(4096),
            pos: 0,
            caps: Capabilities::default(),
            tls: false,
        };
        let never = Duration::from_secs(3600);
        let mut scratch = Vec::new();
        let code = up.reply(&mut scratch, never).await?;
        if code != 220 {
            return Err(err(
                "refused",
                format!("greeting {}", String::from_utf8_lossy(&scratch).trim_end()),
            ));
        }
        up.hello(&hop.hostname).await?;
        if let Some((connector, name)) = hop.tls.as_ref().filter(|_| up.caps.starttls) {
            up.send(b"STARTTLS\r\n", never).await?;
            scratch.clear();
            let code = up.reply(&mut scratch, never).await?;
            if code != 220 {
                return Err(err(
                    "tls",
                    format!(
                        "STARTTLS answered {}",
                        String::from_utf8_lossy(&scratch).trim_end()
                    ),
                ));
            }
            if up.pos < up.buf.len() {
                return Err(err("protocol", "data after the STARTTLS reply"));
            }
            let io = std::mem::replace(&mut up.io, Box::new(tokio::io::duplex(1).0));
            let tls = connector
                .connect(name.clone(), io)
                .await
                .map_err(|e| err("tls", format!("handshake: {e}")))?;
            up.io = Box::new(tls);
            up.tls = true;
            up.buf.clear();
            up.pos = 0;
            up.hello(&hop.hostname).await?;
        }
        Ok(up)
    }

    async fn hello(&mut self, hostname: &str) -> Result<(), UpError> {
        let never = Duration::from_secs(3600);
        self.send(format!("EHLO {hostname}\r\n").as_bytes(), never)
            .await?;
        let mut r = Vec::new();
        if self.reply(&mut r, never).await? == 250 {
            self.caps = Capabilities::from_ehlo(&r);
            return Ok(());
        }
        self.send(format!("HELO {hostname}\r\n").as_bytes(), never)
            .await?;
        r.clear();
        let code = self.reply(&mut r, never).await?;
        if code != 250 {
            return Err(err(
                "refused",
                format!("HELO answered {}", String::from_utf8_lossy(&r).trim_end()),
            ));
        }
        self.caps = Capabilities::default();
        Ok(())
    }

    /// Write `bytes` (one or more commands, or message text) within `limit`.
    pub async fn send(&mut self, bytes: &[u8], limit: Duration) -> Result<(), UpError> {
        match tokio::time::timeout(limit, self.io.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(err("io", format!("write: {e}"))),
            Err(_) => Err(err("timeout", format!("write not done within {limit:?}"))),
        }
    }

    /// Read the next reply within `limit`; its bytes are appended to `out`
    /// and its code returned.
    pub async fn reply(&mut self, out: &mut Vec<u8>, limit: Duration) -> Result<u16, UpError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match reply::parse(&self.buf[self.pos..]) {
                Ok(Some(v)) => {
                    out.extend_from_slice(&self.buf[self.pos..self.pos + v.len]);
                    self.pos += v.len;
                    if self.pos == self.buf.len() {
                        self.buf.clear();
                        self.pos = 0;
                    }
                    return Ok(v.code);
                }
                Ok(None) => {}
                Err(e) => return Err(err("protocol", e.to_string())),
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            self.buf.reserve(4096);
            match tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) => return Err(err("closed", "connection closed")),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(err("io", format!("read: {e}"))),
                Err(_) => {
                    return Err(err("timeout", format!("no reply within {limit:?}")));
                }
            }
        }
    }

    /// Whether the next hop has closed this idle connection or said
    /// something unasked (its own idle timeout's `421`): looked at without
    /// waiting, before a new transaction is forwarded on it.
    pub fn gone(&mut self) -> bool {
        use std::pin::Pin;
        use std::task::{Context, Waker};
        if self.pos < self.buf.len() {
            return true;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [0u8; 1];
        let mut rb = tokio::io::ReadBuf::new(&mut byte);
        // Pending: open and quiet; ready: closed, failed, or it spoke unasked.
        Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut rb)
            .is_ready()
    }

    /// Say QUIT without waiting long for the answer.
    pub async fn quit(mut self) {
        let t = Duration::from_secs(2);
        if self.send(b"QUIT\r\n", t).await.is_ok() {
            let _ = self.reply(&mut Vec::new(), t).await;
        }
        let _ = self.io.shutdown().await;
    }
}

/// The TLS client for STARTTLS to the next hop: the system's CA bundle, or
/// no verification at all with `insecure` (test rigs with self-signed certs).
pub fn tls_connector(insecure: bool) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let bundle = "/etc/ssl/certs/ca-certificates.crt";
        let mut roots = rustls::RootCertStore::empty();
        if let Ok(certs) = CertificateDer::pem_file_iter(bundle) {
            for c in certs.flatten() {
                let _ = roots.add(c);
            }
        }
        if roots.is_empty() {
            anyhow::bail!(
                "smtp.hop.next_hop_starttls: no CA certificates in {bundle} to verify the next hop \
                 (install ca-certificates, or set next_hop_tls_insecure for a test rig)"
            );
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Accepts any certificate (only with `next_hop_tls_insecure`); signatures
/// are still checked, so the handshake itself is sound.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The server name to check the next hop's certificate against: the host of `host:port`.
pub fn server_name(addr: &str) -> anyhow::Result<rustls::pki_types::ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    };
    rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| anyhow::anyhow!("smtp.hop.next_hop {addr:?}: {e}"))
}
