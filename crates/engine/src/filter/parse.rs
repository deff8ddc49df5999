//! The filter expression language: a lexer and a recursive-descent parser with a nesting bound,
//! behind [`Filter::from_str`](std::str::FromStr::from_str). The grammar is in the
//! [`filter`](crate::filter) module's documentation.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::Filter;

/// Where and why a filter expression is malformed.
///
/// ```
/// use sieve_engine::{Filter, ParseFilterError};
///
/// let err = "chunk >= and".parse::<Filter>().unwrap_err();
/// assert_eq!(err.position, 10);
/// assert_eq!(err.to_string(), "at position 10: expected a number after `>=`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct ParseFilterError {
    /// 1-based character position (one past the end for "unexpected end").
    pub position: usize,
    /// What was expected or found.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::Quoted(s) => write!(f, "{s:?}"),
            Tok::Op(op) => write!(f, "`{op}`"),
            Tok::LParen => f.write_str("`(`"),
            Tok::RParen => f.write_str("`)`"),
            Tok::Comma => f.write_str("`,`"),
            Tok::End => f.write_str("the end of the expression"),
        }
    }
}

/// How deeply parentheses and `not` may nest: the parser and the filter it builds recurse once
/// per level, so an unbounded depth would overflow the stack on hostile input.
pub const MAX_DEPTH: usize = 64;

impl FromStr for Filter {
    type Err = ParseFilterError;

    /// Parses a filter expression (the grammar is in [`filter`](crate::filter)).
    ///
    /// ```
    /// use sieve_engine::Filter;
    /// use serde_json::json;
    ///
    /// let recent: Filter = "year >= 2020 and (lang = en or lang = 'de')".parse()?;
    /// assert!(recent.matches(&json!({"year": 2023, "lang": "de"})));
    /// assert!(!recent.matches(&json!({"year": 2019, "lang": "en"})));
    /// // A bare number also matches its digits stored as a string.
    /// assert!("year = 2021".parse::<Filter>()?.matches(&json!({"year": "2021"})));
    /// # Ok::<(), sieve_engine::ParseFilterError>(())
    /// ```
    fn from_str(expr: &str) -> Result<Filter, ParseFilterError> {
        parse(expr)
    }
}

fn parse(expr: &str) -> Result<Filter, ParseFilterError> {
    let tokens = lex(expr)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
    if parser.peek() == &Tok::End {
        return Err(parser.error("empty expression: expected a condition such as `path=notes/a.md`"));
    }
    let filter = parser.or()?;
    match parser.peek() {
        Tok::End => Ok(filter),
        Tok::RParen => Err(parser.error("`)` without a matching `(`")),
        other => Err(parser.error(format!("expected `and`, `or` or the end, found {other}"))),
    }
}

