//! Streaming readers for `keys imported batch-import` input: a JSON array (the docs' form), JSON lines, or CSV
//! with a header. Inputs can be far larger than memory, so rows are produced one at a time.
//!
//! Errors come in two kinds: a *row* error (this row is unusable, carry on: bad JSON inside an array element,
//! a bad CSV metadata cell) and a *fatal* one (the reader cannot find the next row: unterminated array, I/O error).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::exit::CliError;

/// A single array element larger than this is treated as a broken file rather than buffered.
const MAX_ELEMENT_BYTES: usize = 8 << 20;

/// Opens a path, or stdin for `-`.
pub fn open_input(path: &Path) -> Result<Box<dyn BufRead + Send>, CliError> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let f = File::open(path)
        .map_err(|e| CliError::Usage(format!("cannot open {}: {e}", path.display())))?;
    Ok(Box::new(BufReader::with_capacity(1 << 16, f)))
}

/// Detected input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// `[ {…}, {…} ]`
    JsonArray,
    /// One object per line.
    JsonLines,
    /// Header row, then one key per row.
    Csv,
}

/// One input row: its 0-based ordinal, 1-based line, and the import item or why it is unusable.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 0-based position among the input's rows (the "global index").
    pub index: u64,
    /// 1-based line where the row starts.
    pub line: u64,
    /// The item to send, or the reason it cannot be sent together with what was read.
    pub item: Result<Value, (String, Value)>,
}

/// Wraps a reader and counts consumed bytes, so progress can be shown against the file size.
pub struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R> Counting<R> {
    /// Wraps `inner`; the counter can be read from another thread.
    pub fn new(inner: R) -> (Self, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        (
            Counting {
                inner,
                count: count.clone(),
            },
            count,
        )
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.count.fetch_add(amt as u64, Ordering::Relaxed);
        self.inner.consume(amt);
    }
}

/// Skips a UTF-8 BOM and leading whitespace, counting newlines, and tells the format from the first byte.
/// Returns `None` for an empty input.
pub fn detect<R: BufRead>(r: &mut R, line: &mut u64) -> io::Result<Option<InputFormat>> {
    let mut first = true;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        if first && buf.starts_with(b"\xEF\xBB\xBF") {
            r.consume(3);
            first = false;
            continue;
        }
        first = false;
        let b = buf[0];
        match b {
            b'\n' => *line += 1,
            b' ' | b'\t' | b'\r' => {}
            b'[' => return Ok(Some(InputFormat::JsonArray)),
            b'{' => return Ok(Some(InputFormat::JsonLines)),
            _ => return Ok(Some(InputFormat::Csv)),
        }
        r.consume(1);
    }
}

/// Produces [`Row`]s from any of the three formats.
pub struct RowReader {
    inner: Inner,
    /// Non-fatal remarks about the input (unknown CSV columns).
    pub warnings: Vec<String>,
    /// The detected format.
    pub format: InputFormat,
    /// Set after a fatal error: the stream ends there.
    failed: bool,
}

enum Inner {
    Array(ArrayRows<Box<dyn BufRead + Send>>),
    Lines(LineRows<Box<dyn BufRead + Send>>),
    Csv(Box<CsvRows<NewlineTracker<Box<dyn BufRead + Send>>>>),
    Empty,
}

impl RowReader {
    /// Detects the format and prepares the reader. Errors are fatal (unreadable input, CSV without raw_key).
    pub fn new(mut r: Box<dyn BufRead + Send>) -> Result<Self, String> {
        let mut line = 1;
        let format = detect(&mut r, &mut line).map_err(|e| format!("cannot read input: {e}"))?;
        let (inner, format, warnings) = match format {
            None => (Inner::Empty, InputFormat::JsonLines, vec![]),
            Some(InputFormat::JsonArray) => (
                Inner::Array(ArrayRows {
                    r,
                    line,
                    index: 0,
                    state: ArrayState::Start,
                }),
                InputFormat::JsonArray,
                vec![],
            ),
            Some(InputFormat::JsonLines) => (
                Inner::Lines(LineRows {
                    r,
                    line: line - 1,
                    index: 0,
                }),
                InputFormat::JsonLines,
                vec![],
            ),
            Some(InputFormat::Csv) => {
                let (tracker, lines) = NewlineTracker::new(r, line);
                let (rows, warnings) = CsvRows::new(tracker, lines)?;
                (Inner::Csv(Box::new(rows)), InputFormat::Csv, warnings)
            }
        };
        Ok(RowReader {
            inner,
            warnings,
            format,
            failed: false,
        })
    }
}

