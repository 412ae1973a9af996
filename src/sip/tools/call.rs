//! `iys-gate sip-call`: place one call over UDP and say how it ended: the
//! INVITE (retransmitted on RFC 3261's timer A until a final answer), then
//! ACK, and for an answered call a BYE. For the demo and by hand; load
//! generation uses SIPp.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tokio::net::UdpSocket;

use crate::sip::codec::{scan, Message};

/// `iys-gate sip-call` options.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The gate (or any SIP server), UDP host:port.
    #[arg(long, default_value = "127.0.0.1:5060")]
    pub target: SocketAddr,
    /// The callee: the Request-URI's user part (05300000001, +905300000001, ...).
    #[arg(long)]
    pub to: String,
    /// The calling number (From).
    #[arg(long, default_value = "02120000000")]
    pub from: String,
    /// Declare the class in X-IYS-Message-Type: 0 (informational), 11 or 12.
    #[arg(long)]
    pub message_type: Option<u8>,
    /// How long to wait for the final answer.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// How one call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutcome {
    /// The INVITE's final status code.
    pub code: u16,
    /// Its status line.
    pub status_line: String,
    /// Its `Reason` header value, when it had one.
    pub reason: Option<String>,
    /// For an answered call: the BYE's status code.
    pub bye: Option<u16>,
}

/// Place one call and return how it ended.
pub async fn call(args: &CallArgs) -> anyhow::Result<CallOutcome> {
    let socket = UdpSocket::bind(("127.0.0.1", 0)).await?;
    socket.connect(args.target).await?;
    let local = socket.local_addr()?;
    let id = std::process::id() ^ (Instant::now().elapsed().subsec_nanos());
    let tag = format!("c{id:x}");
    let call_id = format!("{id:x}-{}@iys-gate-call", rand::random::<u32>());
    let target = args.target;
    let uri = format!("sip:{}@{target}", args.to);
    let iys = args
        .message_type
        .map(|t| format!("X-IYS-Message-Type: {t}\r\n"))
        .unwrap_or_default();
    let request = |method: &str, cseq: u32, branch: &str, to: &str, extra: &str| {
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{from}@{ip}>;tag={tag}\r\nTo: {to}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: 0\r\n\r\n",
            from = args.from,
            ip = local.ip(),
        )
    };
    let invite_branch = format!("i{}", rand::random::<u32>());
    let bare_to = format!("<{uri}>");
    let invite = request(
        "INVITE",
        1,
        &invite_branch,
        &bare_to,
        &format!("Contact: <sip:{}@{local}>\r\n{iys}", args.from),
    );
    let (final_answer, to) = exchange(&socket, invite.as_bytes(), 1, args.timeout)
        .await
        .context("INVITE")?;
    let mut outcome = final_answer;
    if (200..300).contains(&outcome.code) {
        let ack = request("ACK", 1, &format!("a{}", rand::random::<u32>()), &to, "");
        socket.send(ack.as_bytes()).await?;
        let bye = request("BYE", 2, &format!("b{}", rand::random::<u32>()), &to, "");
        let (bye_answer, _) = exchange(&socket, bye.as_bytes(), 2, args.timeout)
            .await
            .context("BYE")?;
        outcome.bye = Some(bye_answer.code);
    } else {
        // The ACK of a non-2xx answer is part of the INVITE transaction.
        let ack = request("ACK", 1, &invite_branch, &to, "");
        socket.send(ack.as_bytes()).await?;
    }
    Ok(outcome)
}

/// Send `request` (retransmitted every 500 ms, doubling) until a final answer
/// for CSeq `cseq` arrives; returns it and its To value (with the tag).
async fn exchange(
    socket: &UdpSocket,
    request: &[u8],
    cseq: u32,
    timeout: Duration,
) -> anyhow::Result<(CallOutcome, String)> {
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(500);
    let mut buf = vec![0u8; 65_536];
    loop {
        socket.send(request).await?;
        let resend_at = (Instant::now() + interval).min(deadline);
        interval = (interval * 2).min(Duration::from_secs(4));
        loop {
            let left = resend_at.saturating_duration_since(Instant::now());
            let Ok(got) = tokio::time::timeout(left, socket.recv(&mut buf)).await else {
                break;
            };
            let n = got?;
            let msg = &buf[..n];
            let Ok(m) = scan(msg, 65_536) else { continue };
            let Some(code) = m.code() else { continue };
            if code < 200 || m.cseq != cseq {
                continue;
            }
            return Ok((outcome_of(msg, &m, code), text(m.to.of(msg))));
        }
        if Instant::now() >= deadline {
            anyhow::bail!("no final answer within {timeout:?}");
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn outcome_of(msg: &[u8], m: &Message, code: u16) -> CallOutcome {
    let head = &msg[m.start..m.headers_end];
    let lines = head.split(|&b| b == b'\n').map(|l| l.trim_ascii());
    let mut reason = None;
    let mut status_line = String::new();
    for (i, l) in lines.enumerate() {
        if i == 0 {
            status_line = text(l);
        } else if l.len() > 7 && l[..7].eq_ignore_ascii_case(b"reason:") {
            reason = Some(text(l[7..].trim_ascii()));
        }
    }
    CallOutcome {
        code,
        status_line,
        reason,
        bye: None,
    }
}

/// `iys-gate sip-call`: place the call, print how it ended.
pub async fn run(args: CallArgs) -> anyhow::Result<()> {
    let o = call(&args).await?;
    match o.bye {
        Some(bye) => println!(
            "call to {}: {} (answered); BYE {bye}",
            args.to, o.status_line
        ),
        None => println!(
            "call to {}: {}{}",
            args.to,
            o.status_line,
            o.reason
                .map(|r| format!(" (Reason: {r})"))
                .unwrap_or_default()
        ),
    }
    Ok(())
}
