//! Listing: the query parameters of both list endpoints and the filter grammar, the AIP-160 subset
//! upstream supports (`actor_id="…"` or `actor_id=…`, `status=KEY_STATUS_X`, joined by `AND`).

use crate::enums::KeyStatus;

/// Query parameters of both list endpoints. All filters are ANDed by the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    /// 1..1000 (≤0 means 50).
    pub page_size: Option<i64>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<String>,
    /// AIP-160 filter: `actor_id="x"` (or unquoted), `status=KEY_STATUS_ACTIVE` (or quoted), joined
    /// by `AND` in any case.
    pub filter: Option<String>,
    /// Only this actor's keys.
    pub actor_id: Option<String>,
    /// `active|revoked|expired` or `KEY_STATUS_*`; needs `actor_id`.
    pub status: Option<String>,
}

/// What a list is restricted to, from `filter` and the `actor_id`/`status` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this actor's keys.
    pub actor_id: Option<String>,
    /// Only keys in this status (never `Unspecified`).
    pub status: Option<KeyStatus>,
}

impl ListParams {
    /// The query parameters names, in the order they are written.
    pub const NAMES: &'static [&'static str] =
        &["page_size", "page_token", "filter", "actor_id", "status"];

    /// Reads the parameters from a query string's pairs (a parameter given twice keeps the last
    /// value). `page_size` must be an integer when given.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut p = ListParams::default();
        let mut page_size = None;
        for (k, v) in pairs {
            match k {
                "page_size" => page_size = Some(v),
                "page_token" => p.page_token = Some(v.to_string()),
                "filter" => p.filter = Some(v.to_string()),
                "actor_id" => p.actor_id = Some(v.to_string()),
                "status" => p.status = Some(v.to_string()),
                _ => {}
            }
        }
        p.page_size = match page_size.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(
                s.parse::<i64>()
                    .map_err(|_| format!("page_size must be an integer, got {s:?}"))?,
            ),
        };
        Ok(p)
    }

    /// The set parameters as query pairs, in [`ListParams::NAMES`] order.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(n) = self.page_size {
            out.push(("page_size", n.to_string()));
        }
        for (k, v) in [
            ("page_token", &self.page_token),
            ("filter", &self.filter),
            ("actor_id", &self.actor_id),
            ("status", &self.status),
        ] {
            if let Some(v) = v {
                out.push((k, v.clone()));
            }
        }
        out
    }

    /// The filter these parameters ask for: `filter` parsed, then `actor_id` and `status` added
    /// (each may be given once only, as a parameter or in `filter`).
    pub fn list_filter(&self) -> Result<ListFilter, String> {
        let mut f = parse_filter(self.filter.as_deref().unwrap_or(""))?;
        if let Some(a) = self.actor_id.as_ref().filter(|a| !a.is_empty()) {
            if f.actor_id.is_some() {
                return Err("actor_id given both as a parameter and in filter".into());
            }
            f.actor_id = Some(a.clone());
        }
        if let Some(s) = self.status.as_ref().filter(|s| !s.is_empty()) {
            if f.status.is_some() {
                return Err("status given both as a parameter and in filter".into());
            }
            f.status = Some(parse_status(s)?);
        }
        Ok(f)
    }
}

/// A status as the `status` parameter takes it: `KEY_STATUS_ACTIVE` or `active`, any case.
pub fn parse_status(v: &str) -> Result<KeyStatus, String> {
    let upper = v.trim().to_ascii_uppercase();
    match upper.strip_prefix("KEY_STATUS_").unwrap_or(&upper) {
        "ACTIVE" => Ok(KeyStatus::Active),
        "REVOKED" => Ok(KeyStatus::Revoked),
        "EXPIRED" => Ok(KeyStatus::Expired),
        _ => Err(format!(
            "invalid status {v:?}: use {}, {} or {}",
            KeyStatus::Active.as_str(),
            KeyStatus::Revoked.as_str(),
            KeyStatus::Expired.as_str()
        )),
    }
}

/// Parses a filter expression; blank is no filter.
///
/// The grammar is upstream's: clauses `field=value` joined by `AND` (any case, any whitespace
/// around it); `actor_id` takes a quoted (`"u1"`) or unquoted (`u1`) value, `status` an enum name
/// (`KEY_STATUS_ACTIVE`, quoted or not). `OR`, `NOT`, other fields and repeated fields are refused.
pub fn parse_filter(text: &str) -> Result<ListFilter, String> {
    let mut f = ListFilter::default();
    if text.trim().is_empty() {
        return Ok(f);
    }
    for (field, value) in clauses(text)? {
        match field.as_str() {
            "actor_id" => {
                if f.actor_id.is_some() {
                    return Err("filter field actor_id given twice".into());
                }
                if value.is_empty() || value.chars().count() > 256 {
                    return Err("filter actor_id must be 1..256 characters".into());
                }
                f.actor_id = Some(value);
            }
            "status" => {
                if f.status.is_some() {
                    return Err("filter field status given twice".into());
                }
                // In a filter the status is an enum literal: the full name only.
                if !value.starts_with("KEY_STATUS_") {
                    return Err(format!("invalid status {value:?} in filter"));
                }
                f.status = Some(parse_status(&value)?);
            }
            other => {
                return Err(format!(
                    "unknown filter field {other:?} (allowed: actor_id, status)"
                ));
            }
        }
    }
    Ok(f)
}

