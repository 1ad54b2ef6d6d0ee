//! The hashes kube-controller-manager puts into names and labels
//! (`pod-template-hash`, `controller-revision-hash`), and stable fake digests.

use serde_json::Value;

/// The alphabet of `rand.SafeEncodeString`: no vowels, no look-alikes.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn fnv32a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5, |h: u32, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn fnv64a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h: u64, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `rand.SafeEncodeString`: every character mapped into [`ALPHANUMS`].
fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// The hash of a pod template, as `controller.ComputeHash` builds it: FNV-32a of
/// the template and the collision count, its decimal form safe-encoded. Go hashes
/// a spew dump of the struct; here the template's JSON with sorted keys, so the
/// value is stable but not the one a real cluster would print.
pub fn template_hash(template: &Value, collision_count: Option<u32>) -> String {
    let mut bytes = canonical(template).into_bytes();
    if let Some(c) = collision_count {
        bytes.extend(c.to_le_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// JSON with object keys sorted at every level.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::from(k.as_str()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// 64 hex digits derived from `s`: a stand-in for a sha256 digest that stays the
/// same for the same input, so reports built from it do not change between runs.
pub fn digest(s: &str) -> String {
    (0u8..4)
        .map(|i| {
            let mut data = vec![i];
            data.extend(s.as_bytes());
            format!("{:016x}", fnv64a(&data))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fnv_matches_the_reference_values() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv64a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn template_hash_is_stable_and_follows_content_not_key_order() {
        let a = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        let b = json!({"spec": {"containers": [{"image": "nginx", "name": "c"}]}, "metadata": {"labels": {"app": "web"}}});
        let h = template_hash(&a, None);
        assert_eq!(h, template_hash(&b, None));
        assert!(
            h.len() <= 10 && h.bytes().all(|c| ALPHANUMS.contains(&c)),
            "{h}"
        );
        let changed = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}});
        assert_ne!(h, template_hash(&changed, None));
        assert_ne!(h, template_hash(&a, Some(1)));
    }

    #[test]
    fn digests_are_hex_and_stable() {
        let d = digest("docker.io/library/nginx:1.25");
        assert_eq!(d.len(), 64);
        assert!(d.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(d, digest("docker.io/library/nginx:1.25"));
        assert_ne!(d, digest("docker.io/library/nginx:1.26"));
    }
}