impl Iterator for RowReader {
    type Item = Result<Row, String>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = match &mut self.inner {
            Inner::Array(a) => a.next_row().transpose(),
            Inner::Lines(l) => l.next_row().transpose(),
            Inner::Csv(c) => c.next_row().transpose(),
            Inner::Empty => None,
        };
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

fn expect_object(v: Value) -> Result<Value, (String, Value)> {
    match v {
        Value::Object(_) => Ok(v),
        other => Err((
            "expected a JSON object with raw_key, name, actor_id, …".into(),
            other,
        )),
    }
}

// ------------------------------------------------------------------ JSON array

#[derive(Debug, PartialEq)]
enum ArrayState {
    /// Before `[`.
    Start,
    /// After `[` or `,`.
    Element,
    /// After `]`.
    Done,
}

struct ArrayRows<R> {
    r: R,
    line: u64,
    index: u64,
    state: ArrayState,
}

impl<R: BufRead> ArrayRows<R> {
    fn peek(&mut self) -> Result<Option<u8>, String> {
        let buf = self
            .r
            .fill_buf()
            .map_err(|e| format!("cannot read input: {e}"))?;
        Ok(buf.first().copied())
    }

    fn bump(&mut self) {
        if let Ok(buf) = self.r.fill_buf()
            && buf.first() == Some(&b'\n')
        {
            self.line += 1;
        }
        self.r.consume(1);
    }

    fn skip_ws(&mut self) -> Result<Option<u8>, String> {
        while let Some(b) = self.peek()? {
            if !b.is_ascii_whitespace() {
                return Ok(Some(b));
            }
            self.bump();
        }
        Ok(None)
    }

    /// Reads one element's bytes up to (not including) the top-level `,` or `]`.
    fn element(&mut self) -> Result<Vec<u8>, String> {
        let start_line = self.line;
        let mut out = Vec::new();
        let (mut depth, mut in_str, mut esc) = (0usize, false, false);
        loop {
            let buf = self
                .r
                .fill_buf()
                .map_err(|e| format!("cannot read input: {e}"))?;
            if buf.is_empty() {
                return Err(format!(
                    "unexpected end of input: the array is not closed (element starting at line {start_line})"
                ));
            }
            let mut used = 0;
            let mut end = false;
            for &b in buf {
                if in_str {
                    if esc {
                        esc = false;
                    } else if b == b'\\' {
                        esc = true;
                    } else if b == b'"' {
                        in_str = false;
                    }
                } else {
                    match b {
                        b'"' => in_str = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' if depth > 0 => depth -= 1,
                        b',' | b']' if depth == 0 => {
                            end = true;
                            break;
                        }
                        _ => {}
                    }
                }
                if b == b'\n' {
                    self.line += 1;
                }
                used += 1;
            }
            out.extend_from_slice(&buf[..used]);
            self.r.consume(used);
            if out.len() > MAX_ELEMENT_BYTES {
                return Err(format!(
                    "array element starting at line {start_line} is larger than 8 MiB"
                ));
            }
            if end {
                return Ok(out);
            }
        }
    }

