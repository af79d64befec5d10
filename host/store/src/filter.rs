//! mitmproxy-style filter expressions that select flows, such as
//! `~d example.com & !~c 200` or `~m POST ~b password`.
//!
//! The language is mitmproxy's (<https://docs.mitmproxy.org/stable/concepts-filters/>),
//! read and matched as mitmproxy 11 does (`mitmproxy/flowfilter.py`):
//!
//! | filter           | selects flows…                                                    |
//! |------------------|-------------------------------------------------------------------|
//! | `~a`             | whose response is an asset: its `content-type` holds `text/javascript`, `application/x-javascript`, `application/javascript`, `text/css`, `image/`, `font/` or `application/font` |
//! | `~all`           | all of them                                                       |
//! | `~b regex`       | whose request or response body, or a WebSocket message, matches   |
//! | `~bq regex`      | whose request body, or a client's WebSocket message, matches      |
//! | `~bs regex`      | whose response body, or a server's WebSocket message, matches     |
//! | `~c code`        | whose response has this status code (digits)                     |
//! | `~comment regex` | whose comment matches                                             |
//! | `~d regex`       | whose request host, or host in the `Host` header, matches         |
//! | `~dns`           | none: witm records no DNS flows                                   |
//! | `~dst regex`     | whose server address (`host:port`) matches; none without a server |
//! | `~e`             | that failed (have an error)                                       |
//! | `~h regex`       | whose request or response header block matches                    |
//! | `~hq regex`      | whose request header block matches                                |
//! | `~hs regex`      | whose response header block matches                               |
//! | `~http`          | HTTP flows (not TCP)                                              |
//! | `~m regex`       | whose request method matches                                      |
//! | `~marked`        | that are marked                                                   |
//! | `~marker regex`  | whose marker matches: `:default:`, a name (`:red_circle:`) or ""   |
//! | `~meta regex`    | whose metadata, one `key: value` line each, matches               |
//! | `~q`             | that have no response (yet)                                       |
//! | `~replay`        | that are replays, of either side                                  |
//! | `~replayq`       | that are client replays (a replayed request)                      |
//! | `~replays`       | whose response is a server replay's                               |
//! | `~s`             | that have a response                                              |
//! | `~src regex`     | whose client address (`ip:port`) matches                          |
//! | `~t regex`       | whose request or response `content-type` matches                  |
//! | `~tq regex`      | whose request `content-type` matches                              |
//! | `~ts regex`      | whose response `content-type` matches                             |
//! | `~tcp`           | TCP flows (tunnels that carried neither TLS nor HTTP)             |
//! | `~udp`           | none: witm records no UDP flows                                   |
//! | `~u regex`       | whose URL matches (built on the `Host` header when there is one)  |
//! | `~websocket`     | that opened a WebSocket (101 answer to `Upgrade: websocket`)      |
//! | `regex`          | a bare word or quoted string: the same as `~u regex`              |
//!
//! Operators, tightest first: `!` (not), `&` (and), `|` (or); parentheses
//! group. At the top level, expressions written one after the other are all
//! required, more loosely than `|`: `~m GET ~d a | ~d b` means
//! `~m GET & (~d a | ~d b)`; inside parentheses that is an error.
//!
//! Words as mitmproxy's grammar (pyparsing) reads them:
//! - a filter name is followed by whitespace or the end: `~q)`, `~s&~c 200`
//!   and `~d"x"` are errors (write `~q )`, `~s & ~c 200`, `~d "x"`);
//! - an argument is a bare word (up to whitespace, a parenthesis, `~` or a
//!   quote, so `&`, `|` and `!` belong to it: `~u a=1&b=2`) or a string in
//!   `"` or `'` on one line; a regex with parentheses must be quoted. In a
//!   quoted string `\t`, `\n`, `\r` and `\f` are those characters and a
//!   backslash before anything else stands for that character: `"\d"` is
//!   `d`, the regex `\d` is `"\\d"` (or the bare word `\d`). (pyparsing 3.2
//!   also reads `\0` as NUL, `\x` + hex digit + `2` and `\u` + hex digit +
//!   `4` as the character of those two hex digits, and `\` + octal digit +
//!   `3` as those two digits: witm does the same.)
//! - a `&`, `|` or `!` that starts no operation is a bare word, hence a URL
//!   regex: `~q |` is `~q & ~u "|"`;
//! - `~c` takes digits: `~c 200x` is `~c 200 & ~u x`;
//! - tabs count as spaces up to the next multiple of 8 columns, in quoted
//!   strings too.
//!
//! Regexes are Python's, searched (not anchored); see the `pyre` module for
//! how they are translated. They are case-sensitive except for `~d`, `~m` and
//! `~u` (and bare words). `~b`, `~bq`, `~bs`, `~h`, `~hq`, `~hs`, `~m`, `~t`,
//! `~tq` and `~ts` search bytes with ASCII classes (a non-ASCII character in
//! the pattern is its UTF-8 bytes); the others search text. `~h` searches
//! the whole header block, `name: value\r\n` per field in wire order with
//! names as received, in multi-line mode: `^x-a: 1` finds a field, `1$` does
//! not (the `\r` comes first; write `1\r$`). `~comment` and `~meta` are
//! multi-line too, `~b`, `~bq` and `~bs` dot-all. Bodies are matched against
//! their decoded content (the raw body when it does not decode); a streamed
//! body, which witm did not hold, never matches.
//!
//! Where witm differs from mitmproxy, on purpose (each is a row of
//! `tests/filter_table.json` or told here):
//! - regexes with look-around, backreferences, conditional or atomic groups,
//!   possessive quantifiers, `\N{name}` or the `t` flag are errors that name
//!   the feature (the `regex` crate has none of them); so is a `$` followed by
//!   more pattern where it is not multi-line and the text may hold newlines
//!   (`~b`, `~bq`, `~bs`; `~h`, `~hq`, `~hs`, `~comment`, `~meta` under
//!   `(?-m)`), since Python's `$` then looks ahead for a final newline;
//! - parentheses nest at most 100 deep, groups in a regex too, and a regex
//!   must fit the `regex` crate's size limit (`\w{1000}` does not);
//! - bodies decode with mitmproxy's own codings (gzip,
//!   deflate, deflateraw, br, zstd; up to 256 MiB), not with the Python
//!   codecs a `content-encoding` may also name (`base64`, `zlib`, …);
//! - in text regexes `\b` and `\B` take word characters as the `regex` crate
//!   does (with combining marks), case folding is Unicode's simple folding,
//!   and Unicode tables are the `regex` crate's version, not Python's;
//!   a non-ASCII `Host` is valid when its labels are letters, digits, `-`
//!   and `_` (mitmproxy checks its IDNA encoding).

