//! The gate's view of a submit_sm or data_sm frame: the few fields a decision
//! needs, read in place.
//!
//! The typed decoder ([`super::Pdu::decode`]) builds every field as shared
//! `Bytes` and every TLV into a list: right for tools and tests, but on the
//! gate's hot path that is a dozen reference-count updates and an allocation per
//! message, and then a re-encode when the İYS TLVs are stripped. A view walks the
//! same fields with the same [`Cursor`] checks, so it accepts exactly the frames
//! the decoder accepts and fails with the same error, keeps borrowed slices of
//! what the gate reads, and writes the forwarded frame by copying the original
//! minus the İYS TLVs.

use bytes::BufMut;

use super::concat::{concat_info, ConcatInfo};
use super::error::{DecodeError, DecodeErrorKind};
use super::header::{CommandId, HEADER_LEN};
use super::pdu::read_header;
use super::primitives::Cursor;
use super::tlv::{is_iys, RawTlvs};

/// A checked submit_sm or data_sm frame and the fields the gate reads.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    /// The whole frame, header included.
    frame: &'a [u8],
    /// Where the TLV area starts in `frame`.
    tlv_start: usize,
    /// TON of the destination.
    pub dest_addr_ton: u8,
    /// The destination address, without its NUL.
    pub destination_addr: &'a [u8],
    /// Messaging mode and type (0x40: the message starts with a UDH).
    pub esm_class: u8,
    /// `short_message` (always empty in data_sm).
    pub short_message: &'a [u8],
    /// The TLVs.
    pub tlvs: RawTlvs<'a>,
}

impl<'a> MessageView<'a> {
    /// Reads one whole submit_sm or data_sm frame (as delimited by `frame_len`)
    /// with the checks of [`super::Pdu::decode`]; any other command is an error
    /// naming `command_id`.
    pub fn read(frame: &'a [u8]) -> Result<Self, DecodeError> {
        let header = read_header(frame)?;
        let body = &frame[HEADER_LEN..];
        let mut r = Cursor::new(body);
        r.c_octet_string::<6>("service_type")?;
        r.u8("source_addr_ton")?;
        r.u8("source_addr_npi")?;
        let (dest_addr_ton, destination_addr, esm_class, short_message) =
            match CommandId::from_u32(header.command_id) {
                CommandId::SubmitSm => {
                    r.c_octet_string::<21>("source_addr")?;
                    let ton = r.u8("dest_addr_ton")?;
                    r.u8("dest_addr_npi")?;
                    let dest = r.c_octet_string::<21>("destination_addr")?;
                    let esm_class = r.u8("esm_class")?;
                    r.u8("protocol_id")?;
                    r.u8("priority_flag")?;
                    r.time("schedule_delivery_time")?;
                    r.time("validity_period")?;
                    r.u8("registered_delivery")?;
                    r.u8("replace_if_present_flag")?;
                    r.u8("data_coding")?;
                    r.u8("sm_default_msg_id")?;
                    (ton, dest, esm_class, r.short_message()?)
                }
                CommandId::DataSm => {
                    r.c_octet_string::<65>("source_addr")?;
                    let ton = r.u8("dest_addr_ton")?;
                    r.u8("dest_addr_npi")?;
                    let dest = r.c_octet_string::<65>("destination_addr")?;
                    let esm_class = r.u8("esm_class")?;
                    r.u8("registered_delivery")?;
                    r.u8("data_coding")?;
                    (ton, dest, esm_class, &[][..])
                }
                _ => {
                    return Err(DecodeError::new(
                        "command_id",
                        DecodeErrorKind::InvalidValue("not a submit_sm or data_sm"),
                    ))
                }
            };
        let tlv_start = frame.len() - r.remaining();
        let tlvs = RawTlvs::check(r.rest())?;
        Ok(MessageView {
            frame,
            tlv_start,
            dest_addr_ton,
            destination_addr,
            esm_class,
            short_message,
            tlvs,
        })
    }

