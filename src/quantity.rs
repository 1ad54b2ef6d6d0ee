//! Resource quantities ("500m", "1.5", "16Gi", "1e3"): the simulated scheduler
//! compares them (CPU in millicores, everything else in whole units), and members
//! report sums of their nodes' quantities to the hub.

/// The value of a quantity in base units; `None` when it is not a quantity.
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    let end = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(end);
    let number: f64 = number.parse().ok()?;
    Some(number * multiplier(suffix)?)
}

fn multiplier(suffix: &str) -> Option<f64> {
    let binary = |power: i32| Some(1024f64.powi(power));
    let decimal = |exp: i32| Some(10f64.powi(exp));
    match suffix {
        "" => decimal(0),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        exp => {
            let e: i32 = exp.strip_prefix(['e', 'E'])?.parse().ok()?;
            decimal(e)
        }
    }
}

/// CPU in millicores, rounded up as Kubernetes rounds `MilliValue`.
pub fn millis(q: &str) -> Option<i64> {
    parse(q).map(|v| (v * 1000.0).ceil() as i64)
}

/// Whole units (bytes, pods), rounded up.
pub fn units(q: &str) -> Option<i64> {
    parse(q).map(|v| v.ceil() as i64)
}

/// The sum of quantities in canonical form: a whole number with the largest binary
/// suffix that divides it exactly ("48Gi", "12", "110"), or millis ("1500m").
/// Quantities that do not parse count as zero.
pub fn sum<'a>(quantities: impl IntoIterator<Item = &'a str>) -> String {
    let total: i128 = quantities
        .into_iter()
        .filter_map(parse)
        .map(|v| (v * 1000.0).round() as i128)
        .sum();
    if total % 1000 != 0 {
        return format!("{total}m");
    }
    let whole = total / 1000;
    for (suffix, power) in [
        ("Ei", 6),
        ("Pi", 5),
        ("Ti", 4),
        ("Gi", 3),
        ("Mi", 2),
        ("Ki", 1),
    ] {
        let unit = 1024i128.pow(power);
        if whole != 0 && whole % unit == 0 {
            return format!("{}{suffix}", whole / unit);
        }
    }
    whole.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_keep_the_largest_exact_suffix() {
        assert_eq!(sum(["16Gi", "16Gi", "16384Mi"]), "48Gi");
        assert_eq!(sum(["4", "4", "500m"]), "8500m");
        assert_eq!(sum(["110", "110"]), "220");
        assert_eq!(sum(["1Ki", "1"]), "1025");
        assert_eq!(sum(["junk"]), "0");
        assert_eq!(sum([]), "0");
    }

    #[test]
    fn quantities_in_every_notation() {
        assert_eq!(millis("500m"), Some(500));
        assert_eq!(millis("2"), Some(2000));
        assert_eq!(millis("0.1"), Some(100));
        assert_eq!(units("16Gi"), Some(16 << 30));
        assert_eq!(units("128Mi"), Some(128 << 20));
        assert_eq!(units("1G"), Some(1_000_000_000));
        assert_eq!(units("1e3"), Some(1000));
        assert_eq!(units("1E"), Some(1_000_000_000_000_000_000));
        assert_eq!(units("110"), Some(110));
        assert_eq!(parse("lots"), None);
        assert_eq!(parse("1Zi"), None);
    }
}