use std::fmt;

use regex::bytes::{Regex as BytesRegex, RegexBuilder as BytesRegexBuilder};
use regex::{Regex, RegexBuilder};
use witm_flow::encoding::ContentEncoding;
use witm_flow::message::MAX_DECODED;
use witm_flow::{Body, Flow, Headers, HttpMessage, ReplaySide, Request};

use crate::pyre;

/// A parsed filter expression.
#[derive(Clone, Debug)]
pub struct Filter {
    expr: Expr,
}

/// Why an expression could not be parsed: where and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    /// Where the problem is, in characters from the start of the expression (0-based).
    pub position: usize,
    /// What is wrong, and what was expected.
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "position {}: {}", self.position, self.message)
    }
}

impl std::error::Error for FilterError {}

impl FilterError {
    /// Two lines: `expression`, then a `^` under the error's position.
    ///
    /// Line breaks in the expression are shown as spaces so the caret stays
    /// under the right character; tabs are kept in both lines.
    pub fn explain(&self, expression: &str) -> String {
        let shown: String = expression
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        let pad: String = expression
            .chars()
            .chain(std::iter::repeat(' '))
            .take(self.position)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!("{shown}\n{pad}^")
    }
}

impl Filter {
    /// Parses `expression`.
    pub fn parse(expression: &str) -> Result<Filter, FilterError> {
        let mut parser = Parser::new(expression);
        parser.expression().map(|expr| Filter { expr })
    }

    /// True when `flow` is selected by the filter.
    pub fn matches(&self, flow: &Flow) -> bool {
        self.expr.matches(flow)
    }
}

impl std::str::FromStr for Filter {
    type Err = FilterError;

    fn from_str(expression: &str) -> Result<Filter, FilterError> {
        Filter::parse(expression)
    }
}

/// A parsed expression.
#[derive(Clone, Debug)]
enum Expr {
    /// Every one matches.
    And(Vec<Expr>),
    /// At least one matches.
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Test(Test),
}

/// Which message(s) of a flow a filter looks at.
#[derive(Clone, Copy, Debug)]
enum Side {
    Either,
    Request,
    Response,
}

/// A regex searched in text, and its variant for the empty text.
#[derive(Clone, Debug)]
struct TextRegex {
    regex: Regex,
    empty: Option<Regex>,
}

impl TextRegex {
    fn is_match(&self, text: &str) -> bool {
        match &self.empty {
            Some(empty) if text.is_empty() => empty.is_match(text),
            _ => self.regex.is_match(text),
        }
    }
}

/// A regex searched in bytes, and its variant for the empty text.
#[derive(Clone, Debug)]
struct ByteRegex {
    regex: BytesRegex,
    empty: Option<BytesRegex>,
}

impl ByteRegex {
    fn is_match(&self, bytes: &[u8]) -> bool {
        match &self.empty {
            Some(empty) if bytes.is_empty() => empty.is_match(bytes),
            _ => self.regex.is_match(bytes),
        }
    }
}

/// One `~x` filter.
#[derive(Clone, Debug)]
enum Test {
    Constant(bool),
    /// `~http`: an HTTP flow (not TCP).
    Http,
    /// `~tcp`: a TCP flow.
    Tcp,
    Asset,
    Error,
    Marked,
    NoResponse,
    HasResponse,
    Replay,
    ReplayClient,
    ReplayServer,
    WebSocket,
    /// `None`: a number no status code has.
    Code(Option<u16>),
    Body(Side, ByteRegex),
    Header(Side, ByteRegex),
    ContentType(Side, ByteRegex),
    Method(ByteRegex),
    Comment(TextRegex),
    Domain(TextRegex),
    Dst(TextRegex),
    Marker(TextRegex),
    Meta(TextRegex),
    Src(TextRegex),
    Url(TextRegex),
}

/// What argument a filter takes.
enum Takes {
    Nothing(Test),
    Code,
    Text(pyre::Options, fn(TextRegex) -> Test),
    Bytes(pyre::Options, fn(ByteRegex) -> Test),
}

/// How each filter compiles its regex (mitmproxy's `flags` and `is_binary`).
const TEXT: pyre::Options = pyre::Options {
    bytes: false,
    ignore_case: false,
    multi_line: false,
    dot_all: false,
    one_line: false,
};
const BYTES: pyre::Options = pyre::Options {
    bytes: true,
    ..TEXT
};

/// The filters, by name (without the `~`).
fn lookup(name: &str) -> Option<Takes> {
    use Takes::*;
    // Hosts, URLs, methods, addresses, markers and header values hold no
    // newline: a `$` anywhere in their regexes is the end.
    let one_line = |o: pyre::Options| pyre::Options {
        one_line: true,
        ..o
    };
    let ignore_case = |o: pyre::Options| pyre::Options {
        ignore_case: true,
        ..o
    };
    let multi_line = pyre::Options {
        multi_line: true,
        ..BYTES
    };
    let body = pyre::Options {
        dot_all: true,
        ..BYTES
    };
    Some(match name {
        "a" => Nothing(Test::Asset),
        "all" => Nothing(Test::Constant(true)),
        "http" => Nothing(Test::Http),
        "tcp" => Nothing(Test::Tcp),
        "udp" | "dns" => Nothing(Test::Constant(false)),
        "e" => Nothing(Test::Error),
        "marked" => Nothing(Test::Marked),
        "replay" => Nothing(Test::Replay),
        "replayq" => Nothing(Test::ReplayClient),
        "replays" => Nothing(Test::ReplayServer),
        "q" => Nothing(Test::NoResponse),
        "s" => Nothing(Test::HasResponse),
        "websocket" => Nothing(Test::WebSocket),
        "c" => Code,
        "b" => Bytes(body, |r| Test::Body(Side::Either, r)),
        "bq" => Bytes(body, |r| Test::Body(Side::Request, r)),
        "bs" => Bytes(body, |r| Test::Body(Side::Response, r)),
        "h" => Bytes(multi_line, |r| Test::Header(Side::Either, r)),
        "hq" => Bytes(multi_line, |r| Test::Header(Side::Request, r)),
        "hs" => Bytes(multi_line, |r| Test::Header(Side::Response, r)),
        "t" => Bytes(one_line(BYTES), |r| Test::ContentType(Side::Either, r)),
        "tq" => Bytes(one_line(BYTES), |r| Test::ContentType(Side::Request, r)),
        "ts" => Bytes(one_line(BYTES), |r| Test::ContentType(Side::Response, r)),
        "m" => Bytes(one_line(ignore_case(BYTES)), Test::Method),
        "comment" => Text(
            pyre::Options {
                multi_line: true,
                ..TEXT
            },
            Test::Comment,
        ),
        "meta" => Text(
            pyre::Options {
                multi_line: true,
                ..TEXT
            },
            Test::Meta,
        ),
        "d" => Text(one_line(ignore_case(TEXT)), Test::Domain),
        "u" => Text(one_line(ignore_case(TEXT)), Test::Url),
        "dst" => Text(one_line(TEXT), Test::Dst),
        "src" => Text(one_line(TEXT), Test::Src),
        "marker" => Text(one_line(TEXT), Test::Marker),
        _ => return None,
    })
}

