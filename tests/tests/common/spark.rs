//! A client for the Spark peer (`tests/spark/spark_peer.py`): one Spark session for the
//! whole test run, started by `./test.sh`, reached at `MEDILAKE_SPARK_ADDR` (host:port)
//! with line-delimited JSON over TCP. Declared by the Spark suites with
//! `#[path = "common/spark.rs"] mod spark;`.
//!
//! Under `CI=true` a missing peer is a failure; outside CI the suites print one message
//! naming what is missing (Java 17, Maven, or just `./test.sh`) and skip.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

pub struct Spark {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn have(cmd: &str) -> bool {
    std::process::Command::new(cmd)
        .arg("-version")
        .output()
        .is_ok()
}

impl Spark {
    /// The peer, or `None` (a skip, outside CI) when `MEDILAKE_SPARK_ADDR` is unset. Under
    /// CI this panics: no Spark test may skip there.
    pub fn connect(what: &str) -> Option<Self> {
        let Some(addr) = std::env::var("MEDILAKE_SPARK_ADDR")
            .ok()
            .filter(|a| !a.is_empty())
        else {
            assert!(
                !in_ci(),
                "MEDILAKE_SPARK_ADDR is not set under CI=true: {what} cannot be skipped (run ./test.sh, which starts the Spark peer)"
            );
            let mut missing = Vec::new();
            if !have("java") {
                missing.push("Java 17 (openjdk-17-jre-headless)");
            }
            if !have("mvn") {
                missing.push("Maven");
            }
            if missing.is_empty() {
                eprintln!(
                    "SKIPPED: {what}: MEDILAKE_SPARK_ADDR is unset; run ./test.sh, which starts the Spark peer"
                );
            } else {
                eprintln!(
                    "SKIPPED: {what}: the Spark peer needs {}; install it and run ./test.sh",
                    missing.join(" and ")
                );
            }
            return None;
        };
        let stream = TcpStream::connect(&addr).unwrap_or_else(|e| {
            panic!("cannot reach the Spark peer at MEDILAKE_SPARK_ADDR={addr}: {e}")
        });
        // Generous: a request waits for the others (one Spark session, served in turn),
        // and the first one may build the Spark-written tables.
        stream
            .set_read_timeout(Some(Duration::from_secs(1800)))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone stream");
        Some(Self {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends one request; the response's fields, or the peer's error text.
    pub fn call(&mut self, request: &Value) -> Result<Value, String> {
        let mut line = request.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| format!("send to Spark peer: {e}"))?;
        let mut answer = String::new();
        let n = self
            .reader
            .read_line(&mut answer)
            .map_err(|e| format!("read from Spark peer: {e}"))?;
        if n == 0 {
            return Err("the Spark peer closed the connection".to_owned());
        }
        let value: Value = serde_json::from_str(&answer)
            .map_err(|e| format!("bad answer from Spark peer: {e}"))?;
        if value["ok"].as_bool() == Some(true) {
            Ok(value)
        } else {
            Err(value["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_owned())
        }
    }

    /// Spark's rows of the Delta table at `dir` (latest version when `None`), canonical.
    pub fn rows(&mut self, dir: &Path, version: Option<u64>) -> Result<Vec<Value>, String> {
        let v = self.call(
            &json!({"op": "read", "path": dir.to_str().expect("UTF-8 path"), "version": version}),
        )?;
        Ok(v["rows"].as_array().cloned().unwrap_or_default())
    }

    /// Spark's change data feed of the table at `dir` from version `start` to `end` (the
    /// latest when `None`): canonical rows with `_change_type`, `_commit_version` and
    /// `_commit_timestamp`.
    pub fn changes(
        &mut self,
        dir: &Path,
        start: u64,
        end: Option<u64>,
    ) -> Result<Vec<Value>, String> {
        let v = self.call(&json!({
            "op": "changes",
            "path": dir.to_str().expect("UTF-8 path"),
            "start": start,
            "end": end,
        }))?;
        Ok(v["rows"].as_array().cloned().unwrap_or_default())
    }

    /// `DESCRIBE HISTORY`, newest first as Spark gives it.
    pub fn history(&mut self, dir: &Path) -> Result<Vec<Value>, String> {
        let v = self.call(&json!({"op": "history", "path": dir.to_str().expect("UTF-8 path")}))?;
        Ok(v["history"].as_array().cloned().unwrap_or_default())
    }

    /// `DESCRIBE DETAIL` as an object.
    pub fn detail(&mut self, dir: &Path) -> Result<Value, String> {
        Ok(self.call(&json!({"op": "detail", "path": dir.to_str().expect("UTF-8 path")}))?["detail"].clone())
    }

    /// Runs SQL statements in order; `{t}` in each stands for the table at `dir`.
    pub fn sql(&mut self, dir: &Path, statements: &[&str]) -> Result<Vec<Value>, String> {
        let t = format!("delta.`{}`", dir.display());
        let statements: Vec<String> = statements.iter().map(|s| s.replace("{t}", &t)).collect();
        let v = self.call(&json!({"op": "sql", "statements": statements}))?;
        Ok(v["rows"].as_array().cloned().unwrap_or_default())
    }

    /// How many files Spark's scan of the table at `dir` opens for the SQL condition `filter`
    /// (Delta's data skipping on the files' statistics decides), and the rows it counts.
    pub fn scan_files(&mut self, dir: &Path, filter: &str) -> Result<(u64, u64), String> {
        let v = self.call(
            &json!({"op": "scan_files", "path": dir.to_str().expect("UTF-8 path"), "filter": filter}),
        )?;
        match (v["files_read"].as_u64(), v["rows"].as_u64()) {
            (Some(files), Some(rows)) => Ok((files, rows)),
            _ => Err(format!("scan_files: unexpected answer {v}")),
        }
    }

    /// The Spark-written tables (built once per generator version, cached under `out`).
    pub fn make_tables(&mut self, out: &Path) -> Result<Value, String> {
        Ok(
            self.call(&json!({"op": "make_tables", "out": out.to_str().expect("UTF-8 path")}))?["manifest"]
                .clone(),
        )
    }
}

/// Rows in comparable form (see [`super::common::sorted_rows`]).
pub fn sorted_rows(rows: impl IntoIterator<Item = Value>) -> Vec<String> {
    super::common::sorted_rows(rows)
}

/// A short description of how two sorted row sets differ.
pub fn diff(ours: &[String], theirs: &[String]) -> String {
    let only_ours: Vec<_> = ours
        .iter()
        .filter(|r| !theirs.contains(r))
        .take(2)
        .collect();
    let only_theirs: Vec<_> = theirs
        .iter()
        .filter(|r| !ours.contains(r))
        .take(2)
        .collect();
    format!(
        "{} rows ours vs {} Spark's; ours only {only_ours:?}; Spark's only {only_theirs:?}",
        ours.len(),
        theirs.len()
    )
}

/// Prints a suite's closing counts, and appends them to `MEDILAKE_SPARK_SUMMARY` (set by
/// ./test.sh, which prints the file after `cargo test`: captured output of passing tests
/// is not shown otherwise).
pub fn summary(line: &str) {
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("MEDILAKE_SPARK_SUMMARY") {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
