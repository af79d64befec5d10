//! mitmproxy-style filter expressions that select flows, such as
//! `~d example.com & !~c 200` or `~m POST ~b password`.
//!
//! The language is mitmproxy's (<https://docs.mitmproxy.org/stable/concepts-filters/>):
//!
//! | filter          | selects flows…                                              |
//! |-----------------|-------------------------------------------------------------|
//! | `~a`            | whose response is an asset (CSS, JavaScript, image, font)    |
//! | `~all`          | all of them                                                 |
//! | `~b regex`      | whose request or response body matches                      |
//! | `~bq regex`     | whose request body matches                                  |
//! | `~bs regex`     | whose response body matches                                 |
//! | `~c code`       | whose response has this status code                         |
//! | `~comment regex`| whose comment matches                                       |
//! | `~d regex`      | whose request host (or `Host` header, port aside) matches   |
//! | `~dns`          | none: witm's flows are HTTP                                 |
//! | `~dst regex`    | whose server address (`host:port`; for plain HTTP, the request's) matches |
//! | `~e`            | that failed (have an error)                                 |
//! | `~h regex`      | with a request or response header line `name: value` that matches |
//! | `~hq regex`     | with a request header line that matches                     |
//! | `~hs regex`     | with a response header line that matches                    |
//! | `~http`         | all of them: witm's flows are HTTP                          |
//! | `~m regex`      | whose request method matches                                |
//! | `~marked`       | that are marked                                             |
//! | `~meta regex`   | with a metadata line `key: value` that matches              |
//! | `~q`            | that have no response (yet)                                 |
//! | `~s`            | that have a response                                        |
//! | `~src regex`    | whose client address (`ip:port`) matches                    |
//! | `~t regex`      | whose request or response `content-type` matches            |
//! | `~tq regex`     | whose request `content-type` matches                        |
//! | `~ts regex`     | whose response `content-type` matches                       |
//! | `~tcp`, `~udp`  | none: witm's flows are HTTP                                 |
//! | `~u regex`      | whose URL matches                                           |
//! | `~websocket`    | that opened a WebSocket (101 answer to `Upgrade: websocket`) |
//! | `regex`         | a bare word or quoted string: the same as `~u regex`        |
//!
//! Operators, tightest first: `!` (not), `&` (and), `|` (or); parentheses
//! group. Expressions written one after the other are all required, as if
//! joined by `&`, but — as in mitmproxy — more loosely than `|`:
//! `~m GET ~d a | ~d b` means `~m GET & (~d a | ~d b)`.
//!
//! An argument is a bare word (up to whitespace, a parenthesis, `~` or a
//! quote) or a string in `"` or `'`. Inside a bare word `&`, `|` and `!` are
//! part of the regex (so `~u a=1&b=2` works): put spaces around operators.
//! In a quoted string a backslash before the quote character stands for the
//! quote; every other backslash is kept for the regex (`"\d+"` is `\d+`).
//!
//! Regexes are searched (not anchored) and case-insensitive. Bodies are
//! matched as bytes against their decoded content (the raw body when it does
//! not decode); a streamed body, which witm did not hold, never matches.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use regex::bytes::{Regex as BytesRegex, RegexBuilder as BytesRegexBuilder};
use regex::{Regex, RegexBuilder};
use witm_flow::{Body, Flow, Headers, HttpMessage};

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
        let mut parser = Parser {
            chars: expression.chars().collect(),
            pos: 0,
            depth: 0,
        };
        parser.skip_whitespace();
        if parser.peek().is_none() {
            return Err(FilterError {
                position: 0,
                message: "empty expression: expected a filter, such as ~d example.com".into(),
            });
        }
        let expr = parser.sequence()?;
        match parser.peek() {
            None => Ok(Filter { expr }),
            // `sequence` stops only at the end or at a `)`.
            Some(_) => Err(parser.error(
                parser.pos,
                "unbalanced parentheses: this ) has no ( before it",
            )),
        }
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

/// One `~x` filter.
#[derive(Clone, Debug)]
enum Test {
    Constant(bool),
    Asset,
    Error,
    Marked,
    NoResponse,
    HasResponse,
    WebSocket,
    Code(u16),
    Body(Side, BytesRegex),
    Header(Side, BytesRegex),
    ContentType(Side, BytesRegex),
    Comment(Regex),
    Domain(Regex),
    Dst(Regex),
    Meta(Regex),
    Method(Regex),
    Src(Regex),
    Url(Regex),
}

