//! containerd's filter language for Walk/List: `fieldpath[(==|!=|~=)value]` selectors joined by
//! `,` (all must match); several filter strings match when any one does.
//!
//! Snapshot fields: `kind` (active|view|committed), `name`, `parent`, `labels.<key>` (the key may
//! be quoted, e.g. `labels."containerd.io/gc.root"`).

use regex::Regex;

use crate::error::{Error, Result};

#[derive(Debug)]
enum Op {
    Present,
    Equal(String),
    NotEqual(String),
    Matches(Regex),
}

#[derive(Debug)]
struct Selector {
    fieldpath: Vec<String>,
    op: Op,
}

/// Any of the filters (each a list of selectors that must all match). No filter matches all.
#[derive(Debug, Default)]
pub struct Filter {
    any: Vec<Vec<Selector>>,
}

/// The fields a filter can look at.
pub trait Fields {
    /// The value of `fieldpath`, or None when the object has no such field.
    fn field(&self, fieldpath: &[String]) -> Option<String>;
}

impl Filter {
    pub fn parse_all(filters: &[String]) -> Result<Filter> {
        let mut any = Vec::new();
        for f in filters {
            if f.is_empty() {
                return Ok(Filter::default()); // an empty filter matches everything
            }
            any.push(
                Parser::new(f)
                    .selectors()
                    .map_err(|msg| Error::InvalidArgument(format!("filter {f:?}: {msg}")))?,
            );
        }
        Ok(Filter { any })
    }

    pub fn matches(&self, obj: &impl Fields) -> bool {
        self.any.is_empty()
            || self
                .any
                .iter()
                .any(|sels| sels.iter().all(|s| s.matches(obj)))
    }
}

impl Selector {
    fn matches(&self, obj: &impl Fields) -> bool {
        let value = obj.field(&self.fieldpath);
        match &self.op {
            Op::Present => value.is_some(),
            Op::Equal(v) => value.as_deref() == Some(v.as_str()),
            // containerd compares against "" when the field is absent
            Op::NotEqual(v) => value.as_deref().unwrap_or("") != v,
            Op::Matches(re) => re.is_match(value.as_deref().unwrap_or("")),
        }
    }
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

fn is_field_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

fn is_quote(c: char) -> bool {
    matches!(c, '"' | '/' | '|')
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser {
            chars: s.chars().peekable(),
        }
    }