fn lex(expr: &str) -> Result<Vec<(Tok, usize)>, ParseFilterError> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let (tok, next) = match c {
            '(' => (Tok::LParen, i + 1),
            ')' => (Tok::RParen, i + 1),
            ',' => (Tok::Comma, i + 1),
            '=' if chars.get(i + 1) == Some(&'=') => (Tok::Op("="), i + 2),
            '=' => (Tok::Op("="), i + 1),
            '!' if chars.get(i + 1) == Some(&'=') => (Tok::Op("!="), i + 2),
            '<' if chars.get(i + 1) == Some(&'=') => (Tok::Op("<="), i + 2),
            '<' => (Tok::Op("<"), i + 1),
            '>' if chars.get(i + 1) == Some(&'=') => (Tok::Op(">="), i + 2),
            '>' => (Tok::Op(">"), i + 1),
            '!' => {
                return Err(ParseFilterError {
                    position: pos,
                    message: "`!` must be followed by `=` (use `not` to negate)".into(),
                });
            }
            '"' | '\'' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(ParseFilterError {
                                position: pos,
                                message: format!("unterminated string: no closing {c}"),
                            });
                        }
                        Some('\\') if matches!(chars.get(j + 1), Some(&q) if q == c || q == '\\') => {
                            s.push(chars[j + 1]);
                            j += 2;
                        }
                        Some(&q) if q == c => break,
                        Some(&other) => {
                            s.push(other);
                            j += 1;
                        }
                    }
                }
                (Tok::Quoted(s), j + 1)
            }
            _ => {
                let mut j = i;
                while j < chars.len() && !chars[j].is_whitespace() && !"()=!<>,\"'".contains(chars[j]) {
                    j += 1;
                }
                (Tok::Word(chars[i..j].iter().collect()), j)
            }
        };
        tokens.push((tok, pos));
        i = next;
    }
    tokens.push((Tok::End, chars.len() + 1));
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(Tok, usize)>,
    at: usize,
    /// Open parentheses and `not`s around the current position.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.at].0
    }

    fn next(&mut self) -> Tok {
        let tok = self.tokens[self.at].0.clone();
        if tok != Tok::End {
            self.at += 1;
        }
        tok
    }

    fn error(&self, message: impl Into<String>) -> ParseFilterError {
        ParseFilterError {
            position: self.tokens[self.at].1,
            message: message.into(),
        }
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Word(w) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self) -> Result<Filter, ParseFilterError> {
        let mut filter = self.and()?;
        while self.keyword("or") {
            self.next();
            filter = filter.or(self.and()?);
        }
        Ok(filter)
    }

    fn and(&mut self) -> Result<Filter, ParseFilterError> {
        let mut filter = self.unary()?;
        while self.keyword("and") {
            self.next();
            filter = filter.and(self.unary()?);
        }
        Ok(filter)
    }

    fn unary(&mut self) -> Result<Filter, ParseFilterError> {
        if self.keyword("not") {
            self.enter()?;
            self.next();
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(inner.not());
        }
        if self.peek() == &Tok::LParen {
            self.enter()?;
            self.next();
            let inner = self.or()?;
            if self.peek() != &Tok::RParen {
                return Err(self.error(format!("expected `)`, found {}", self.peek())));
            }
            self.next();
            self.depth -= 1;
            return Ok(inner);
        }
        if self.keyword("exists") {
            self.next();
            return Ok(Filter::exists(self.field("after `exists`")?));
        }
        self.condition()
    }

    /// One more level of nesting, refused past [`MAX_DEPTH`].
    fn enter(&mut self) -> Result<(), ParseFilterError> {
        if self.depth == MAX_DEPTH {
            return Err(self.error(format!(
                "the expression nests deeper than {MAX_DEPTH} levels of parentheses and `not`"
            )));
        }
        self.depth += 1;
        Ok(())
    }

    fn field(&mut self, context: &str) -> Result<String, ParseFilterError> {
        match self.peek().clone() {
            Tok::Word(w) if !is_keyword(&w) => {
                self.next();
                Ok(w)
            }
            Tok::Quoted(s) if !s.is_empty() => {
                self.next();
                Ok(s)
            }
            other => Err(self.error(format!("expected a field name {context}, found {other}"))),
        }
    }

    fn condition(&mut self) -> Result<Filter, ParseFilterError> {
        let field =
            self.field("(a condition is `field=value`, `field>=number`, `field in (a,b)` or `exists field`)")?;
        if self.keyword("in") {
            self.next();
            return self.in_list(field);
        }
        let op = match self.peek() {
            Tok::Op(op) => *op,
            other => {
                return Err(self.error(format!(
                    "expected an operator (=, !=, <, <=, >, >=, in) after `{field}`, found {other}"
                )));
            }
        };
        self.next();
        match op {
            "=" => Ok(equals(field, self.value(op)?)),
            "!=" => Ok(equals(field, self.value(op)?).not()),
            _ => {
                let number = match self.value(op)? {
                    Parsed::Number(x, _) => x,
                    _ => {
                        self.at -= 1;
                        return Err(self.error(format!("expected a number after `{op}`")));
                    }
                };
                let range = Filter::range(field);
                Ok(match op {
                    "<" => range.lt(number),
                    "<=" => range.lte(number),
                    ">" => range.gt(number),
                    _ => range.gte(number),
                })
            }
        }
    }

    fn in_list(&mut self, field: String) -> Result<Filter, ParseFilterError> {
        if self.peek() != &Tok::LParen {
            return Err(self.error(format!("expected `(` after `in`, found {}", self.peek())));
        }
        self.next();
        let mut values = Vec::new();
        loop {
            match self.value("in (")? {
                Parsed::Number(x, digits) => {
                    values.push(Value::from(x));
                    values.push(Value::String(digits));
                }
                Parsed::Json(v) => values.push(v),
            }
            match self.next() {
                Tok::Comma => continue,
                Tok::RParen => break,
                other => {
                    self.at -= usize::from(other != Tok::End);
                    return Err(self.error(format!("expected `,` or `)` in the `in` list, found {other}")));
                }
            }
        }
        Ok(Filter::In(field, values))
    }

    fn value(&mut self, after: &str) -> Result<Parsed, ParseFilterError> {
        match self.peek().clone() {
            Tok::Quoted(s) => {
                self.next();
                Ok(Parsed::Json(Value::String(s)))
            }
            Tok::Word(w) => {
                self.next();
                Ok(match w.as_str() {
                    "true" => Parsed::Json(Value::Bool(true)),
                    "false" => Parsed::Json(Value::Bool(false)),
                    "null" => Parsed::Json(Value::Null),
                    _ => match number(&w) {
                        Some(x) => Parsed::Number(x, w),
                        None => Parsed::Json(Value::String(w)),
                    },
                })
            }
            other => Err(self.error(format!("expected a value after `{after}`, found {other}"))),
        }
    }
}

enum Parsed {
    /// A bare number and its digits as written.
    Number(f64, String),
    Json(Value),
}

/// `field = value`; a bare number also matches its digits stored as a string.
fn equals(field: String, value: Parsed) -> Filter {
    match value {
        Parsed::Number(x, digits) => Filter::In(field, vec![Value::from(x), Value::String(digits)]),
        Parsed::Json(v) => Filter::Eq(field, v),
    }
}