/// Deepest nesting of parentheses accepted, so parsing and matching cannot
/// overflow the stack.
const MAX_DEPTH: usize = 100;

/// pyparsing's whitespace (tabs are spaces by then).
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\n' | '\r' | '\t')
}

/// True for the characters that end a bare word (pyparsing's `CharsNotIn`).
fn ends_word(c: char) -> bool {
    is_space(c) || matches!(c, '(' | ')' | '~' | '"' | '\'')
}

/// pyparsing's `printables`: what may not follow a filter name.
fn is_printable(c: char) -> bool {
    c.is_ascii_graphic()
}

/// A failed attempt that may be taken back: `None`, after noting why.
type Attempt<T> = Result<Option<T>, FilterError>;

/// A parsing expression grammar that follows mitmproxy's pyparsing grammar
/// step by step, so that it accepts the same expressions and reads them the
/// same way; where no reading works, the failure that got furthest is the
/// error.
struct Parser {
    /// The expression, tabs expanded as pyparsing does.
    chars: Vec<char>,
    /// For each of `chars`, and for the end, its position in the expression.
    origin: Vec<usize>,
    /// Parentheses open around the current position.
    depth: usize,
    /// The failure that got furthest: where (in `chars`) and why.
    furthest: Option<(usize, String)>,
}

impl Parser {
    fn new(expression: &str) -> Self {
        // pyparsing parses `expression.expandtabs()`.
        let mut chars = Vec::new();
        let mut origin = Vec::new();
        let mut column = 0;
        let mut count = 0;
        for (i, c) in expression.chars().enumerate() {
            count = i + 1;
            if c == '\t' {
                let n = 8 - column % 8;
                chars.extend(std::iter::repeat_n(' ', n));
                origin.extend(std::iter::repeat_n(i, n));
                column += n;
            } else {
                chars.push(c);
                origin.push(i);
                column = if c == '\n' || c == '\r' {
                    0
                } else {
                    column + 1
                };
            }
        }
        origin.push(count);
        Parser {
            chars,
            origin,
            depth: 0,
            furthest: None,
        }
    }

    fn at(&self, pos: usize) -> Option<char> {
        self.chars.get(pos).copied()
    }

    fn skip_space(&self, mut pos: usize) -> usize {
        while self.at(pos).is_some_and(is_space) {
            pos += 1;
        }
        pos
    }

    fn error(&self, pos: usize, message: impl Into<String>) -> FilterError {
        FilterError {
            position: self.origin[pos.min(self.chars.len())],
            message: message.into(),
        }
    }

    /// Notes a failure at `pos`; a later one at the same place wins.
    fn fail(&mut self, pos: usize, message: impl Into<String>) {
        if self.furthest.as_ref().is_none_or(|(at, _)| pos >= *at) {
            self.furthest = Some((pos, message.into()));
        }
    }