/// What argument a filter takes.
enum Takes {
    Nothing(Test),
    Code,
    Regex(fn(Regex) -> Test),
    BytesRegex(fn(BytesRegex) -> Test),
}

/// The filters, by name (without the `~`).
fn lookup(name: &str) -> Option<Takes> {
    use Takes::*;
    Some(match name {
        "a" => Nothing(Test::Asset),
        "all" | "http" => Nothing(Test::Constant(true)),
        "tcp" | "udp" | "dns" => Nothing(Test::Constant(false)),
        "e" => Nothing(Test::Error),
        "marked" => Nothing(Test::Marked),
        "q" => Nothing(Test::NoResponse),
        "s" => Nothing(Test::HasResponse),
        "websocket" => Nothing(Test::WebSocket),
        "c" => Code,
        "b" => BytesRegex(|r| Test::Body(Side::Either, r)),
        "bq" => BytesRegex(|r| Test::Body(Side::Request, r)),
        "bs" => BytesRegex(|r| Test::Body(Side::Response, r)),
        "h" => BytesRegex(|r| Test::Header(Side::Either, r)),
        "hq" => BytesRegex(|r| Test::Header(Side::Request, r)),
        "hs" => BytesRegex(|r| Test::Header(Side::Response, r)),
        "t" => BytesRegex(|r| Test::ContentType(Side::Either, r)),
        "tq" => BytesRegex(|r| Test::ContentType(Side::Request, r)),
        "ts" => BytesRegex(|r| Test::ContentType(Side::Response, r)),
        "comment" => Regex(Test::Comment),
        "d" => Regex(Test::Domain),
        "dst" => Regex(Test::Dst),
        "meta" => Regex(Test::Meta),
        "m" => Regex(Test::Method),
        "src" => Regex(Test::Src),
        "u" => Regex(Test::Url),
        _ => return None,
    })
}

/// mitmproxy filters witm knows of but cannot evaluate, and why.
fn unsupported(name: &str) -> Option<&'static str> {
    match name {
        "replay" | "replayq" | "replays" => {
            Some("witm's flows do not record whether they were replayed")
        }
        "marker" => Some("witm's marks have no name: use ~marked"),
        _ => None,
    }
}

/// Deepest nesting of parentheses accepted, so parsing and matching cannot
/// overflow the stack.
const MAX_DEPTH: usize = 100;

struct Parser {
    chars: Vec<char>,
    /// Index into `chars`: positions are in characters.
    pos: usize,
    /// Parentheses open around `pos`.
    depth: usize,
}

/// True for the characters that end a bare argument.
fn ends_word(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '~' | '"' | '\'')
}