    /// Which part of a concatenated message this is (UDH or SAR TLVs), as
    /// [`super::SubmitSm::concat_info`] reads it.
    pub fn concat_info(&self) -> Option<ConcatInfo> {
        concat_info(self.esm_class, self.short_message, &self.tlvs)
    }

    /// Appends the frame under sequence number `seq`, without the İYS TLVs
    /// (0x1400–0x1402) when `strip_iys`; every other octet as it came.
    pub fn forward<B: BufMut>(&self, seq: u32, strip_iys: bool, out: &mut B) {
        let stripped = strip_iys && self.tlvs.has_iys();
        let len = self.frame.len() - if stripped { self.tlvs.iys_len() } else { 0 };
        // The length only shrinks, and the frame's own fitted in a u32.
        out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        out.put_slice(&self.frame[4..12]);
        out.put_u32(seq);
        if !stripped {
            out.put_slice(&self.frame[HEADER_LEN..]);
            return;
        }
        out.put_slice(&self.frame[HEADER_LEN..self.tlv_start]);
        // Usually the İYS TLVs come last: what comes before is one slice.
        if let Some(kept) = self.tlvs.without_trailing_iys() {
            out.put_slice(kept);
            return;
        }
        for (tag, _, raw) in self.tlvs.iter() {
            if !is_iys(tag) {
                out.put_slice(raw);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tlv::TlvRead;
    use super::super::{Body, COctetString, DataSm, OctetString, Pdu, SubmitSm, Tlv, Tlvs};
    use super::*;

    fn submit(tlvs: Vec<Tlv>, short_message: &'static [u8], esm_class: u8) -> Pdu {
        Pdu::new(
            7,
            Body::SubmitSm(SubmitSm {
                source_addr: COctetString::new("BRAND").unwrap(),
                dest_addr_ton: 1,
                destination_addr: COctetString::new("905321234567").unwrap(),
                esm_class,
                short_message: OctetString::new(short_message).unwrap(),
                tlvs: Tlvs::from(tlvs),
                ..Default::default()
            }),
        )
    }

    #[test]
    fn reads_what_the_decoder_reads() {
        let pdu = submit(
            vec![
                Tlv::new(0x1400, &b"11"[..]).unwrap(),
                Tlv::new(0x1500, &b"keep"[..]).unwrap(),
            ],
            &[0x05, 0x00, 0x03, 0x2A, 0x02, 0x01, b'h'],
            0x40,
        );
        let frame = pdu.to_vec();
        let view = MessageView::read(&frame).unwrap();
        assert_eq!(view.dest_addr_ton, 1);
        assert_eq!(view.destination_addr, b"905321234567");
        assert_eq!(view.tlvs.values(0x1500).next(), Some(&b"keep"[..]));
        let Body::SubmitSm(sm) = pdu.body else {
            unreachable!()
        };
        assert_eq!(view.concat_info(), sm.concat_info());
        assert!(view.concat_info().is_some());
        assert_eq!(
            view.tlvs.iys_message_type().unwrap(),
            sm.tlvs.iys_message_type().unwrap()
        );
    }

    #[test]
    fn forward_cuts_only_the_iys_tlvs_and_renumbers() {
        let t = |tag: u16, v: &'static [u8]| Tlv::new(tag, v).unwrap();
        let layouts = [
            // İYS TLVs between others: copied TLV by TLV.
            vec![
                t(0x1500, b"a"),
                t(0x1400, b"11"),
                t(0x020C, &[0, 1]),
                t(0x1402, b"42"),
            ],
            // All at the end (the usual case): one slice.
            vec![
                t(0x1500, b"a"),
                t(0x020C, &[0, 1]),
                t(0x1400, b"11"),
                t(0x1401, b"7"),
            ],
            vec![t(0x1400, b"0")],
            vec![t(0x1400, b"11"), t(0x1400, b"12")],
            vec![t(0x1500, b"a")],
            vec![],
        ];
        for tlvs in layouts {
            let with = submit(tlvs.clone(), b"hello", 0);
            let frame = with.to_vec();
            let view = MessageView::read(&frame).unwrap();
            let mut out = Vec::new();
            view.forward(99, true, &mut out);
            let mut want = with.clone();
            want.sequence_number = 99;
            if let Body::SubmitSm(sm) = &mut want.body {
                sm.tlvs.remove_iys();
            }
            assert_eq!(out, want.to_vec(), "{tlvs:?}");
            let mut kept = Vec::new();
            view.forward(99, false, &mut kept);
            let mut renumbered = with.clone();
            renumbered.sequence_number = 99;
            assert_eq!(kept, renumbered.to_vec(), "{tlvs:?}");
        }
    }

    #[test]
    fn data_sm_reads_its_own_layout() {
        let pdu = Pdu::new(
            3,
            Body::DataSm(DataSm {
                dest_addr_ton: 1,
                destination_addr: COctetString::new("905321234567").unwrap(),
                tlvs: Tlvs::from(vec![Tlv::new(0x0424, &b"text"[..]).unwrap()]),
                ..Default::default()
            }),
        );
        let frame = pdu.to_vec();
        let view = MessageView::read(&frame).unwrap();
        assert_eq!(view.destination_addr, b"905321234567");
        assert_eq!(view.tlvs.message_payload(), Some(&b"text"[..]));
    }

    /// The view accepts exactly what the decoder accepts, with the same error,
    /// for every truncation and single-octet change of valid frames.
    #[test]
    fn accepts_and_refuses_exactly_what_the_decoder_does() {
        let frames = [
            submit(
                vec![
                    Tlv::new(0x1400, &b"11"[..]).unwrap(),
                    Tlv::new(0x020C, &[0, 1][..]).unwrap(),
                ],
                b"hi there",
                0,
            )
            .to_vec(),
            Pdu::new(
                3,
                Body::DataSm(DataSm {
                    destination_addr: COctetString::new("5321234567").unwrap(),
                    tlvs: Tlvs::from(vec![Tlv::new(0x0424, &b"text"[..]).unwrap()]),
                    ..Default::default()
                }),
            )
            .to_vec(),
        ];
        let mut checked = 0;
        for frame in frames {
            let mut variants = Vec::new();
            for cut in 0..frame.len() {
                let mut f = frame[..cut].to_vec();
                if f.len() >= 4 {
                    let n = f.len() as u32;
                    f[..4].copy_from_slice(&n.to_be_bytes());
                }
                variants.push(f);
            }
            for at in 4..frame.len() {
                for v in [0u8, 1, 0x10, 0x30, 0xFF] {
                    let mut f = frame.clone();
                    f[at] = v;
                    variants.push(f);
                }
            }
            for f in variants {
                let full = Pdu::decode(&f);
                let view = MessageView::read(&f);
                match (&full, &view) {
                    (Ok(p), Ok(v)) => {
                        let (ton, dest) = match &p.body {
                            Body::SubmitSm(sm) => {
                                (sm.dest_addr_ton, sm.destination_addr.as_bytes())
                            }
                            Body::DataSm(dm) => (dm.dest_addr_ton, dm.destination_addr.as_bytes()),
                            _ => continue,
                        };
                        assert_eq!((v.dest_addr_ton, v.destination_addr), (ton, dest));
                    }
                    // Another command: the view is not for it.
                    (_, Err(b)) if b.field == "command_id" => {}
                    (Err(a), Err(b)) => assert_eq!(a, b, "{f:02x?}"),
                    _ => panic!("decoder {full:?} but view {view:?} for {f:02x?}"),
                }
                checked += 1;
            }
        }
        assert!(checked > 500);
    }
}
