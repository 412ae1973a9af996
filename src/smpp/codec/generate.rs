//! Random valid PDUs of every kind, for round-trip tests and for the fuzz
//! target (which steers the choices with its input, see [`FromBytes`]), and
//! the typical submit_sm the benches measure.

use super::*;

/// The benches' typical submit_sm: a 160-octet text, a validity period, and
/// the İYS class and brand TLVs (a 242-octet frame).
pub fn typical_submit_sm() -> Pdu {
    let mut tlvs = Tlvs::new();
    tlvs.push(Tlv::new(0x1400, &b"11"[..]).expect("iys_message_type"));
    tlvs.push(Tlv::new(0x1401, &b"654321"[..]).expect("iys_brand_code"));
    let body = SubmitSm {
        source_addr_ton: 5,
        source_addr: COctetString::new("MARKA").expect("source_addr"),
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: COctetString::new("905321234567").expect("destination_addr"),
        validity_period: SmppTime::new("250101120000000+").expect("validity_period"),
        registered_delivery: 1,
        short_message: OctetString::new(vec![b'x'; 160]).expect("short_message"),
        tlvs,
        ..SubmitSm::default()
    };
    Pdu::new(0x0102_0304, Body::SubmitSm(body))
}

/// Where a [`Generator`] takes its choices from.
pub trait Entropy {
    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64;
}

/// xorshift64*: small, deterministic, good enough to vary field shapes.
pub struct Xorshift(u64);

impl Xorshift {
    /// The sequence for `seed` (0 counts as 1).
    pub fn new(seed: u64) -> Self {
        Xorshift(seed.max(1))
    }
}

impl Entropy for Xorshift {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Choices read from a byte string, eight octets at a time, then zeros: a
/// fuzzer's input steers the generator, so its mutations become structural.
pub struct FromBytes<'a>(&'a [u8]);

impl<'a> FromBytes<'a> {
    /// Choices from `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        FromBytes(bytes)
    }
}

impl Entropy for FromBytes<'_> {
    fn next_u64(&mut self) -> u64 {
        let n = self.0.len().min(8);
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        let mut word = [0u8; 8];
        word[..n].copy_from_slice(head);
        u64::from_le_bytes(word)
    }
}

/// Random valid PDUs of every kind, every field within its spec limits and
/// often at an edge (empty, maximum length, 254 destinations, large TLVs).
pub struct Generator<E>(E);

impl Generator<Xorshift> {
    /// A deterministic generator.
    pub fn seeded(seed: u64) -> Self {
        Generator(Xorshift::new(seed))
    }
}