/// True for the characters that end a filter name or a status code.
fn ends_name(c: char) -> bool {
    ends_word(c) || matches!(c, '!' | '&' | '|')
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn error(&self, position: usize, message: impl Into<String>) -> FilterError {
        FilterError {
            position,
            message: message.into(),
        }
    }

    /// What is at `pos`, for messages: `"abc"` or "the end of the expression".
    fn found(&self) -> String {
        let rest = self.chars.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            return "the end of the expression".into();
        }
        let word: String = rest
            .iter()
            .take_while(|c| !c.is_whitespace())
            .take(24)
            .collect();
        format!("{word:?}")
    }

    /// Expressions one after the other, all required; up to the end or a `)`.
    fn sequence(&mut self) -> Result<Expr, FilterError> {
        let mut items = vec![self.or()?];
        loop {
            self.skip_whitespace();
            match self.peek() {
                None | Some(')') => break,
                Some(_) => items.push(self.or()?),
            }
        }
        Ok(one_or(items, Expr::And))
    }

    /// `a | b | …`.
    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut items = vec![self.and("")?];
        loop {
            self.skip_whitespace();
            if self.peek() != Some('|') {
                break;
            }
            self.pos += 1;
            items.push(self.and("|")?);
        }
        Ok(one_or(items, Expr::Or))
    }

    /// `a & b & …`; `after` is the operator before it, for messages.
    fn and(&mut self, after: &str) -> Result<Expr, FilterError> {
        let mut items = vec![self.unary_after(after)?];
        loop {
            self.skip_whitespace();
            if self.peek() != Some('&') {
                break;
            }
            self.pos += 1;
            items.push(self.unary_after("&")?);
        }
        Ok(one_or(items, Expr::And))
    }

    /// An operand with its `!`s; `after` is the operator before it, for
    /// messages.
    fn unary_after(&mut self, after: &str) -> Result<Expr, FilterError> {
        let mut negate = false;
        let mut after = after;
        loop {
            self.skip_whitespace();
            if self.peek() != Some('!') {
                break;
            }
            self.pos += 1;
            negate = !negate;
            after = "!";
        }
        let atom = self.atom(after)?;
        Ok(if negate {
            Expr::Not(Box::new(atom))
        } else {
            atom
        })
    }

    fn atom(&mut self, after: &str) -> Result<Expr, FilterError> {
        self.skip_whitespace();
        let start = self.pos;
        let expected = if after.is_empty() {
            "expected a filter expression".to_owned()
        } else {
            format!("expected a filter expression after {after}")
        };
        match self.peek() {
            None | Some(')' | '&' | '|') => {
                Err(self.error(start, format!("{expected}, got {}", self.found())))
            }
            Some('(') => {
                if self.depth >= MAX_DEPTH {
                    return Err(self.error(
                        start,
                        format!("parentheses nested too deeply (more than {MAX_DEPTH})"),
                    ));
                }
                self.pos += 1;
                self.depth += 1;
                self.skip_whitespace();
                if matches!(self.peek(), None | Some(')')) {
                    return Err(self.error(
                        self.pos,
                        format!("expected a filter expression after (, got {}", self.found()),
                    ));
                }
                let inner = self.sequence()?;
                if self.peek() != Some(')') {
                    return Err(self.error(start, "unbalanced parentheses: this ( is never closed"));
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(inner)
            }
            Some('~') => self.filter(),
            Some(_) => {
                let (pattern, _) = self.argument("a regex", "~u")?;
                let regex = compile(&pattern, false).map_err(|why| {
                    self.error(
                        start,
                        format!(
                            "invalid regex {pattern:?} (a bare word matches the URL, like ~u): {why}"
                        ),
                    )
                })?;
                Ok(Expr::Test(Test::Url(regex)))
            }
        }
    }

    /// `~name` and its argument, at `pos`.
    fn filter(&mut self) -> Result<Expr, FilterError> {
        let start = self.pos;
        self.pos += 1;
        let name: String = self.chars[self.pos..]
            .iter()
            .take_while(|&&c| !ends_name(c))
            .collect();
        self.pos += name.chars().count();
        if name.is_empty() {
            return Err(self.error(start, "expected a filter name after ~, such as ~d or ~c"));
        }
        if let Some(why) = unsupported(&name) {
            return Err(self.error(start, format!("~{name} is not supported: {why}")));
        }
        let Some(takes) = lookup(&name) else {
            return Err(self.error(start, format!("unknown filter ~{name}")));
        };
        let filter = format!("~{name}");
        let test = match takes {
            Takes::Nothing(test) => test,
            Takes::Code => {
                self.skip_whitespace();
                let at = self.pos;
                let text = match self.peek() {
                    Some('"' | '\'') => self.quoted()?,
                    _ => {
                        let word: String = self.chars[self.pos..]
                            .iter()
                            .take_while(|&&c| !ends_name(c))
                            .collect();
                        self.pos += word.chars().count();
                        word
                    }
                };
                let code = Some(&text)
                    .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|t| t.parse::<u16>().ok());
                match code {
                    Some(code) => Test::Code(code),
                    None => {
                        self.pos = at;
                        return Err(self.error(
                            at,
                            format!("{filter} needs a status code, got {}", self.found()),
                        ));
                    }
                }
            }
            Takes::Regex(make) => {
                let (pattern, at) = self.argument("a regex", &filter)?;
                make(compile(&pattern, multi_line(&name)).map_err(|why| {
                    self.error(at, format!("invalid regex {pattern:?} for {filter}: {why}"))
                })?)
            }
            Takes::BytesRegex(make) => {
                let (pattern, at) = self.argument("a regex", &filter)?;
                make(compile_bytes(&pattern, &name).map_err(|why| {
                    self.error(at, format!("invalid regex {pattern:?} for {filter}: {why}"))
                })?)
            }
        };
        Ok(Expr::Test(test))
    }

    /// A bare word or a quoted string, and where it starts.
    fn argument(&mut self, what: &str, filter: &str) -> Result<(String, usize), FilterError> {
        self.skip_whitespace();
        let at = self.pos;
        match self.peek() {
            Some('"' | '\'') => Ok((self.quoted()?, at)),
            Some(c) if !ends_word(c) => {
                let word: String = self.chars[self.pos..]
                    .iter()
                    .take_while(|&&c| !ends_word(c))
                    .collect();
                self.pos += word.chars().count();
                Ok((word, at))
            }
            _ => Err(self.error(at, format!("{filter} needs {what}, got {}", self.found()))),
        }
    }

    /// The string in quotes at `pos`, unescaped.
    fn quoted(&mut self) -> Result<String, FilterError> {
        let start = self.pos;
        let quote = self.chars[start];
        self.pos += 1;
        let mut text = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error(
                    start,
                    format!("unterminated quoted string: expected a closing {quote}"),
                ));
            };
            self.pos += 1;
            if c == quote {
                return Ok(text);
            }
            if c == '\\'
                && let Some(next) = self.peek()
            {
                self.pos += 1;
                if next != quote {
                    text.push('\\');
                }
                text.push(next);
            } else {
                text.push(c);
            }
        }
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