    fn next_row(&mut self) -> Result<Option<Row>, String> {
        loop {
            match self.state {
                ArrayState::Done => {
                    return match self.skip_ws()? {
                        None => Ok(None),
                        Some(_) => Err(format!(
                            "unexpected data after the closing ] at line {}",
                            self.line
                        )),
                    };
                }
                ArrayState::Start => {
                    if self.skip_ws()? != Some(b'[') {
                        return Err("expected a JSON array".into());
                    }
                    self.bump();
                    if self.skip_ws()? == Some(b']') {
                        self.bump();
                        self.state = ArrayState::Done;
                        continue;
                    }
                    self.state = ArrayState::Element;
                }
                ArrayState::Element => {
                    if self.skip_ws()?.is_none() {
                        return Err(format!(
                            "unexpected end of input: the array is not closed (line {})",
                            self.line
                        ));
                    }
                    let line = self.line;
                    let bytes = self.element()?;
                    // `element` stopped at `,` or `]`; consume it.
                    let closing = self.peek()? == Some(b']');
                    self.bump();
                    if closing {
                        self.state = ArrayState::Done;
                    }
                    let text = String::from_utf8_lossy(&bytes);
                    let text = text.trim();
                    if text.is_empty() {
                        if closing && self.index > 0 {
                            continue; // a trailing comma: `[{…},]`
                        }
                        return Err(format!("empty array element at line {line}"));
                    }
                    let index = self.index;
                    self.index += 1;
                    let item = match serde_json::from_str::<Value>(text) {
                        Ok(v) => expect_object(v),
                        Err(e) => {
                            Err((format!("invalid JSON: {e}"), Value::String(text.to_owned())))
                        }
                    };
                    return Ok(Some(Row { index, line, item }));
                }
            }
        }
    }
}

// ------------------------------------------------------------------ JSON lines

struct LineRows<R> {
    r: R,
    line: u64,
    index: u64,
}

impl<R: BufRead> LineRows<R> {
    fn next_row(&mut self) -> Result<Option<Row>, String> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = self
                .r
                .read_until(b'\n', &mut buf)
                .map_err(|e| format!("cannot read input: {e}"))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let text = String::from_utf8_lossy(&buf);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let index = self.index;
            self.index += 1;
            let item = match serde_json::from_str::<Value>(text) {
                Ok(v) => expect_object(v),
                Err(e) => Err((format!("invalid JSON: {e}"), Value::String(text.to_owned()))),
            };
            return Ok(Some(Row {
                index,
                line: self.line,
                item,
            }));
        }
    }
}

// ------------------------------------------------------------------ CSV

const CSV_COLUMNS: &[&str] = &[
    "raw_key",
    "name",
    "actor_id",
    "scopes",
    "ttl",
    "metadata",
    "request_id",
    "allowed_cidrs",
    "rate_limit_quota",
    "rate_limit_window",
];

/// Remembers where newlines are in the stream so a record's byte offset maps to its line. csv's own line
/// numbers skip blank lines, and its record offsets can point at blank lines it skipped, so each newline also
/// records whether it ended a blank line. Only newlines not yet passed are kept: about one read buffer's worth.
struct NewlineTracker<R> {
    inner: R,
    pos: u64,
    line_has_content: bool,
    newlines: Arc<Mutex<VecDeque<(u64, bool)>>>,
}

impl<R> NewlineTracker<R> {
    fn new(inner: R, first_line: u64) -> (Self, LineCounter) {
        let newlines = Arc::new(Mutex::new(VecDeque::new()));
        let counter = LineCounter {
            newlines: newlines.clone(),
            passed: first_line - 1,
        };
        (
            NewlineTracker {
                inner,
                pos: 0,
                line_has_content: false,
                newlines,
            },
            counter,
        )
    }
}

