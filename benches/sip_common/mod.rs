//! What the SIP benches share: an INVITE like SIPp's, and the message
//! handler with a store of the demo's fixed records, no sockets.

use std::time::Duration;

use iys_gate::consent::{Brand, ConsentTime};
use iys_gate::gate::GateContext;
use iys_gate::observe::audit::Audit;
use iys_gate::observe::metrics::DecisionCounters;
use iys_gate::policy::Policy;
use iys_gate::sip::config::SipConfig;
use iys_gate::sip::gating::Trunks;
use iys_gate::sip::metrics::SipMetrics;
use iys_gate::sip::proxy::cache::TxCache;
use iys_gate::sip::proxy::core::Core;
use iys_gate::store::SnapshotBuilder;
use iys_gate::sync::StoreHandle;

/// Distinct INVITEs (own Call-ID and branch each).
pub const N: usize = 4096;

/// An INVITE to `to`, the `i`th.
pub fn invite(to: &str, i: usize) -> Vec<u8> {
    let body = "v=0\r\no=user1 53655765 2353687637 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    format!(
        "INVITE sip:{to}@198.51.100.5:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{i}-1-0\r\n\
         From: sipp <sip:05320000000@192.0.2.10:5060>;tag={i}SIPpTag001\r\n\
         To: <sip:{to}@198.51.100.5:5060>\r\n\
         Call-ID: {i}-4242@192.0.2.10\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: sip:sipp@192.0.2.10:5060\r\n\
         Max-Forwards: 70\r\n\
         X-IYS-Message-Type: 11\r\n\
         Subject: Performance Test\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The handler: trunk 192.0.2.0/24, next hop 198.51.100.5, nothing remembered.
pub fn core() -> Core {
    core_with(TxCache::new(Duration::ZERO, 1))
}

/// The handler with transaction cache `cache`.
pub fn core_with(cache: TxCache) -> Core {
    let brand = Brand::new(700001, 100001);
    let mut b = SnapshotBuilder::new();
    b.add_brand(brand);
    for r in iys_gate::serve::demo_fixed_records(brand) {
        b.add(&r);
    }
    let (snapshot, _) = b.build(ConsentTime::now());
    let store = StoreHandle::new();
    store.publish(snapshot);
    let cfg: SipConfig = toml::from_str(
        "listen_udp = \"127.0.0.1:5060\"\nnext_hop = \"198.51.100.5:5060\"\n\
         [[trunks]]\nname = \"t\"\nnetworks = [\"192.0.2.0/24\"]\niys_code = 700001\nbrand_code = 100001\n",
    )
    .unwrap();
    Core {
        trunks: Trunks::new(&cfg.trunks),
        ctx: GateContext {
            store,
            policy: Policy::default(),
            decisions: DecisionCounters::new(),
            audit: Audit::start(None, false).unwrap(),
            drain: Default::default(),
            reports: Default::default(),
        },
        metrics: SipMetrics::new(),
        default_hop: Some("198.51.100.5:5060".parse().unwrap()),
        trunk_hops: Default::default(),
        via_host: "203.0.113.1".into(),
        via_ports: (5060, 5060),
        cache,
        cfg,
    }
}
