//! TLS for every connection fleet makes: the HTTP clients of both control planes and Coder's
//! WebSockets. rustls with the platform's verifier (rustls-platform-verifier: the system's
//! root certificates and WebPKI, what reqwest uses by itself), with one difference: the
//! system's roots are read once per process, at the first TLS handshake, and shared by every
//! client. Each client reading them when it was built cost ~370 kB of memory apiece (three
//! clients with both planes configured, a fourth for a WebSocket) and the time to parse the
//! system's bundle, also for a server that never makes a TLS connection (bench/README.md).

use std::sync::{Arc, OnceLock};

use rustls::{
    ClientConfig, DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};

/// A client configuration for TLS 1.2 and 1.3 that verifies servers against the system's
/// roots ([`PlatformRoots`]) and offers `alpn` (e.g. `h2`, `http/1.1`).
pub(crate) fn client_config(alpn: &[&[u8]]) -> Result<ClientConfig, rustls::Error> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        // "dangerous" is rustls's name for any verifier of one's own; this one is the
        // platform's, only read later (see PlatformRoots).
        .dangerous()
        .with_custom_certificate_verifier(verifier())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

fn verifier() -> Arc<PlatformRoots> {
    static VERIFIER: OnceLock<Arc<PlatformRoots>> = OnceLock::new();
    VERIFIER
        .get_or_init(|| {
            Arc::new(PlatformRoots {
                provider: provider(),
                verifier: OnceLock::new(),
            })
        })
        .clone()
}

/// rustls-platform-verifier's `Verifier`, built at the first server certificate to verify.
/// Everything a handshake asks before that (the signature schemes offered, the handshake
/// signatures) depends only on the crypto provider, as it does in that verifier.
#[derive(Debug)]
struct PlatformRoots {
    provider: Arc<CryptoProvider>,
    verifier: OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>>,
}

impl ServerCertVerifier for PlatformRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verifier = self
            .verifier
            .get_or_init(|| rustls_platform_verifier::Verifier::new(self.provider.clone()));
        match verifier {
            Ok(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            // Without roots no certificate verifies: said as a certificate that did not, so
            // that it is not retried and its advice (SSL_CERT_FILE) is given.
            Err(e) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(
                    std::io::Error::other(format!(
                        "the system's root certificates could not be read: {e}"
                    )),
                ))),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
