//! The TLS client configuration wasmfn's own connections share (functions' outbound HTTPS,
//! PostgreSQL): rustls with the ring provider, Mozilla's roots (webpki-roots) and, optionally,
//! CA certificates the operator adds.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// A client configuration trusting Mozilla's roots and the certificates of `extra_ca_pem` (a
/// PEM bundle); the error says what is wrong with the bundle.
pub fn client_config(extra_ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(pem) = extra_ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("the CA bundle is not valid PEM: {e}"))?;
            roots.add(cert).map_err(|e| format!("a CA certificate is not usable: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("the CA bundle holds no certificate".into());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
