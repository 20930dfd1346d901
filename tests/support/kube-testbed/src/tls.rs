//! Loading of PEM certificates and keys into rustls server and client configs.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to read PEM file {path}: {source}")]
    Pem {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("no certificate found in {0}")]
    NoCertificate(String),
    #[error("invalid TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

// NOTE: rustls 0.23.48 deprecates the ring provider for lacking
// post-quantum key exchange. It stays because kube's `rustls-tls` feature
// builds on ring in this workspace, and these links never leave 127.0.0.1.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |source| TlsError::Pem {
        path: path.display().to_string(),
        source,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate(path.display().to_string()));
    }
    Ok(certificates)
}

/// Builds a server config from a PEM certificate chain and private key,
/// offering HTTP/1.1 only.
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certificates = load_certificates(cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| TlsError::Pem {
        path: key_path.display().to_string(),
        source,
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certificates, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Builds a client config that trusts only the CA certificates in `ca_path`.
pub fn client_config(ca_path: &Path) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in load_certificates(ca_path)? {
        roots.add(certificate)?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
