//! Just enough of a Rust lexer for tidy: the string literals of a file with their lines, comments
//! skipped, char literals and lifetimes told apart, and the items under `#[cfg(test)]` (unit test
//! modules) left out.

/// A string literal: the line it starts on (1-based) and its text between the quotes, escapes
/// left as written.
#[derive(Debug, PartialEq, Eq)]
pub struct Literal {
    pub line: usize,
    pub value: String,
}

struct Lexer<'a> {
    src: &'a [u8],
    at: usize,
    line: usize,
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> u8 {
        self.src.get(self.at + ahead).copied().unwrap_or(0)
    }

    fn bump(&mut self) -> u8 {
        let c = self.peek(0);
        if c == b'\n' {
            self.line += 1;
        }
        self.at += 1;
        c
    }

    fn starts_with(&self, s: &str) -> bool {
        self.src[self.at..].starts_with(s.as_bytes())
    }

    /// At `"`: reads to the closing quote, honouring backslash escapes.
    fn quoted(&mut self) -> String {
        self.bump();
        let start = self.at;
        while self.at < self.src.len() {
            match self.peek(0) {
                b'\\' => {
                    self.bump();
                    self.bump();
                }
                b'"' => break,
                _ => {
                    self.bump();
                }
            }
        }
        let value = String::from_utf8_lossy(&self.src[start..self.at]).into_owned();
        self.bump();
        value
    }

    /// At the `#`s or `"` after `r`: reads a raw string to `"` and as many `#`s.
    fn raw(&mut self) -> Option<String> {
        let mut hashes = 0;
        while self.peek(hashes) == b'#' {
            hashes += 1;
        }
        if self.peek(hashes) != b'"' {
            return None; // a raw identifier (`r#type`)
        }
        for _ in 0..=hashes {
            self.bump();
        }
        let close = format!("\"{}", "#".repeat(hashes));
        let start = self.at;
        while self.at < self.src.len() && !self.starts_with(&close) {
            self.bump();
        }
        let value = String::from_utf8_lossy(&self.src[start..self.at]).into_owned();
        for _ in 0..close.len() {
            self.bump();
        }
        Some(value)
    }

    /// At `'`: skips a char literal; a lifetime or label is just its quote.
    fn quote(&mut self) {
        self.bump();
        if self.peek(0) == b'\\' {
            while self.at < self.src.len() && self.peek(0) != b'\'' {
                if self.bump() == b'\\' {
                    self.bump();
                }
            }
            self.bump();
            return;
        }
        // One (possibly multi-byte) character, then a closing quote: a char literal.
        let width = match self.peek(0) {
            c if c < 0x80 => 1,
            c if c >= 0xF0 => 4,
            c if c >= 0xE0 => 3,
            _ => 2,
        };
        if self.peek(width) == b'\'' {
            for _ in 0..=width {
                self.bump();
            }
        }
    }

    /// At `/*`: skips a (nested) block comment.
    fn block_comment(&mut self) {
        let mut depth = 0;
        while self.at < self.src.len() {
            if self.starts_with("/*") {
                depth += 1;
                self.bump();
                self.bump();
            } else if self.starts_with("*/") {
                depth -= 1;
                self.bump();
                self.bump();
                if depth == 0 {
                    return;
                }
            } else {
                self.bump();
            }
        }
    }

    /// At `#`: whether an attribute `#[cfg(test)]` starts here (white space allowed inside).
    fn cfg_test(&self) -> bool {
        let rest: String = self.src[self.at..]
            .iter()
            .take(64)
            .map(|&c| c as char)
            .filter(|c| !c.is_whitespace())
            .collect();
        rest.starts_with("#[cfg(test)]")
    }
}

