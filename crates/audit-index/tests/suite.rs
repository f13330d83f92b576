//! The index conformance suite against both backends: SQLite in a temporary
//! directory, PostgreSQL in a fresh schema (skipped, with the reason, when
//! no server is reachable; a failure under `AUDIT_REQUIRE_SERVICES=1`).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_index_backends_pass_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let backends = audit_testkit::index_backends("both_index_backends_pass_the_conformance_suite", dir.path()).await;
    for (name, index) in backends {
        eprintln!("index conformance: {name}");
        audit_index::test_suite::run_all(index.as_ref()).await;
    }
}
