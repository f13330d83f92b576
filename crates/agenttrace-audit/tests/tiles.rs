//! The C2SP tlog-tiles API through the real binary: an outside tlog client
//! (Cloudflare's `tlog_tiles`, a port of Go's `sumdb/tlog`) reads the
//! checkpoint and tiles over HTTP, authenticates every tile against the
//! signed root, and proves inclusion and consistency from them alone — the
//! same proofs the proof routes give. Headers and access as documented;
//! malformed and out-of-tree paths refused.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use audit_core::Hash;
use audit_core::tiles::{TileId, TileKind};
use audit_testkit::serve::{Served, get_bytes};
use tlog_tiles::tlog::{Hash as TlogHash, check_record, check_tree, prove_record, prove_tree, record_hash, tree_hash};
use tlog_tiles::{Tile, TileHashReader, TileReader};

const BIN: &str = env!("CARGO_BIN_EXE_agenttrace-audit");

fn cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN).arg("--data-dir").arg(data).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Tiles fetched over HTTP, as a monitor would.
struct HttpTiles<'a> {
    port: u16,
    org: &'a str,
    token: Option<&'a str>,
}

impl HttpTiles<'_> {
    fn get(&self, path: &str) -> Vec<u8> {
        let (status, head, body) =
            get_bytes(self.port, &format!("/v1/logs/{}/{path}", self.org), self.token).expect("served");
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        let head = head.to_ascii_lowercase();
        assert!(head.contains("content-type: application/octet-stream"), "{head}");
        assert!(head.contains("cache-control: public, max-age=31536000, immutable"), "{head}");
        body
    }
}

impl TileReader for HttpTiles<'_> {
    fn height(&self) -> u8 {
        8
    }
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::tlog::Error> {
        // Go's sumdb paths carry the height (`tile/8/…`); C2SP's do not.
        Ok(tiles.iter().map(|t| self.get(&t.path().replacen("tile/8/", "tile/", 1))).collect())
    }
    fn save_tiles(&self, _: &[Tile], _: &[Vec<u8>]) {}
}

/// The served checkpoint's size and root (its text read by `tlog_tiles`).
fn checkpoint(port: u16, org: &str, token: Option<&str>) -> Option<(u64, TlogHash)> {
    let (status, head, body) = get_bytes(port, &format!("/v1/logs/{org}/checkpoint"), token)?;
    if status != 200 {
        return None;
    }
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/plain; charset=utf-8") && head.contains("cache-control: no-cache"));
    let text = std::str::from_utf8(&body).unwrap();
    let (body, _signatures) = text.split_once("\n\n").expect("a signed note");
    let cp = tlog_tiles::checkpoint::Checkpoint::from_bytes(format!("{body}\n").as_bytes()).expect("a checkpoint");
    Some((cp.size(), *cp.hash()))
}

fn post_events(server: &Served, token: &str, from: u32, count: u32) {
    for start in (from..count).step_by(100) {
        let events: Vec<String> = (start..(start + 100).min(count))
            .map(|n| {
                format!(
                    r#"{{"event_type":"trace.deleted","action":"delete","actor_type":"user","actor_id":"u{n}","resource_id":"trace-{n}"}}"#
                )
            })
            .collect();
        let (status, answer) =
            server.request("POST", "/v1/events", Some(token), &format!("[{}]", events.join(","))).unwrap();
        assert_eq!(status, 201, "{answer}");
    }
}

