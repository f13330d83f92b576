//! Witnesses through the real binaries: `serve` submits every checkpoint
//! to a `witness` it does not control (c2sp.org/tlog-witness), with the
//! consistency proof from the size the witness last cosigned; the
//! witness's cosignatures (c2sp.org/tlog-cosignature) come back appended to
//! the served checkpoint. The witness refuses what the spec says it must
//! (unknown origin, bad signature, a rollback, a proof that does not
//! verify), and a witness that is down never stops ingest.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use audit_core::cosign::CosignerVerifier;
use audit_core::note::{Checkpoint, SignerKey, sign};
use audit_testkit::serve::{Served, free_port, http};

const BIN: &str = env!("CARGO_BIN_EXE_agenttrace-audit");

fn cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN).arg("--data-dir").arg(data).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn post(server: &Served, token: &str, from: u32, to: u32) {
    let events: Vec<String> = (from..to)
        .map(|n| {
            format!(r#"{{"event_type":"trace.deleted","action":"delete","actor_type":"user","actor_id":"u{n}","resource_id":"t{n}"}}"#)
        })
        .collect();
    let (status, answer) =
        server.request("POST", "/v1/events", Some(token), &format!("[{}]", events.join(","))).unwrap();
    assert_eq!(status, 201, "{answer}");
}

/// The served checkpoint once the witness has cosigned one of at least `size` events.
fn cosigned(server: &Served, token: &str, witness: &CosignerVerifier, size: u64) -> (Checkpoint, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, note) = server.request("GET", "/v1/logs/org-1/checkpoint", Some(token), "").unwrap();
        if status == 200 {
            let text = format!("{}\n", note.split_once("\n\n").unwrap().0);
            let cp = Checkpoint::parse(&text).unwrap();
            if cp.size >= size && witness.cosigned_at(&note).is_some() {
                return (cp, note);
            }
        }
        assert!(Instant::now() < deadline, "no cosigned checkpoint of {size} events");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A raw `add-checkpoint` to the witness: status, content type, body.
fn add_checkpoint(port: u16, body: &str) -> (u16, String) {
    http(port, "POST", "/add-checkpoint", None, body).expect("the witness answers")
}

#[test]
fn serve_gets_cosignatures_from_a_witness_that_refuses_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = cli(&data, &["keys", "create", "--org", "org-1", "--scopes", "ingest,read"]);
    let verify_token = cli(&data, &["keys", "create", "--org", "org-1", "--scopes", "verify"]);
    let log_key = cli(&data, &["keys", "public", "--org", "org-1"]);
    let deployment = SignerKey::parse(&std::fs::read_to_string(data.join("signing.key")).unwrap()).unwrap();

    // The witness: its own key and state; it trusts the deployment's key
    // under its origin (which vouches for every `<origin>/<org>`).
    let state = dir.path().join("witness");
    let deployment_key = deployment.verifier().to_string();
    let port = free_port();
    let mut command = Command::new(BIN);
    command.args(["witness", "--state"]).arg(&state).args([
        "--log-key",
        &deployment_key,
        "--name",
        "witness.test/w1",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    let witness_process = Served::start(command, port);
    let witness = CosignerVerifier::parse(&std::fs::read_to_string(state.join("witness.vkey")).unwrap()).unwrap();
    assert_eq!(witness.name(), "witness.test/w1");

    let env =
        [("AUDIT_CHECKPOINT_INTERVAL", "0.2"), ("AUDIT_WITNESSES", &format!("http://127.0.0.1:{port} {witness}"))];
    let server = Served::binary(BIN, &data, &[], &env);
    post(&server, &token, 0, 50);
    let (first, note) = cosigned(&server, &token, &witness, 51);
    // The log's own key still opens the cosigned checkpoint.
    let org_key = audit_core::note::VerifierKey::parse(&log_key).unwrap();
    assert_eq!(audit_core::note::open(&note, &org_key).unwrap(), first.to_text());
    // A larger tree: cosigned after the witness checked the consistency proof from the first.
    post(&server, &token, 50, 400);
    let (second, _) = cosigned(&server, &token, &witness, first.size + 350);
    assert!(second.size > first.size);
    // The older checkpoint route carries the cosignature too.
    let (_, plain) = server.request("GET", "/v1/checkpoint", Some(&token), "").unwrap();
    assert!(witness.cosigned_at(&plain).is_some(), "{plain}");

    // A witness quorum: verify and verify-export hold the trusted
    // checkpoint to it (a witness that did not cosign does not count).
    let saved = dir.path().join("cosigned.note");
    std::fs::write(&saved, &note).unwrap();
    let run = |args: &[&str]| Command::new(BIN).arg("--data-dir").arg(&data).args(args).output().unwrap();
    let saved_arg = saved.to_str().unwrap();
    let other_witness = audit_core::cosign::CosignerKey::from_seed("witness.test/w2", [4; 32]).unwrap().verifier();
    let (w1, w2) = (witness.to_string(), other_witness.to_string());
    let quorum = |extra: &[&str]| {
        let mut args = vec!["verify", "--org", "org-1", "--trusted-checkpoint", saved_arg, "--json"];
        args.extend_from_slice(extra);
        run(&args)
    };
    assert_eq!(quorum(&["--witness", &w1, "--witness-quorum", "1"]).status.code(), Some(0));
    let short = quorum(&["--witness", &w1, "--witness", &w2, "--witness-quorum", "2"]);
    assert_eq!(short.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&short.stdout).contains("witness_quorum"),
        "{}",
        String::from_utf8_lossy(&short.stdout)
    );
    // The same policy from the deployment's environment, as `serve` reads it.
    let from_env = |quorum: &str| {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(&data)
            .args(["verify", "--org", "org-1", "--trusted-checkpoint", saved_arg, "--json"])
            .env("AUDIT_WITNESSES", format!("http://127.0.0.1:9/ {w1},http://127.0.0.1:9/ {w2}"))
            .env("AUDIT_WITNESS_QUORUM", quorum)
            .output()
            .unwrap()
    };
    assert_eq!(from_env("1").status.code(), Some(0));
    let short = from_env("2");
    assert_eq!(short.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&short.stdout).contains("witness_quorum"));
    let export = dir.path().join("export.jsonl");
    let out = run(&["export", "--org", "org-1", "--format", "jsonl", "--output", export.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let check = |extra: &[&str]| {
        let mut args = vec!["verify-export", export.to_str().unwrap(), "--checkpoint", saved_arg, "--key", &log_key];
        args.extend_from_slice(extra);
        run(&args).status.code()
    };
    assert_eq!(check(&["--witness", &w1, "--witness-quorum", "1"]), Some(0));
    assert_eq!(check(&["--witness", &w2, "--witness-quorum", "1"]), Some(1));
    assert_eq!(
        check(&["--witness", &w1, "--witness-quorum", "2"]),
        Some(2),
        "a quorum larger than the witnesses named"
    );

    // What the witness must refuse.
    let signer = deployment.renamed(&format!("{}/org-1", deployment.verifier().name())).unwrap();
    let signed = |cp: &Checkpoint| sign(&cp.to_text(), &signer).unwrap();
    // A rollback: the first (smaller) checkpoint again, from size 0.
    let (status, size) = add_checkpoint(port, &format!("old 0\n\n{}", signed(&first)));
    assert_eq!(status, 409, "{size}");
    let held: u64 = size.trim().parse().unwrap();
    assert!(held >= second.size, "the witness says the size it holds: {held}");
    // A newer tree with a proof that does not verify: 422.
    let forged =
        Checkpoint { origin: first.origin.clone(), size: held + 10, root: audit_core::Hash::of(b"not the tree") };
    let bogus = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
    assert_eq!(add_checkpoint(port, &format!("old {held}\n{bogus}\n{}", signed(&forged))).0, 422);
    // Another tree of the size it holds: 409.
    let split = Checkpoint { size: held, ..forged.clone() };
    assert_eq!(add_checkpoint(port, &format!("old {held}\n\n{}", signed(&split))).0, 409);
    // Signed by someone else: 403; an origin it does not know: 404; garbage: 400.
    let stranger = SignerKey::from_seed(&first.origin, [99; 32]).unwrap();
    assert_eq!(add_checkpoint(port, &format!("old {held}\n\n{}", sign(&forged.to_text(), &stranger).unwrap())).0, 403);
    let elsewhere = Checkpoint { origin: "other.example/log".into(), ..forged.clone() };
    let other_signer = SignerKey::from_seed("other.example/log", [98; 32]).unwrap();
    assert_eq!(
        add_checkpoint(port, &format!("old 0\n\n{}", sign(&elsewhere.to_text(), &other_signer).unwrap())).0,
        404
    );
    for garbage in
        ["", "old\n\n", "old 01\n\nx\n", "old 5\nnot base64!\n\n", &format!("old {}\n\n{}", held + 100, signed(&split))]
    {
        assert_eq!(add_checkpoint(port, garbage).0, 400, "{garbage:?}");
    }

    // A fork: another instance with the deployment's key but an older,
    // different log of org-1 (a restored backup) submits its checkpoint;
    // the witness holds a larger tree, so that instance raises a
    // `witness_fork` alert and shows it in its status and metrics.
    let forked = dir.path().join("forked");
    std::fs::create_dir_all(&forked).unwrap();
    std::fs::copy(data.join("signing.key"), forked.join("signing.key")).unwrap();
    let forked_token = cli(&forked, &["keys", "create", "--org", "org-1", "--scopes", "ingest,read,verify"]);
    let fork_server = Served::binary(BIN, &forked, &[], &env);
    post(&fork_server, &forked_token, 0, 5);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let (code, body) = fork_server.request("GET", "/v1/integrity/status", Some(&forked_token), "").unwrap();
        assert_eq!(code, 200, "{body}");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        if status["witnesses"][0]["fork"].is_string() {
            break status;
        }
        assert!(Instant::now() < deadline, "no fork reported: {status}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["witnesses"][0]["name"], "witness.test/w1");
    assert!(status["witnesses"][0]["cosigned_size"].is_null(), "{status}");
    let (_, metrics) = fork_server.request("GET", "/metrics", None, "").unwrap();
    // org-1 and the system log (both written under the same key elsewhere) are forked.
    let forks = metrics.lines().find_map(|l| l.strip_prefix("audit_witness_forks ")).unwrap_or("0");
    assert!(forks.parse::<u64>().unwrap() >= 1, "{metrics}");
    fork_server.stop();
    // The honest instance's witness status: cosigned, no fork.
    let (_, body) = server.request("GET", "/v1/integrity/status", Some(&verify_token), "").unwrap();
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(status["witnesses"][0]["cosigned_size"].as_u64().unwrap() >= second.size, "{status}");
    assert!(status["witnesses"][0]["fork"].is_null(), "{status}");

    // A witness that is down never stops ingest.
    witness_process.stop();
    let started = Instant::now();
    post(&server, &token, 400, 450);
    assert!(started.elapsed() < Duration::from_secs(5), "ingest waited for the witness");
    server.stop();
}
