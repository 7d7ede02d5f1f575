//! HTTPS: fleet verifies a server's certificate against the system's root certificates (read
//! once per process, at the first handshake: sdk/tls.rs), and `SSL_CERT_FILE` names a private
//! CA, as for other tools built on the system's roots. The server is a TLS front on loopback
//! passing bytes to the simulator, with the test certificates of `tests/fixtures/tls` (made with
//! openssl: a P-256 CA, a certificate it signed for 127.0.0.1 and localhost, and another CA
//! that signed nothing; valid until 2126; for tests only). Each run names its roots with
//! `SSL_CERT_FILE`, so no test depends on the machine's own.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{cli::fleet, sim::sim};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

/// TLS on 127.0.0.1 with the fixture certificate, each connection's bytes passed to `backend`:
/// the port, and how many handshakes completed.
async fn tls_front(backend: SocketAddr) -> (u16, Arc<AtomicUsize>) {
    let certs = CertificateDer::pem_file_iter(format!("{FIXTURES}/server.pem"))
        .expect("the fixture certificate")
        .collect::<Result<Vec<_>, _>>()
        .expect("the fixture certificate parses");
    let key = PrivateKeyDer::from_pem_file(format!("{FIXTURES}/server.key")).expect("its key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("a server configuration");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counted = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut back) = TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut back).await;
                }
            });
        }
    });
    (port, handshakes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_no_trusted_root_signed_is_refused_before_any_request() {
    let sim = sim(100.0).await;
    let (port, handshakes) = tls_front(sim.addr()).await;
    let run = fleet(&["coder", "list"])
        .coder(
            &format!("https://127.0.0.1:{port}"),
            "sim-coder-session-token",
        )
        .env("SSL_CERT_FILE", format!("{FIXTURES}/other-ca.pem"))
        .run();
    assert_ne!(run.code, 0, "{}", run.show());
    assert!(
        run.stderr.contains("certificate") && run.stderr.contains("UnknownIssuer"),
        "says the certificate is not trusted: {}",
        run.show()
    );
    assert!(
        run.stderr.contains("SSL_CERT_FILE") && !run.stderr.contains("trying again"),
        "says what to do, and does not try again (the same certificate would come back): {}",
        run.show()
    );
    assert_eq!(
        run.stderr.matches("UnknownIssuer").count(),
        1,
        "said once: {}",
        run.show()
    );
    assert_eq!(
        handshakes.load(Ordering::SeqCst),
        0,
        "no handshake completed"
    );
    assert!(sim.requests().is_empty(), "{:?}", sim.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_cert_file_naming_a_private_ca_lets_fleet_work_over_https() {
    let sim = sim(100.0).await;
    let (port, handshakes) = tls_front(sim.addr()).await;
    for host in ["127.0.0.1", "localhost"] {
        let run = fleet(&["coder", "list"])
            .coder(&format!("https://{host}:{port}"), "sim-coder-session-token")
            .env("SSL_CERT_FILE", format!("{FIXTURES}/ca.pem"))
            .run();
        assert_eq!(run.code, 0, "{host}: {}", run.show());
        assert!(run.stdout.contains("alice/dev"), "{}", run.show());
    }
    assert!(handshakes.load(Ordering::SeqCst) >= 2);
    assert!(!sim.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_root_certificates_at_all_is_said_at_the_first_request_and_not_retried() {
    let sim = sim(100.0).await;
    let (port, handshakes) = tls_front(sim.addr()).await;
    let empty = tempfile::NamedTempFile::new().unwrap();
    let run = fleet(&["coder", "list"])
        .coder(
            &format!("https://127.0.0.1:{port}"),
            "sim-coder-session-token",
        )
        .env("SSL_CERT_FILE", empty.path())
        .run();
    assert_ne!(run.code, 0, "{}", run.show());
    assert!(
        run.stderr.contains("root certificates could not be read")
            && run.stderr.contains("SSL_CERT_FILE")
            && !run.stderr.contains("trying again"),
        "{}",
        run.show()
    );
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);
    assert!(sim.requests().is_empty(), "{:?}", sim.requests());
}
