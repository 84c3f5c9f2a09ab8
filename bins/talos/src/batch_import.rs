//! `talos keys imported batch-import`: streams an input of any size to `importedApiKeys:batchImport`.
//!
//! A reader thread parses rows and cuts them into batches (1000 items or 3.5 MiB of JSON, whichever first, so a
//! batch stays under the server's 4 MiB body limit); the async side sends one batch at a time and merges the
//! per-item results back onto input rows. Memory stays bounded by a couple of batches whatever the input size.
//! Ctrl-C stops after the batch in flight: everything the server confirmed is kept, and the summary says how far
//! the import got. Re-running the same file is safe: already imported keys come back as duplicates.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::Ctx;
use crate::batch_input::{Counting, RowReader, open_input};
use crate::cli::{BatchImportArgs, Format};
use crate::exit::CliError;

/// Items per request (server maximum).
pub const MAX_ITEMS: usize = 1000;
/// Request body budget: 3.5 MiB, well under the 4 MiB limit.
pub const MAX_BYTES: usize = 3 * 1024 * 1024 + 512 * 1024;
/// `{"requests":[]}`
const ENVELOPE_BYTES: usize = 15;
/// How many failures the summary lists (all of them go to `--failures`).
const SUMMARY_FAILURES: usize = 50;
const INVALID: &str = "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_INVALID_ARGUMENT";

/// A row as the async side sees it.
#[derive(Debug)]
pub struct RowMeta {
    index: u64,
    line: u64,
    /// Position in the batch's `items`, or the local reason the row was not sent (with what was read).
    slot: Result<usize, (String, Value)>,
}

/// One request's worth of rows.
#[derive(Debug, Default)]
pub struct Batch {
    rows: Vec<RowMeta>,
    items: Vec<Value>,
    /// Input bytes consumed when the batch was cut (for the progress bar).
    bytes: u64,
}

enum Msg {
    Batch(Batch),
    /// The input cannot be read further.
    Fatal(String),
}

/// Cuts a row stream into batches. Separate from the thread plumbing so it can be tested directly.
pub struct Batcher {
    cur: Batch,
    size: usize,
    max_items: usize,
    max_bytes: usize,
}

impl Batcher {
    /// A batcher with the given limits.
    pub fn new(max_items: usize, max_bytes: usize) -> Self {
        Batcher {
            cur: Batch::default(),
            size: ENVELOPE_BYTES,
            max_items,
            max_bytes,
        }
    }

    /// Adds a row; returns the previous batch when this row did not fit in it.
    pub fn push(
        &mut self,
        index: u64,
        line: u64,
        item: Result<Value, (String, Value)>,
    ) -> Option<Batch> {
        let mut full = None;
        match item {
            Ok(v) => {
                let n = serde_json::to_vec(&v).map_or(0, |b| b.len()) + 1;
                if !self.cur.items.is_empty()
                    && (self.cur.items.len() >= self.max_items || self.size + n > self.max_bytes)
                {
                    full = self.take();
                }
                self.cur.rows.push(RowMeta {
                    index,
                    line,
                    slot: Ok(self.cur.items.len()),
                });
                self.cur.items.push(v);
                self.size += n;
            }
            Err(e) => {
                // Unsendable rows ride along with the next request; flush now and then so a file of nothing but
                // broken rows still reports progress and keeps memory flat.
                if self.cur.rows.len() >= self.max_items * 4 {
                    full = self.take();
                }
                self.cur.rows.push(RowMeta {
                    index,
                    line,
                    slot: Err(e),
                });
            }
        }
        full
    }

    /// The batch being filled, if it has any rows.
    pub fn take(&mut self) -> Option<Batch> {
        self.size = ENVELOPE_BYTES;
        let b = std::mem::take(&mut self.cur);
        (!b.rows.is_empty()).then_some(b)
    }
}

/// Counters and outputs while merging results.
struct Tally {
    ok: u64,
    failed: u64,
    /// Rows finished (confirmed by the server or refused locally), in input order.
    done_rows: u64,
    last_done: Option<(u64, u64)>,
    shown: Vec<String>,
    failures: Option<BufWriter<File>>,
    /// `--format json`: results stream straight to stdout.
    json_stream: bool,
    json_first: bool,
    /// Other document formats (yaml, json-pretty, jsonpath, jsonpointer): results kept for the
    /// final document.
    kept: Option<Vec<Value>>,
}

impl Tally {
    fn result(&mut self, doc: Value) {
        if self.json_stream {
            let sep = if std::mem::take(&mut self.json_first) {
                ""
            } else {
                ",\n"
            };
            crate::output::stdout(&format!("{sep}{doc}"));
        } else if let Some(kept) = &mut self.kept {
            kept.push(doc);
        }
    }