    /// What is at `pos`, for messages: `"abc"` or "the end of the expression".
    fn found(&self, pos: usize) -> String {
        let rest = self.chars.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            return "the end of the expression".into();
        }
        let word: String = rest
            .iter()
            .take_while(|c| !is_space(**c))
            .take(24)
            .collect();
        format!("{word:?}")
    }

    /// The whole expression: one or more `|` expressions, all required.
    fn expression(&mut self) -> Result<Expr, FilterError> {
        if self.chars.iter().all(|&c| is_space(c)) {
            return Err(FilterError {
                position: 0,
                message: "empty expression: expected a filter, such as ~d example.com".into(),
            });
        }
        let mut items = Vec::new();
        let mut pos = 0;
        while let Some((expr, next)) = self.or(pos)? {
            items.push(expr);
            pos = next;
        }
        let end = self.skip_space(pos);
        if !items.is_empty() && end == self.chars.len() {
            return Ok(one_or(items, Expr::And));
        }
        if !items.is_empty() {
            if self.at(end) == Some(')') {
                self.fail(end, "unbalanced parentheses: this ) has no ( before it");
            } else if self.furthest.as_ref().is_none_or(|(at, _)| *at < end) {
                let found = self.found(end);
                self.fail(end, format!("expected a filter expression, got {found}"));
            }
        }
        let (pos, message) = self.furthest.take().unwrap_or_else(|| {
            (
                end,
                format!("expected a filter expression, got {}", self.found(end)),
            )
        });
        Err(self.error(pos, message))
    }

    /// `a | b | …`.
    fn or(&mut self, pos: usize) -> Attempt<(Expr, usize)> {
        let Some((first, mut pos)) = self.and(pos)? else {
            return Ok(None);
        };
        let mut items = vec![first];
        loop {
            let at = self.skip_space(pos);
            if self.at(at) != Some('|') {
                break;
            }
            let Some((next, end)) = self.and(at + 1)? else {
                break;
            };
            items.push(next);
            pos = end;
        }
        Ok(Some((one_or(items, Expr::Or), pos)))
    }

    /// `a & b & …`.
    fn and(&mut self, pos: usize) -> Attempt<(Expr, usize)> {
        let Some((first, mut pos)) = self.not(pos)? else {
            return Ok(None);
        };
        let mut items = vec![first];
        loop {
            let at = self.skip_space(pos);
            if self.at(at) != Some('&') {
                break;
            }
            let Some((next, end)) = self.not(at + 1)? else {
                break;
            };
            items.push(next);
            pos = end;
        }
        Ok(Some((one_or(items, Expr::And), pos)))
    }

    /// An operand with its `!`s. A `!` whose operand fails is a bare word
    /// starting with `!` (as in mitmproxy); two `!`s cancel out.
    fn not(&mut self, pos: usize) -> Attempt<(Expr, usize)> {
        let mut bangs = Vec::new();
        let mut at = pos;
        loop {
            let next = self.skip_space(at);
            if self.at(next) != Some('!') {
                break;
            }
            bangs.push(next);
            at = next + 1;
        }
        let negate = |expr: Expr, count: usize| {
            if count % 2 == 1 {
                Expr::Not(Box::new(expr))
            } else {
                expr
            }
        };
        if let Some((expr, end)) = self.primary(at)? {
            return Ok(Some((negate(expr, bangs.len()), end)));
        }
        let Some(&last) = bangs.last() else {
            return Ok(None);
        };
        Ok(self
            .primary(last)?
            .map(|(expr, end)| (negate(expr, bangs.len() - 1), end)))
    }

    /// A filter, a bare word or quoted string, or `( … )`.
    fn primary(&mut self, pos: usize) -> Attempt<(Expr, usize)> {
        let at = self.skip_space(pos);
        if self.at(at) != Some('(') {
            return self.atom(at);
        }
        if self.depth >= MAX_DEPTH {
            return Err(self.error(
                at,
                format!("parentheses nested too deeply (more than {MAX_DEPTH})"),
            ));
        }
        self.depth += 1;
        let inner = self.or(at + 1);
        self.depth -= 1;
        let Some((expr, end)) = inner? else {
            return Ok(None);
        };
        let close = self.skip_space(end);
        if self.at(close) == Some(')') {
            return Ok(Some((expr, close + 1)));
        }
        let found = self.found(close);
        let open = self.origin[at];
        self.fail(
            close,
            if self.at(close).is_none() {
                format!("unbalanced parentheses: the ( at position {open} is never closed")
            } else {
                format!(
                    "expected ) to close the ( at position {open}, got {found} \
                     (inside parentheses, join expressions with & or |)"
                )
            },
        );
        Ok(None)
    }

    /// At `at`, after whitespace: a filter or a bare regex.
    fn atom(&mut self, at: usize) -> Attempt<(Expr, usize)> {
        match self.at(at) {
            Some('~') => self.filter(at),
            Some(c) if !ends_word(c) || c == '"' || c == '\'' => {
                let Some((pattern, end)) = self.argument(at, "~u")? else {
                    return Ok(None);
                };
                let regex = compile_text(&pattern, lookup_options("u")).map_err(|why| {
                    self.error(
                        at,
                        format!(
                            "invalid regex {:?} (a bare word matches the URL, like ~u): {why}",
                            show(&pattern)
                        ),
                    )
                })?;
                Ok(Some((Expr::Test(Test::Url(regex)), end)))
            }
            _ => {
                let found = self.found(at);
                self.fail(at, format!("expected a filter expression, got {found}"));
                Ok(None)
            }
        }
    }

    /// `~name` and its argument, at `start`.
    fn filter(&mut self, start: usize) -> Attempt<(Expr, usize)> {
        let word: String = self.chars[start + 1..]
            .iter()
            .take_while(|&&c| is_printable(c))
            .collect();
        let Some(takes) = lookup(&word) else {
            let letters: String = word.chars().take_while(char::is_ascii_alphabetic).collect();
            if !letters.is_empty() && lookup(&letters).is_some() {
                let after = start + 1 + letters.chars().count();
                let found = self.found(after);
                self.fail(
                    after,
                    format!(
                        "~{letters} must be followed by whitespace or the end of the \
                         expression, got {found}"
                    ),
                );
            } else if word.is_empty() {
                self.fail(start, "expected a filter name after ~, such as ~d or ~c");
            } else {
                let name = if letters.is_empty() { word } else { letters };
                self.fail(start, format!("unknown filter ~{name}"));
            }
            return Ok(None);
        };
        let end = start + 1 + word.chars().count();
        let filter = format!("~{word}");
        let (test, after) = match takes {
            Takes::Nothing(test) => return Ok(Some((Expr::Test(test), end))),
            Takes::Code => {
                let at = self.skip_space(end);
                let digits: String = self.chars[at..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                if digits.is_empty() {
                    let found = self.found(at);
                    self.fail(at, format!("{filter} needs a status code, got {found}"));
                    return Ok(None);
                }
                let code = Test::Code(digits.parse().ok());
                return Ok(Some((Expr::Test(code), at + digits.len())));
            }
            Takes::Text(options, make) => {
                let Some((pattern, after)) = self.argument(end, &filter)? else {
                    return Ok(None);
                };
                let at = self.skip_space(end);
                let regex = compile_text(&pattern, options)
                    .map_err(|why| self.bad_regex(at, &pattern, &filter, why))?;
                (make(regex), after)
            }
            Takes::Bytes(options, make) => {
                let Some((pattern, after)) = self.argument(end, &filter)? else {
                    return Ok(None);
                };
                let at = self.skip_space(end);
                let regex = compile_bytes(&pattern, options)
                    .map_err(|why| self.bad_regex(at, &pattern, &filter, why))?;
                (make(regex), after)
            }
        };
        Ok(Some((Expr::Test(test), after)))
    }

    fn bad_regex(&self, at: usize, pattern: &[u32], filter: &str, why: String) -> FilterError {
        self.error(
            at,
            format!("invalid regex {:?} for {filter}: {why}", show(pattern)),
        )
    }

    /// A bare word or a quoted string, after whitespace, as code points.
    fn argument(&mut self, pos: usize, filter: &str) -> Attempt<(Vec<u32>, usize)> {
        let at = self.skip_space(pos);
        match self.at(at) {
            Some(quote @ ('"' | '\'')) => self.quoted(at, quote),
            Some(c) if !ends_word(c) => {
                let end = (at..self.chars.len())
                    .find(|&i| ends_word(self.chars[i]))
                    .unwrap_or(self.chars.len());
                let word = self.chars[at..end].iter().map(|&c| u32::from(c)).collect();
                Ok(Some((word, end)))
            }
            next => {
                let found = self.found(at);
                let hint = if next == Some('(') {
                    " (a regex with parentheses must be quoted: '(a|b)')"
                } else {
                    ""
                };
                self.fail(at, format!("{filter} needs a regex, got {found}{hint}"));
                Ok(None)
            }
        }
    }

    /// The string in `quote`s at `start`, unescaped as pyparsing's
    /// `QuotedString(quote, escChar="\\")` does.
    fn quoted(&mut self, start: usize, quote: char) -> Attempt<(Vec<u32>, usize)> {
        let mut end = start + 1;
        loop {
            match self.at(end) {
                Some(c) if c == quote => break,
                Some('\\') if !matches!(self.at(end + 1), None | Some('\n')) => end += 2,
                Some(c) if c != '\\' && c != '\n' && c != '\r' => end += 1,
                _ => {
                    let message = if self.at(end).is_none() {
                        format!("unterminated quoted string: expected a closing {quote}")
                    } else {
                        format!(
                            "unterminated quoted string: expected a closing {quote} before \
                             the end of the line"
                        )
                    };
                    self.fail(start, message);
                    return Ok(None);
                }
            }
        }
        Ok(Some((unquote(&self.chars[start + 1..end]), end + 1)))
    }
}