/// Filters whose text is several lines, where `^` and `$` match at each.
fn multi_line(name: &str) -> bool {
    matches!(name, "comment" | "meta")
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

fn compile(pattern: &str, multi_line: bool) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .multi_line(multi_line)
        .build()
        .map_err(regex_message)
}

fn compile_bytes(pattern: &str, name: &str) -> Result<BytesRegex, String> {
    BytesRegexBuilder::new(pattern)
        .case_insensitive(true)
        .multi_line(matches!(name, "h" | "hq" | "hs"))
        .dot_matches_new_line(matches!(name, "b" | "bq" | "bs"))
        .build()
        .map_err(regex_message)
}

/// The media types of assets (mitmproxy's `~a`).
static ASSET: LazyLock<BytesRegex> = LazyLock::new(|| {
    BytesRegexBuilder::new(
        "text/javascript|application/x-javascript|application/javascript|text/css|image/|font/|application/font",
    )
    .case_insensitive(true)
    .build()
    .expect("the asset regex is valid")
});

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
    fn matches(&self, flow: &Flow) -> bool {
        let request = &flow.request;
        let response = flow.response.as_ref();
        match self {
            Test::Constant(value) => *value,
            Test::Asset => response.is_some_and(|r| content_type_matches(&ASSET, &r.headers)),
            Test::Error => flow.error.is_some(),
            Test::Marked => flow.is_marked(),
            Test::NoResponse => response.is_none(),
            Test::HasResponse => response.is_some(),
            Test::WebSocket => response.is_some_and(|r| {
                r.status == 101
                    && request
                        .headers
                        .get("upgrade")
                        .is_some_and(|u| u.to_ascii_lowercase().contains("websocket"))
            }),
            Test::Code(code) => response.is_some_and(|r| r.status == *code),
            Test::Body(side, re) => {
                side.request() && body_matches(re, request)
                    || side.response() && response.is_some_and(|r| body_matches(re, r))
            }
            Test::Header(side, re) => {
                side.request() && header_matches(re, &request.headers)
                    || side.response() && response.is_some_and(|r| header_matches(re, &r.headers))
            }
            Test::ContentType(side, re) => {
                side.request() && content_type_matches(re, &request.headers)
                    || side.response()
                        && response.is_some_and(|r| content_type_matches(re, &r.headers))
            }
            Test::Comment(re) => re.is_match(&flow.comment),
            Test::Domain(re) => {
                re.is_match(&request.host)
                    || pretty_host(&request.headers).is_some_and(|h| re.is_match(&h))
            }
            Test::Dst(re) => match &flow.server_conn {
                Some(server) => re.is_match(&server.address),
                None => {
                    !request.host.is_empty()
                        && re.is_match(&format!("{}:{}", request.host, request.port))
                }
            },
            Test::Meta(re) => {
                let text = flow
                    .metadata
                    .iter()
                    .map(|(key, value)| format!("{key}: {value}"))
                    .collect::<Vec<_>>()
                    .join("\n");
                re.is_match(&text)
            }
            Test::Method(re) => re.is_match(&request.method),
            Test::Src(re) => {
                let address = flow.client.address;
                // 0.0.0.0:0 is a flow without a client (e.g. made in code).
                !(address.ip().is_unspecified() && address.port() == 0)
                    && re.is_match(&format!("{}:{}", address.ip(), address.port()))
            }
            Test::Url(re) => re.is_match(&request.url()),
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
/// streamed body never does.
fn body_matches(re: &BytesRegex, message: &impl HttpMessage) -> bool {
    let Body::Buffered(raw) = message.body() else {
        return false;
    };
    let content = message
        .content()
        .map(Cow::Owned)
        .unwrap_or(Cow::Borrowed(&raw[..]));
    re.is_match(&content)
}

/// Some `name: value` header line matches.
fn header_matches(re: &BytesRegex, headers: &Headers) -> bool {
    let mut line = Vec::new();
    headers.iter().any(|(name, value)| {
        line.clear();
        line.extend_from_slice(name.as_bytes());
        line.extend_from_slice(b": ");
        line.extend_from_slice(value);
        re.is_match(&line)
    })
}

/// Some `content-type` value matches.
fn content_type_matches(re: &BytesRegex, headers: &Headers) -> bool {
    headers.get_all("content-type").any(|v| re.is_match(v))
}

/// The `Host` header without its port (mitmproxy's `pretty_host`), when
/// there is one.
fn pretty_host(headers: &Headers) -> Option<String> {
    let host = String::from_utf8_lossy(headers.get_first("host")?).into_owned();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map(|(ip, _)| ip.to_owned());
    }
    Some(match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name.to_owned()
        }
        _ => host,
    })
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use bytes::Bytes;
    use witm_flow::{ClientConn, ErrorKind, FlowError, Request, Response, ServerConn};

    use super::*;

    fn headers_of(pairs: &[(&str, &str)]) -> Headers {
        Headers::from_pairs(pairs.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())))
    }

    fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Request {
        let mut request = Request {
            method: method.into(),
            http_version: "HTTP/1.1".into(),
            body: Body::Buffered(Bytes::from(body.to_owned())),
            ..Request::default()
        };
        request.set_url(url).unwrap();
        request.headers = headers_of(headers);
        request
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response::make(status, headers_of(headers), body.to_owned())
    }

    fn from(address: &str) -> Arc<ClientConn> {
        Arc::new(ClientConn::new(address.parse::<SocketAddr>().unwrap()))
    }

    /// A flow of `request` and `response`, from no client in particular.
    fn flow(request: Request, response: Option<Response>) -> Flow {
        Flow {
            request,
            response,
            ..Flow::default()
        }
    }

    /// The flows every test filters, by index.
    fn flows() -> Vec<Flow> {
        // 2: a gzip-encoded script.
        let mut script = response(
            200,
            &[
                ("Content-Type", "application/javascript"),
                ("Content-Encoding", "gzip"),
            ],
            "",
        );
        script
            .set_content(b"console.log('gzipped secret')")
            .unwrap();
        let raw = script.body.bytes().unwrap();
        assert!(!raw.windows(7).any(|w| w == b"gzipped"));

        // 7: an image whose body was streamed, not held.
        let mut image = response(200, &[("Content-Type", "image/png")], "");
        image.body = Body::Streamed;

        vec![
            // 0: a page.
            Flow {
                client: from("127.0.0.1:50000"),
                ..flow(
                    request(
                        "GET",
                        "http://example.com/a",
                        &[("Host", "example.com"), ("User-Agent", "curl/8.5")],
                        "",
                    ),
                    Some(response(
                        200,
                        &[("Content-Type", "text/html; charset=utf-8")],
                        "hello",
                    )),
                )
            },
            // 1: a failed login, over TLS.
            Flow {
                client: from("[::1]:40000"),
                server_conn: Some(Arc::new(ServerConn {
                    address: "api.test:443".into(),
                    ..ServerConn::default()
                })),
                ..flow(
                    request(
                        "POST",
                        "https://api.test/login",
                        &[
                            ("Host", "api.test"),
                            ("Content-Type", "application/x-www-form-urlencoded"),
                        ],
                        "user=alice&password=secret%20word",
                    ),
                    Some(response(
                        401,
                        &[("Content-Type", "application/json")],
                        r#"{"error": "bad password"}"#,
                    )),
                )
            },
            flow(
                request("GET", "http://cdn.example.com/app.js", &[], ""),
                Some(script),
            ),
            // 3: the server could not be reached.
            Flow {
                error: Some(FlowError::new(ErrorKind::Server, "connection refused")),
                ..flow(request("GET", "http://down.test/", &[], ""), None)
            },
            // 4: a request still waiting, to an address; the Host header names it.
            flow(
                request(
                    "GET",
                    "http://10.0.0.1/pending?q=1&r=2",
                    &[("Host", "example.com:8080")],
                    "",
                ),
                None,
            ),
            // 5: marked, with a comment and metadata; a body in an unknown coding.
            Flow {
                marker: witm_flow::DEFAULT_MARKER.into(),
                comment: "look at this\nsecond line".into(),
                metadata: vec![("source".into(), "replay-tool".into())],
                ..flow(
                    request(
                        "PUT",
                        "http://example.com/upload",
                        &[("Content-Encoding", "weird")],
                        "raw fallback text",
                    ),
                    Some(response(204, &[], "")),
                )
            },
            // 6: a WebSocket handshake.
            flow(
                request(
                    "GET",
                    "http://ws.test/chat",
                    &[("Connection", "Upgrade"), ("Upgrade", "websocket")],
                    "",
                ),
                Some(response(101, &[("Upgrade", "websocket")], "")),
            ),
            flow(
                request("GET", "http://example.com/logo.png", &[], ""),
                Some(image),
            ),
        ]
    }

    /// The indices of the flows `expression` selects.
    fn select(expression: &str) -> Vec<usize> {
        let filter = Filter::parse(expression)
            .unwrap_or_else(|e| panic!("{expression:?}: {e}\n{}", e.explain(expression)));
        flows()
            .iter()
            .enumerate()
            .filter(|(_, flow)| filter.matches(flow))
            .map(|(i, _)| i)
            .collect()
    }

    fn error(expression: &str) -> (usize, String) {
        let e = Filter::parse(expression).expect_err(expression);
        (e.position, e.message)
    }

    #[test]
    fn flags() {
        assert_eq!(select("~all"), [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(select("~http"), [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(select("~tcp | ~udp | ~dns"), [] as [usize; 0]);
        assert_eq!(select("~q"), [3, 4]);
        assert_eq!(select("~s"), [0, 1, 2, 5, 6, 7]);
        assert_eq!(select("~e"), [3]);
        assert_eq!(select("~marked"), [5]);
        assert_eq!(select("~a"), [2, 7]);
        assert_eq!(select("~websocket"), [6]);
    }

    #[test]
    fn status_code() {
        assert_eq!(select("~c 200"), [0, 2, 7]);
        assert_eq!(select("~c 401"), [1]);
        assert_eq!(select("~c '101'"), [6]);
        assert_eq!(select("~c 404"), [] as [usize; 0]);
    }

    #[test]
    fn request_line_and_addresses() {
        assert_eq!(select("~m POST"), [1]);
        assert_eq!(select("~m ^P"), [1, 5]);
        assert_eq!(select("~d example.com"), [0, 2, 4, 5, 7]);
        assert_eq!(select("~d ^example"), [0, 4, 5, 7]);
        assert_eq!(select(r"~d ^10\.0"), [4]);
        assert_eq!(select("~u /a$"), [0]);
        assert_eq!(select("~u ^https://"), [1]);
        assert_eq!(select("~u example.com"), [0, 2, 5, 7]);
        assert_eq!(select(r"~src ^127\.0\.0\.1:50000$"), [0]);
        assert_eq!(select("~src '^::1:40000$'"), [1]);
        assert_eq!(select("~src ."), [0, 1]);
        assert_eq!(select("~dst ^api.test:443$"), [1]);
        assert_eq!(select("~dst :80$"), [0, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn bare_words_match_the_url() {
        assert_eq!(select("login"), [1]);
        assert_eq!(select("q=1&r=2"), [4]);
        assert_eq!(select(r#""/pending\?q""#), [4]);
        assert_eq!(select("example.com !~s"), [] as [usize; 0]);
    }

    #[test]
    fn headers_and_content_types() {
        assert_eq!(select(r#"~h "user-agent: curl""#), [0]);
        assert_eq!(select("~hq content-type"), [1]);
        assert_eq!(select("~hs content-type"), [0, 1, 2, 7]);
        assert_eq!(select("~h ^upgrade:.websocket$"), [6]);
        assert_eq!(select("~hs ^upgrade"), [6]);
        assert_eq!(select("~t json"), [1]);
        assert_eq!(select("~t form"), [1]);
        assert_eq!(select("~tq html"), [] as [usize; 0]);
        assert_eq!(select("~ts html"), [0]);
        assert_eq!(select("~ts ^image/"), [7]);
    }

    #[test]
    fn bodies() {
        assert_eq!(select("~b hello"), [0]);
        assert_eq!(select("~bq password"), [1]);
        assert_eq!(select("~bs password"), [1]);
        assert_eq!(select("~b secret"), [1, 2]);
        assert_eq!(select("~bq secret"), [1]);
        // Decoded: the wire bytes of flow 2 are gzip.
        assert_eq!(select("~bs 'gzipped secret'"), [2]);
        // Undecodable: the raw body.
        assert_eq!(select("~bq 'raw fallback'"), [5]);
        // Empty bodies match `^$`; a streamed one matches nothing.
        assert_eq!(select("~bs ^$"), [5, 6]);
        assert_eq!(select("~ts image & ~bs ''"), [] as [usize; 0]);
    }

    #[test]
    fn comment_and_metadata() {
        assert_eq!(select("~comment look"), [5]);
        assert_eq!(select("~comment ^second"), [5]);
        assert_eq!(select("~meta '^source: replay'"), [5]);
        assert_eq!(select("~meta ."), [5]);
    }

    #[test]
    fn operators() {
        assert_eq!(select("!~s"), [3, 4]);
        assert_eq!(select("!!~s"), [0, 1, 2, 5, 6, 7]);
        assert_eq!(select("~s & ~c 200"), [0, 2, 7]);
        assert_eq!(select("~c 401 | ~e"), [1, 3]);
        assert_eq!(select("!(~c 200 | ~q)"), [1, 5, 6]);
        assert_eq!(select("( ( ~e ) )"), [3]);
        // No spaces needed around operators after a filter or a code.
        assert_eq!(select("~c 200|~e"), [0, 2, 3, 7]);
        assert_eq!(select("~s&!~a"), [0, 1, 5, 6]);
    }

    #[test]
    fn precedence() {
        // ! then & then |.
        let expected = [1, 4, 5];
        assert_eq!(select("!~c 200 & ~d a | ~m POST"), expected);
        assert_eq!(select("((!~c 200) & ~d a) | ~m POST"), expected);
        assert_eq!(select("!~c 200 & ~d a | ~c 200"), [0, 1, 2, 4, 5, 7]);
        assert_eq!(select("!~c 200 & (~d a | ~c 200)"), [1, 4, 5]);
        assert_eq!(select("!(~c 200 & ~d a | ~c 200)"), [1, 3, 4, 5, 6]);
    }

    #[test]
    fn juxtaposition_is_a_loose_and() {
        assert_eq!(select("~m GET ~d example"), [0, 2, 4, 7]);
        assert_eq!(select("~m GET & ~d example"), [0, 2, 4, 7]);
        // As in mitmproxy, looser than |: (~c 401 | ~e) & ~m GET.
        assert_eq!(select("~c 401 | ~e ~m GET"), [3]);
        assert_eq!(select("(~s ~m GET) | ~e"), [0, 2, 3, 6, 7]);
    }

    #[test]
    fn quoted_arguments() {
        assert_eq!(select(r#"~b "bad password""#), [1]);
        assert_eq!(select("~comment 'look at'"), [5]);
        assert_eq!(select(r#"~bs "\"error\"""#), [1]);
        assert_eq!(select(r"~bs '\'gzipped'"), [2]);
        // Other backslashes are the regex's.
        assert_eq!(select(r#"~bq "secret%\d+word""#), [1]);
        assert_eq!(select(r#"~u "a\\""#), [] as [usize; 0]);
        // Operators and parentheses inside quotes are text.
        assert_eq!(select(r#"~b "(hello|bad) password""#), [1]);
        assert_eq!(select(r#"~b "(hello|bad)""#), [0, 1]);
        assert_eq!(select("~d\"api\""), [1]);
    }

    #[test]
    fn case_insensitive() {
        assert_eq!(select("~d EXAMPLE.COM"), [0, 2, 4, 5, 7]);
        assert_eq!(select("~m post"), [1]);
        assert_eq!(select("~b HELLO"), [0]);
        assert_eq!(select("~h USER-AGENT"), [0]);
        assert_eq!(select("~t JSON"), [1]);
        assert_eq!(select("LOGIN"), [1]);
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
                "   ",
                0,
                "empty expression: expected a filter, such as ~d example.com",
            ),
            ("~c abc", 3, r#"~c needs a status code, got "abc""#),
            ("~c 99999", 3, r#"~c needs a status code, got "99999""#),
            (
                "~c",
                2,
                "~c needs a status code, got the end of the expression",
            ),
            ("~c )", 3, r#"~c needs a status code, got ")""#),
            ("~zz", 0, "unknown filter ~zz"),
            ("~q & ~zz", 5, "unknown filter ~zz"),
            ("~", 0, "expected a filter name after ~, such as ~d or ~c"),
            (
                "~replay",
                0,
                "~replay is not supported: witm's flows do not record whether they were replayed",
            ),
            ("~d", 2, "~d needs a regex, got the end of the expression"),
            (
                "~d   ",
                5,
                "~d needs a regex, got the end of the expression",
            ),
            ("~u (", 3, r#"~u needs a regex, got "(""#),
            ("~d ~q", 3, r#"~d needs a regex, got "~q""#),
            (
                r#"~d "a(""#,
                3,
                r#"invalid regex "a(" for ~d: unclosed group"#,
            ),
            (
                "~b [z-a]",
                3,
                r#"invalid regex "[z-a]" for ~b: invalid character class range, the start must be <= the end"#,
            ),
            (
                "a[",
                0,
                r#"invalid regex "a[" (a bare word matches the URL, like ~u): unclosed character class"#,
            ),
            ("(~q", 0, "unbalanced parentheses: this ( is never closed"),
            (
                "(~q | (~s)",
                0,
                "unbalanced parentheses: this ( is never closed",
            ),
            (
                "~q)",
                2,
                "unbalanced parentheses: this ) has no ( before it",
            ),
            (
                "~q ~s )",
                6,
                "unbalanced parentheses: this ) has no ( before it",
            ),
            ("()", 1, r#"expected a filter expression after (, got ")""#),
            (
                "~q &",
                4,
                "expected a filter expression after &, got the end of the expression",
            ),
            (
                "~q |",
                4,
                "expected a filter expression after |, got the end of the expression",
            ),
            (
                "a & | b",
                4,
                r#"expected a filter expression after &, got "|""#,
            ),
            ("| ~q", 0, r#"expected a filter expression, got "|""#),
            (
                "~q & & ~s",
                5,
                r#"expected a filter expression after &, got "&""#,
            ),
            (
                "!",
                1,
                "expected a filter expression after !, got the end of the expression",
            ),
            (
                "~q !)",
                4,
                r#"expected a filter expression after !, got ")""#,
            ),
            ("\"", 0, "unterminated quoted string: expected a closing \""),
            (
                "~b 'abc\\'",
                3,
                "unterminated quoted string: expected a closing '",
            ),
            // Positions count characters, not bytes.
            ("~d é ~zz", 5, "unknown filter ~zz"),
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
    fn error_display_and_caret() {
        let e = Filter::parse("~c abc").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"position 3: ~c needs a status code, got "abc""#
        );
        assert_eq!(e.explain("~c abc"), "~c abc\n   ^");
        let e = Filter::parse("~d é ~zz").unwrap_err();
        assert_eq!(e.explain("~d é ~zz"), "~d é ~zz\n     ^");
        let e = Filter::parse("~q\t&").unwrap_err();
        assert_eq!(e.explain("~q\t&"), "~q\t&\n  \t ^");
        let e: Box<dyn std::error::Error> = Box::new(e);
        assert!(e.to_string().starts_with("position 4: "));
    }

    #[test]
    fn from_str() {
        let filter: Filter = "~m POST".parse().unwrap();
        assert!(filter.matches(&flows()[1]));
        assert_eq!("~c x".parse::<Filter>().unwrap_err().position, 3);
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}~q{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(select(&deep), [3, 4]);
        let deeper = format!("{}~q{}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(
            error(&deeper),
            (
                MAX_DEPTH,
                format!("parentheses nested too deeply (more than {MAX_DEPTH})")
            )
        );
        let nots = format!("{}~q", "!".repeat(100_001));
        assert_eq!(select(&nots), [0, 1, 2, 5, 6, 7]);
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
    }
}
