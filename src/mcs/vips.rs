//! Clusterset-wide VIPs (`clusterset hub --clusterset-ip-cidr`): one IP per family
//! for each ClusterSetIP import, the same in every member, stable for the import's
//! life, never handed out twice, released when the import goes.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::apiserver::ipalloc::{family_of, Allocator};
use crate::runtime::ServiceKey;

pub struct ClustersetIps {
    alloc: Allocator,
    held: HashMap<ServiceKey, Vec<String>>,
}

impl ClustersetIps {
    pub fn new(cidrs: &[IpNet]) -> Self {
        ClustersetIps {
            alloc: Allocator::new(cidrs),
            held: HashMap::new(),
        }
    }

    /// Takes back the IPs an import already carries (after a restart). IPs outside the
    /// ranges, or already held by another import, are not taken.
    pub fn restore(&mut self, key: &ServiceKey, ips: &[String]) {
        let mut kept = Vec::new();
        for ip in ips {
            let Ok(addr) = ip.parse::<IpAddr>() else {
                continue;
            };
            if let Some(range) = self.alloc.range_mut(family_of(&addr)) {
                if range.claim(addr).is_ok() {
                    kept.push(ip.clone());
                }
            }
        }
        if !kept.is_empty() {
            self.held.entry(key.clone()).or_default().extend(kept);
        }
    }

    /// The import's IPs, one per family in `families` order: the ones it holds, new
    /// ones for families it lacks; those of families it dropped are released.
    pub fn assign(&mut self, key: &ServiceKey, families: &[String]) -> Result<Vec<String>, String> {
        let current = self.held.remove(key).unwrap_or_default();
        let family = |ip: &String| ip.parse::<IpAddr>().map(|a| family_of(&a)).unwrap_or("");
        let mut out = Vec::new();
        let mut failure = None;
        for f in families {
            if let Some(ip) = current.iter().find(|ip| family(ip) == f) {
                out.push(ip.clone());
                continue;
            }
            match self.alloc.range_mut(f).and_then(|r| r.allocate()) {
                Some(ip) => out.push(ip.to_string()),
                None => {
                    failure = Some(format!("no clusterset IP left for family {f} (or no --clusterset-ip-cidr of that family)"));
                    break;
                }
            }
        }
        if let Some(why) = failure {
            // Nothing changes on failure: the import keeps the IPs it holds.
            for ip in out.iter().filter(|ip| !current.contains(ip)) {
                self.alloc.release(ip);
            }
            self.held.insert(key.clone(), current);
            return Err(why);
        }
        for ip in current.iter().filter(|ip| !out.contains(ip)) {
            self.alloc.release(ip);
        }
        self.held.insert(key.clone(), out.clone());
        Ok(out)
    }

    pub fn release(&mut self, key: &ServiceKey) {
        for ip in self.held.remove(key).unwrap_or_default() {
            self.alloc.release(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> ServiceKey {
        ServiceKey::new("demo", n)
    }

    fn v4() -> Vec<String> {
        vec!["IPv4".into()]
    }

    #[test]
    fn stable_unique_and_released() {
        // A /29 hands out .2 to .6 (.1 is left out as kube leaves it, and the broadcast).
        let mut ips = ClustersetIps::new(&["10.200.0.0/29".parse().unwrap()]);
        let a = ips.assign(&key("a"), &v4()).unwrap();
        assert_eq!(a, vec!["10.200.0.2"]);
        assert_eq!(
            ips.assign(&key("a"), &v4()).unwrap(),
            a,
            "stable for the import's life"
        );
        let mut seen: std::collections::BTreeSet<Vec<String>> = [a.clone()].into();
        for n in ["b", "c", "d", "e"] {
            assert!(
                seen.insert(ips.assign(&key(n), &v4()).unwrap()),
                "never handed out twice"
            );
        }
        let err = ips.assign(&key("f"), &v4()).unwrap_err();
        assert!(err.contains("no clusterset IP left"), "{err}");
        ips.release(&key("a"));
        assert_eq!(
            ips.assign(&key("f"), &v4()).unwrap(),
            a,
            "released on unexport"
        );
    }

    #[test]
    fn dual_stack_in_family_order_and_restore_after_restart() {
        let cidrs = [
            "10.200.0.0/24".parse().unwrap(),
            "fd00:200::/112".parse().unwrap(),
        ];
        let mut ips = ClustersetIps::new(&cidrs);
        let dual = ips
            .assign(&key("a"), &["IPv6".into(), "IPv4".into()])
            .unwrap();
        assert!(dual[0].contains(':') && !dual[1].contains(':'), "{dual:?}");
        let mut restarted = ClustersetIps::new(&cidrs);
        restarted.restore(&key("a"), &dual);
        let b = restarted
            .assign(&key("b"), &["IPv6".into(), "IPv4".into()])
            .unwrap();
        assert!(
            b.iter().all(|ip| !dual.contains(ip)),
            "restored IPs are not handed out again"
        );
        assert_eq!(
            restarted.assign(&key("a"), &["IPv4".into()]).unwrap(),
            vec![dual[1].clone()]
        );
        let v6_only = ClustersetIps::new(&[cidrs[1]]).assign(&key("x"), &v4());
        assert!(v6_only.is_err());
        // A family that cannot be had leaves the import with the IPs it holds.
        let mut v4_only = ClustersetIps::new(&[cidrs[0]]);
        let held = v4_only.assign(&key("a"), &v4()).unwrap();
        assert!(v4_only
            .assign(&key("a"), &["IPv4".into(), "IPv6".into()])
            .is_err());
        assert_eq!(
            v4_only.assign(&key("a"), &v4()).unwrap(),
            held,
            "still stable after a failure"
        );
    }
}
