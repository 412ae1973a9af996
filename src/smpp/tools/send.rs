//! `iys-gate smpp-send`: bind, submit one SMS, print the answer, unbind. For
//! trying the gate by hand (the demo prints such commands): the status says
//! whether the gate let the message through (ESME_ROK and the SMSC's message
//! id) or refused it (0x401 no consent, 0x402 withdrawn, ...).

use std::time::Duration;

use anyhow::{bail, Context};

use super::conn::{self, status_text, FrameBuf};
use crate::smpp::codec::{
    status, Bind, Body, COctetString, IysMessageType, OctetString, Pdu, SubmitSm, Tlvs,
    DEFAULT_MAX_COMMAND_LENGTH,
};

/// `smpp-send` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// The gate (or SMSC), host:port.
    #[arg(long, default_value = "127.0.0.1:2775")]
    pub target: String,
    /// Account to bind as.
    #[arg(long, default_value = "demo")]
    pub system_id: String,
    /// Password to bind with.
    #[arg(long, default_value = "demo")]
    pub password: String,
    /// The recipient (destination_addr), e.g. 905300000001.
    #[arg(long)]
    pub to: String,
    /// The sender (source_addr; alphanumeric unless all digits).
    #[arg(long, default_value = "DEMO")]
    pub from: String,
    /// The text.
    #[arg(long, default_value = "hello from iys-gate")]
    pub text: String,
    /// Declare the class in the iys_message_type TLV (0x1400): 0
    /// (informational), 11 or 12; without it the account's default applies.
    #[arg(long)]
    pub message_type: Option<u8>,
    /// How long to wait for each answer.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// What the submission got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// submit_sm_resp's command_status.
    pub command_status: u32,
    /// Its message_id (empty when refused).
    pub message_id: String,
}

/// Binds as a transmitter, submits one message, unbinds; the submit_sm_resp's status.
pub async fn send(args: &SendArgs) -> anyhow::Result<Sent> {
    let mut stream = conn::connect(&args.target)
        .await
        .with_context(|| format!("cannot connect to {}", args.target))?;
    let mut frames = FrameBuf::new(DEFAULT_MAX_COMMAND_LENGTH);
    let bind = Bind {
        system_id: COctetString::copy_from(args.system_id.as_bytes())
            .context("--system-id is not a valid system_id")?,
        password: COctetString::copy_from(args.password.as_bytes())
            .context("--password is not a valid password")?,
        interface_version: 0x34,
        ..Bind::default()
    };
    let resp = conn::exchange(
        &mut stream,
        &mut frames,
        &Pdu::new(1, Body::BindTransmitter(bind)),
        args.timeout,
    )
    .await
    .with_context(|| format!("bind_transmitter to {}", args.target))?;
    if resp.command_status != status::ESME_ROK {
        bail!(
            "{} refused the bind as {:?}: {}",
            args.target,
            args.system_id,
            status_text(resp.command_status)
        );
    }
    let tlvs = match args.message_type {
        Some(code) => {
            let t =
                IysMessageType::from_code(code).context("--message-type must be 0, 11 or 12")?;
            Tlvs::from(vec![t.to_tlv()])
        }
        None => Tlvs::default(),
    };
    let alnum = !args.from.bytes().all(|b| b.is_ascii_digit());
    let sm = SubmitSm {
        source_addr_ton: if alnum { 5 } else { 1 },
        source_addr_npi: if alnum { 0 } else { 1 },
        source_addr: COctetString::copy_from(args.from.as_bytes())
            .context("--from is not a valid source_addr")?,
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: COctetString::copy_from(args.to.as_bytes())
            .context("--to is not a valid destination_addr")?,
        short_message: OctetString::new(args.text.clone().into_bytes())
            .context("--text is too long for short_message")?,
        tlvs,
        ..SubmitSm::default()
    };
    let resp = conn::exchange(
        &mut stream,
        &mut frames,
        &Pdu::new(2, Body::SubmitSm(sm)),
        args.timeout,
    )
    .await
    .context("submit_sm")?;
    let message_id = match &resp.body {
        Body::SubmitSmResp(Some(r)) => {
            String::from_utf8_lossy(r.message_id.as_bytes()).into_owned()
        }
        _ => String::new(),
    };
    // A polite unbind; its answer does not change the result.
    let _ = conn::exchange(
        &mut stream,
        &mut frames,
        &Pdu::new(3, Body::Unbind),
        args.timeout,
    )
    .await;
    Ok(Sent {
        command_status: resp.command_status,
        message_id,
    })
}

/// Runs `smpp-send` and prints the answer.
pub async fn run(args: SendArgs) -> anyhow::Result<()> {
    let sent = send(&args).await?;
    if sent.command_status == status::ESME_ROK {
        println!(
            "submit_sm to {}: {} message_id {}",
            args.to,
            status_text(sent.command_status),
            sent.message_id
        );
    } else {
        // The gate's default refusal statuses ([smpp.status]).
        let why = match sent.command_status {
            0x401 => " (the gate's default for no_consent)",
            0x402 => " (the gate's default for withdrawn)",
            0x403 => " (the gate's default for unknown_brand)",
            0x404 => " (the gate's default for retailer_not_allowed)",
            0x58 => " (the gate cannot decide now: try again later)",
            _ => "",
        };
        println!(
            "submit_sm to {}: refused, {}{why}",
            args.to,
            status_text(sent.command_status)
        );
    }
    Ok(())
}