impl<E: Entropy> Generator<E> {
    /// A generator drawing from `entropy`.
    pub fn new(entropy: E) -> Self {
        Generator(entropy)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.bits() % n as u64) as usize
    }

    fn u8(&mut self) -> u8 {
        self.bits() as u8
    }

    /// A random `u32`.
    pub fn u32(&mut self) -> u32 {
        self.bits() as u32
    }

    /// A length in `0..=max`, often one of the edges.
    fn len(&mut self, max: usize) -> usize {
        match self.below(6) {
            0 => 0,
            1 => max,
            _ => self.below(max + 1),
        }
    }

    fn octets(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.u8()).collect()
    }

    fn c<const MAX: usize>(&mut self) -> COctetString<MAX> {
        let len = self.len(MAX - 1);
        let text: Vec<u8> = (0..len).map(|_| self.u8().max(1)).collect();
        COctetString::new(text).unwrap()
    }

    fn time(&mut self) -> SmppTime {
        if self.below(2) == 0 {
            SmppTime::empty()
        } else {
            let text: Vec<u8> = (0..16).map(|_| b'0' + self.below(10) as u8).collect();
            SmppTime::new(text).unwrap()
        }
    }

    fn short_message(&mut self) -> OctetString<254> {
        let len = self.len(254);
        OctetString::new(self.octets(len)).unwrap()
    }

    fn tlvs(&mut self) -> Tlvs {
        let mut tlvs = Tlvs::new();
        for _ in 0..self.below(5) {
            let tag = match self.below(4) {
                0 => tag::IYS_MESSAGE_TYPE + self.below(3) as u16,
                1 => tag::MESSAGE_PAYLOAD,
                _ => self.bits() as u16,
            };
            let len = if self.below(10) == 0 {
                self.below(2000)
            } else {
                self.len(40)
            };
            tlvs.push(Tlv::new(tag, self.octets(len)).unwrap());
        }
        tlvs
    }

    fn option<T>(&mut self, make: impl FnOnce(&mut Self) -> T) -> Option<T> {
        (self.below(4) != 0).then(|| make(self))
    }

    fn bind(&mut self) -> Bind {
        Bind {
            system_id: self.c(),
            password: self.c(),
            system_type: self.c(),
            interface_version: self.u8(),
            addr_ton: self.u8(),
            addr_npi: self.u8(),
            address_range: self.c(),
        }
    }

    fn bind_resp(&mut self) -> BindResp {
        BindResp {
            system_id: self.c(),
            tlvs: self.tlvs(),
        }
    }

    fn submit_sm(&mut self) -> SubmitSm {
        SubmitSm {
            service_type: self.c(),
            source_addr_ton: self.u8(),
            source_addr_npi: self.u8(),
            source_addr: self.c(),
            dest_addr_ton: self.u8(),
            dest_addr_npi: self.u8(),
            destination_addr: self.c(),
            esm_class: self.u8(),
            protocol_id: self.u8(),
            priority_flag: self.u8(),
            schedule_delivery_time: self.time(),
            validity_period: self.time(),
            registered_delivery: self.u8(),
            replace_if_present_flag: self.u8(),
            data_coding: self.u8(),
            sm_default_msg_id: self.u8(),
            short_message: self.short_message(),
            tlvs: self.tlvs(),
        }
    }

    fn message_id_resp(&mut self) -> SubmitSmResp {
        SubmitSmResp {
            message_id: self.c(),
            tlvs: if self.below(3) == 0 {
                self.tlvs()
            } else {
                Tlvs::new()
            },
        }
    }

    fn dest(&mut self) -> DestAddress {
        if self.below(2) == 0 {
            DestAddress::Sme {
                ton: self.u8(),
                npi: self.u8(),
                addr: self.c(),
            }
        } else {
            DestAddress::DistributionList(self.c())
        }
    }

    fn submit_multi(&mut self) -> SubmitMulti {
        let count = if self.below(20) == 0 {
            254
        } else {
            1 + self.below(6)
        };
        SubmitMulti {
            service_type: self.c(),
            source_addr_ton: self.u8(),
            source_addr_npi: self.u8(),
            source_addr: self.c(),
            dest_addresses: DestAddresses::new((0..count).map(|_| self.dest()).collect()).unwrap(),
            esm_class: self.u8(),
            protocol_id: self.u8(),
            priority_flag: self.u8(),
            schedule_delivery_time: self.time(),
            validity_period: self.time(),
            registered_delivery: self.u8(),
            replace_if_present_flag: self.u8(),
            data_coding: self.u8(),
            sm_default_msg_id: self.u8(),
            short_message: self.short_message(),
            tlvs: self.tlvs(),
        }
    }

    fn submit_multi_resp(&mut self) -> SubmitMultiResp {
        let count = if self.below(20) == 0 {
            255
        } else {
            self.below(6)
        };
        let unsuccess = (0..count)
            .map(|_| UnsuccessSme {
                ton: self.u8(),
                npi: self.u8(),
                addr: self.c(),
                error_status_code: self.u32(),
            })
            .collect();
        SubmitMultiResp {
            message_id: self.c(),
            unsuccess_smes: UnsuccessSmes::new(unsuccess).unwrap(),
            tlvs: if self.below(3) == 0 {
                self.tlvs()
            } else {
                Tlvs::new()
            },
        }
    }

    fn data_sm(&mut self) -> DataSm {
        DataSm {
            service_type: self.c(),
            source_addr_ton: self.u8(),
            source_addr_npi: self.u8(),
            source_addr: self.c(),
            dest_addr_ton: self.u8(),
            dest_addr_npi: self.u8(),
            destination_addr: self.c(),
            esm_class: self.u8(),
            registered_delivery: self.u8(),
            data_coding: self.u8(),
            tlvs: self.tlvs(),
        }
    }

    fn body(&mut self) -> Body {
        match self.below(27) {
            0 => Body::BindTransmitter(self.bind()),
            1 => Body::BindReceiver(self.bind()),
            2 => Body::BindTransceiver(self.bind()),
            3 => Body::BindTransmitterResp(self.option(Self::bind_resp)),
            4 => Body::BindReceiverResp(self.option(Self::bind_resp)),
            5 => Body::BindTransceiverResp(self.option(Self::bind_resp)),
            6 => Body::Outbind(Outbind {
                system_id: self.c(),
                password: self.c(),
            }),
            7 => Body::SubmitSm(self.submit_sm()),
            8 => Body::SubmitSmResp(self.option(Self::message_id_resp)),
            9 => Body::DeliverSm(self.submit_sm()),
            10 => Body::DeliverSmResp(self.option(Self::message_id_resp)),
            11 => Body::SubmitMulti(self.submit_multi()),
            12 => Body::SubmitMultiResp(self.option(Self::submit_multi_resp)),
            13 => Body::DataSm(self.data_sm()),
            14 => Body::DataSmResp(self.option(|r| DataSmResp {
                message_id: r.c(),
                tlvs: r.tlvs(),
            })),
            15 => Body::QuerySm(QuerySm {
                message_id: self.c(),
                source_addr_ton: self.u8(),
                source_addr_npi: self.u8(),
                source_addr: self.c(),
            }),
            16 => Body::QuerySmResp(self.option(|r| QuerySmResp {
                message_id: r.c(),
                final_date: r.time(),
                message_state: r.u8(),
                error_code: r.u8(),
            })),
            17 => Body::CancelSm(CancelSm {
                service_type: self.c(),
                message_id: self.c(),
                source_addr_ton: self.u8(),
                source_addr_npi: self.u8(),
                source_addr: self.c(),
                dest_addr_ton: self.u8(),
                dest_addr_npi: self.u8(),
                destination_addr: self.c(),
            }),
            18 => Body::ReplaceSm(ReplaceSm {
                message_id: self.c(),
                source_addr_ton: self.u8(),
                source_addr_npi: self.u8(),
                source_addr: self.c(),
                schedule_delivery_time: self.time(),
                validity_period: self.time(),
                registered_delivery: self.u8(),
                sm_default_msg_id: self.u8(),
                short_message: self.short_message(),
            }),
            19 => Body::AlertNotification(AlertNotification {
                source_addr_ton: self.u8(),
                source_addr_npi: self.u8(),
                source_addr: self.c(),
                esme_addr_ton: self.u8(),
                esme_addr_npi: self.u8(),
                esme_addr: self.c(),
                tlvs: self.tlvs(),
            }),
            20 => Body::GenericNack,
            21 => Body::Unbind,
            22 => Body::UnbindResp,
            23 => Body::CancelSmResp,
            24 => Body::ReplaceSmResp,
            25 => Body::EnquireLink,
            _ => Body::EnquireLinkResp,
        }
    }

    /// A PDU of any of the 27 kinds.
    pub fn pdu(&mut self) -> Pdu {
        Pdu {
            command_status: if self.below(2) == 0 { 0 } else { self.u32() },
            sequence_number: self.u32(),
            body: self.body(),
        }
    }
}