impl<R: Read> Read for NewlineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut q = self.newlines.lock().unwrap_or_else(|p| p.into_inner());
        for (i, &b) in buf[..n].iter().enumerate() {
            match b {
                b'\n' => {
                    q.push_back((self.pos + i as u64, !self.line_has_content));
                    self.line_has_content = false;
                }
                b' ' | b'\t' | b'\r' => {}
                _ => self.line_has_content = true,
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

struct LineCounter {
    /// (offset, ended a blank line)
    newlines: Arc<Mutex<VecDeque<(u64, bool)>>>,
    passed: u64,
}

impl LineCounter {
    /// 1-based line where the record at `byte` starts; offsets must not decrease between calls.
    fn line_at(&mut self, byte: u64) -> u64 {
        let mut q = self.newlines.lock().unwrap_or_else(|p| p.into_inner());
        // Newlines before the offset, then blank lines the record "starts" on (a record's first line has content).
        while q.front().is_some_and(|&(nl, blank)| nl < byte || blank) {
            q.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

struct CsvRows<R: Read> {
    rdr: csv::Reader<R>,
    /// Column position of each known field (None = not in the header).
    cols: Vec<(&'static str, usize)>,
    lines: LineCounter,
    index: u64,
    record: csv::StringRecord,
}

impl<R: Read> CsvRows<R> {
    fn new(r: R, lines: LineCounter) -> Result<(Self, Vec<String>), String> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(r);
        let headers = rdr
            .headers()
            .map_err(|e| format!("cannot read the CSV header: {e}"))?
            .clone();
        let mut cols = Vec::new();
        let mut warnings = Vec::new();
        for (i, h) in headers.iter().enumerate() {
            let h = h.to_ascii_lowercase();
            let h = if h == "actor" {
                "actor_id".to_owned()
            } else {
                h
            };
            match CSV_COLUMNS.iter().find(|c| **c == h) {
                Some(c) => cols.push((*c, i)),
                None => warnings.push(format!("ignoring unknown CSV column {h:?}")),
            }
        }
        if !cols.iter().any(|(c, _)| *c == "raw_key") {
            return Err(format!(
                "the CSV header has no raw_key column (expected columns: {}); got: {}",
                CSV_COLUMNS[..6].join(","),
                headers.iter().collect::<Vec<_>>().join(",")
            ));
        }
        Ok((
            CsvRows {
                rdr,
                cols,
                lines,
                index: 0,
                record: csv::StringRecord::new(),
            },
            warnings,
        ))
    }

    fn next_row(&mut self) -> Result<Option<Row>, String> {
        loop {
            let index = self.index;
            match self.rdr.read_record(&mut self.record) {
                Ok(false) => return Ok(None),
                // A blank record does not count as a row.
                Ok(true) if self.record.iter().all(str::is_empty) => continue,
                Ok(true) => {
                    self.index += 1;
                    let line = self
                        .lines
                        .line_at(self.record.position().map_or(0, |p| p.byte()));
                    let item = csv_item(&self.cols, &self.record);
                    return Ok(Some(Row { index, line, item }));
                }
                Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => {
                    return Err(format!("cannot read input: {e}"));
                }
                Err(e) => {
                    self.index += 1;
                    let line = self.lines.line_at(e.position().map_or(0, |p| p.byte()));
                    let item = Err((format!("invalid CSV row: {e}"), Value::Null));
                    return Ok(Some(Row { index, line, item }));
                }
            }
        }
    }
}

/// Splits a CSV scopes cell: `;`-separated, or comma-separated (inside a quoted field).
fn csv_scopes(cell: &str) -> Vec<Value> {
    let sep = if cell.contains(';') { ';' } else { ',' };
    cell.split(sep)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Value::String(s.to_owned()))
        .collect()
}

fn csv_item(
    cols: &[(&'static str, usize)],
    rec: &csv::StringRecord,
) -> Result<Value, (String, Value)> {
    let mut obj = Map::new();
    let mut problem = None;
    let mut quota = None;
    let mut window = None;
    for &(col, i) in cols {
        let cell = rec.get(i).unwrap_or("");
        if cell.is_empty() && col != "raw_key" {
            continue;
        }
        let value = match col {
            "scopes" => Value::Array(csv_scopes(cell)),
            "allowed_cidrs" => {
                let cidrs = csv_scopes(cell);
                serde_json::json!({ "allowed_cidrs": cidrs })
            }
            "metadata" => match serde_json::from_str::<Value>(cell) {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) => {
                    problem.get_or_insert_with(|| "metadata must be a JSON object".to_owned());
                    Value::String(cell.to_owned())
                }
                Err(e) => {
                    problem.get_or_insert_with(|| format!("metadata is not valid JSON: {e}"));
                    Value::String(cell.to_owned())
                }
            },
            "rate_limit_quota" => {
                quota = Some(cell.to_owned());
                continue;
            }
            "rate_limit_window" => {
                window = Some(cell.to_owned());
                continue;
            }
            _ => Value::String(cell.to_owned()),
        };
        obj.insert(col.to_owned(), value);
    }
    if let Some(q) = quota {
        let window = window.unwrap_or_else(|| "60s".into());
        obj.insert(
            "rate_limit_policy".into(),
            serde_json::json!({ "quota": q, "window": window }),
        );
    }
    match problem {
        Some(p) => Err((p, Value::Object(obj))),
        None => Ok(Value::Object(obj)),
    }
}

#[cfg(test)]
mod tests;
