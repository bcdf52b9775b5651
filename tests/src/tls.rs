//! A CA made for each run, and a server certificate for 127.0.0.1 and localhost signed
//! by it. Every client in the tests verifies against this CA; nothing skips TLS checks.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// The CA and one server certificate, written as PEM files.
pub struct TestCa {
    /// The CA certificate (PEM text).
    pub ca_pem: String,
    /// `ca.pem`.
    pub ca_file: PathBuf,
    /// `server.pem`: valid for 127.0.0.1, ::1 and localhost.
    pub cert_file: PathBuf,
    /// `server-key.pem`.
    pub key_file: PathBuf,
}

impl TestCa {
    /// Makes a fresh CA and server certificate in `dir`.
    pub fn create(dir: &Path) -> Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "testbed CA");
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse()?));
        params
            .subject_alt_names
            .push(SanType::IpAddress("::1".parse()?));
        params
            .distinguished_name
            .push(DnType::CommonName, "openbao testbed node");
        let server = params.signed_by(&server_key, &issuer)?;

        let ca = Self {
            ca_pem: ca_cert.pem(),
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server-key.pem"),
        };
        std::fs::write(&ca.ca_file, &ca.ca_pem)?;
        std::fs::write(&ca.cert_file, server.pem())?;
        std::fs::write(&ca.key_file, server_key.serialize_pem())?;
        Ok(ca)
    }
}
