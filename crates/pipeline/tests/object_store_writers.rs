//! Many `medilake table write` processes appending to one table on object storage at once
//! (issue 7): S3 on the moto emulator and Azure Blob on Azurite, as
//! `tests/objectstores/emulators.sh` (run by `./test.sh`) starts them. Each process has its
//! own HTTP client and commits with a create-only put; every process must succeed at its own
//! version, the history must be gap-free, and `table show` must return every row once.
//!
//! Needs `MEDILAKE_S3_URL` / `MEDILAKE_AZURE_URL` and the `AWS_*`/`AZURE_*` variables the
//! emulator script exports (the processes inherit them). Without them the test is skipped
//! with a message, except under `CI=true`, where that fails.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Concurrent writer processes per backend.
const WRITERS: i64 = 16;
/// Rows per writer.
const ROWS: i64 = 20;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn medilake(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_medilake"));
    command.args(args).env_remove("RUST_LOG");
    command
}

/// Run and require success; returns stdout.
fn ok(args: &[&str]) -> String {
    let output = medilake(args).output().expect("run medilake");
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}

fn jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// The version in the first line of `table write`'s output (`version N: ...`).
fn committed_version(stdout: &str) -> u64 {
    stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("version "))
        .and_then(|rest| rest.split(':').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no version in {stdout}"))
}

fn write_input(dir: &Path, name: &str, ids: impl Iterator<Item = i64>, writer: i64) -> String {
    let text: String = ids
        .map(|id| format!("{{\"id\": {id}, \"writer\": {writer}}}\n"))
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write input");
    path.to_str().expect("utf-8 path").to_owned()
}

fn many_processes_append(var: &str, backend: &str) {
    let Some(base) = std::env::var(var).ok().filter(|v| !v.is_empty()) else {
        assert!(
            !in_ci(),
            "{var} is not set under CI=true: the {backend} writers test cannot be skipped (run ./test.sh)"
        );
        eprintln!(
            "SKIPPED: {WRITERS} medilake processes on {backend}: set {var} (./test.sh starts the emulators)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let name = dir
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .expect("tempdir name")
        .trim_start_matches('.')
        .to_owned();
    let uri = format!(
        "{}/cli-writers-{}-{name}/t",
        base.trim_end_matches('/'),
        std::process::id()
    );

    let first = write_input(dir.path(), "first.jsonl", [-1].into_iter(), -1);
    ok(&["table", "write", &uri, "--input", &first]);
    let inputs: Vec<String> = (0..WRITERS)
        .map(|w| {
            write_input(
                dir.path(),
                &format!("w{w}.jsonl"),
                (0..ROWS).map(|r| w * 1000 + r),
                w,
            )
        })
        .collect();
    // Start every process before waiting for any.
    let children: Vec<_> = inputs
        .iter()
        .map(|input| {
            medilake(&["table", "write", &uri, "--input", input])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn medilake")
        })
        .collect();
    let mut committed = Vec::new();
    for child in children {
        let output = child.wait_with_output().expect("wait");
        assert!(
            output.status.success(),
            "{backend}: a writer failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        committed.push(committed_version(&String::from_utf8_lossy(&output.stdout)));
    }
    committed.sort_unstable();
    let expected: Vec<u64> = (1..=WRITERS as u64).collect();
    assert_eq!(
        committed, expected,
        "{backend}: each process committed its own version"
    );

    let mut versions: Vec<u64> = jsonl(&ok(&["table", "history", &uri, "--json"]))
        .iter()
        .filter_map(|c| c["version"].as_u64())
        .collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (0..=WRITERS as u64).collect::<Vec<_>>(),
        "{backend}: gap-free history"
    );
    let mut ids: Vec<i64> = jsonl(&ok(&["table", "show", &uri, "--format", "jsonl"]))
        .iter()
        .map(|r| r["id"].as_i64().expect("id"))
        .collect();
    ids.sort_unstable();
    let mut want: Vec<i64> = std::iter::once(-1)
        .chain((0..WRITERS).flat_map(|w| (0..ROWS).map(move |r| w * 1000 + r)))
        .collect();
    want.sort_unstable();
    assert_eq!(ids, want, "{backend}: every row once");
}

#[test]
fn sixteen_processes_append_to_one_s3_table() {
    many_processes_append("MEDILAKE_S3_URL", "S3");
}

#[test]
fn sixteen_processes_append_to_one_azure_table() {
    many_processes_append("MEDILAKE_AZURE_URL", "Azure");
}
