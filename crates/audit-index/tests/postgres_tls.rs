//! TLS to PostgreSQL: `sslmode=require` verifies the server's certificate.
//! Uses the local server's TLS (Debian's PostgreSQL serves the "snakeoil"
//! certificate for `localhost`, self-signed): trusted when given as the CA,
//! refused against the public roots.

use audit_index::EventIndex;
use audit_index::postgres::PostgresIndex;

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

#[tokio::test]
async fn sslmode_require_verifies_the_server_certificate() {
    let test = "sslmode_require_verifies_the_server_certificate";
    let Ok(pem) = std::fs::read(SNAKEOIL) else {
        audit_testkit::missing_service(test, &format!("no {SNAKEOIL} (the local PostgreSQL's TLS certificate)"));
        return;
    };
    if audit_testkit::fresh_postgres_schema(test).await.is_none() {
        return;
    }
    let url = "postgres://postgres@localhost:5432/test?sslmode=require&connect_timeout=5";
    let trusted = PostgresIndex::connect_with(url, Some(&pem)).await.expect("TLS with the server's certificate as CA");
    assert_eq!(trusted.progress("no-such-org").await.unwrap(), None);
    let refused = PostgresIndex::connect(url).await.expect_err("a self-signed certificate is not a public root");
    assert!(refused.to_string().to_lowercase().contains("certificate"), "{refused}");
    let not_pem = PostgresIndex::connect_with(url, Some(b"hello")).await.expect_err("no certificate in the CA file");
    assert!(not_pem.to_string().contains("AUDIT_INDEX_CA_FILE"), "{not_pem}");
}
