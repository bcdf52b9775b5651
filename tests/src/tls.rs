//! A CA made for each run, a server certificate for 127.0.0.1 and localhost, and one
//! certificate per node naming the node's own address, all signed by it. Every client in
//! the tests verifies against this CA; nothing skips TLS checks.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

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
    issuer: Issuer<'static, KeyPair>,
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
        let ca = Self {
            ca_pem: ca_cert.pem(),
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server-key.pem"),
            issuer: Issuer::new(ca_params, ca_key),
        };
        std::fs::write(&ca.ca_file, &ca.ca_pem)?;
        ca.issue(
            &["127.0.0.1".parse()?, "::1".parse()?],
            &ca.cert_file,
            &ca.key_file,
        )?;
        Ok(ca)
    }

    /// A certificate for a node at `ip` (its only name, as in production, where a node's
    /// certificate names its private IP), written to `cert` and `key`.
    pub fn issue_for(&self, ip: IpAddr, cert: &Path, key: &Path) -> Result<()> {
        self.issue(&[ip], cert, key)
    }

    fn issue(&self, ips: &[IpAddr], cert: &Path, key: &Path) -> Result<()> {
        let server_key = KeyPair::generate()?;
        let loopback = ips.contains(&IpAddr::from([127, 0, 0, 1]));
        let names = if loopback {
            vec!["localhost".to_owned()]
        } else {
            Vec::new()
        };
        let mut params = CertificateParams::new(names)?;
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params
            .distinguished_name
            .push(DnType::CommonName, "openbao testbed node");
        let server = params.signed_by(&server_key, &self.issuer)?;
        std::fs::write(cert, server.pem())?;
        std::fs::write(key, server_key.serialize_pem())?;
        Ok(())
    }
}
