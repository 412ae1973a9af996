//! The framing and socket chores the tools share: a read buffer that yields whole
//! SMPP frames, TCP_NODELAY sockets, and a one-shot request/response exchange.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

use crate::smpp::codec::{frame_len, status, Body, CommandId, FrameError, Pdu};

/// Spare room kept in a read buffer before each read.
const READ_RESERVE: usize = 64 * 1024;

/// A read buffer that hands out whole SMPP frames.
#[derive(Debug)]
pub struct FrameBuf {
    buf: BytesMut,
    max_command_length: u32,
}

impl FrameBuf {
    /// An empty buffer that refuses frames longer than `max_command_length`.
    pub fn new(max_command_length: u32) -> Self {
        FrameBuf {
            buf: BytesMut::with_capacity(READ_RESERVE),
            max_command_length,
        }
    }

    /// The buffer to read into, with room for at least one large read.
    pub fn read_space(&mut self) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() < READ_RESERVE / 4 {
            self.buf.reserve(READ_RESERVE);
        }
        &mut self.buf
    }

    /// The next whole frame, `Ok(None)` until one has arrived; an error when the
    /// peer sent an impossible `command_length` (the stream is lost after it).
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        match frame_len(&self.buf, self.max_command_length)? {
            Some(len) => Ok(Some(self.buf.split_to(len).freeze())),
            None => Ok(None),
        }
    }
}

/// Connects with TCP_NODELAY set.
pub async fn connect(target: impl ToSocketAddrs) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Accepts the next connection with TCP_NODELAY set, backing off while accept fails
/// (out of file descriptors, mostly) instead of spinning.
pub async fn accept(listener: &TcpListener) -> TcpStream {
    let mut backoff = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!("TCP_NODELAY: {e}");
                }
                return stream;
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Sends `request` and waits for the response with its sequence number, answering
/// `enquire_link` meanwhile and skipping anything else. For the few lock-step
/// exchanges (bind, unbind), not for the message stream.
pub async fn exchange(
    stream: &mut TcpStream,
    frames: &mut FrameBuf,
    request: &Pdu,
    timeout: Duration,
) -> anyhow::Result<Pdu> {
    let name = request.command_id().name();
    let mut out = BytesMut::with_capacity(request.encoded_len());
    request.encode(&mut out);
    stream
        .write_all(&out)
        .await
        .with_context(|| format!("sending {name}"))?;
    let wait = async {
        loop {
            while let Some(frame) = frames.next_frame()? {
                let pdu = Pdu::decode_bytes(frame).with_context(|| {
                    format!("invalid PDU while waiting for the {name} response")
                })?;
                if pdu.sequence_number == request.sequence_number && pdu.command_id().is_response()
                {
                    return Ok(pdu);
                }
                if pdu.command_id() == CommandId::EnquireLink {
                    let mut resp = BytesMut::new();
                    Pdu {
                        command_status: status::ESME_ROK,
                        sequence_number: pdu.sequence_number,
                        body: Body::EnquireLinkResp,
                    }
                    .encode(&mut resp);
                    stream.write_all(&resp).await?;
                }
            }
            if stream.read_buf(frames.read_space()).await? == 0 {
                bail!("the peer closed the connection while we waited for the {name} response");
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .with_context(|| format!("no {name} response within {timeout:?}"))?
}

/// `0x0000000D (ESME_RBINDFAIL)`: a status as operators read it in logs.
pub fn status_text(command_status: u32) -> String {
    match status::name(command_status) {
        Some(name) => format!("0x{command_status:08X} ({name})"),
        None => format!("0x{command_status:08X}"),
    }
}
