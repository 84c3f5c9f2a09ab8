//! `talos keys imported batch-import` end to end: formats, failures, splitting, broken input.

use serde_json::{Value, json};

use crate::support::*;

#[test]
fn batch_import_formats_failures_and_splitting() {
    let srv = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let dup = format!("dup_{}", unique());
    srv.talos(&[
        "keys",
        "imported",
        "import",
        "first",
        "--raw-key",
        &dup,
        "--actor",
        "a",
    ])
    .ok();

    // JSON lines with a duplicate, an unparsable line and a good row; failures go to a file.
    let good = format!("jl_{}", unique());
    let jl = dir.path().join("keys.jsonl");
    std::fs::write(
        &jl,
        format!(
            "{{\"raw_key\":\"{dup}\",\"name\":\"d\",\"actor_id\":\"a\"}}\n\n{{broken\n\
             {{\"raw_key\":\"{good}\",\"name\":\"g\",\"actor_id\":\"a\",\"scopes\":[\"s1\"],\"ttl\":\"24h\"}}\n"
        ),
    )
    .unwrap();
    let failures = dir.path().join("failed.jsonl");
    let out = srv.talos(&[
        "keys",
        "imported",
        "batch-import",
        "--file",
        path(&jl),
        "--failures",
        path(&failures),
    ]);
    let doc = out.json_with_code(1);
    assert_eq!(
        (doc["success_count"].as_u64(), doc["failure_count"].as_u64()),
        (Some(1), Some(2)),
        "{doc}"
    );
    let results = doc["results"].as_array().unwrap();
    let idx: Vec<u64> = results
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, [0, 1, 2], "global indices in input order");
    assert!(
        results[0]["error_code"]
            .as_str()
            .unwrap()
            .ends_with("ALREADY_EXISTS"),
        "{doc}"
    );
    assert_eq!(results[1]["line"], 3);
    assert!(
        out.stderr.contains("index 0 (line 1)") && out.stderr.contains("index 1 (line 3)"),
        "{}",
        out.stderr
    );
    let lines: Vec<Value> = std::fs::read_to_string(&failures)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["row"]["raw_key"], dup.as_str());
    assert_eq!(lines[1]["line"], 3);
    srv.talos(&["keys", "verify", &good]).ok();

    // CSV with a header, quoted comma scopes and JSON metadata; table summary on stdout.
    let (c1, c2) = (format!("csv_{}", unique()), format!("csv_{}", unique()));
    let csv = dir.path().join("keys.csv");
    std::fs::write(
        &csv,
        format!(
            "raw_key,name,actor_id,scopes,ttl,metadata\n\
             {c1},CSV 1,csv-team,\"read,write\",720h,\"{{\"\"team\"\":\"\"x\"\"}}\"\n\
             {c2},CSV 2,csv-team,read;admin,,\n"
        ),
    )
    .unwrap();
    let out = srv.talos(&[
        "keys",
        "imported",
        "batch-import",
        "--file",
        path(&csv),
        "--format",
        "table",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("Imported 2 keys, 0 failed"),
        "{}",
        out.stdout
    );
    let v = srv.talos(&["keys", "verify", &c1]).ok_json();
    assert_eq!(v["scopes"], json!(["read", "write"]));
    assert_eq!(v["metadata"]["team"], "x");
    assert_eq!(
        srv.talos(&["keys", "verify", &c2]).ok_json()["scopes"],
        json!(["read", "admin"])
    );

    // Every row fails (the server answers 409 with per-item results): rows are reported, exit 1, not 3.
    let again = srv.talos(&["keys", "imported", "batch-import", "--file", path(&csv)]);
    let doc = again.json_with_code(1);
    assert_eq!(doc["failure_count"], 2, "{doc}");

    // 2500 rows: three requests (1000 + 1000 + 500), indices global across them.
    let big = dir.path().join("big.json");
    let tag = unique();
    let rows: Vec<Value> =
        (0..2500).map(|i| json!({"raw_key": format!("big_{tag}_{i}"), "name": format!("k{i}"), "actor_id": "bulk"})).collect();
    std::fs::write(&big, serde_json::to_string(&rows).unwrap()).unwrap();
    let doc = srv
        .talos(&["keys", "imported", "batch-import", "--file", path(&big)])
        .ok_json();
    assert_eq!(doc["success_count"], 2500, "{}", doc["failure_count"]);
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 2500);
    assert!(
        results.iter().enumerate().all(|(i, r)| r["index"] == i),
        "indices are global"
    );
    assert_eq!(
        srv.talos(&["keys", "verify", &format!("big_{tag}_2499")])
            .ok_json()["is_active"],
        true
    );

    // A broken array stops with a usage error after reporting what was done.
    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        format!(
            "[{{\"raw_key\":\"br_{}\",\"name\":\"b\",\"actor_id\":\"a\"}},\n{{\"raw_key\":",
            unique()
        ),
    )
    .unwrap();
    let out = srv.talos(&["keys", "imported", "batch-import", "--file", path(&broken)]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("Imported 1 keys") && out.stderr.contains("unexpected end of input"),
        "{}",
        out.stderr
    );
}
