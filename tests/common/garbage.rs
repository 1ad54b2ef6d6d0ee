//! Random but repeatable garbage for robustness tests: JSON values of every type with
//! the edge cases validators trip on, valid objects mutated at random, nonsense JSON
//! patches.

use serde_json::{json, Value};

/// How many rounds, and the generator: `GARBAGE_ROUNDS` and `GARBAGE_SEED` override the
/// defaults, to explore further than a test run does.
pub fn rounds_and_rng(rounds: usize, seed: u64) -> (usize, Rng) {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    (
        var("GARBAGE_ROUNDS").map_or(rounds, |r| r as usize),
        // xorshift never leaves 0.
        Rng(var("GARBAGE_SEED").unwrap_or(seed) | 1),
    )
}

/// xorshift64*: enough randomness for mutations, and the same every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A value of a random JSON type, with the edge cases validators trip on.
pub fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 2 { 9 } else { 11 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(-1),
        3 => json!(u64::MAX),
        4 => json!(1.5e300),
        5 => json!(""),
        6 => json!("x".repeat(300)),
        7 => json!("ünïcödé\u{0}\u{1f600}"),
        8 => json!("80"),
        9 => Value::Array(
            (0..rng.below(3))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut map = serde_json::Map::new();
            for i in 0..rng.below(3) {
                map.insert(format!("k{i}"), random_value(rng, depth + 1));
            }
            Value::Object(map)
        }
    }
}

/// Every path to a node of `v`.
fn paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                at.push(k.clone());
                paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                at.push(i.to_string());
                paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(v: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(v, |v, k| match v {
        Value::Object(map) => map.get_mut(k).expect("path exists"),
        Value::Array(items) => &mut items[k.parse::<usize>().expect("index")],
        _ => unreachable!("paths only descend into containers"),
    })
}

/// One to three mutations; the name is kept so the request reaches its object.
pub fn mutate(rng: &mut Rng, base: &Value) -> Value {
    let mut v = base.clone();
    for _ in 0..1 + rng.below(3) {
        let mut all = Vec::new();
        paths(&v, &mut Vec::new(), &mut all);
        // Anything but the name (and metadata itself), so requests reach their object.
        all.retain(|p| match p.as_slice() {
            [] => false,
            [top] => top != "metadata",
            [top, field, ..] => !(top == "metadata" && field == "name"),
        });
        if all.is_empty() {
            break;
        }
        let path = all[rng.below(all.len())].clone();
        let (last, parent) = path.split_last().expect("non-empty");
        match rng.below(3) {
            0 => *node_mut(&mut v, &path) = random_value(rng, 0),
            1 => match node_mut(&mut v, parent) {
                Value::Object(map) => {
                    map.remove(last);
                }
                Value::Array(items) => {
                    items.remove(last.parse::<usize>().expect("index"));
                }
                _ => {}
            },
            _ => {
                if let Value::Object(map) = node_mut(&mut v, parent) {
                    // Strategic merge patch directives among the new keys.
                    let key = [
                        "extra",
                        "$patch",
                        "$retainKeys",
                        "$setElementOrder/ports",
                        "$deleteFromPrimitiveList/finalizers",
                        "x-kubernetes-weird",
                    ][rng.below(6)];
                    let value = match (key, rng.below(2)) {
                        ("$patch", 0) => json!(["replace", "delete", "merge"][rng.below(3)]),
                        ("$retainKeys", 0) => json!(["name", "port"]),
                        _ => random_value(rng, 0),
                    };
                    map.insert(key.to_string(), value);
                }
            }
        }
    }
    v
}

/// A JSON patch of random operations on random paths, some of them nonsense.
pub fn random_json_patch(rng: &mut Rng, base: &Value) -> Value {
    let mut all = Vec::new();
    paths(base, &mut Vec::new(), &mut all);
    let ops = (0..1 + rng.below(3))
        .map(|_| {
            let path = all[rng.below(all.len())].clone();
            let pointer = if rng.below(5) == 0 {
                "/no/such/~2path/-".to_string()
            } else {
                path.iter().map(|p| format!("/{p}")).collect::<String>()
            };
            let op = ["add", "remove", "replace", "move", "copy", "test", "bogus"][rng.below(7)];
            let from = all[rng.below(all.len())]
                .iter()
                .map(|p| format!("/{p}"))
                .collect::<String>();
            json!({"op": op, "path": pointer, "from": from, "value": random_value(rng, 0)})
        })
        .collect();
    Value::Array(ops)
}

/// A JSON document sent as a raw request (see [`super::raw`]).
pub async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Value,
) -> (u16, Value) {
    let body = serde_json::to_vec(body).unwrap();
    super::raw(client, method, path, content_type, body).await
}