/// Waits for a checkpoint covering at least `size` events: its size and root.
fn wait_for_checkpoint(port: u16, org: &str, token: Option<&str>, size: u64) -> (u64, TlogHash) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((n, root)) = checkpoint(port, org, token)
            && n >= size
        {
            return (n, root);
        }
        assert!(Instant::now() < deadline, "no checkpoint of {size} events");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_outside_tlog_client_proves_from_the_served_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = cli(&data, &["keys", "create", "--org", "org-1", "--scopes", "ingest,read"]);
    let stranger = cli(&data, &["keys", "create", "--org", "org-2", "--scopes", "read"]);
    let env = [("AUDIT_CHECKPOINT_INTERVAL", "0.2"), ("AUDIT_CAPTURE_API_ACCESS", "false")];
    let server = Served::binary(BIN, &data, &[], &env);
    // The log also holds the token's creation (recorded by `keys create`).
    post_events(&server, &token, 0, 300);
    let (first, first_root) = wait_for_checkpoint(server.port, "org-1", Some(&token), 301);
    post_events(&server, &token, 300, 700);
    let (n, root) = wait_for_checkpoint(server.port, "org-1", Some(&token), 701);
    assert!(n < 512 * 2, "{n}");

    let tiles = HttpTiles { port: server.port, org: "org-1", token: Some(&token) };
    let hashes = TileHashReader::new(n, root, &tiles);
    assert_eq!(tree_hash(n, &hashes).unwrap(), root, "the tiles hash to the signed root");
    // The leaf inputs: the entry bundles hold each event's hash.
    let bundle = |id: TileId| id.entries(&tiles.get(&id.path())).unwrap();
    let mut events: Vec<Hash> = bundle(TileId::full(TileKind::Entries, 0));
    events.extend(bundle(TileId::full(TileKind::Entries, 1)));
    events.extend(bundle(TileId { kind: TileKind::Entries, index: 2, width: (n - 512) as u16 }));
    assert_eq!(events.len() as u64, n);
    for resource in [0u64, 1, 254, 255, 299, 510, 699] {
        // The event as the API shows it: its sequence and hash.
        let (status, found) =
            server.request("GET", &format!("/v1/events?resource_id=trace-{resource}"), Some(&token), "").unwrap();
        assert_eq!(status, 200, "{found}");
        let found: serde_json::Value = serde_json::from_str(&found).unwrap();
        let event = &found["events"][0];
        let index = event["sequence"].as_u64().unwrap();
        assert_eq!(event["hash"], events[index as usize].to_hex(), "the entry bundle holds the event's hash");
        let proof = prove_record(n, index, &hashes).unwrap();
        check_record(&proof, n, root, index, record_hash(events[index as usize].as_bytes())).unwrap();
        // The proof route gives the same proof.
        let id = event["event_id"].as_str().unwrap();
        let (status, ours) =
            server.request("GET", &format!("/v1/events/{id}/proof?tree_size={n}"), Some(&token), "").unwrap();
        assert_eq!(status, 200, "{ours}");
        let ours: serde_json::Value = serde_json::from_str(&ours).unwrap();
        let theirs: Vec<String> = proof.iter().map(|h| Hash::from_bytes(h.0).to_hex()).collect();
        assert_eq!(ours["proof"], serde_json::json!(theirs));
    }
    let proof = prove_tree(n, first, &hashes).unwrap();
    check_tree(&proof, n, root, first, first_root).unwrap();

    // Bad paths: 400; tiles outside the signed tree: 404; other
    // organizations and missing tokens: as every read route.
    let status = |path: &str, token: Option<&str>| get_bytes(server.port, path, token).unwrap().0;
    for bad in ["tile/00/000", "tile/0/01", "tile/0/000.p/0", "tile/0/000.p/256", "tile/data/000", "tile/0/x000/001"] {
        assert_eq!(status(&format!("/v1/logs/org-1/{bad}"), Some(&token)), 400, "{bad}");
    }
    for beyond in
        ["tile/0/003", "tile/0/002", "tile/1/000", "tile/1/000.p/4", "tile/entries/x001/000", "tile/2/000.p/1"]
    {
        assert_eq!(status(&format!("/v1/logs/org-1/{beyond}"), Some(&token)), 404, "{beyond}");
    }
    assert_eq!(status("/v1/logs/org-1/tile/0/000", None), 401);
    assert_eq!(status("/v1/logs/org-1/tile/0/000", Some(&stranger)), 404);
    assert_eq!(status("/v1/logs/org-1/checkpoint", Some(&stranger)), 404);
    assert_eq!(status("/v1/logs/org-2/checkpoint", Some(&stranger)), 200, "its own log (the token's creation)");
    assert_eq!(status("/v1/logs/org-3/checkpoint", None), 401);
    server.stop();

    // `tiles check` finds every tile stored and right; a removed tile is
    // missing until `tiles rebuild` writes it; an altered one is reported.
    let tiles_cmd = |args: &[&str]| Command::new(BIN).arg("--data-dir").arg(&data).args(args).output().unwrap();
    let out = tiles_cmd(&["tiles", "check", "--org", "org-1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The log grew since (the reads above are recorded in it): the newest checkpoint's tree.
    assert!(report["tree_size"].as_u64().unwrap() >= n, "{report}");
    assert_eq!(report["missing"], serde_json::json!([]));
    let full = data.join("logs/org-1/tile/0/001");
    std::fs::remove_file(&full).unwrap();
    let out = tiles_cmd(&["tiles", "check", "--org", "org-1"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["missing"], serde_json::json!(["tile/0/001"]));
    // `verify` compares the tiles too: a missing one is a warning.
    let out = tiles_cmd(&["verify", "--org", "org-1", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let verified: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(verified["warnings"].to_string().contains("tiles_missing"), "{verified}");
    let out = tiles_cmd(&["tiles", "rebuild", "--org", "org-1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(full.is_file(), "rebuilt");
    assert_eq!(tiles_cmd(&["tiles", "check", "--org", "org-1"]).status.code(), Some(0));
    let mut bytes = std::fs::read(&full).unwrap();
    bytes[5] ^= 1;
    std::fs::remove_file(&full).unwrap();
    std::fs::write(&full, &bytes).unwrap();
    let out = tiles_cmd(&["tiles", "check", "--org", "org-1"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["mismatched"], serde_json::json!(["tile/0/001"]));
    // …and an altered one makes the log's verification fail, naming it.
    let out = tiles_cmd(&["verify", "--org", "org-1", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let verified: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = verified["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e["error"] == "tile_mismatch" && e["detail"].as_str().unwrap().contains("tile/0/001")),
        "{verified}"
    );
    assert_eq!(
        tiles_cmd(&["verify", "--org", "org-1", "--skip-tiles"]).status.code(),
        Some(0),
        "the events are intact"
    );
    // Proofs through the altered tile come from the log instead, and check
    // against the signed root.
    let size = report["tree_size"].as_u64().unwrap();
    let note = std::fs::read_to_string(data.join(format!("logs/org-1/checkpoints/{size:020}.note"))).unwrap();
    let signed = audit_core::note::Checkpoint::parse(&format!("{}\n", note.split_once("\n\n").unwrap().0)).unwrap();
    let out = tiles_cmd(&["prove", "--org", "org-1", "--sequence", "300", "--tree-size", &size.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let proof: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hex = |v: &serde_json::Value| Hash::from_hex(v.as_str().unwrap()).unwrap();
    let path: Vec<Hash> = proof["proof"].as_array().unwrap().iter().map(hex).collect();
    audit_core::merkle::verify_inclusion(300, size, &hex(&proof["leaf_hash"]), &path, &signed.root)
        .expect("a proof that checks against the signed root");
    std::fs::remove_file(&full).unwrap();
    assert_eq!(tiles_cmd(&["tiles", "rebuild", "--org", "org-1"]).status.code(), Some(0));

    // Public tiles: a witness or monitor reads without a token.
    let server = Served::binary(BIN, &data, &[], &[("AUDIT_PUBLIC_TILES", "true")]);
    let anyone = HttpTiles { port: server.port, org: "org-1", token: None };
    let (size, root) = checkpoint(server.port, "org-1", None).expect("a public checkpoint");
    assert_eq!(tree_hash(size, &TileHashReader::new(size, root, &anyone)).unwrap(), root);
    assert_eq!(get_bytes(server.port, "/v1/events", None).unwrap().0, 401, "the rest still needs a token");
    server.stop();
}
