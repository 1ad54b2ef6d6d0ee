//! ClusterIP and NodePort allocation, as kube-apiserver does for Services.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

/// Hands out addresses of one service CIDR; the network address and the first host
/// (kept for the `kubernetes` Service on real clusters) are never given out.
#[derive(Debug)]
pub struct IpRange {
    pub cidr: IpNet,
    used: BTreeSet<IpAddr>,
    cursor: u128,
}

impl IpRange {
    pub fn new(cidr: IpNet) -> Self {
        IpRange {
            cidr: cidr.trunc(),
            used: BTreeSet::new(),
            cursor: 2,
        }
    }

    fn size(&self) -> u128 {
        let host_bits = self.cidr.max_prefix_len() - self.cidr.prefix_len();
        // Large IPv6 ranges are capped: nobody allocates 2^64 services.
        1u128 << host_bits.min(24)
    }

    fn nth(&self, n: u128) -> IpAddr {
        match self.cidr.network() {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) + n as u32).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) + n).into()),
        }
    }

    /// The next free address, scanning from where the last allocation stopped so that
    /// a released address is not reused at once.
    pub fn allocate(&mut self) -> Option<IpAddr> {
        let size = self.size();
        let usable = size.saturating_sub(2);
        for step in 0..usable {
            let n = 2 + (self.cursor - 2 + step) % usable;
            let ip = self.nth(n);
            if !self.used.contains(&ip) && !self.is_broadcast(n) {
                self.used.insert(ip);
                self.cursor = n + 1;
                return Some(ip);
            }
        }
        None
    }

    fn is_broadcast(&self, n: u128) -> bool {
        self.cidr.network().is_ipv4() && n == self.size() - 1
    }

    /// Claims a specific address; the error says why it cannot be had.
    pub fn claim(&mut self, ip: IpAddr) -> Result<(), String> {
        if !self.cidr.contains(&ip) {
            return Err(format!(
                "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                self.cidr
            ));
        }
        if !self.used.insert(ip) {
            return Err(format!(
                "failed to allocate IP {ip}: provided IP is already allocated"
            ));
        }
        Ok(())
    }

    pub fn release(&mut self, ip: IpAddr) {
        self.used.remove(&ip);
    }
}

/// All service ranges of a cluster (one per family) and the NodePort range.
#[derive(Debug)]
pub struct Allocator {
    pub ranges: Vec<IpRange>,
    node_ports: BTreeSet<u16>,
}

pub const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;

impl Allocator {
    pub fn new(cidrs: &[IpNet]) -> Self {
        Allocator {
            ranges: cidrs.iter().copied().map(IpRange::new).collect(),
            node_ports: BTreeSet::new(),
        }
    }

    /// The families the cluster serves, primary first: "IPv4" or "IPv6".
    pub fn families(&self) -> Vec<&'static str> {
        self.ranges
            .iter()
            .map(|r| family_of(&r.cidr.network()))
            .collect()
    }

    pub fn range_mut(&mut self, family: &str) -> Option<&mut IpRange> {
        self.ranges
            .iter_mut()
            .find(|r| family_of(&r.cidr.network()) == family)
    }

    pub fn release(&mut self, ip: &str) {
        if let Ok(ip) = ip.parse::<IpAddr>() {
            for r in &mut self.ranges {
                r.release(ip);
            }
        }
    }

    pub fn allocate_node_port(&mut self) -> Option<u16> {
        let port = NODE_PORT_RANGE
            .clone()
            .find(|p| !self.node_ports.contains(p))?;
        self.node_ports.insert(port);
        Some(port)
    }

    pub fn claim_node_port(&mut self, port: u16) -> Result<(), String> {
        if !NODE_PORT_RANGE.contains(&port) {
            return Err(format!(
                "provided port is not in the valid range. The range of valid ports is {}-{}",
                NODE_PORT_RANGE.start(),
                NODE_PORT_RANGE.end()
            ));
        }
        if !self.node_ports.insert(port) {
            return Err("provided port is already allocated".into());
        }
        Ok(())
    }

    pub fn release_node_port(&mut self, port: u16) {
        self.node_ports.remove(&port);
    }
}

pub fn family_of(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_unique_addresses_inside_the_range() {
        let mut r = IpRange::new("10.96.0.0/29".parse().unwrap());
        let ips: Vec<_> = std::iter::from_fn(|| r.allocate()).collect();
        // .0 network, .1 reserved, .7 broadcast
        assert_eq!(ips.len(), 5);
        assert_eq!(ips[0].to_string(), "10.96.0.2");
        r.release(ips[0]);
        assert_eq!(r.allocate().unwrap().to_string(), "10.96.0.2");
        assert!(r.allocate().is_none());
    }

    #[test]
    fn claims_are_checked() {
        let mut r = IpRange::new("fd00::/108".parse().unwrap());
        r.claim("fd00::10".parse().unwrap()).unwrap();
        assert!(r
            .claim("fd00::10".parse().unwrap())
            .unwrap_err()
            .contains("already allocated"));
        assert!(r
            .claim("10.0.0.1".parse().unwrap())
            .unwrap_err()
            .contains("not in the valid range"));
    }

    #[test]
    fn node_ports_come_from_the_range() {
        let mut a = Allocator::new(&[]);
        assert_eq!(a.allocate_node_port(), Some(30000));
        a.claim_node_port(30001).unwrap();
        assert_eq!(a.allocate_node_port(), Some(30002));
        assert!(a.claim_node_port(80).is_err());
    }
}