    fn failure(
        &mut self,
        index: u64,
        line: u64,
        code: &str,
        message: &str,
        row: &Value,
    ) -> Result<(), CliError> {
        self.failed += 1;
        if self.shown.len() < SUMMARY_FAILURES {
            self.shown
                .push(format!("  index {index} (line {line}): {code}: {message}"));
        }
        if let Some(w) = &mut self.failures {
            let rec = json!({"index": index, "line": line, "error_code": code, "error_message": message, "row": row});
            writeln!(w, "{rec}")
                .map_err(|e| CliError::Failed(format!("cannot write the failures file: {e}")))?;
        }
        self.result(
            json!({"index": index, "line": line, "error_code": code, "error_message": message}),
        );
        Ok(())
    }

    /// Merges one batch's rows with the server's results (`None`: nothing was sent).
    fn merge(&mut self, batch: Batch, raw_results: Option<&[Value]>) -> Result<(), CliError> {
        let by_index = |i: usize| -> Option<&Value> {
            let results = raw_results?;
            // Results come in request order, but match on `index` in case a server reorders them.
            let direct = results.get(i).filter(|r| result_index(r) == Some(i as u64));
            direct.or_else(|| results.iter().find(|r| result_index(r) == Some(i as u64)))
        };
        for row in batch.rows {
            match row.slot {
                Err((message, read)) => {
                    self.failure(row.index, row.line, INVALID, &message, &read)?
                }
                Ok(slot) => match by_index(slot) {
                    Some(r) if is_success(r) => {
                        self.ok += 1;
                        let mut doc = r.clone();
                        doc["index"] = json!(row.index);
                        self.result(doc);
                    }
                    Some(r) => {
                        let code = r
                            .get("error_code")
                            .and_then(Value::as_str)
                            .unwrap_or("UNKNOWN")
                            .to_owned();
                        let msg = r
                            .get("error_message")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned();
                        self.failure(row.index, row.line, &code, &msg, &batch.items[slot])?;
                    }
                    None => {
                        let msg = "the server returned no result for this row";
                        self.failure(row.index, row.line, "UNKNOWN", msg, &batch.items[slot])?;
                    }
                },
            }
            self.done_rows += 1;
            self.last_done = Some((row.index, row.line));
        }
        Ok(())
    }
}

fn result_index(r: &Value) -> Option<u64> {
    match r.get("index") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        None => Some(0), // protojson omits zero values on some servers
        _ => None,
    }
}

fn is_success(r: &Value) -> bool {
    let code = r.get("error_code").and_then(Value::as_str).unwrap_or("");
    r.get("imported_api_key").is_some_and(Value::is_object)
        && (code.is_empty() || code.ends_with("_UNSPECIFIED"))
}

