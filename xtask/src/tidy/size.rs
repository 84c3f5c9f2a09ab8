//! A ceiling on file length: a Rust file over `CEILING` lines holds more than one concern and
//! should be split by concern (the house style says modules stay under about 800 lines).

use super::{Source, Violation, missing_entries};

pub const CEILING: usize = 800;

/// Files allowed over the ceiling for now: path, the length they may not exceed, and why. An
/// entry whose file is back under the ceiling (or gone) is itself reported, so the list only
/// shrinks.
const OVER: &[(&str, usize, &str)] = &[];

pub fn check(files: &[Source]) -> Vec<Violation> {
    check_with(files, OVER)
}

fn check_with(files: &[Source], over: &[(&str, usize, &str)]) -> Vec<Violation> {
    let mut out = Vec::new();
    for f in files {
        let lines = f.text.lines().count();
        match over.iter().find(|(p, _, _)| *p == f.rel) {
            None if lines > CEILING => out.push(Violation::new(
                &f.rel,
                CEILING + 1,
                format!("{lines} lines, over the {CEILING}-line ceiling: split it by concern"),
            )),
            Some((_, cap, _)) if lines > *cap => out.push(Violation::new(
                &f.rel,
                cap + 1,
                format!(
                    "{lines} lines, over the {cap} its entry in OVER (xtask/src/tidy/size.rs) \
                     allows: split it by concern"
                ),
            )),
            Some(_) if lines <= CEILING => out.push(Violation::new(
                &f.rel,
                1,
                format!(
                    "{lines} lines, under the ceiling now: remove it from OVER in \
                     xtask/src/tidy/size.rs"
                ),
            )),
            _ => {}
        }
    }
    out.extend(missing_entries(
        files,
        over.iter().map(|e| e.0),
        "size",
        "OVER",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize) -> String {
        "x\n".repeat(n)
    }

    #[test]
    fn ceiling_and_allowlist() {
        let over = [("big.rs", 900, "why"), ("shrunk.rs", 900, "why")];
        // (file, lines, expected message start or None)
        let cases: &[(&str, usize, Option<&str>)] = &[
            ("small.rs", CEILING, None),
            (
                "long.rs",
                CEILING + 1,
                Some("long.rs:801: 801 lines, over the 800-line"),
            ),
            ("big.rs", 900, None),
            (
                "shrunk.rs",
                700,
                Some("shrunk.rs:1: 700 lines, under the ceiling now"),
            ),
        ];
        let files: Vec<Source> = cases
            .iter()
            .map(|(name, n, _)| Source::new(name, &lines(*n)))
            .collect();
        let got: Vec<String> = check_with(&files, &over)
            .iter()
            .map(|v| v.to_string())
            .collect();
        let want: Vec<&str> = cases.iter().filter_map(|c| c.2).collect();
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "{g:?} should start with {w:?}");
        }
        let grown = [Source::new("big.rs", &lines(901))];
        let got = check_with(&grown, &over[..1]);
        assert_eq!(got.len(), 1);
        assert!(
            got[0]
                .to_string()
                .starts_with("big.rs:901: 901 lines, over the 900")
        );
        let got = check_with(&[], &over[..1]);
        assert!(got[0].to_string().contains("big.rs, which does not exist"));
    }
}
