//! An in-process authoritative DNS server (hickory-server) on 127.0.0.1, UDP and TCP on one port,
//! serving the records a test gives, so the DNS check runs against real DNS messages offline.
//!
//! Every name that owns an NS record becomes the apex of a zone of its own (where NS answers are
//! authoritative, not a referral); every other record lives in the most specific enclosing zone,
//! the root zone at worst. Unknown names get NXDOMAIN, known names without the asked type an
//! empty NOERROR answer.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

/// The TTL of records added without one (CNAME, NS, PTR, SOA).
pub const DEFAULT_TTL: u32 = 300;

/// The records a [`DnsServer`] serves, built up fluently. Names are absolute (a trailing dot is
/// optional).
#[derive(Debug, Clone, Default)]
pub struct DnsRecords {
    records: Vec<Record>,
}

impl DnsRecords {
    /// No records yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// An A record.
    pub fn a(self, name: &str, address: Ipv4Addr, ttl: u32) -> Self {
        self.with(name, ttl, RData::A(A(address)))
    }

    /// An AAAA record.
    pub fn aaaa(self, name: &str, address: Ipv6Addr, ttl: u32) -> Self {
        self.with(name, ttl, RData::AAAA(AAAA(address)))
    }

    /// A CNAME record (`name` is an alias of `target`).
    pub fn cname(self, name: &str, target: &str) -> Self {
        self.with(name, DEFAULT_TTL, RData::CNAME(CNAME(fqdn(target))))
    }

    /// An NS record; `name` becomes the apex of a zone of its own.
    pub fn ns(self, name: &str, nameserver: &str) -> Self {
        self.with(name, DEFAULT_TTL, RData::NS(NS(fqdn(nameserver))))
    }

    /// A PTR record for `ip` (under `in-addr.arpa` or `ip6.arpa`).
    pub fn ptr(mut self, ip: impl Into<IpAddr>, target: &str) -> Self {
        let mut owner = Name::from(ip.into());
        owner.set_fqdn(true);
        self.records.push(Record::from_rdata(
            owner,
            DEFAULT_TTL,
            RData::PTR(PTR(fqdn(target))),
        ));
        self
    }

    fn with(mut self, name: &str, ttl: u32, rdata: RData) -> Self {
        self.records
            .push(Record::from_rdata(fqdn(name), ttl, rdata));
        self
    }
}

fn fqdn(name: &str) -> Name {
    let mut name =
        Name::from_ascii(name).unwrap_or_else(|e| panic!("invalid DNS name {name:?}: {e}"));
    name.set_fqdn(true);
    name
}

/// A running server; stops (its tasks are aborted) when dropped.
pub struct DnsServer {
    address: SocketAddr,
    // Owns the listener tasks: dropping it aborts them.
    _server: Server<Catalog>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    /// Starts serving `records` on 127.0.0.1, UDP and TCP on the same free port.
    pub async fn start(records: DnsRecords) -> Self {
        let mut server = Server::new(catalog(records));
        let (udp, tcp) = bind_pair().await;
        let address = udp.local_addr().expect("address");
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64);
        Self {
            address,
            _server: server,
        }
    }

    /// Where it listens (UDP and TCP).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..64 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
        let address = udp.local_addr().expect("address");
        if let Ok(tcp) = TcpListener::bind(address).await {
            return (udp, tcp);
        }
    }
    panic!("no free port for both UDP and TCP on 127.0.0.1");
}

/// One zone per NS owner name plus the root zone, each record in its most specific zone.
fn catalog(records: DnsRecords) -> Catalog {
    let mut apexes: Vec<Name> = vec![Name::root()];
    for record in &records.records {
        if matches!(record.data, RData::NS(_)) && !apexes.contains(&record.name) {
            apexes.push(record.name.clone());
        }
    }
    let mut zones: BTreeMap<usize, InMemoryZoneHandler> = BTreeMap::new();
    for record in records.records {
        let index = apexes
            .iter()
            .enumerate()
            .filter(|(_, apex)| apex.zone_of(&record.name))
            .max_by_key(|(_, apex)| apex.num_labels())
            .map_or(0, |(index, _)| index);
        let zone = zones
            .entry(index)
            .or_insert_with(|| new_zone(apexes[index].clone()));
        assert!(
            zone.upsert_mut(record.clone(), 1),
            "record not accepted: {record}"
        );
    }
    let mut catalog = Catalog::new();
    for (index, apex) in apexes.into_iter().enumerate() {
        let zone = zones
            .remove(&index)
            .unwrap_or_else(|| new_zone(apex.clone()));
        let handler: Arc<dyn ZoneHandler> = Arc::new(zone);
        catalog.upsert(LowerName::new(&apex), vec![handler]);
    }
    catalog
}

fn new_zone(apex: Name) -> InMemoryZoneHandler {
    let mut zone: InMemoryZoneHandler =
        InMemoryZoneHandler::empty(apex.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let soa = SOA::new(
        fqdn("ns.test"),
        fqdn("hostmaster.test"),
        1,
        3600,
        600,
        86_400,
        DEFAULT_TTL,
    );
    assert!(zone.upsert_mut(Record::from_rdata(apex, DEFAULT_TTL, RData::SOA(soa)), 1));
    zone
}