fn is_keyword(word: &str) -> bool {
    ["and", "or", "not", "in", "exists"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(word))
}

/// A decimal number as written in JSON (no `inf`, `nan`, hex or `_`).
fn number(word: &str) -> Option<f64> {
    let body = word.strip_prefix(['-', '+']).unwrap_or(word);
    let starts_numeric = body.starts_with(|c: char| c.is_ascii_digit())
        || (body.starts_with('.') && body[1..].starts_with(|c: char| c.is_ascii_digit()));
    let allowed = body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'));
    if starts_numeric && allowed {
        word.parse::<f64>().ok().filter(|x| x.is_finite())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(expr: &str) -> Filter {
        parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    fn err(expr: &str) -> ParseFilterError {
        parse(expr).expect_err(expr)
    }

    #[test]
    fn conditions() {
        let m = json!({"path": "notes/a.md", "chunk": 2, "kind": "b", "year": "2021", "title": "T"});
        assert!(ok("path=notes/a.md").matches(&m));
        assert!(ok("path == 'notes/a.md'").matches(&m));
        assert!(ok("chunk>=2").matches(&m) && !ok("chunk>2").matches(&m));
        assert!(ok("chunk<3 and chunk<=2").matches(&m));
        assert!(ok("kind in (a,b)").matches(&m) && !ok("kind in (a, c)").matches(&m));
        assert!(ok("exists title").matches(&m) && !ok("exists missing").matches(&m));
        assert!(ok("year=2021").matches(&m), "bare numbers match numeric strings");
        assert!(ok("chunk=2.0").matches(&m) && ok("chunk in (1, 2)").matches(&m));
        assert!(!ok("year=\"2022\"").matches(&m));
        assert!(ok("kind!=a").matches(&m) && !ok("kind != b").matches(&m));
    }

    #[test]
    fn precedence_and_grouping() {
        let m = json!({"a": 1, "b": 2});
        assert!(ok("a=1 or a=5 and b=9").matches(&m), "and binds tighter");
        assert!(!ok("(a=1 or a=5) and b=9").matches(&m));
        assert!(ok("NOT (a=2) AND exists b").matches(&m));
        assert!(ok("not not a=1").matches(&m));
    }

    #[test]
    fn nesting_is_bounded() {
        let m = json!({"a": 1});
        let deepest = format!("{}a=1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(ok(&deepest).matches(&m));
        assert!(ok(&format!("{}a=1", "not ".repeat(MAX_DEPTH))).matches(&m));
        let mixed = format!("{}a=1{}", "not (".repeat(MAX_DEPTH / 2), ")".repeat(MAX_DEPTH / 2));
        assert!(ok(&mixed).matches(&m), "an even number of `not`s");
        // Far past the limit (60,000 parentheses aborted with a stack overflow before): an
        // error at the first level too many.
        let e = err(&format!("{}a=1{}", "(".repeat(60_000), ")".repeat(60_000)));
        assert_eq!(
            e.message,
            "the expression nests deeper than 64 levels of parentheses and `not`"
        );
        assert_eq!(e.position, MAX_DEPTH + 1);
        let e = err(&format!("{}a=1", "not ".repeat(60_000)));
        assert_eq!(e.position, 4 * MAX_DEPTH + 1, "{e}");
        assert!(
            err(&format!("{mixed} or {}", "(".repeat(MAX_DEPTH + 1)))
                .message
                .contains("deeper than 64")
        );
    }

    #[test]
    fn errors_name_the_problem_and_position() {
        let e = err("chunk>=");
        assert_eq!(e.position, 8);
        assert!(e.message.contains("expected a value after `>=`"), "{e}");
        let e = err("chunk >= abc");
        assert_eq!(e.position, 10);
        assert!(e.message.contains("expected a number"), "{e}");
        let e = err("path=a.md and");
        assert!(e.message.contains("expected a field name"), "{e}");
        assert_eq!(err("(a=1").message, "expected `)`, found the end of the expression");
        assert_eq!(err("a=1)").position, 4);
        assert!(err("a 1").message.contains("expected an operator"));
        assert!(err("a='x").message.contains("unterminated"));
        assert!(err("kind in (a b)").message.contains("expected `,` or `)`"));
        assert!(err("a ! b").message.contains("`!`"));
        assert!(err("  ").message.contains("empty"));
        assert!(err("a=1 b=2").message.contains("expected `and`, `or`"));
    }

    #[test]
    fn numbers_are_strict() {
        assert_eq!(number("2"), Some(2.0));
        assert_eq!(number("-1.5e3"), Some(-1500.0));
        assert_eq!(number(".5"), Some(0.5));
        assert_eq!(number("nan"), None);
        assert_eq!(number("inf"), None);
        assert_eq!(number("1a"), None);
        assert_eq!(number("2021-01-01"), None);
    }
}
