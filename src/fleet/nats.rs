//! The fleet on NATS JetStream: the change log is a stream with one subject
//! per brand and kind, the leader lock a key in a key-value bucket whose
//! entries live `lock_ttl`, snapshots an object in an object store.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, object_store, stream};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::config::FleetConfig;
pub use super::log::SnapshotInfo;
use super::log::{
    Bounds, ChangeLog, Delivered, EntryKind, LeaderLock, Lease, LogError, SnapshotStore,
};
use crate::consent::Brand;

/// The key of the leader lock.
const LOCK_KEY: &str = "leader";
/// The name of the snapshot object.
const SNAPSHOT_OBJECT: &str = "snapshot";
/// Object metadata: the last stream sequence the snapshot includes.
const META_SEQUENCE: &str = "stream_sequence";

fn unavailable(what: &str, e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(format!("{what}: {e}"))
}

#[derive(Clone)]
struct Handles {
    stream: stream::Stream,
    lock: kv::Store,
    objects: object_store::ObjectStore,
}

/// A connection to the fleet's NATS server and its JetStream assets.
pub struct Nats {
    client: async_nats::Client,
    js: jetstream::Context,
    cfg: FleetConfig,
    handles: tokio::sync::Mutex<Option<Handles>>,
}

impl Nats {
    /// Connect (in the background: with NATS down the gate starts anyway
    /// and every operation fails until it is back).
    /// `connected` follows the connection's state.
    pub async fn connect(
        cfg: &FleetConfig,
        name: &str,
        connected: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> anyhow::Result<Nats> {
        let mut opts = async_nats::ConnectOptions::new()
            .name(format!("iys-gate {name}"))
            .connection_timeout(cfg.timeout)
            .request_timeout(Some(cfg.timeout))
            .retry_on_initial_connect()
            .event_callback(move |event| {
                let connected = connected.clone();
                async move {
                match event {
                    async_nats::Event::Connected => {
                        connected.store(true, std::sync::atomic::Ordering::Relaxed);
                        tracing::info!("fleet: connected to NATS")
                    }
                    async_nats::Event::Disconnected => {
                        connected.store(false, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!("fleet: disconnected from NATS; serving from the current snapshot, reconnecting")
                    }
                    async_nats::Event::ClientError(e) => tracing::debug!("fleet: NATS client: {e}"),
                    async_nats::Event::ServerError(e) => {
                        tracing::error!("fleet: the NATS server refused this gate: {e} (check fleet.token, fleet.credentials)")
                    }
                    other => tracing::info!("fleet: NATS {other}"),
                }
                }
            });
        if let Some(token) = cfg
            .token_value()
            .map_err(|(k, m)| anyhow::anyhow!("{k}: {m}"))?
        {
            opts = opts.token(token);
        }
        if let Some(path) = &cfg.credentials {
            opts = opts
                .credentials_file(path)
                .await
                .map_err(|e| anyhow::anyhow!("fleet.credentials {}: {e}", path.display()))?;
        }
        if let Some(ca) = &cfg.tls_ca {
            if !ca.exists() {
                anyhow::bail!("fleet.tls_ca {}: no such file", ca.display());
            }
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        let urls: Vec<String> = cfg.url.split(',').map(|u| u.trim().to_string()).collect();
        let addrs: Vec<async_nats::ServerAddr> = urls
            .iter()
            .map(|u| u.parse())
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("fleet.url: {e}"))?;
        let client = opts
            .connect(addrs)
            .await
            .map_err(|e| anyhow::anyhow!("fleet.url {}: {e}", cfg.url))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(cfg.timeout)
            .build(client.clone());
        Ok(Nats {
            client,
            js,
            cfg: cfg.clone(),
            handles: tokio::sync::Mutex::new(None),
        })
    }

    /// True while connected to a server.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The stream, lock bucket and object store, created on first use.
    async fn handles(&self) -> Result<Handles, LogError> {
        let mut h = self.handles.lock().await;
        if let Some(h) = h.as_ref() {
            return Ok(h.clone());
        }
        let c = &self.cfg;
        let stream = self
            .js
            .get_or_create_stream(stream::Config {
                name: c.stream.clone(),
                subjects: vec![format!("{}.>", c.subject_prefix)],
                max_age: c.stream_max_age,
                storage: stream::StorageType::File,
                num_replicas: c.replicas,
                duplicate_window: Duration::from_secs(120),
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(&format!("stream {}", c.stream), e))?;
        let lock = match self.js.get_key_value(&c.lock_bucket).await {
            Ok(kv) => kv,
            Err(_) => self
                .js
                .create_key_value(kv::Config {
                    bucket: c.lock_bucket.clone(),
                    description: "iys-gate fleet leader lock".into(),
                    history: 1,
                    max_age: c.lock_ttl,
                    num_replicas: c.replicas,
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| unavailable(&format!("key-value bucket {}", c.lock_bucket), e))?,
        };
        let objects = match self.js.get_object_store(&c.snapshot_bucket).await {
            Ok(o) => o,
            Err(_) => self
                .js
                .create_object_store(object_store::Config {
                    bucket: c.snapshot_bucket.clone(),
                    description: Some("iys-gate fleet snapshots".into()),
                    num_replicas: c.replicas,
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| unavailable(&format!("object store {}", c.snapshot_bucket), e))?,
        };
        let out = Handles {
            stream,
            lock,
            objects,
        };
        *h = Some(out.clone());
        Ok(out)
    }

    /// The subject of `brand`'s entries of `kind`.
    pub fn subject(&self, brand: Brand, kind: EntryKind) -> String {
        format!(
            "{}.{}.{}.{}",
            self.cfg.subject_prefix,
            brand.iys_code,
            brand.brand_code,
            kind.as_str()
        )
    }
}

impl SnapshotStore for Nats {
    /// The newest snapshot in the object store, if any.
    async fn snapshot_info(&self) -> Result<Option<SnapshotInfo>, LogError> {
        let h = self.handles().await?;
        match h.objects.info(SNAPSHOT_OBJECT).await {
            Ok(info) if !info.deleted => Ok(Some(SnapshotInfo {
                sequence: info
                    .metadata
                    .get(META_SEQUENCE)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                bytes: info.size,
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable("snapshot object", e)),
        }
    }

    /// Download the newest snapshot: its bytes (the snapshot file format)
    /// and the stream sequence it includes.
    async fn get_snapshot(&self) -> Result<Option<(Vec<u8>, u64)>, LogError> {
        let h = self.handles().await?;
        let mut obj = match h.objects.get(SNAPSHOT_OBJECT).await {
            Ok(o) => o,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unavailable("snapshot object", e)),
        };
        let sequence = obj
            .info()
            .metadata
            .get(META_SEQUENCE)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut bytes = Vec::with_capacity(obj.info().size);
        obj.read_to_end(&mut bytes)
            .await
            .map_err(|e| unavailable("reading the snapshot object", e))?;
        Ok(Some((bytes, sequence)))
    }

    /// Put a snapshot (the snapshot file format) that includes the stream up
    /// to `sequence`, replacing the previous one.
    async fn put_snapshot(
        &self,
        bytes: Vec<u8>,
        sequence: u64,
        version: u64,
    ) -> Result<(), LogError> {
        let h = self.handles().await?;
        let meta = object_store::ObjectMetadata {
            name: SNAPSHOT_OBJECT.into(),
            description: Some(format!("iys-gate snapshot version {version}")),
            chunk_size: Some(1 << 20),
            metadata: HashMap::from([
                (META_SEQUENCE.to_string(), sequence.to_string()),
                ("version".to_string(), version.to_string()),
            ]),
            headers: None,
        };
        let mut reader = std::io::Cursor::new(bytes);
        h.objects
            .put(meta, &mut reader)
            .await
            .map_err(|e| unavailable("putting the snapshot object", e))?;
        Ok(())
    }
}

impl ChangeLog for Nats {
    async fn publish(
        &self,
        brand: Brand,
        kind: EntryKind,
        payload: bytes::Bytes,
        id: String,
        expected: Option<u64>,
    ) -> Result<u64, LogError> {
        self.handles().await?;
        let mut msg = jetstream::message::PublishMessage::build()
            .payload(payload)
            .message_id(id);
        if let Some(seq) = expected {
            msg = msg.expected_last_subject_sequence(seq);
        }
        let ack = self
            .js
            .send_publish(self.subject(brand, kind), msg)
            .await
            .map_err(|e| unavailable("publish", e))?
            .await
            .map_err(|e| {
                if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence {
                    LogError::Conflict
                } else {
                    unavailable("publish acknowledgement", e)
                }
            })?;
        Ok(ack.sequence)
    }

    async fn last_sequence(&self, brand: Brand, kind: EntryKind) -> Result<u64, LogError> {
        let h = self.handles().await?;
        match h
            .stream
            .get_last_raw_message_by_subject(&self.subject(brand, kind))
            .await
        {
            Ok(m) => Ok(m.sequence),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => Err(unavailable("last message of the brand's subject", e)),
        }
    }

    async fn bounds(&self) -> Result<Bounds, LogError> {
        let h = self.handles().await?;
        let info = h
            .stream
            .get_info()
            .await
            .map_err(|e| unavailable("stream info", e))?;
        Ok(Bounds {
            first: info.state.first_sequence,
            last: info.state.last_sequence,
        })
    }

    async fn read_from(
        &self,
        sequence: u64,
    ) -> Result<BoxStream<'static, Result<Delivered, LogError>>, LogError> {
        let h = self.handles().await?;
        let consumer = h
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: sequence.max(1),
                },
                filter_subject: format!("{}.>", self.cfg.subject_prefix),
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable("creating the ordered consumer", e))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| unavailable("reading the stream", e))?;
        Ok(messages
            .map(|m| {
                let m = m.map_err(|e| unavailable("reading the stream", e))?;
                let sequence = m
                    .info()
                    .map_err(|e| unavailable("message info", e))?
                    .stream_sequence;
                Ok(Delivered {
                    sequence,
                    payload: m.message.payload.clone(),
                })
            })
            .boxed())
    }
}

impl LeaderLock for Nats {
    async fn try_acquire(&self, name: &str) -> Result<Option<Lease>, LogError> {
        let h = self.handles().await?;
        match h
            .lock
            .create(LOCK_KEY, bytes::Bytes::from(name.to_string()))
            .await
        {
            Ok(revision) => Ok(Some(Lease { revision })),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(unavailable("leader lock", e)),
        }
    }

    async fn renew(&self, name: &str, lease: Lease) -> Result<Lease, LogError> {
        let h = self.handles().await?;
        match h
            .lock
            .update(
                LOCK_KEY,
                bytes::Bytes::from(name.to_string()),
                lease.revision,
            )
            .await
        {
            Ok(revision) => Ok(Lease { revision }),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Err(LogError::Conflict),
            Err(e) => Err(unavailable("renewing the leader lock", e)),
        }
    }

    async fn holder(&self) -> Result<Option<String>, LogError> {
        let h = self.handles().await?;
        h.lock
            .get(LOCK_KEY)
            .await
            .map(|v| {
                v.map(|b| String::from_utf8_lossy(&b).into_owned())
                    .filter(|s| !s.is_empty())
            })
            .map_err(|e| unavailable("leader lock", e))
    }

    async fn release(&self, lease: Lease) -> Result<(), LogError> {
        let h = self.handles().await?;
        h.lock
            .delete_expect_revision(LOCK_KEY, Some(lease.revision))
            .await
            .map_err(|e| unavailable("releasing the leader lock", e))
    }
}
