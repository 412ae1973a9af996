//! An answering UAS over UDP, for the demo and tests: every INVITE is
//! answered `200 OK` at once (no media), BYE, CANCEL, OPTIONS and any other
//! request `200 OK`, ACK nothing. Answers go back to where the request came
//! from (a stateless proxy sends from its listening socket). It logs each
//! call it answers, and keeps the callee of each for tests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use clap::Args;
use tokio::net::UdpSocket;

use crate::sip::codec::{scan, write_response, Method};

/// `iys-gate sip-uas` options.
#[derive(Debug, Args)]
pub struct UasArgs {
    /// UDP address to answer on.
    #[arg(long, default_value = "127.0.0.1:5062")]
    pub listen: SocketAddr,
}

/// A running UAS.
#[derive(Clone, Debug)]
pub struct UasHandle {
    /// Where it answers.
    pub addr: SocketAddr,
    answered: Arc<Mutex<Vec<String>>>,
}

impl UasHandle {
    /// The Request-URIs of the INVITEs answered so far, in order.
    pub fn answered(&self) -> Vec<String> {
        self.answered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Answer on `socket` until the task is dropped.
pub fn spawn(socket: UdpSocket) -> std::io::Result<UasHandle> {
    let addr = socket.local_addr()?;
    let handle = UasHandle {
        addr,
        answered: Arc::new(Mutex::new(Vec::new())),
    };
    let theirs = handle.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        let mut out = Vec::with_capacity(1024);
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let req = &buf[..n];
            let Ok(m) = scan(req, 65_536) else {
                continue;
            };
            let Some(method) = m.method() else {
                continue; // a response: nothing to answer
            };
            if method == Method::Ack {
                continue;
            }
            out.clear();
            let extra: &[u8] = if method == Method::Invite {
                b"Contact: <sip:uas@127.0.0.1>\r\n"
            } else {
                b""
            };
            write_response(req, &m, 200, "OK", b"iys-demo-uas", extra, &mut out);
            if method == Method::Invite {
                let uri = m
                    .uri()
                    .map(|u| String::from_utf8_lossy(u.of(req)).into_owned())
                    .unwrap_or_default();
                tracing::info!(uri = %uri, "demo UAS: call answered");
                theirs
                    .answered
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(uri);
            }
            let _ = socket.send_to(&out, from).await;
        }
    });
    Ok(handle)
}

/// `iys-gate sip-uas`: answer until Ctrl-C.
pub async fn run(args: UasArgs) -> anyhow::Result<()> {
    let socket = UdpSocket::bind(args.listen).await?;
    let h = spawn(socket)?;
    eprintln!("SIP UAS answering on udp {}", h.addr);
    tokio::signal::ctrl_c().await?;
    eprintln!("answered {} calls", h.answered().len());
    Ok(())
}