/// What pyparsing 3.2 makes of a quoted string's inside. Its unescaping
/// regex is meant to read `\t`, `\n`, `\f`, `\r`, `\0`, `\ooo`, `\xhh` and
/// `\uhhhh`, but is built in an f-string where `{3}`, `{2}` and `{4}` are
/// the digits 3, 2 and 4: what it reads is `\t`, `\n`, `\f`, `\r` (those
/// characters), `\` + octal digit + `3` (the two digits), `\0` (NUL), `\x` +
/// hex digit + `2` and `\u` + hex digit + `4` (the character of those two
/// hex digits), and a backslash before anything else stands for that
/// character. So `"\x62"` is `b` but `"\x63"` is `x63`, `"\d"` is `d`.
fn unquote(inside: &[char]) -> Vec<u32> {
    let mut out = Vec::with_capacity(inside.len());
    let mut k = 0;
    while k < inside.len() {
        let c = inside[k];
        let (Some(&next), true) = (inside.get(k + 1), c == '\\') else {
            out.push(u32::from(c));
            k += 1;
            continue;
        };
        let third = inside.get(k + 2).copied();
        let fourth = inside.get(k + 3).copied();
        let hex_then = |digit: char| -> Option<u32> {
            let h = third.filter(char::is_ascii_hexdigit)?;
            (fourth == Some(digit)).then(|| {
                h.to_digit(16).expect("a hex digit") * 16 + digit.to_digit(16).expect("a digit")
            })
        };
        let (value, used): (&[u32], usize) = match next {
            't' => (&[9], 2),
            'n' => (&[10], 2),
            'f' => (&[12], 2),
            'r' => (&[13], 2),
            '0'..='7' if third == Some('3') => {
                out.extend([u32::from(next), u32::from('3')]);
                k += 3;
                continue;
            }
            '0' => (&[0], 2),
            'x' if hex_then('2').is_some() => {
                out.push(hex_then('2').expect("checked"));
                k += 4;
                continue;
            }
            'u' if hex_then('4').is_some() => {
                out.push(hex_then('4').expect("checked"));
                k += 4;
                continue;
            }
            _ => {
                out.push(u32::from(next));
                k += 2;
                continue;
            }
        };
        out.extend_from_slice(value);
        k += used;
    }
    out
}

