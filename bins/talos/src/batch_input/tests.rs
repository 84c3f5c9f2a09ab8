//! Tests of the batch-import readers: JSON arrays, JSON lines and CSV, row errors and fatal ones.

use std::io::Cursor;

use serde_json::json;

use super::*;

fn rows(input: &str) -> (InputFormat, Vec<Result<Row, String>>) {
    let r = RowReader::new(Box::new(Cursor::new(input.as_bytes().to_vec()))).unwrap();
    let f = r.format;
    (f, r.collect())
}

/// (index, line, Ok(item) | Err(message substring))
type Want = (u64, u64, Result<serde_json::Value, &'static str>);

fn check(name: &str, input: &str, want_format: InputFormat, want: &[Want]) {
    let (format, got) = rows(input);
    assert_eq!(format, want_format, "{name}: format");
    assert_eq!(got.len(), want.len(), "{name}: {got:#?}");
    for (g, (index, line, item)) in got.iter().zip(want) {
        let g = g.as_ref().unwrap_or_else(|e| panic!("{name}: fatal {e}"));
        assert_eq!(
            (g.index, g.line),
            (*index, *line),
            "{name}: position of {g:?}"
        );
        match (item, &g.item) {
            (Ok(w), Ok(v)) => assert_eq!(v, w, "{name}"),
            (Err(w), Err((m, _))) => assert!(m.contains(w), "{name}: {m:?} lacks {w:?}"),
            (w, g) => panic!("{name}: want {w:?}, got {g:?}"),
        }
    }
}

#[test]
fn formats_are_parsed_row_by_row() {
    let cases: Vec<(&str, &str, InputFormat, Vec<Want>)> = vec![
        (
            "docs array",
            "[\n{\"raw_key\": \"ghp_batch_key_001\", \"name\": \"GitHub PAT 1\", \"actor_id\": \"dev-team\"},\n\
             {\"raw_key\": \"ghp_batch_key_002\", \"name\": \"GitHub PAT 2\", \"actor_id\": \"dev-team\"}\n]\n",
            InputFormat::JsonArray,
            vec![
                (
                    0,
                    2,
                    Ok(
                        json!({"raw_key": "ghp_batch_key_001", "name": "GitHub PAT 1", "actor_id": "dev-team"}),
                    ),
                ),
                (
                    1,
                    3,
                    Ok(
                        json!({"raw_key": "ghp_batch_key_002", "name": "GitHub PAT 2", "actor_id": "dev-team"}),
                    ),
                ),
            ],
        ),
        ("empty array", "  [ ]  ", InputFormat::JsonArray, vec![]),
        (
            "array with tricky strings, nesting, bad element and trailing comma",
            "\u{feff}[{\"raw_key\":\"a,]b\\\"}\",\"metadata\":{\"x\":[1,{\"y\":\"]\"}]}},\n{\"raw_key\": },\n42,\n{\"raw_key\":\"c\"},\n]",
            InputFormat::JsonArray,
            vec![
                (
                    0,
                    1,
                    Ok(json!({"raw_key": "a,]b\"}", "metadata": {"x": [1, {"y": "]"}]}})),
                ),
                (1, 2, Err("invalid JSON")),
                (2, 3, Err("expected a JSON object")),
                (3, 4, Ok(json!({"raw_key": "c"}))),
            ],
        ),
        (
            "json lines with blanks and a broken line",
            "\n{\"raw_key\":\"a\"}\n\n{\"raw_key\":\"b\",\"scopes\":[\"x\"]}\r\n{nope\n[1]\n",
            InputFormat::JsonLines,
            vec![
                (0, 2, Ok(json!({"raw_key": "a"}))),
                (1, 4, Ok(json!({"raw_key": "b", "scopes": ["x"]}))),
                (2, 5, Err("invalid JSON")),
                (3, 6, Err("expected a JSON object")),
            ],
        ),
        (
            "csv with quoted comma scopes, semicolons, metadata and blanks",
            "raw_key,name,actor_id,scopes,ttl,metadata\n\
             k1,Key 1,dev,\"read,write\",720h,\"{\"\"team\"\":\"\"a\"\"}\"\n\
             k2,Key 2,dev,read;write;,,\n\
             \n\
             k3,,,,,not json\n",
            InputFormat::Csv,
            vec![
                (
                    0,
                    2,
                    Ok(
                        json!({"raw_key": "k1", "name": "Key 1", "actor_id": "dev", "scopes": ["read", "write"],
                    "ttl": "720h", "metadata": {"team": "a"}}),
                    ),
                ),
                (
                    1,
                    3,
                    Ok(
                        json!({"raw_key": "k2", "name": "Key 2", "actor_id": "dev", "scopes": ["read", "write"]}),
                    ),
                ),
                (2, 5, Err("metadata is not valid JSON")),
            ],
        ),
        (
            "csv with columns in another order, actor alias and rate limit",
            "name , ACTOR, raw_key, rate_limit_quota\nn,a,k,10\n",
            InputFormat::Csv,
            vec![(
                0,
                2,
                Ok(json!({"raw_key": "k", "name": "n", "actor_id": "a",
                "rate_limit_policy": {"quota": "10", "window": "60s"}})),
            )],
        ),
    ];
    for (name, input, format, want) in cases {
        check(name, input, format, &want);
    }
}

#[test]
fn fatal_errors_stop_the_stream() {
    for (input, want) in [
        ("[{\"raw_key\":\"a\"}", "not closed"),
        ("[{\"raw_key\":\"a\"", "unexpected end of input"),
        ("[{\"raw_key\":\"a\"}] trailing", "after the closing ]"),
        ("[,]", "empty array element"),
    ] {
        let (_, got) = rows(input);
        let err = got
            .into_iter()
            .find_map(Result::err)
            .unwrap_or_else(|| panic!("{input}: no fatal error"));
        assert!(err.contains(want), "{input}: {err}");
    }
}

#[test]
fn csv_without_raw_key_is_refused_and_unknown_columns_warned() {
    let err = RowReader::new(Box::new(Cursor::new(b"name,actor_id\nx,y\n".to_vec())))
        .err()
        .unwrap();
    assert!(err.contains("no raw_key column"), "{err}");
    let r = RowReader::new(Box::new(Cursor::new(b"raw_key,colour\nk,red\n".to_vec()))).unwrap();
    assert_eq!(r.warnings, ["ignoring unknown CSV column \"colour\""]);
}

#[test]
fn empty_input_has_no_rows() {
    let (_, got) = rows(" \n\n");
    assert!(got.is_empty());
}

#[test]
fn counting_reader_counts_consumed_bytes() {
    let (mut c, n) = Counting::new(Cursor::new(b"[{\"raw_key\":\"a\"}]".to_vec()));
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    assert_eq!(n.load(Ordering::Relaxed), 17);
}
