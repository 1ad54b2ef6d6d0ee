//! Certificates and tokens for a local clusterset: one CA per directory (kept, so
//! kubeconfigs stay valid across restarts), a server certificate per API server, and
//! random bearer tokens.

use std::path::Path;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A certificate authority whose key signs the API servers' certificates.
pub struct Ca {
    pub cert_pem: String,
    key: KeyPair,
}

/// A certificate and its private key, PEM-encoded.
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "clusterset-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl Ca {
    /// The CA kept in `dir` (`ca.crt`, `ca.key`), created on first use.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Ca> {
        let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        if cert_path.exists() && key_path.exists() {
            let cert_pem = std::fs::read_to_string(&cert_path)?;
            let key_pem = std::fs::read_to_string(&key_path)?;
            let key = KeyPair::from_pem(&key_pem)
                .with_context(|| format!("{} is not a private key", key_path.display()))?;
            return Ok(Ca { cert_pem, key });
        }
        let key = KeyPair::generate()?;
        let cert = ca_params().self_signed(&key)?;
        std::fs::create_dir_all(dir)?;
        crate::fsutil::write_private(&key_path, key.serialize_pem().as_bytes())?;
        crate::fsutil::write_atomic(&cert_path, cert.pem().as_bytes())?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key,
        })
    }

    /// A serving certificate for `hosts` (DNS names or IP addresses).
    pub fn issue_server(&self, name: &str, hosts: &[&str]) -> anyhow::Result<Pair> {
        let mut params =
            CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let issuer = Issuer::new(ca_params(), &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A random bearer token: 32 bytes, URL-safe base64.
pub fn random_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the OS has randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The token kept in `path`, created on first use.
pub fn load_or_create_token(path: &Path) -> anyhow::Result<String> {
    if let Ok(t) = std::fs::read_to_string(path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let token = random_token();
    crate::fsutil::write_private(path, token.as_bytes())?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_kept_and_signs_server_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(dir.path()).unwrap();
        let again = Ca::load_or_create(dir.path()).unwrap();
        assert_eq!(ca.cert_pem, again.cert_pem, "a second start reuses the CA");
        let pair = again
            .issue_server("hub", &["127.0.0.1", "localhost"])
            .unwrap();
        assert!(pair.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pair.key_pem.contains("PRIVATE KEY"));
    }

    #[test]
    fn tokens_are_random_and_kept() {
        assert_ne!(random_token(), random_token());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        assert_eq!(
            load_or_create_token(&path).unwrap(),
            load_or_create_token(&path).unwrap()
        );
    }
}