/// Code points as text, for messages (a lone surrogate as U+FFFD).
fn show(pattern: &[u32]) -> String {
    pattern
        .iter()
        .map(|&c| char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

fn lookup_options(name: &str) -> pyre::Options {
    match lookup(name) {
        Some(Takes::Text(options, _) | Takes::Bytes(options, _)) => options,
        _ => TEXT,
    }
}

/// One item as itself, several joined by `join`.
fn one_or(mut items: Vec<Expr>, join: fn(Vec<Expr>) -> Expr) -> Expr {
    if items.len() == 1 {
        items.pop().expect("one item")
    } else {
        join(items)
    }
}

/// The last line of the regex crate's message ("error: …"), which says what
/// is wrong without the pattern drawn over several lines.
fn regex_message(error: regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .rev()
        .find_map(|line| line.strip_prefix("error: "))
        .map(str::to_owned)
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn translate(pattern: &[u32], options: pyre::Options) -> Result<pyre::Translation, String> {
    pyre::translate(pattern, options)
        .map_err(|e| format!("{} (at character {} of the regex)", e.message, e.position))
}

fn compile_text(pattern: &[u32], options: pyre::Options) -> Result<TextRegex, String> {
    let translation = translate(pattern, options)?;
    let build = |p: &str| RegexBuilder::new(p).build().map_err(regex_message);
    Ok(TextRegex {
        regex: build(&translation.pattern)?,
        empty: translation.empty.as_deref().map(build).transpose()?,
    })
}

fn compile_bytes(pattern: &[u32], options: pyre::Options) -> Result<ByteRegex, String> {
    let translation = translate(pattern, options)?;
    let build = |p: &str| {
        BytesRegexBuilder::new(p)
            .unicode(false)
            .build()
            .map_err(regex_message)
    };
    Ok(ByteRegex {
        regex: build(&translation.pattern)?,
        empty: translation.empty.as_deref().map(build).transpose()?,
    })
}

/// The media types of assets (mitmproxy's `~a`: its regexes, searched, are
/// these substrings).
const ASSET_TYPES: [&[u8]; 7] = [
    b"text/javascript",
    b"application/x-javascript",
    b"application/javascript",
    b"text/css",
    b"image/",
    b"font/",
    b"application/font",
];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Expr {
    fn matches(&self, flow: &Flow) -> bool {
        match self {
            Expr::And(items) => items.iter().all(|e| e.matches(flow)),
            Expr::Or(items) => items.iter().any(|e| e.matches(flow)),
            Expr::Not(e) => !e.matches(flow),
            Expr::Test(test) => test.matches(flow),
        }
    }
}

impl Test {
    /// Whether the test can select a TCP flow: mitmproxy's tests marked
    /// `@only(HTTPFlow)` never do.
    fn applies_to_tcp(&self) -> bool {
        matches!(
            self,
            Test::Constant(_)
                | Test::Tcp
                | Test::Error
                | Test::Marked
                | Test::Replay
                | Test::ReplayClient
                | Test::ReplayServer
                | Test::Body(..)
                | Test::Comment(_)
                | Test::Dst(_)
                | Test::Marker(_)
                | Test::Meta(_)
                | Test::Src(_)
        )
    }

    fn matches(&self, flow: &Flow) -> bool {
        if flow.is_tcp() && !self.applies_to_tcp() {
            return false;
        }
        let request = &flow.request;
        let response = flow.response.as_ref();
        match self {
            Test::Constant(value) => *value,
            Test::Http => !flow.is_tcp(),
            Test::Tcp => flow.is_tcp(),
            Test::Asset => response.is_some_and(|r| {
                content_types(&r.headers).any(|v| ASSET_TYPES.iter().any(|t| contains(v, t)))
            }),
            Test::Error => flow.error.is_some(),
            Test::Marked => flow.is_marked(),
            Test::NoResponse => response.is_none(),
            Test::HasResponse => response.is_some(),
            Test::Replay => flow.is_replay.is_some(),
            Test::ReplayClient => flow.is_replay == Some(ReplaySide::Request),
            Test::ReplayServer => flow.is_replay == Some(ReplaySide::Response),
            Test::WebSocket => response.is_some_and(|r| {
                r.status == 101
                    && request
                        .headers
                        .get("upgrade")
                        .is_some_and(|u| u.to_ascii_lowercase().contains("websocket"))
            }),
            Test::Code(code) => response.is_some_and(|r| Some(r.status) == *code),
            Test::Body(side, re) => {
                let http = !flow.is_tcp();
                http && side.request() && body_matches(re, request)
                    || http && side.response() && response.is_some_and(|r| body_matches(re, r))
                    // As mitmproxy: a WebSocket's or TCP flow's messages, by
                    // direction.
                    || flow
                        .websocket
                        .as_ref()
                        .map(|w| &w.messages)
                        .into_iter()
                        .chain(flow.tcp.as_ref().map(|t| &t.messages))
                        .flatten()
                        .any(|m| {
                            (if m.from_client { side.request() } else { side.response() })
                                && re.is_match(&m.content)
                        })
            }
            Test::Header(side, re) => {
                side.request() && re.is_match(&header_block(&request.headers))
                    || side.response()
                        && response.is_some_and(|r| re.is_match(&header_block(&r.headers)))
            }
            Test::ContentType(side, re) => {
                side.request() && content_types(&request.headers).any(|v| re.is_match(v))
                    || side.response()
                        && response
                            .is_some_and(|r| content_types(&r.headers).any(|v| re.is_match(v)))
            }
            Test::Method(re) => re.is_match(request.method.as_bytes()),
            Test::Comment(re) => re.is_match(&flow.comment),
            Test::Domain(re) => re.is_match(&request.host) || re.is_match(&pretty_host(request)),
            Test::Dst(re) => flow
                .server_conn
                .as_ref()
                .is_some_and(|s| !s.address.is_empty() && re.is_match(&s.address)),
            Test::Marker(re) => re.is_match(&flow.marker),
            Test::Meta(re) => {
                let text = flow
                    .metadata
                    .iter()
                    .map(|(key, value)| format!("{key}: {}", value.python_str()))
                    .collect::<Vec<_>>()
                    .join("\n");
                re.is_match(&text)
            }
            Test::Src(re) => {
                let address = flow.client.address;
                // 0.0.0.0:0 is a flow without a client (e.g. made in code).
                !(address.ip().is_unspecified() && address.port() == 0)
                    && re.is_match(&format!("{}:{}", address.ip(), address.port()))
            }
            Test::Url(re) => re.is_match(&pretty_url(request)),
        }
    }
}

impl Side {
    fn request(self) -> bool {
        matches!(self, Side::Either | Side::Request)
    }

    fn response(self) -> bool {
        matches!(self, Side::Either | Side::Response)
    }
}

/// The decoded content (or raw body when it does not decode) matches; a
/// streamed body never does (mitmproxy's `get_content(strict=False)`).
fn body_matches(re: &ByteRegex, message: &impl HttpMessage) -> bool {
    let Body::Buffered(raw) = message.body() else {
        return false;
    };
    match decoded(message, raw) {
        Some(content) => re.is_match(&content),
        None => re.is_match(raw),
    }
}

/// The body decoded as mitmproxy decodes it: the `content-encoding` (all
/// values folded) lower-cased must be one of its own codings, which
/// `x-gzip` and padded names are not. (It also tries Python's codecs, such
/// as `base64`, `hex`, `zlib` and `bz2`; witm does not.)
fn decoded(message: &impl HttpMessage, raw: &[u8]) -> Option<Vec<u8>> {
    let coding = message.headers().get("content-encoding")?;
    let coding = match coding.to_lowercase().as_str() {
        "" | "none" | "identity" => return None,
        "gzip" => ContentEncoding::Gzip,
        "deflate" | "deflateraw" => ContentEncoding::Deflate,
        "br" => ContentEncoding::Brotli,
        "zstd" => ContentEncoding::Zstd,
        _ => return None,
    };
    coding.decode(raw, MAX_DECODED).ok()
}

/// The header block as mitmproxy's `bytes(headers)`: `name: value\r\n` for
/// each field.
fn header_block(headers: &Headers) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in headers.iter() {
        block.extend_from_slice(name.as_bytes());
        block.extend_from_slice(b": ");
        block.extend_from_slice(value);
        block.extend_from_slice(b"\r\n");
    }
    block
}

/// Every `content-type` value.
fn content_types(headers: &Headers) -> impl Iterator<Item = &[u8]> {
    headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value)
}

/// mitmproxy's `default_port`.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// mitmproxy's `url.hostport`: no brackets around an IPv6 address.
fn hostport(scheme: &str, host: &str, port: u16) -> String {
    if default_port(scheme) == Some(port) {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    }
}

/// mitmproxy's `url.unparse`.
fn unparse(scheme: &str, host: &str, port: u16, path: &str) -> String {
    let path = if path == "*" { "" } else { path };
    format!("{scheme}://{}{path}", hostport(scheme, host, port))
}

/// mitmproxy's `Request.host_header`: the `Host` header (several folded
/// with ", "), or for HTTP/2 and 3 the authority.
fn host_header(request: &Request) -> Option<String> {
    if matches!(request.http_version.as_str(), "HTTP/2.0" | "HTTP/3") && !request.host.is_empty() {
        // witm keeps no `:authority` of its own: it is the host and port.
        return Some(request.authority());
    }
    request.headers.get("host")
}

/// mitmproxy's `url.parse_authority(authority, check=False)`: host (without
/// brackets) and port, or the whole authority and no port when it is not a
/// valid `host[:port]`.
fn parse_authority(authority: &str) -> (String, Option<u16>) {
    let whole = || (authority.to_owned(), None);
    // `^(?P<host>[^:]+|\[.+\])(?::(?P<port>\d+))?$`: what follows the host
    // is nothing or `:` and digits.
    fn port_of(rest: &str) -> Option<Option<&str>> {
        if rest.is_empty() {
            return Some(None);
        }
        let digits = rest.strip_prefix(':')?;
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(Some(digits))
    }
    let colon_free = match authority.find(':') {
        None if !authority.is_empty() => Some((authority, None)),
        Some(i) if i > 0 => port_of(&authority[i..]).map(|port| (&authority[..i], port)),
        _ => None,
    };
    let split = colon_free.or_else(|| {
        // `\[.+\]`: the longest that leaves a valid rest.
        let ends: Vec<usize> = authority
            .char_indices()
            .filter(|&(i, c)| c == ']' && i >= 2)
            .map(|(i, _)| i)
            .collect();
        authority.starts_with('[').then_some(())?;
        ends.into_iter()
            .rev()
            .find_map(|i| port_of(&authority[i + 1..]).map(|port| (&authority[..=i], port)))
    });
    let Some((host, port)) = split else {
        return whole();
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if !is_valid_host(host) {
        return whole();
    }
    match port {
        None => (host.to_owned(), None),
        Some(digits) => match digits.parse::<u16>() {
            Ok(port) => (host.to_owned(), Some(port)),
            Err(_) => whole(),
        },
    }
}

/// mitmproxy's `check.is_valid_host`: a DNS name (labels of letters,
/// digits, `-` and `_`) or an IP address. A non-ASCII name passes when its
/// labels are letters, digits, `-` and `_` (mitmproxy checks its IDNA
/// encoding instead).
fn is_valid_host(host: &str) -> bool {
    if host.len() > 255 {
        return false;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    };
    name.split('.').all(label_ok) || host.parse::<std::net::IpAddr>().is_ok()
}

/// mitmproxy's `Request.pretty_host`.
fn pretty_host(request: &Request) -> String {
    match host_header(request) {
        Some(authority) if !authority.is_empty() => parse_authority(&authority).0,
        _ => request.host.clone(),
    }
}

/// mitmproxy's `Request.pretty_url`.
fn pretty_url(request: &Request) -> String {
    if request.method == "CONNECT" {
        // The request target, `host:port`.
        return if request.host.contains(':') {
            format!("[{}]:{}", request.host, request.port)
        } else {
            format!("{}:{}", request.host, request.port)
        };
    }
    let url = |host: &str, port: u16| unparse(&request.scheme, host, port, &request.path);
    match host_header(request) {
        Some(authority) if !authority.is_empty() => {
            let (host, port) = parse_authority(&authority);
            let port = port
                .filter(|&p| p != 0)
                .or_else(|| default_port(&request.scheme))
                .unwrap_or(443);
            url(&host, port)
        }
        _ => url(&request.host, request.port),
    }
}

#[cfg(test)]
mod tests {
    //! How expressions are read and what errors say; which flows each filter
    //! selects is `tests/filter_table.rs`, checked against mitmproxy itself.

    use witm_flow::testing::{trequest, with_response};

    use super::*;

    fn error(expression: &str) -> (usize, String) {
        let e = Filter::parse(expression).expect_err(expression);
        (e.position, e.message)
    }

    fn selects(expression: &str, flow: &Flow) -> bool {
        Filter::parse(expression)
            .unwrap_or_else(|e| panic!("{expression:?}: {e}\n{}", e.explain(expression)))
            .matches(flow)
    }

    #[test]
    fn errors_say_where_and_what() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "",
                0,
                "empty expression: expected a filter, such as ~d example.com",
            ),
            (
                " \t ",
                0,
                "empty expression: expected a filter, such as ~d example.com",
            ),
            ("~c abc", 3, r#"~c needs a status code, got "abc""#),
            (
                "~c",
                2,
                "~c needs a status code, got the end of the expression",
            ),
            ("~zz", 0, "unknown filter ~zz"),
            ("~q & ~zz", 5, "unknown filter ~zz"),
            ("~", 0, "expected a filter name after ~, such as ~d or ~c"),
            ("~d", 2, "~d needs a regex, got the end of the expression"),
            ("~d ~q", 3, r#"~d needs a regex, got "~q""#),
            (
                "~u (a|b)",
                3,
                r#"~u needs a regex, got "(a|b)" (a regex with parentheses must be quoted: '(a|b)')"#,
            ),
            (
                "~q)",
                2,
                r#"~q must be followed by whitespace or the end of the expression, got ")""#,
            ),
            (
                "~s&~c 200",
                2,
                r#"~s must be followed by whitespace or the end of the expression, got "&~c""#,
            ),
            (
                "~c200",
                2,
                r#"~c must be followed by whitespace or the end of the expression, got "200""#,
            ),
            (
                r#"~d 'a('"#,
                3,
                r#"invalid regex "a(" for ~d: missing ), unterminated subpattern (at character 1 of the regex)"#,
            ),
            (
                "a[",
                0,
                r#"invalid regex "a[" (a bare word matches the URL, like ~u): unterminated character set (at character 1 of the regex)"#,
            ),
            (
                "~bq 'c(?=o)'",
                4,
                "invalid regex \"c(?=o)\" for ~bq: look-ahead assertions ((?=…), (?!…)) are not \
                 supported: witm's regex engine (the regex crate) has none (at character 1 of \
                 the regex)",
            ),
            (
                "(~q",
                3,
                "unbalanced parentheses: the ( at position 0 is never closed",
            ),
            (
                "~q ~s )",
                6,
                "unbalanced parentheses: this ) has no ( before it",
            ),
            (
                "(~q ~s )",
                4,
                r#"expected ) to close the ( at position 0, got "~s" (inside parentheses, join expressions with & or |)"#,
            ),
            ("()", 1, r#"expected a filter expression, got ")""#),
            ("\"", 0, "unterminated quoted string: expected a closing \""),
            (
                "~b 'abc\\'",
                3,
                "unterminated quoted string: expected a closing '",
            ),
            (
                "~b 'a\nb'",
                3,
                "unterminated quoted string: expected a closing ' before the end of the line",
            ),
            // Positions count characters of the expression, not bytes, and
            // not the spaces a tab stands for.
            ("~d é ~zz", 5, "unknown filter ~zz"),
            ("~c\tabc", 3, r#"~c needs a status code, got "abc""#),
        ];
        for &(expression, position, message) in cases {
            assert_eq!(
                error(expression),
                (position, message.to_owned()),
                "{expression:?}"
            );
        }
    }

    #[test]
    fn lone_operators_are_words_as_in_mitmproxy() {
        let flow = with_response(trequest("GET", "http://example.com/a|b", ""), 200, "");
        // `~s |` is `~s & ~u "|"`, and the regex `|` matches anything.
        assert!(selects("~s |", &flow));
        assert!(!selects("~s &", &flow));
        assert!(!selects("!", &flow));
        assert!(selects("!!", &flow));
        assert!(selects("~c 200|~q", &flow));
        // `~c` takes the digits; what follows them is a word of its own.
        assert!(selects("~c 200a", &flow));
        assert!(!selects("~c 200z", &flow));
    }

    #[test]
    fn the_url_is_built_on_the_host_header() {
        // witm's tflow sets `Host: example.com:8080`.
        let mut flow = trequest("GET", "http://example.com:8080/a", "");
        flow.request.host = "10.0.0.1".into();
        assert!(selects("~u ^http://example.com:8080/a$", &flow));
        assert!(selects("~d ^10.0.0.1$", &flow));
        assert!(selects("~d ^example.com$", &flow));
        flow.request.http_version = "HTTP/2.0".into();
        assert!(selects("~u ^http://10.0.0.1:8080/a$", &flow));
        assert!(!selects("~d example", &flow));
    }

    #[test]
    fn error_display_and_caret() {
        let e = Filter::parse("~c abc").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"position 3: ~c needs a status code, got "abc""#
        );
        assert_eq!(e.explain("~c abc"), "~c abc\n   ^");
        let e = Filter::parse("~d é ~zz").unwrap_err();
        assert_eq!(e.explain("~d é ~zz"), "~d é ~zz\n     ^");
        let e = Filter::parse("~c\tx").unwrap_err();
        assert_eq!(e.explain("~c\tx"), "~c\tx\n  \t^");
        let e: Box<dyn std::error::Error> = Box::new(e);
        assert!(e.to_string().starts_with("position 3: "));
    }

    #[test]
    fn from_str() {
        let flow = trequest("POST", "http://example.com/", "");
        let filter: Filter = "~m POST".parse().unwrap();
        assert!(filter.matches(&flow));
        assert_eq!("~c x".parse::<Filter>().unwrap_err().position, 3);
    }

    #[test]
    fn nesting_is_bounded() {
        let flow = trequest("GET", "http://example.com/", "");
        let deep = format!("{}~q {}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(selects(&deep, &flow));
        let deeper = format!("{}~q {}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(
            error(&deeper),
            (
                MAX_DEPTH,
                format!("parentheses nested too deeply (more than {MAX_DEPTH})")
            )
        );
        let nots = format!("{}~q", "!".repeat(100_001));
        assert!(!selects(&nots, &flow));
        let spaced = format!("{}~q", "! ".repeat(100_000));
        assert!(selects(&spaced, &flow));
    }

    #[test]
    fn parsing_never_panics() {
        let odd = [
            "",
            "(",
            ")",
            "~",
            "!",
            "&",
            "|",
            "~c",
            "\"",
            "'",
            "\\",
            "~u (",
            "a & | b",
            "~c -1",
            "~c +200",
            "~c 200x",
            "~c 99999999999999999999999",
            "((",
            "))",
            "(()",
            "~d \"",
            "~d '\\",
            "~b \"\\",
            "!(",
            "!)",
            "~~",
            "~ ~",
            "~c ~c",
            "~q ~",
            "é",
            "~é",
            "~d é(",
            "\u{0}",
            "~c \u{663}",
            "a\tb",
            "~h \n",
            "~q!",
            "~q(",
            "~q\"x\"",
            "~marker x",
            "~s & (",
            "(~s | ) ~q",
            "~u '\\u",
            "~u '\\x",
            "~u '\\x6",
            "~u '\\0",
            "~b '\\",
            "~u '(?P<",
            "~u '(?P=",
            "~u '(?#",
            "~u '(?x)#",
            "~u '[\\",
            "~u '[a-",
            "~u 'a{1,",
            "~u '(?i-",
            "~u '\\N{",
            "~b '\u{10FFFF}[\u{80}-\u{10FFFF}]'",
        ];
        for expression in odd {
            let _ = Filter::parse(expression);
            // Every prefix too, which cuts through quotes and arguments.
            for (i, _) in expression.char_indices() {
                let _ = Filter::parse(&expression[..i]);
            }
        }
        // Every short combination of the language's characters.
        let alphabet = ['~', 'c', 'q', ' ', '(', ')', '!', '&', '|', '"', '\\', '1'];
        let mut expression = String::new();
        fn all(alphabet: &[char], expression: &mut String, depth: usize) {
            if let Err(e) = Filter::parse(expression) {
                let _ = e.explain(expression);
                assert!(e.position <= expression.chars().count(), "{expression:?}");
            }
            if depth == 0 {
                return;
            }
            for &c in alphabet {
                expression.push(c);
                all(alphabet, expression, depth - 1);
                expression.pop();
            }
        }
        all(&alphabet, &mut expression, 4);
        // And of a regex's.
        let alphabet = [
            '~', 'u', ' ', '\'', '(', ')', '?', '[', ']', '\\', '{', '1', '$',
        ];
        all(&alphabet, &mut expression, 4);
    }
}