/// One token of a filter: a word (field name, operator or unquoted value), `=`, or a quoted
/// string.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Eq,
    Quoted(String),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '=' {
            chars.next();
            out.push(Token::Eq);
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => s.push(c),
                    None => return Err("invalid filter: unterminated quoted value".into()),
                }
            }
            out.push(Token::Quoted(s));
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '=' || c == '"' {
                    break;
                }
                s.push(c);
                chars.next();
            }
            out.push(Token::Word(s));
        }
    }
    Ok(out)
}

/// The `field=value` clauses of a filter, in order.
fn clauses(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut toks = tokens(text)?.into_iter();
    loop {
        let field = match toks.next() {
            Some(Token::Word(w)) if is_operator(&w) => {
                return Err(operator_error(&w));
            }
            Some(Token::Word(w)) => w,
            _ => return Err("invalid filter: expected field=value".into()),
        };
        if toks.next() != Some(Token::Eq) {
            return Err(format!(
                "invalid filter clause at {field:?}: expected field=value"
            ));
        }
        let value = match toks.next() {
            Some(Token::Quoted(v)) => v,
            Some(Token::Word(w)) if !is_operator(&w) => w,
            _ => return Err(format!("invalid filter: {field} has no value")),
        };
        out.push((field, value));
        match toks.next() {
            None => return Ok(out),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("AND") => {}
            Some(Token::Word(w)) if is_operator(&w) => return Err(operator_error(&w)),
            Some(_) => return Err("invalid filter: clauses must be joined by AND".into()),
        }
    }
}

fn is_operator(word: &str) -> bool {
    ["AND", "OR", "NOT"]
        .iter()
        .any(|op| word.eq_ignore_ascii_case(op))
}

fn operator_error(word: &str) -> String {
    if word.eq_ignore_ascii_case("AND") {
        "invalid filter: empty clause".into()
    } else {
        format!(
            "filter operator {} is not supported (only AND)",
            word.to_ascii_uppercase()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(actor_id: Option<&str>, status: Option<KeyStatus>) -> ListFilter {
        ListFilter {
            actor_id: actor_id.map(str::to_string),
            status,
        }
    }

    #[test]
    fn filter_grammar() {
        let ok: &[(&str, ListFilter)] = &[
            ("", ListFilter::default()),
            (r#"actor_id="u1""#, filter(Some("u1"), None)),
            (
                r#"actor_id="a b" AND status=KEY_STATUS_REVOKED"#,
                filter(Some("a b"), Some(KeyStatus::Revoked)),
            ),
            (
                r#"status=KEY_STATUS_EXPIRED AND actor_id="x""#,
                filter(Some("x"), Some(KeyStatus::Expired)),
            ),
            // Upstream's forms: unquoted values, quoted enum names, AND in any case, any spacing.
            ("actor_id=u1", filter(Some("u1"), None)),
            (
                r#"status="KEY_STATUS_ACTIVE" and actor_id=u1"#,
                filter(Some("u1"), Some(KeyStatus::Active)),
            ),
            (
                "  actor_id = u1\tAnD\n status=KEY_STATUS_REVOKED ",
                filter(Some("u1"), Some(KeyStatus::Revoked)),
            ),
            (
                r#"actor_id="AND" AND status=KEY_STATUS_ACTIVE"#,
                filter(Some("AND"), Some(KeyStatus::Active)),
            ),
        ];
        for (text, want) in ok {
            assert_eq!(&parse_filter(text).unwrap(), want, "{text}");
        }
        for bad in [
            r#"actor_id="a" OR actor_id="b""#,
            r#"actor_id="a" AND actor_id="b""#,
            r#"name="x""#,
            "status=KEY_STATUS_UNSPECIFIED",
            r#"status="KEY_STATUS_UNSPECIFIED""#,
            "status=active",
            r#"actor_id="a" AND"#,
            r#"actor_id="a" or actor_id="b""#,
            r#"actor_id="a" actor_id="b""#,
            r#"actor_id="unterminated"#,
            r#"actor_id="""#,
            "actor_id=",
            "AND actor_id=u1",
            "NOT actor_id=u1",
            "garbage",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn parameters_join_the_filter_once() {
        let params = |filter: &str, actor: &str, status: &str| ListParams {
            filter: Some(filter.into()),
            actor_id: Some(actor.into()),
            status: Some(status.into()),
            ..Default::default()
        };
        assert_eq!(
            params("", "u", "revoked").list_filter(),
            Ok(filter(Some("u"), Some(KeyStatus::Revoked)))
        );
        assert!(params(r#"actor_id="u""#, "u", "").list_filter().is_err());
        assert!(
            params("status=KEY_STATUS_ACTIVE", "u", "active")
                .list_filter()
                .is_err()
        );
        assert!(params("", "u", "sleeping").list_filter().is_err());
        let p = ListParams::from_pairs([("page_size", " 10 "), ("actor_id", "a b")]).unwrap();
        assert_eq!(
            (p.page_size, p.actor_id.as_deref()),
            (Some(10), Some("a b"))
        );
        assert_eq!(
            p.to_pairs(),
            [
                ("page_size", "10".to_string()),
                ("actor_id", "a b".to_string())
            ]
        );
        assert!(ListParams::from_pairs([("page_size", "ten")]).is_err());
    }
}
