//! Concatenated (multi-part) messages: which part a PDU carries.

use super::tlv::TlvRead;
#[cfg(test)]
use super::tlv::Tlvs;

/// esm_class bit: `short_message` begins with a User Data Header.
pub const ESM_CLASS_UDHI: u8 = 0x40;

/// One part of a concatenated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConcatInfo {
    /// The reference shared by all parts (an 8-bit UDH reference is widened).
    pub reference: u16,
    /// How many parts the message has (1..=255).
    pub total: u8,
    /// This part's number (1..=total).
    pub seq: u8,
}

impl ConcatInfo {
    fn checked(reference: u16, total: u8, seq: u8) -> Option<Self> {
        (total >= 1 && (1..=total).contains(&seq)).then_some(ConcatInfo {
            reference,
            total,
            seq,
        })
    }
}

/// Concatenation info from the UDH (IEI 0x00 or 0x08, when esm_class has UDHI) or
/// else from the three SAR TLVs. A malformed UDH or SAR set yields `None`.
pub(super) fn concat_info(
    esm_class: u8,
    short_message: &[u8],
    tlvs: &impl TlvRead,
) -> Option<ConcatInfo> {
    if esm_class & ESM_CLASS_UDHI != 0 {
        let message: &[u8] = if short_message.is_empty() {
            tlvs.message_payload().unwrap_or(&[])
        } else {
            short_message
        };
        if let Some(info) = from_udh(message) {
            return Some(info);
        }
    }
    let reference = tlvs.sar_msg_ref_num().ok()??;
    let total = tlvs.sar_total_segments().ok()??;
    let seq = tlvs.sar_segment_seqnum().ok()??;
    ConcatInfo::checked(reference, total, seq)
}

fn from_udh(message: &[u8]) -> Option<ConcatInfo> {
    let (&udhl, rest) = message.split_first()?;
    let mut ies = rest.get(..usize::from(udhl))?;
    while let [iei, len, tail @ ..] = ies {
        let data = tail.get(..usize::from(*len))?;
        match (iei, data) {
            (0x00, &[reference, total, seq]) => {
                return ConcatInfo::checked(u16::from(reference), total, seq)
            }
            (0x08, &[hi, lo, total, seq]) => {
                return ConcatInfo::checked(u16::from_be_bytes([hi, lo]), total, seq)
            }
            _ => {}
        }
        ies = tail.get(usize::from(*len)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::tlv::Tlv;
    use super::*;

    #[test]
    fn udh_with_8_and_16_bit_references() {
        let none = Tlvs::new();
        let udh8 = [0x05, 0x00, 0x03, 0xA7, 0x03, 0x02, b'h', b'i'];
        assert_eq!(
            concat_info(0x40, &udh8, &none),
            Some(ConcatInfo {
                reference: 0xA7,
                total: 3,
                seq: 2
            })
        );
        let udh16 = [0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x02, b'x'];
        assert_eq!(
            concat_info(0x43, &udh16, &none),
            Some(ConcatInfo {
                reference: 0x1234,
                total: 2,
                seq: 2
            })
        );
        // Without UDHI the same octets are text.
        assert_eq!(concat_info(0x00, &udh8, &none), None);
    }

    #[test]
    fn udh_skips_other_elements_and_rejects_malformed_ones() {
        let none = Tlvs::new();
        // A port-addressing IE (0x05) before the concatenation IE.
        let udh = [
            0x0B, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x01, 0x02, 0x01,
        ];
        assert_eq!(
            concat_info(0x40, &udh, &none),
            Some(ConcatInfo {
                reference: 1,
                total: 2,
                seq: 1
            })
        );
        for bad in [
            &[][..],
            &[0x05, 0x00, 0x03, 0x01, 0x02], // UDHL past the end
            &[0x05, 0x00, 0x04, 0x01, 0x02, 0x01], // IE length past the UDH
            &[0x05, 0x00, 0x03, 0x01, 0x02, 0x03], // seq > total
            &[0x05, 0x00, 0x03, 0x01, 0x00, 0x00], // zero parts
        ] {
            assert_eq!(concat_info(0x40, bad, &none), None, "{bad:?}");
        }
    }

    #[test]
    fn sar_tlvs_when_there_is_no_udh() {
        let mut tlvs = Tlvs::new();
        tlvs.push(Tlv::from_u16(0x020C, 0xBEEF));
        tlvs.push(Tlv::from_u8(0x020E, 4));
        assert_eq!(concat_info(0, b"text", &tlvs), None);
        tlvs.push(Tlv::from_u8(0x020F, 4));
        assert_eq!(
            concat_info(0, b"text", &tlvs),
            Some(ConcatInfo {
                reference: 0xBEEF,
                total: 4,
                seq: 4
            })
        );
    }

    #[test]
    fn udh_in_message_payload_when_short_message_is_empty() {
        let mut tlvs = Tlvs::new();
        tlvs.push(Tlv::new(0x0424, &[0x05u8, 0x00, 0x03, 0x09, 0x02, 0x01, b'a'][..]).unwrap());
        assert_eq!(
            concat_info(0x40, &[], &tlvs),
            Some(ConcatInfo {
                reference: 9,
                total: 2,
                seq: 1
            })
        );
    }
}