    fn skip_space(&mut self) {
        while self.chars.peek().is_some_and(|c| c.is_whitespace()) {
            self.chars.next();
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.chars.peek().copied()
    }

    fn selectors(&mut self) -> Result<Vec<Selector>, String> {
        let mut out = vec![self.selector()?];
        loop {
            match self.peek() {
                None => return Ok(out),
                Some(',') => {
                    self.chars.next();
                    out.push(self.selector()?);
                }
                Some(c) => return Err(format!("unexpected input {c:?}")),
            }
        }
    }

    fn selector(&mut self) -> Result<Selector, String> {
        let mut fieldpath = vec![self.field()?];
        while self.peek() == Some('.') {
            self.chars.next();
            fieldpath.push(self.field()?);
        }
        let op = match self.peek() {
            None | Some(',') => {
                return Ok(Selector {
                    fieldpath,
                    op: Op::Present,
                })
            }
            Some(_) => self.operator()?,
        };
        let value = self.value(op == "~=")?;
        let op = match op.as_str() {
            "==" => Op::Equal(value),
            "!=" => Op::NotEqual(value),
            _ => Op::Matches(Regex::new(&value).map_err(|e| e.to_string())?),
        };
        Ok(Selector { fieldpath, op })
    }

    fn field(&mut self) -> Result<String, String> {
        match self.peek() {
            Some('"') => {
                self.chars.next();
                self.quoted('"')
            }
            Some(c) if is_field_char(c) => {
                let mut s = String::new();
                while let Some(&c) = self.chars.peek().filter(|c| is_field_char(**c)) {
                    s.push(c);
                    self.chars.next();
                }
                Ok(s)
            }
            other => Err(format!(
                "expected a field or a quoted string, got {other:?}"
            )),
        }
    }

    fn operator(&mut self) -> Result<String, String> {
        let mut op = String::new();
        while let Some(&c) = self.chars.peek().filter(|c| matches!(c, '=' | '!' | '~')) {
            op.push(c);
            self.chars.next();
        }
        match op.as_str() {
            "==" | "!=" | "~=" => Ok(op),
            "" => Err("expected an operator (==, !=, ~=)".into()),
            _ => Err(format!("unsupported operator {op:?}")),
        }
    }

    fn value(&mut self, alt_quotes: bool) -> Result<String, String> {
        match self.peek() {
            None => Err("unexpected end: expected a value".into()),
            Some(q) if is_quote(q) => {
                if q != '"' && !alt_quotes {
                    return Err(format!("quote {q:?} is only allowed after ~="));
                }
                self.chars.next();
                self.quoted(q)
            }
            Some(_) => {
                let mut s = String::new();
                while let Some(&c) = self
                    .chars
                    .peek()
                    .filter(|c| **c != ',' && !c.is_whitespace() && !c.is_control())
                {
                    s.push(c);
                    self.chars.next();
                }
                Ok(s)
            }
        }
    }

    /// The rest of a quoted string whose opening `quote` was consumed; Go-style escapes.
    fn quoted(&mut self, quote: char) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.chars.next() {
                None | Some('\n') => return Err("quoted literal not terminated".into()),
                Some(c) if c == quote => return Ok(s),
                Some('\\') => s.push(self.escape(quote)?),
                Some(c) => s.push(c),
            }
        }
    }

    fn escape(&mut self, quote: char) -> Result<char, String> {
        let c = self.chars.next().ok_or("unterminated escape")?;
        let simple = match c {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' => Some('\\'),
            c if c == quote => Some(c),
            _ => None,
        };
        if let Some(ch) = simple {
            return Ok(ch);
        }
        let (radix, digits, first) = match c {
            '0'..='7' => (8, 3, Some(c)),
            'x' => (16, 2, None),
            'u' => (16, 4, None),
            'U' => (16, 8, None),
            _ => return Err(format!("illegal escape sequence \\{c}")),
        };
        let mut text: String = first.into_iter().collect();
        while text.len() < digits {
            text.push(self.chars.next().ok_or("short numeric escape")?);
        }
        u32::from_str_radix(&text, radix)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| format!("illegal numeric escape \\{c}{text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Obj {
        kind: &'static str,
        name: &'static str,
        parent: &'static str,
        labels: HashMap<String, String>,
    }

    impl Fields for Obj {
        fn field(&self, fp: &[String]) -> Option<String> {
            match fp.first()?.as_str() {
                "kind" => Some(self.kind.into()),
                "name" => Some(self.name.into()),
                "parent" => Some(self.parent.into()),
                "labels" => self.labels.get(&fp[1..].join(".")).cloned(),
                _ => None,
            }
        }
    }

    fn obj(
        name: &'static str,
        parent: &'static str,
        kind: &'static str,
        l: &[(&str, &str)],
    ) -> Obj {
        Obj {
            kind,
            name,
            parent,
            labels: l
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn run(filters: &[&str], objs: &[Obj]) -> Vec<&'static str> {
        let f =
            Filter::parse_all(&filters.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        objs.iter()
            .filter(|o| f.matches(*o))
            .map(|o| o.name)
            .collect()
    }

    #[test]
    fn the_walk_cases_of_containerds_suite() {
        let gc = ("containerd.io/gc.root", "check-walk");
        let objs = [
            obj("a-np", "", "active", &[gc]),
            obj("p", "", "committed", &[gc]),
            obj("a", "p", "active", &[gc]),
            obj("v", "p", "view", &[gc]),
            obj("p-wl", "", "committed", &[gc, ("l", "1")]),
            obj("a-wl", "p-wl", "active", &[gc, ("l", "2")]),
            obj("v-wl", "p-wl", "view", &[gc, ("l", "3")]),
            obj("a-np-wl", "", "active", &[gc, ("l", "2")]),
        ];
        let gcq = r#"labels."containerd.io/gc.root"==check-walk"#;
        assert_eq!(run(&[gcq], &objs).len(), 8);
        assert_eq!(
            run(&[&format!("kind==active,{gcq}")], &objs),
            ["a-np", "a", "a-wl", "a-np-wl"]
        );
        assert_eq!(run(&["kind==view"], &objs), ["v", "v-wl"]);
        assert_eq!(run(&["name==p", "name==a-np-wl"], &objs), ["p", "a-np-wl"]);
        assert_eq!(run(&["name==a-wl,labels.l"], &objs), ["a-wl"]);
        assert_eq!(run(&["parent==p"], &objs), ["a", "v"]);
        assert_eq!(
            run(&[&format!(r#"parent!="",{gcq}"#)], &objs),
            ["a", "v", "a-wl", "v-wl"]
        );
        assert_eq!(
            run(&["labels.l"], &objs),
            ["p-wl", "a-wl", "v-wl", "a-np-wl"]
        );
        assert_eq!(run(&["labels.l==2"], &objs), ["a-wl", "a-np-wl"]);
        assert_eq!(run(&["name~=/^a-/"], &objs), ["a-np", "a-wl", "a-np-wl"]);
        assert_eq!(run(&["name~=^v"], &objs), ["v", "v-wl"]);
        assert_eq!(run(&[], &objs).len(), 8);
    }

    #[test]
    fn bad_filters_are_invalid_arguments() {
        for bad in [
            "name==",
            "name=x",
            "name==\"open",
            "name==/x/",
            ",",
            "name==a b",
        ] {
            let err = Filter::parse_all(&[bad.to_string()]).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn escapes_in_quoted_fields() {
        let f = Filter::parse_all(&[r#"labels."a\x2eb"==1"#.to_string()]).unwrap();
        let o = obj("n", "", "active", &[("a.b", "1")]);
        assert!(f.matches(&o));
    }
}
