//! The QUIC plane's certificate: from PEM files or generated at start, with
//! the SHA-256 fingerprint clients pin.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::TransportError;

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct TlsIdentity {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl TlsIdentity {
    /// A fresh self-signed certificate for `names` (DNS names or IP
    /// addresses).
    pub fn generate(names: &[&str]) -> Result<TlsIdentity, TransportError> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TransportError::Tls(format!("generating a certificate: {e}")))?;
        Ok(TlsIdentity {
            certs: vec![cert.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()),
        })
    }

    /// The chain from a PEM certificate file and the key from a PEM key file.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsIdentity, TransportError> {
        let pem = |path: &Path, e: &dyn std::fmt::Display| {
            TransportError::Tls(format!("{}: {e}", path.display()))
        };
        let certs = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem(cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem(cert, &e))?;
        if certs.is_empty() {
            return Err(pem(cert, &"no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem(key, &e))?;
        Ok(TlsIdentity { certs, key })
    }

    /// The chain, leaf first.
    pub fn certs(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// SHA-256 of the leaf certificate's DER bytes, as 64 lowercase hex
    /// digits: what the readiness line prints and clients pin.
    pub fn sha256_hex(&self) -> String {
        cert_sha256_hex(&self.certs[0])
    }
}

/// SHA-256 of a certificate's DER bytes, lowercase hex.
pub fn cert_sha256_hex(cert: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