/// Reader thread: parse rows, cut batches, hand them over. Stops when the receiver goes away.
fn spawn_reader(
    reader: RowReader,
    counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> mpsc::Receiver<Msg> {
    let (tx, rx) = mpsc::channel::<Msg>(2);
    std::thread::spawn(move || {
        let mut batcher = Batcher::new(MAX_ITEMS, MAX_BYTES);
        let bytes = || counter.load(Ordering::Relaxed);
        for row in reader {
            match row {
                Ok(row) => {
                    if let Some(mut b) = batcher.push(row.index, row.line, row.item) {
                        b.bytes = bytes();
                        if tx.blocking_send(Msg::Batch(b)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    if let Some(mut b) = batcher.take() {
                        b.bytes = bytes();
                        let _ = tx.blocking_send(Msg::Batch(b));
                    }
                    let _ = tx.blocking_send(Msg::Fatal(e));
                    return;
                }
            }
        }
        if let Some(mut b) = batcher.take() {
            b.bytes = bytes();
            let _ = tx.blocking_send(Msg::Batch(b));
        }
    });
    rx
}

fn progress_bar(ctx: &Ctx, path: &Path) -> Option<ProgressBar> {
    if !ctx.out.stderr_tty || ctx.out.quiet {
        return None;
    }
    let len = (path.as_os_str() != "-")
        .then(|| std::fs::metadata(path).ok().map(|m| m.len()))
        .flatten();
    let pb = match len {
        Some(len) if len > 0 => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:30}] {bytes}/{total_bytes} {msg} ({eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        _ => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} read, {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    pb.enable_steady_tick(Duration::from_millis(200));
    Some(pb)
}

/// Creates (or truncates) a file only the owner can read: the failures file holds raw keys.
/// An existing file keeps its inode but loses any wider permissions before a byte is written.
pub(crate) fn create_private(path: &std::path::Path) -> std::io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let f = opts.open(path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(f)
    }
    #[cfg(not(unix))]
    opts.open(path)
}

/// How the run ended, besides row failures.
enum Stop {
    Finished,
    Interrupted,
    Fatal(String),
    Server(talos_client::ClientError),
}

pub async fn batch_import(ctx: &Ctx, a: BatchImportArgs) -> Result<(), CliError> {
    let client = ctx.client()?;
    let (input, counter) = Counting::new(open_input(&a.file)?);
    let reader = RowReader::new(Box::new(input)).map_err(CliError::Usage)?;
    for w in &reader.warnings {
        ctx.out.warn(w);
    }
    let failures = match &a.failures {
        Some(p) => Some(BufWriter::new(create_private(p).map_err(|e| {
            CliError::Usage(format!("cannot create {}: {e}", p.display()))
        })?)),
        None => None,
    };
    let mut tally = Tally {
        ok: 0,
        failed: 0,
        done_rows: 0,
        last_done: None,
        shown: Vec::new(),
        failures,
        json_stream: ctx.out.format == Format::Json,
        json_first: true,
        // Every other document format prints the whole document once, at the end.
        kept: (ctx.out.is_document() && ctx.out.format != Format::Json).then(Vec::new),
    };
    if tally.json_stream {
        crate::output::stdout("{\"results\":[\n");
    }
    let pb = progress_bar(ctx, &a.file);
    let mut rx = spawn_reader(reader, counter);

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut interrupted = false;
    let stop = loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = &mut ctrl_c, if !interrupted => { interrupted = true; None }
        };
        let batch = match msg {
            None if interrupted => break Stop::Interrupted,
            None => break Stop::Finished,
            Some(Msg::Fatal(e)) => break Stop::Fatal(e),
            Some(Msg::Batch(b)) => b,
        };
        let bytes = batch.bytes;
        if batch.items.is_empty() {
            tally.merge(batch, None)?;
        } else {
            let resp = {
                let send = client.batch_import(&batch.items);
                tokio::pin!(send);
                loop {
                    tokio::select! {
                        r = &mut send => break r,
                        _ = &mut ctrl_c, if !interrupted => {
                            interrupted = true;
                            let note = "Interrupted: finishing the batch in flight (Ctrl-C again to abort at once)…";
                            match &pb { Some(pb) => pb.println(note), None => eprintln!("{note}") }
                            tokio::spawn(async {
                                if tokio::signal::ctrl_c().await.is_ok() {
                                    eprintln!("Aborted: the batch in flight may or may not have been imported.");
                                    std::process::exit(crate::exit::INTERRUPTED);
                                }
                            });
                        }
                    }
                }
            };
            match resp {
                Ok(r) => {
                    let results = r
                        .raw
                        .get("results")
                        .and_then(Value::as_array)
                        .map(Vec::as_slice);
                    tally.merge(batch, Some(results.unwrap_or(&[])))?;
                }
                Err(e) => break Stop::Server(e),
            }
        }
        if let Some(pb) = &pb {
            pb.set_position(bytes);
            pb.set_message(format!("imported {}, failed {}", tally.ok, tally.failed));
        }
        if interrupted {
            break Stop::Interrupted;
        }
    };
    drop(rx); // lets the reader thread end
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    if let Some(w) = &mut tally.failures {
        w.flush()
            .map_err(|e| CliError::Failed(format!("cannot write the failures file: {e}")))?;
    }
    finish(ctx, &a, tally, stop)
}

fn finish(ctx: &Ctx, a: &BatchImportArgs, mut tally: Tally, stop: Stop) -> Result<(), CliError> {
    let counts = format!(
        "\"success_count\":{},\"failure_count\":{}",
        tally.ok, tally.failed
    );
    if tally.json_stream {
        crate::output::stdout(&format!("\n],{counts}}}\n"));
    } else if let Some(kept) = tally.kept.take() {
        ctx.out.document(
            &json!({"results": kept, "success_count": tally.ok, "failure_count": tally.failed}),
        )?;
    }
    let mut summary = format!(
        "Imported {} keys, {} failed ({} rows).",
        tally.ok, tally.failed, tally.done_rows
    );
    if !tally.shown.is_empty() {
        summary.push_str("\nFailed rows:\n");
        summary.push_str(&tally.shown.join("\n"));
        if tally.failed as usize > tally.shown.len() {
            summary.push_str(&format!(
                "\n  … and {} more",
                tally.failed as usize - tally.shown.len()
            ));
        }
    }
    if let Some(p) = &a.failures {
        if tally.failed > 0 {
            summary.push_str(&format!("\nFailed rows written to {}.", p.display()));
        }
    } else if tally.failed as usize > tally.shown.len() {
        summary.push_str(" Use --failures FILE to keep them all.");
    }
    let progress = match tally.last_done {
        Some((index, line)) => format!("Rows up to index {index} (line {line}) are done"),
        None => "No row was processed".to_owned(),
    };
    let stopped = match &stop {
        Stop::Finished => None,
        Stop::Interrupted => Some(format!(
            "Interrupted. {progress}; every confirmed batch is kept."
        )),
        Stop::Fatal(e) => Some(format!("Input error: {e}. {progress}.")),
        Stop::Server(_) => Some(format!("Stopped by an error. {progress}.")),
    };
    if let Some(s) = stopped {
        summary.push_str(&format!(
            "\n{s} Re-running the same input is safe: rows already imported fail as duplicates."
        ));
    }
    if ctx.out.is_document() {
        ctx.out.info(&summary);
    } else if !ctx.out.quiet || tally.failed > 0 || !matches!(stop, Stop::Finished) {
        ctx.out.text(&summary);
    }
    match stop {
        Stop::Interrupted => Err(CliError::Interrupted),
        Stop::Fatal(e) => Err(CliError::Usage(format!(
            "cannot read {}: {e}",
            a.file.display()
        ))),
        Stop::Server(e) => Err(CliError::Client(e)),
        Stop::Finished if tally.failed > 0 => Err(CliError::Negative(None)),
        Stop::Finished => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: usize) -> Result<Value, (String, Value)> {
        Ok(json!({"raw_key": "k".repeat(n)}))
    }

    #[test]
    fn batches_split_at_item_count() {
        let mut b = Batcher::new(3, MAX_BYTES);
        let mut out = Vec::new();
        for i in 0..7 {
            out.extend(b.push(i, i + 1, item(5)));
        }
        out.extend(b.take());
        assert_eq!(
            out.iter().map(|b| b.items.len()).collect::<Vec<_>>(),
            [3, 3, 1]
        );
        assert_eq!(out[1].rows[0].index, 3);
    }

    #[test]
    fn batches_split_at_byte_budget_and_keep_local_failures_in_order() {
        // Each item serializes to {"raw_key":"kkkk…"} = 14 + n bytes, plus a comma.
        let mut b = Batcher::new(1000, ENVELOPE_BYTES + 2 * (14 + 100 + 1));
        let mut out = Vec::new();
        out.extend(b.push(0, 1, item(100)));
        out.extend(b.push(1, 2, Err(("bad".into(), Value::Null))));
        out.extend(b.push(2, 3, item(100)));
        out.extend(b.push(3, 4, item(100)));
        out.extend(b.take());
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].items.len(), 2);
        assert_eq!(
            out[0].rows.iter().map(|r| r.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(out[0].rows[1].slot.is_err());
        assert_eq!(out[1].rows[0].index, 3);
        // A single item above the budget still goes out, alone.
        let mut b = Batcher::new(1000, 10);
        assert!(b.push(0, 1, item(100)).is_none());
        assert_eq!(b.push(1, 2, item(1)).unwrap().items.len(), 1);
    }

    #[test]
    fn merge_maps_batch_indices_to_global_ones() {
        let mut batcher = Batcher::new(1000, MAX_BYTES);
        batcher.push(10, 12, item(1));
        batcher.push(
            11,
            13,
            Err(("invalid JSON".into(), Value::String("{".into()))),
        );
        batcher.push(12, 14, item(2));
        let batch = batcher.take().unwrap();
        let results = [
            json!({"index": 0, "imported_api_key": {"key_id": "a"}}),
            json!({"index": "1", "error_code": "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_ALREADY_EXISTS", "error_message": "dup"}),
        ];
        let mut t = Tally {
            ok: 0,
            failed: 0,
            done_rows: 0,
            last_done: None,
            shown: vec![],
            failures: None,
            json_stream: false,
            json_first: true,
            kept: Some(vec![]),
        };
        t.merge(batch, Some(&results)).unwrap();
        assert_eq!(
            (t.ok, t.failed, t.done_rows, t.last_done),
            (1, 2, 3, Some((12, 14)))
        );
        let kept = t.kept.unwrap();
        assert_eq!(
            kept[0],
            json!({"index": 10, "imported_api_key": {"key_id": "a"}})
        );
        assert_eq!(kept[1]["error_code"], INVALID);
        assert_eq!(kept[2]["index"], 12);
        assert_eq!(kept[2]["error_message"], "dup");
        assert!(t.shown[1].contains("index 12 (line 14)"), "{:?}", t.shown);
    }
}