/// The string literals of `src` outside items marked `#[cfg(test)]`.
pub fn string_literals(src: &str) -> Vec<Literal> {
    let mut lx = Lexer {
        src: src.as_bytes(),
        at: 0,
        line: 1,
    };
    let mut out = Vec::new();
    // After `#[cfg(test)]`: the next item is test code, up to its `;` or its closing brace.
    let mut test_item = false;
    // Brace depth inside a test item (0 = not inside one).
    let mut test_depth = 0usize;
    while lx.at < lx.src.len() {
        let line = lx.line;
        let c = lx.peek(0);
        let mut literal = None;
        match c {
            b'/' if lx.peek(1) == b'/' => {
                while lx.at < lx.src.len() && lx.peek(0) != b'\n' {
                    lx.bump();
                }
            }
            b'/' if lx.peek(1) == b'*' => lx.block_comment(),
            b'"' => literal = Some(lx.quoted()),
            b'\'' => lx.quote(),
            b'#' if test_depth == 0 && lx.cfg_test() => {
                test_item = true;
                lx.bump();
            }
            b'{' => {
                lx.bump();
                if test_depth > 0 {
                    test_depth += 1;
                } else if test_item {
                    test_item = false;
                    test_depth = 1;
                }
            }
            b'}' => {
                lx.bump();
                test_depth = test_depth.saturating_sub(1);
            }
            b';' => {
                lx.bump();
                if test_depth == 0 {
                    test_item = false;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = lx.at;
                while lx.peek(0).is_ascii_alphanumeric() || lx.peek(0) == b'_' {
                    lx.bump();
                }
                let word = &lx.src[start..lx.at];
                let next = lx.peek(0);
                if matches!(word, b"r" | b"br" | b"cr") && (next == b'"' || next == b'#') {
                    literal = lx.raw();
                } else if matches!(word, b"b" | b"c") && next == b'"' {
                    literal = Some(lx.quoted());
                } else if word == b"b" && next == b'\'' {
                    lx.quote();
                }
            }
            _ => {
                lx.bump();
            }
        }
        if let Some(value) = literal
            && test_depth == 0
        {
            out.push(Literal { line, value });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(src: &str) -> Vec<(usize, String)> {
        string_literals(src)
            .into_iter()
            .map(|l| (l.line, l.value))
            .collect()
    }

    #[test]
    fn finds_literals_of_every_form_with_their_lines() {
        let src = "let a = \"one\";\nlet b = r#\"two \"quoted\"\"#;\nlet c = b\"three\";\n\
                   let d = \"esc \\\" aped\";\nlet e = br\"five\";";
        assert_eq!(
            values(src),
            [
                (1, "one".into()),
                (2, "two \"quoted\"".into()),
                (3, "three".into()),
                (4, "esc \\\" aped".into()),
                (5, "five".into()),
            ]
        );
    }

    #[test]
    fn skips_comments_chars_and_lifetimes() {
        let cases: &[(&str, &[&str])] = &[
            ("// \"not\"\nx(\"yes\")", &["yes"]),
            ("/* \"not\" /* nested \"no\" */ */ \"yes\"", &["yes"]),
            ("let q = '\"'; let s = \"yes\";", &["yes"]),
            ("fn f<'a>(x: &'a str) -> &'a str { \"yes\" }", &["yes"]),
            ("let c = '\\''; let s = \"yes\";", &["yes"]),
            ("let r#type = 1; let s = \"yes\";", &["yes"]),
            ("let c = 'é'; \"yes\"", &["yes"]),
            ("let b = b'\"'; \"yes\"", &["yes"]),
        ];
        for (src, want) in cases {
            let got: Vec<String> = string_literals(src).into_iter().map(|l| l.value).collect();
            assert_eq!(got, *want, "{src}");
        }
    }

    #[test]
    fn leaves_out_cfg_test_items() {
        let src = "\"keep\"\n#[cfg(test)]\nmod tests {\n fn f() { \"drop\"; { \"drop\" } }\n}\n\"keep too\"\n\
                   #[cfg(test)]\nuse x::y;\n\"and this\"\n#[ cfg( test ) ] fn h() { \"drop\" }";
        let got: Vec<String> = string_literals(src).into_iter().map(|l| l.value).collect();
        assert_eq!(got, ["keep", "keep too", "and this"]);
    }
}
