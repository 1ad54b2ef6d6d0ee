//! Name rules of Kubernetes objects (DNS-1123 subdomains and labels, DNS-1035 labels).

/// The rule a kind's names follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// Lowercase alphanumerics, '-' and '.', at most 253, alphanumeric at both ends.
    Subdomain,
    /// Lowercase alphanumerics and '-', at most 63, alphanumeric at both ends.
    Label,
    /// A DNS-1123 label that starts with a letter (Services).
    Dns1035,
    /// Anything without '/' or '%' and not "." or ".." (RBAC objects and the like).
    PathSegment,
}

pub fn rule_for(group: &str, resource: &str) -> NameRule {
    match (group, resource) {
        ("", "namespaces") => NameRule::Label,
        ("", "services") => NameRule::Dns1035,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

/// Checks a name; the error is the message kube-apiserver gives after `metadata.name: Invalid value: "<name>": `.
pub fn check(rule: NameRule, name: &str) -> Result<(), String> {
    match rule {
        NameRule::Subdomain => check_subdomain(name),
        NameRule::Label => check_label(name, false),
        NameRule::Dns1035 => check_label(name, true),
        NameRule::PathSegment => check_path_segment(name),
    }
}

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn ends_ok(s: &str) -> bool {
    s.chars().next().is_some_and(alnum) && s.chars().last().is_some_and(alnum)
}

fn check_label(name: &str, dns1035: bool) -> Result<(), String> {
    if name.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    let chars_ok = name.chars().all(|c| alnum(c) || c == '-');
    let start_ok = !dns1035 || name.starts_with(|c: char| c.is_ascii_lowercase());
    if chars_ok && ends_ok(name) && start_ok {
        Ok(())
    } else if dns1035 {
        Err(DNS1035_MSG.into())
    } else {
        Err(LABEL_MSG.into())
    }
}

fn check_subdomain(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    let ok = name
        .split('.')
        .all(|part| ends_ok(part) && part.chars().all(|c| alnum(c) || c == '-'));
    if ok {
        Ok(())
    } else {
        Err(SUBDOMAIN_MSG.into())
    }
}

fn check_path_segment(name: &str) -> Result<(), String> {
    if name == "." || name == ".." {
        return Err(format!("may not be '{name}'"));
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            return Err(format!("may not contain '{bad}'"));
        }
    }
    Ok(())
}

/// The random suffix kube-apiserver appends to `generateName`: five characters from
/// an alphabet without vowels or look-alikes.
pub fn generate_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_their_kind_rule() {
        assert!(check(NameRule::Subdomain, "web.example-1").is_ok());
        assert!(check(NameRule::Subdomain, "Web").is_err());
        assert!(check(NameRule::Subdomain, "-web").is_err());
        assert!(check(NameRule::Subdomain, &"a".repeat(254)).is_err());
        assert!(check(NameRule::Label, "a.b").is_err());
        assert!(check(NameRule::Dns1035, "1web").is_err());
        assert!(check(NameRule::Dns1035, "web-1").is_ok());
        assert_eq!(
            check(NameRule::Label, &"a".repeat(64)).unwrap_err(),
            "must be no more than 63 characters"
        );
        assert!(check(NameRule::PathSegment, "system:admin").is_ok());
        assert!(check(NameRule::PathSegment, "a/b").is_err());
    }

    #[test]
    fn generated_suffixes_are_valid_label_characters() {
        let s = generate_suffix();
        assert_eq!(s.len(), 5);
        assert!(check(NameRule::Label, &format!("web-{s}")).is_ok());
    }
}
