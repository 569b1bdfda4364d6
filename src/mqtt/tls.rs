//! rustls client configuration from PEM files, with the `ring` provider (no C toolchain needed
//! when cross-compiling, unlike rustls' default aws-lc-rs).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::MqttError;

/// Trusts exactly the CAs in `ca_file`; presents `client` (certificate chain, key) if given.
/// The broker's name is verified against its certificate by rumqttc (the host of the URL).
pub fn client_config(
    ca_file: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, MqttError> {
    let tls_err = |path: &Path, reason: String| MqttError::Tls {
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    let cas =
        CertificateDer::pem_file_iter(ca_file).map_err(|e| tls_err(ca_file, e.to_string()))?;
    for ca in cas {
        let ca = ca.map_err(|e| tls_err(ca_file, e.to_string()))?;
        roots
            .add(ca)
            .map_err(|e| tls_err(ca_file, format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(tls_err(ca_file, "no PEM certificate in the file".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(ca_file, e.to_string()))?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert_file, key_file)) => {
            let chain = CertificateDer::pem_file_iter(cert_file)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| tls_err(cert_file, e.to_string()))?;
            if chain.is_empty() {
                return Err(tls_err(cert_file, "no PEM certificate in the file".into()));
            }
            let key = PrivateKeyDer::from_pem_file(key_file)
                .map_err(|e| tls_err(key_file, format!("no usable private key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls_err(key_file, format!("does not match cert_file: {e}")))?
        }
    };
    Ok(Arc::new(config))
}
