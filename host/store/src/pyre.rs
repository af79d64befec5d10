//! Python's `re` syntax, read as Python 3.11 reads it (its `re/_parser.py`)
//! and written out in the `regex` crate's syntax, for the filters: mitmproxy
//! compiles every filter argument with `re.compile`, so witm accepts the
//! patterns Python accepts, refuses the ones Python refuses, and matches what
//! they match.
//!
//! The translation spells every construct out in a form whose meaning does
//! not depend on the `regex` crate's defaults: each literal, class, `.`, `^`
//! and `$` carries the flags Python applies to it. Where the two dialects
//! differ it follows Python:
//!
//! - `\d`, `\w` and `\s` are Python's classes (`\s` has `\x1c`–`\x1f`, `\w` is
//!   `[\p{L}\p{N}_]`); in bytes patterns and under `(?a)` they are ASCII;
//! - a `$` without `(?m)` also matches before a newline that ends the text
//!   (`(?:\n?\z)` when nothing follows it in the pattern);
//! - `\Z` is the very end, `\<` is a literal `<`, `[[]` is a class holding `[`,
//!   `{` that starts no quantifier is a literal, octal escapes are octal;
//! - in bytes patterns every unit is a byte (a non-ASCII character is its
//!   UTF-8 bytes, as `str.encode()` makes it), case folding is ASCII-only;
//! - `\B` never matches the empty text (Python before 3.14).
//!
//! What the `regex` crate cannot do is an error naming the feature:
//! look-ahead and look-behind, backreferences, conditional and atomic groups,
//! possessive quantifiers, `\N{name}`, the `t` flag, and a `$` (without
//! `(?m)`) followed by more pattern in a filter whose text can hold newlines
//! (Python's `$` is then a look-ahead). Groups nest at most [`MAX_NESTING`]
//! deep.

use std::collections::HashMap;

/// Deepest nesting of groups accepted (Python's own limit is its recursion
/// limit, near 400).
pub(crate) const MAX_NESTING: usize = 100;

/// How the filter compiles its pattern.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Options {
    /// A bytes pattern (`expr.encode()`): searched over bytes, ASCII classes.
    pub bytes: bool,
    /// `re.IGNORECASE`.
    pub ignore_case: bool,
    /// `re.MULTILINE`.
    pub multi_line: bool,
    /// `re.DOTALL`.
    pub dot_all: bool,
    /// The searched text never holds a newline, so any `$` is the end.
    pub one_line: bool,
}

/// The pattern in the `regex` crate's syntax.
#[derive(Clone, Debug)]
pub(crate) struct Translation {
    /// For every text.
    pub pattern: String,
    /// For the empty text, when it differs (a `\B` in the pattern).
    pub empty: Option<String>,
}

/// Why a pattern was refused: where (in characters of the pattern) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PyReError {
    pub position: usize,
    pub message: String,
}

/// Translates `pattern`, a sequence of code points (which may hold lone
/// surrogates, as a Python string can).
pub(crate) fn translate(pattern: &[u32], options: Options) -> Result<Translation, PyReError> {
    let units: Vec<u32>;
    let units = if options.bytes {
        // `expr.encode()`: UTF-8, which fails on a lone surrogate.
        let mut text = String::new();
        for (i, &c) in pattern.iter().enumerate() {
            let Some(c) = char::from_u32(c) else {
                return Err(PyReError {
                    position: i,
                    message: format!(
                        "the pattern holds \\u{c:04x}, a lone surrogate, which cannot be encoded as UTF-8"
                    ),
                });
            };
            text.push(c);
        }
        units = text.bytes().map(u32::from).collect();
        &units[..]
    } else {
        pattern
    };
    let to_chars = |position: usize| -> usize {
        if options.bytes {
            // Byte offset to character offset: count the lead bytes before it.
            units[..position.min(units.len())]
                .iter()
                .filter(|&&b| b & 0xC0 != 0x80)
                .count()
        } else {
            position
        }
    };
    let parsed = parse(units, options.bytes).map_err(|e| PyReError {
        position: to_chars(e.position),
        message: e.message,
    })?;
    let mut flags = parsed.flags;
    if options.ignore_case {
        flags |= IGNORECASE;
    }
    if options.multi_line {
        flags |= MULTILINE;
    }
    if options.dot_all {
        flags |= DOTALL;
    }
    let top = Eff {
        i: flags & IGNORECASE != 0,
        m: flags & MULTILINE != 0,
        s: flags & DOTALL != 0,
        ascii: options.bytes || flags & (ASCII | LOCALE) != 0,
    };
    let emit = |empty_variant: bool| -> Result<String, PyReError> {
        let mut e = Emitter {
            bytes: options.bytes,
            one_line: options.one_line,
            empty_variant,
            out: String::new(),
        };
        e.node(&parsed.node, top, true).map_err(|e| PyReError {
            position: to_chars(e.position),
            message: e.message,
        })?;
        Ok(e.out)
    };
    Ok(Translation {
        pattern: emit(false)?,
        empty: if parsed.has_non_boundary {
            Some(emit(true)?)
        } else {
            None
        },
    })
}

// Python's flag bits (ours; only their combinations matter).
const IGNORECASE: u16 = 1;
const LOCALE: u16 = 2;
const MULTILINE: u16 = 4;
const DOTALL: u16 = 8;
const VERBOSE: u16 = 16;
const ASCII: u16 = 32;
const TEMPLATE: u16 = 64;
const UNICODE: u16 = 128;
const TYPE_FLAGS: u16 = ASCII | LOCALE | UNICODE;

fn flag(c: u32) -> Option<u16> {
    Some(match char::from_u32(c)? {
        'i' => IGNORECASE,
        'L' => LOCALE,
        'm' => MULTILINE,
        's' => DOTALL,
        'x' => VERBOSE,
        'a' => ASCII,
        't' => TEMPLATE,
        'u' => UNICODE,
        _ => return None,
    })
}

/// Python's `MAXREPEAT`: counts from it on are refused.
const MAXREPEAT: u64 = 4_294_967_295;

/// A Python class shorthand: `\d`, `\s`, `\w`, negated or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cat {
    Digit(bool),
    Space(bool),
    Word(bool),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Lit(u32),
    Range(u32, u32),
    Cat(Cat),
}

#[derive(Clone, Debug)]
enum Node {
    Lit(u32),
    Any,
    Class(bool, Vec<Item>),
    Cat(Cat),
    /// `^`.
    LineStart,
    /// `$`, and where it is.
    LineEnd(usize),
    /// `\A`.
    TextStart,
    /// `\Z`.
    TextEnd,
    WordBoundary,
    NotWordBoundary,
    /// A group and the flags it turns on and off.
    Group(Box<Node>, u16, u16),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    /// Item, least, most (`None`: no bound), greedy.
    Repeat(Box<Node>, u32, Option<u32>, bool),
}

impl Node {
    /// What Python calls an `AT` code: nothing to repeat.
    fn is_assertion(&self) -> bool {
        matches!(
            self,
            Node::LineStart
                | Node::LineEnd(_)
                | Node::TextStart
                | Node::TextEnd
                | Node::WordBoundary
                | Node::NotWordBoundary
        )
    }

    /// Matches only the empty string without looking at anything.
    fn is_nothing(&self) -> bool {
        match self {
            Node::Concat(items) => items.iter().all(Node::is_nothing),
            Node::Group(inner, _, _) => inner.is_nothing(),
            _ => false,
        }
    }
}

/// A token: one unit, or a backslash and the unit after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Char(u32),
    Esc(u32),
}

fn err(position: usize, message: impl Into<String>) -> PyReError {
    PyReError {
        position,
        message: message.into(),
    }
}

/// Python's `Tokenizer`.
struct Source<'a> {
    units: &'a [u32],
    /// Where the token after `next` starts.
    index: usize,
    next: Option<Tok>,
}

impl<'a> Source<'a> {
    fn new(units: &'a [u32]) -> Result<Self, PyReError> {
        let mut source = Source {
            units,
            index: 0,
            next: None,
        };
        source.advance()?;
        Ok(source)
    }

    fn advance(&mut self) -> Result<(), PyReError> {
        let i = self.index;
        match self.units.get(i) {
            None => self.next = None,
            Some(&c) if c == u32::from(b'\\') => match self.units.get(i + 1) {
                None => {
                    return Err(err(
                        self.units.len().saturating_sub(1),
                        "bad escape (end of pattern)",
                    ));
                }
                Some(&d) => {
                    self.next = Some(Tok::Esc(d));
                    self.index = i + 2;
                }
            },
            Some(&c) => {
                self.next = Some(Tok::Char(c));
                self.index = i + 1;
            }
        }
        Ok(())
    }

    fn tell(&self) -> usize {
        self.index
            - match self.next {
                None => 0,
                Some(Tok::Char(_)) => 1,
                Some(Tok::Esc(_)) => 2,
            }
    }

    fn get(&mut self) -> Result<Option<Tok>, PyReError> {
        let this = self.next;
        self.advance()?;
        Ok(this)
    }

    fn is_next(&self, c: char) -> bool {
        self.next == Some(Tok::Char(u32::from(c)))
    }

    fn matches(&mut self, c: char) -> Result<bool, PyReError> {
        if self.is_next(c) {
            self.advance()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn seek(&mut self, index: usize) -> Result<(), PyReError> {
        self.index = index;
        self.advance()
    }

    fn next_in(&self, set: impl Fn(char) -> bool) -> Option<char> {
        match self.next {
            Some(Tok::Char(c)) => char::from_u32(c).filter(|&c| set(c)),
            _ => None,
        }
    }

    /// Up to `n` units of `set`.
    fn get_while(&mut self, n: usize, set: impl Fn(char) -> bool) -> Result<String, PyReError> {
        let mut result = String::new();
        for _ in 0..n {
            let Some(c) = self.next_in(&set) else { break };
            result.push(c);
            self.advance()?;
        }
        Ok(result)
    }

    /// The units up to `terminator`, for a group name.
    fn get_until(&mut self, terminator: char, name: &str) -> Result<Vec<u32>, PyReError> {
        let mut result = Vec::new();
        loop {
            let c = self.next;
            self.advance()?;
            match c {
                None if result.is_empty() => {
                    return Err(err(self.tell(), format!("missing {name}")));
                }
                None => {
                    return Err(err(
                        self.tell() - result.len(),
                        format!("missing {terminator}, unterminated name"),
                    ));
                }
                Some(Tok::Char(t)) if t == u32::from(terminator) => {
                    if result.is_empty() {
                        return Err(err(self.tell() - 1, format!("missing {name}")));
                    }
                    return Ok(result);
                }
                Some(Tok::Char(c)) => result.push(c),
                Some(Tok::Esc(c)) => result.extend([u32::from(b'\\'), c]),
            }
        }
    }
}

/// The parse of a whole pattern.
struct Parsed {
    node: Node,
    /// The inline global flags.
    flags: u16,
    has_non_boundary: bool,
}

struct Parser<'a> {
    source: Source<'a>,
    bytes: bool,
    /// Global flags set inline (`(?i)` at the start).
    flags: u16,
    /// Groups opened so far, group 0 included; whether each is closed.
    closed: Vec<bool>,
    names: HashMap<Vec<u32>, usize>,
    depth: usize,
    has_non_boundary: bool,
}

fn parse(units: &[u32], bytes: bool) -> Result<Parsed, PyReError> {
    let mut parser = Parser {
        source: Source::new(units)?,
        bytes,
        flags: 0,
        closed: vec![true],
        names: HashMap::new(),
        depth: 0,
        has_non_boundary: false,
    };
    let node = parser.sub(false, 0)?;
    let flags = parser.flags;
    if bytes {
        if flags & ASCII != 0 && flags & LOCALE != 0 {
            return Err(err(0, "ASCII and LOCALE flags are incompatible"));
        }
    } else if flags & ASCII != 0 && flags & UNICODE != 0 {
        return Err(err(0, "ASCII and UNICODE flags are incompatible"));
    }
    if parser.source.next.is_some() {
        return Err(err(parser.source.tell(), "unbalanced parenthesis"));
    }
    Ok(Parsed {
        node,
        flags,
        has_non_boundary: parser.has_non_boundary,
    })
}

fn unsupported(position: usize, what: &str) -> PyReError {
    err(
        position,
        format!("{what} not supported: witm's regex engine (the regex crate) has none"),
    )
}

fn is_identifier(name: &[u32]) -> bool {
    let mut chars = name.iter().map(|&c| char::from_u32(c));
    let Some(Some(first)) = chars.next() else {
        return false;
    };
    (first == '_' || first.is_alphabetic())
        && chars.all(|c| c.is_some_and(|c| c == '_' || c.is_alphanumeric()))
}

fn show(name: &[u32]) -> String {
    name.iter()
        .map(|&c| char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

fn is_special(c: u32) -> bool {
    char::from_u32(c).is_some_and(|c| ".\\[{()*+?^$|".contains(c))
}

fn is_verbose_space(c: u32) -> bool {
    matches!(c, 0x20 | 0x09 | 0x0A | 0x0D | 0x0B | 0x0C)
}

fn is_octal(c: char) -> bool {
    ('0'..='7').contains(&c)
}

impl Parser<'_> {
    /// `a|b|c` (Python's `_parse_sub`).
    fn sub(&mut self, verbose: bool, nested: usize) -> Result<Node, PyReError> {
        let mut items = Vec::new();
        let mut verbose = verbose;
        loop {
            let first = nested == 0 && items.is_empty();
            items.push(self.sequence(verbose, first)?);
            if !self.source.matches('|')? {
                break;
            }
            if nested == 0 {
                verbose = self.flags & VERBOSE != 0;
            }
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one branch")
        } else {
            Node::Alt(items)
        })
    }

    /// Items one after the other (Python's `_parse`).
    fn sequence(&mut self, verbose: bool, first: bool) -> Result<Node, PyReError> {
        let mut items: Vec<Node> = Vec::new();
        let mut verbose = verbose;
        while let Some(this) = self.source.next {
            if this == Tok::Char(u32::from('|')) || this == Tok::Char(u32::from(')')) {
                break;
            }
            self.source.get()?;
            if verbose && let Tok::Char(c) = this {
                if is_verbose_space(c) {
                    continue;
                }
                if c == u32::from('#') {
                    loop {
                        match self.source.get()? {
                            None => break,
                            Some(Tok::Char(c)) if c == u32::from('\n') => break,
                            Some(_) => {}
                        }
                    }
                    continue;
                }
            }
            let c = match this {
                Tok::Esc(c) => {
                    let node = self.escape(c)?;
                    items.push(node);
                    continue;
                }
                Tok::Char(c) if !is_special(c) => {
                    items.push(Node::Lit(c));
                    continue;
                }
                Tok::Char(c) => char::from_u32(c).expect("a special character is ASCII"),
            };
            match c {
                '[' => {
                    let node = self.class()?;
                    items.push(node);
                }
                '*' | '+' | '?' | '{' => {
                    let here = self.source.tell();
                    let (min, max) = match c {
                        '?' => (0, Some(1)),
                        '*' => (0, None),
                        '+' => (1, None),
                        _ => {
                            if self.source.is_next('}') {
                                items.push(Node::Lit(u32::from('{')));
                                continue;
                            }
                            let lo = self.source.get_while(usize::MAX, |c| c.is_ascii_digit())?;
                            let hi = if self.source.matches(',')? {
                                self.source.get_while(usize::MAX, |c| c.is_ascii_digit())?
                            } else {
                                lo.clone()
                            };
                            if !self.source.matches('}')? {
                                items.push(Node::Lit(u32::from('{')));
                                self.source.seek(here)?;
                                continue;
                            }
                            let count = |digits: &str| -> Result<u32, PyReError> {
                                match digits.parse::<u64>() {
                                    Ok(n) if n < MAXREPEAT => Ok(n as u32),
                                    _ => Err(err(here, "the repetition number is too large")),
                                }
                            };
                            let min = if lo.is_empty() { 0 } else { count(&lo)? };
                            let max = if hi.is_empty() {
                                None
                            } else {
                                Some(count(&hi)?)
                            };
                            if max.is_some_and(|max| max < min) {
                                return Err(err(here, "min repeat greater than max repeat"));
                            }
                            (min, max)
                        }
                    };
                    match items.last() {
                        None => return Err(err(here - 1, "nothing to repeat")),
                        Some(item) if item.is_assertion() => {
                            return Err(err(here - 1, "nothing to repeat"));
                        }
                        Some(Node::Repeat(..)) => return Err(err(here - 1, "multiple repeat")),
                        Some(_) => {}
                    }
                    let greedy = if self.source.matches('?')? {
                        false
                    } else if self.source.matches('+')? {
                        return Err(unsupported(
                            here - 1,
                            "possessive quantifiers (*+, ++, ?+, {m,n}+) are",
                        ));
                    } else {
                        true
                    };
                    let item = items.pop().expect("an item to repeat");
                    items.push(Node::Repeat(Box::new(item), min, max, greedy));
                }
                '.' => items.push(Node::Any),
                '(' => {
                    if let Some(group) = self.group(&mut verbose, first && items.is_empty())? {
                        items.push(group);
                    }
                }
                '^' => items.push(Node::LineStart),
                '$' => items.push(Node::LineEnd(self.source.tell() - 1)),
                _ => unreachable!("every special character is handled"),
            }
        }
        Ok(Node::Concat(items))
    }

    /// After a `(`: a group, or `None` for a comment or global flags.
    fn group(&mut self, verbose: &mut bool, at_start: bool) -> Result<Option<Node>, PyReError> {
        let start = self.source.tell() - 1;
        let mut capture = true;
        let mut name = None;
        let (mut add, mut del) = (0, 0);
        if self.source.matches('?')? {
            let Some(c) = self.source.get()? else {
                return Err(err(self.source.tell(), "unexpected end of pattern"));
            };
            let c = match c {
                Tok::Char(c) => char::from_u32(c),
                Tok::Esc(_) => None,
            };
            match c {
                Some('P') => {
                    if self.source.matches('<')? {
                        let n = self.source.get_until('>', "group name")?;
                        self.check_group_name(&n)?;
                        name = Some(n);
                    } else if self.source.matches('=')? {
                        let n = self.source.get_until(')', "group name")?;
                        self.check_group_name(&n)?;
                        return match self.names.get(&n) {
                            None => Err(err(start, format!("unknown group name '{}'", show(&n)))),
                            Some(&gid) if !self.closed[gid] => {
                                Err(err(start, "cannot refer to an open group"))
                            }
                            Some(_) => Err(unsupported(start, "backreferences ((?P=name)) are")),
                        };
                    } else {
                        return match self.source.get()? {
                            None => Err(err(self.source.tell(), "unexpected end of pattern")),
                            Some(_) => Err(err(start, "unknown extension ?P")),
                        };
                    }
                }
                Some(':') => capture = false,
                Some('#') => {
                    loop {
                        if self.source.next.is_none() {
                            return Err(err(start, "missing ), unterminated comment"));
                        }
                        if self.source.get()? == Some(Tok::Char(u32::from(')'))) {
                            break;
                        }
                    }
                    return Ok(None);
                }
                Some('=' | '!') => {
                    return Err(unsupported(
                        start,
                        "look-ahead assertions ((?=…), (?!…)) are",
                    ));
                }
                Some('<') => {
                    return match self.source.get()? {
                        None => Err(err(self.source.tell(), "unexpected end of pattern")),
                        Some(Tok::Char(c)) if c == u32::from('=') || c == u32::from('!') => Err(
                            unsupported(start, "look-behind assertions ((?<=…), (?<!…)) are"),
                        ),
                        Some(_) => Err(err(start, "unknown extension ?<")),
                    };
                }
                Some('(') => {
                    return Err(unsupported(start, "conditional groups ((?(1)…|…)) are"));
                }
                Some('>') => return Err(unsupported(start, "atomic groups ((?>…)) are")),
                Some(c) if c == '-' || flag(u32::from(c)).is_some() => {
                    match self.flags(c, start)? {
                        None => {
                            if !at_start {
                                return Err(err(
                                    start,
                                    "global flags not at the start of the expression",
                                ));
                            }
                            *verbose = self.flags & VERBOSE != 0;
                            return Ok(None);
                        }
                        Some((a, d)) => {
                            add = a;
                            del = d;
                            capture = false;
                        }
                    }
                }
                _ => return Err(err(start, "unknown extension")),
            }
        }
        let gid = if capture {
            let gid = self.closed.len();
            if let Some(name) = name {
                if let Some(&was) = self.names.get(&name) {
                    return Err(err(
                        start,
                        format!(
                            "redefinition of group name '{}' as group {gid}; was group {was}",
                            show(&name)
                        ),
                    ));
                }
                self.names.insert(name, gid);
            }
            self.closed.push(false);
            Some(gid)
        } else {
            None
        };
        if self.depth >= MAX_NESTING {
            return Err(err(
                start,
                format!("groups nested too deeply (more than {MAX_NESTING})"),
            ));
        }
        let sub_verbose = (*verbose || add & VERBOSE != 0) && del & VERBOSE == 0;
        self.depth += 1;
        let inner = self.sub(sub_verbose, 1)?;
        self.depth -= 1;
        if !self.source.matches(')')? {
            return Err(err(start, "missing ), unterminated subpattern"));
        }
        if let Some(gid) = gid {
            self.closed[gid] = true;
        }
        Ok(Some(Node::Group(Box::new(inner), add, del)))
    }

    fn check_group_name(&self, name: &[u32]) -> Result<(), PyReError> {
        if is_identifier(name) {
            Ok(())
        } else {
            Err(err(
                self.source.tell(),
                format!("bad character in group name '{}'", show(name)),
            ))
        }
    }

    /// `(?aiLmsux-imsx:` or `(?aiLmsux)` after its first letter `c`:
    /// `None` for global flags, else the flags turned on and off.
    fn flags(&mut self, c: char, start: usize) -> Result<Option<(u16, u16)>, PyReError> {
        let at = |s: &Self| s.source.tell();
        let mut add = 0;
        let mut del = 0;
        let mut c = Some(Tok::Char(u32::from(c)));
        let char_of = |t: Option<Tok>| match t {
            Some(Tok::Char(c)) => char::from_u32(c),
            _ => None,
        };
        let bad = |t: Option<Tok>, otherwise: &str| -> String {
            if char_of(t).is_some_and(char::is_alphabetic) {
                "unknown flag".into()
            } else {
                otherwise.into()
            }
        };
        if char_of(c) != Some('-') {
            loop {
                let ch = char_of(c).expect("a flag letter");
                let f = flag(u32::from(ch)).expect("a flag letter");
                if !self.bytes && ch == 'L' {
                    return Err(err(
                        at(self),
                        "bad inline flags: cannot use 'L' flag with a str pattern",
                    ));
                }
                if self.bytes && ch == 'u' {
                    return Err(err(
                        at(self),
                        "bad inline flags: cannot use 'u' flag with a bytes pattern",
                    ));
                }
                add |= f;
                if f & TYPE_FLAGS != 0 && add & TYPE_FLAGS != f {
                    return Err(err(
                        at(self),
                        "bad inline flags: flags 'a', 'u' and 'L' are incompatible",
                    ));
                }
                c = self.source.get()?;
                match char_of(c) {
                    None if c.is_none() => return Err(err(at(self), "missing -, : or )")),
                    Some(')' | '-' | ':') => break,
                    Some(x) if flag(u32::from(x)).is_some() => {}
                    _ => return Err(err(at(self), bad(c, "missing -, : or )"))),
                }
            }
        }
        if char_of(c) == Some(')') {
            if add & TEMPLATE != 0 {
                return Err(unsupported(start, "the t (template) flag is"));
            }
            self.flags |= add;
            return Ok(None);
        }
        if add & TEMPLATE != 0 {
            return Err(err(
                at(self),
                "bad inline flags: cannot turn on global flag",
            ));
        }
        if char_of(c) == Some('-') {
            c = self.source.get()?;
            match char_of(c) {
                None if c.is_none() => return Err(err(at(self), "missing flag")),
                Some(x) if flag(u32::from(x)).is_some() => {}
                _ => return Err(err(at(self), bad(c, "missing flag"))),
            }
            loop {
                let f = flag(u32::from(char_of(c).expect("a flag letter"))).expect("a flag");
                if f & TYPE_FLAGS != 0 {
                    return Err(err(
                        at(self),
                        "bad inline flags: cannot turn off flags 'a', 'u' and 'L'",
                    ));
                }
                del |= f;
                c = self.source.get()?;
                match char_of(c) {
                    None if c.is_none() => return Err(err(at(self), "missing :")),
                    Some(':') => break,
                    Some(x) if flag(u32::from(x)).is_some() => {}
                    _ => return Err(err(at(self), bad(c, "missing :"))),
                }
            }
        }
        if del & TEMPLATE != 0 {
            return Err(err(
                at(self),
                "bad inline flags: cannot turn off global flag",
            ));
        }
        if add & del != 0 {
            return Err(err(at(self), "bad inline flags: flag turned on and off"));
        }
        Ok(Some((add, del)))
    }

    /// `\x`, `\u`, `\U` after their letter: the code point.
    fn hex_escape(&mut self, letter: char, digits: usize, at: usize) -> Result<u32, PyReError> {
        let hex = self.source.get_while(digits, |c| c.is_ascii_hexdigit())?;
        if hex.len() != digits {
            return Err(err(at, format!("incomplete escape \\{letter}{hex}")));
        }
        let value = u32::from_str_radix(&hex, 16).expect("hex digits");
        if value > 0x10FFFF {
            return Err(err(at, format!("bad escape \\{letter}{hex}")));
        }
        Ok(value)
    }

    /// What `\c` stands for in a class: a unit or a shorthand class.
    fn class_escape(&mut self, c: u32) -> Result<Item, PyReError> {
        let at = self.source.tell() - 2;
        let ch = char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
        Ok(match ch {
            'a' => Item::Lit(7),
            'b' => Item::Lit(8),
            'f' => Item::Lit(12),
            'n' => Item::Lit(10),
            'r' => Item::Lit(13),
            't' => Item::Lit(9),
            'v' => Item::Lit(11),
            '\\' => Item::Lit(c),
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => Item::Cat(cat(ch)),
            'x' => Item::Lit(self.hex_escape('x', 2, at)?),
            'u' if !self.bytes => Item::Lit(self.hex_escape('u', 4, at)?),
            'U' if !self.bytes => Item::Lit(self.hex_escape('U', 8, at)?),
            'N' if !self.bytes => {
                return Err(unsupported(at, "named characters (\\N{…}) are"));
            }
            c if is_octal(c) => {
                let more = self.source.get_while(2, is_octal)?;
                let value = u32::from_str_radix(&format!("{c}{more}"), 8).expect("octal");
                if value > 0o377 {
                    return Err(err(
                        at,
                        format!("octal escape value \\{c}{more} outside of range 0-0o377"),
                    ));
                }
                Item::Lit(value)
            }
            c if c.is_ascii_alphanumeric() => {
                return Err(err(at, format!("bad escape \\{c}")));
            }
            _ => Item::Lit(c),
        })
    }

    /// What `\c` stands for outside a class.
    fn escape(&mut self, c: u32) -> Result<Node, PyReError> {
        let at = self.source.tell() - 2;
        let ch = char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
        Ok(match ch {
            'A' => Node::TextStart,
            'Z' => Node::TextEnd,
            'b' => Node::WordBoundary,
            'B' => {
                self.has_non_boundary = true;
                Node::NotWordBoundary
            }
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => Node::Cat(cat(ch)),
            'a' => Node::Lit(7),
            'f' => Node::Lit(12),
            'n' => Node::Lit(10),
            'r' => Node::Lit(13),
            't' => Node::Lit(9),
            'v' => Node::Lit(11),
            '\\' => Node::Lit(c),
            'x' => Node::Lit(self.hex_escape('x', 2, at)?),
            'u' if !self.bytes => Node::Lit(self.hex_escape('u', 4, at)?),
            'U' if !self.bytes => Node::Lit(self.hex_escape('U', 8, at)?),
            'N' if !self.bytes => {
                return Err(unsupported(at, "named characters (\\N{…}) are"));
            }
            '0' => {
                let more = self.source.get_while(2, is_octal)?;
                Node::Lit(u32::from_str_radix(&format!("0{more}"), 8).expect("octal"))
            }
            '1'..='9' => {
                let mut digits = ch.to_string();
                if let Some(d) = self.source.next_in(|c| c.is_ascii_digit()) {
                    self.source.get()?;
                    digits.push(d);
                    let third = self.source.next_in(is_octal);
                    if is_octal(ch)
                        && is_octal(d)
                        && let Some(e) = third
                    {
                        self.source.get()?;
                        digits.push(e);
                        let value = u32::from_str_radix(&digits, 8).expect("octal");
                        if value > 0o377 {
                            return Err(err(
                                at,
                                format!("octal escape value \\{digits} outside of range 0-0o377"),
                            ));
                        }
                        return Ok(Node::Lit(value));
                    }
                }
                let group: usize = digits.parse().expect("digits");
                if group < self.closed.len() {
                    if !self.closed[group] {
                        return Err(err(at, "cannot refer to an open group"));
                    }
                    return Err(unsupported(at, "backreferences (\\1 …) are"));
                }
                return Err(err(at, format!("invalid group reference {group}")));
            }
            c if c.is_ascii_alphabetic() => return Err(err(at, format!("bad escape \\{c}"))),
            _ => Node::Lit(c),
        })
    }

    /// After a `[`: the class.
    fn class(&mut self) -> Result<Node, PyReError> {
        let here = self.source.tell() - 1;
        let negate = self.source.matches('^')?;
        let mut items: Vec<Item> = Vec::new();
        let unterminated = || err(here, "unterminated character set");
        loop {
            let Some(this) = self.source.get()? else {
                return Err(unterminated());
            };
            if this == Tok::Char(u32::from(']')) && !items.is_empty() {
                break;
            }
            let first = match this {
                Tok::Esc(c) => self.class_escape(c)?,
                Tok::Char(c) => Item::Lit(c),
            };
            if self.source.matches('-')? {
                let Some(that) = self.source.get()? else {
                    return Err(unterminated());
                };
                if that == Tok::Char(u32::from(']')) {
                    items.push(first);
                    items.push(Item::Lit(u32::from('-')));
                    break;
                }
                let second = match that {
                    Tok::Esc(c) => self.class_escape(c)?,
                    Tok::Char(c) => Item::Lit(c),
                };
                let (Item::Lit(lo), Item::Lit(hi)) = (&first, &second) else {
                    return Err(err(here, "bad character range"));
                };
                if hi < lo {
                    return Err(err(here, "bad character range"));
                }
                items.push(Item::Range(*lo, *hi));
            } else {
                items.push(first);
            }
        }
        Ok(Node::Class(negate, items))
    }
}

fn cat(c: char) -> Cat {
    match c {
        'd' => Cat::Digit(false),
        'D' => Cat::Digit(true),
        's' => Cat::Space(false),
        'S' => Cat::Space(true),
        'w' => Cat::Word(false),
        _ => Cat::Word(true),
    }
}

/// The flags in force at a node.
#[derive(Clone, Copy, Debug)]
struct Eff {
    i: bool,
    m: bool,
    s: bool,
    /// ASCII classes and case folding (bytes patterns, `(?a)`, `(?L)`).
    ascii: bool,
}

struct Emitter {
    bytes: bool,
    one_line: bool,
    /// Writing the pattern for the empty text.
    empty_variant: bool,
    out: String,
}

/// Python's `\s` for str patterns (`str.isspace`).
const UNICODE_SPACE: &str = r"\x{9}-\x{D}\x{1C}-\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}";

impl Emitter {
    fn never(&self) -> &'static str {
        if self.bytes {
            r"[^\x00-\xFF]"
        } else {
            r"[^\x{0}-\x{10FFFF}]"
        }
    }

    fn any(&self) -> &'static str {
        if self.bytes {
            r"[\x00-\xFF]"
        } else {
            r"[\x{0}-\x{10FFFF}]"
        }
    }

    /// One unit, escaped for the regex crate (inside or outside a class).
    fn unit(&self, c: u32) -> String {
        match char::from_u32(c) {
            Some(ch) if ch.is_ascii_alphanumeric() => ch.to_string(),
            _ if self.bytes => format!(r"\x{c:02X}"),
            _ => format!(r"\x{{{c:X}}}"),
        }
    }

    /// A shorthand as a bracketed class (which can also sit in a class).
    fn cat(&self, cat: Cat, ascii: bool) -> String {
        let (body, negated) = match (cat, ascii) {
            (Cat::Digit(n), true) => ("0-9", n),
            (Cat::Digit(n), false) => (r"\p{Nd}", n),
            (Cat::Word(n), true) => ("0-9A-Za-z_", n),
            (Cat::Word(n), false) => (r"\p{L}\p{N}_", n),
            (Cat::Space(n), true) => (r"\x09-\x0D\x20", n),
            (Cat::Space(n), false) => (UNICODE_SPACE, n),
        };
        format!("[{}{body}]", if negated { "^" } else { "" })
    }

    fn node(&mut self, node: &Node, eff: Eff, tail: bool) -> Result<(), PyReError> {
        match node {
            Node::Lit(c) => self.literal(*c, eff),
            Node::Any => self.out.push_str(if eff.s { "(?s:.)" } else { "(?-s:.)" }),
            Node::Class(negate, items) => self.class(*negate, items, eff),
            Node::Cat(c) => {
                let class = self.cat(*c, eff.ascii);
                self.out.push_str(&class);
            }
            Node::LineStart => self.out.push_str(if eff.m { "(?m:^)" } else { r"\A" }),
            Node::LineEnd(at) => {
                if eff.m {
                    self.out.push_str("(?m:$)");
                } else if self.one_line {
                    self.out.push_str(r"\z");
                } else if tail {
                    self.out.push_str(r"(?:\n?\z)");
                } else {
                    return Err(err(
                        *at,
                        "a $ followed by more pattern is not supported here: without (?m), \
                         Python's $ also matches before a newline that ends the text, a \
                         look-ahead witm's regex engine does not have (end the pattern or \
                         its branch at $, or use \\Z)",
                    ));
                }
            }
            Node::TextStart => self.out.push_str(r"\A"),
            Node::TextEnd => self.out.push_str(r"\z"),
            Node::WordBoundary => self.out.push_str(if eff.ascii && !self.bytes {
                r"(?-u:\b)"
            } else {
                r"\b"
            }),
            Node::NotWordBoundary => {
                if self.empty_variant {
                    let never = self.never();
                    self.out.push_str(never);
                } else {
                    self.out.push_str(if eff.ascii && !self.bytes {
                        r"(?-u:\B)"
                    } else {
                        r"\B"
                    });
                }
            }
            Node::Group(inner, add, del) => {
                let mut eff = eff;
                let on = |f: u16| add & f != 0;
                let off = |f: u16| del & f != 0;
                eff.i = (eff.i || on(IGNORECASE)) && !off(IGNORECASE);
                eff.m = (eff.m || on(MULTILINE)) && !off(MULTILINE);
                eff.s = (eff.s || on(DOTALL)) && !off(DOTALL);
                if on(ASCII) || on(LOCALE) {
                    eff.ascii = true;
                } else if on(UNICODE) {
                    eff.ascii = self.bytes;
                }
                self.out.push_str("(?:");
                self.node(inner, eff, tail)?;
                self.out.push(')');
            }
            Node::Concat(items) => {
                for (k, item) in items.iter().enumerate() {
                    let rest_is_nothing = items[k + 1..].iter().all(Node::is_nothing);
                    self.node(item, eff, tail && rest_is_nothing)?;
                }
            }
            Node::Alt(branches) => {
                self.out.push_str("(?:");
                for (k, branch) in branches.iter().enumerate() {
                    if k > 0 {
                        self.out.push('|');
                    }
                    self.node(branch, eff, tail)?;
                }
                self.out.push(')');
            }
            Node::Repeat(item, min, max, greedy) => {
                self.out.push_str("(?:");
                self.node(item, eff, tail && max.is_some_and(|m| m <= 1))?;
                self.out.push(')');
                match max {
                    Some(max) if max == min => self.out.push_str(&format!("{{{min}}}")),
                    Some(max) => self.out.push_str(&format!("{{{min},{max}}}")),
                    None => self.out.push_str(&format!("{{{min},}}")),
                }
                if !greedy {
                    self.out.push('?');
                }
            }
        }
        Ok(())
    }

    fn literal(&mut self, c: u32, eff: Eff) {
        if !self.bytes && (0xD800..=0xDFFF).contains(&c) {
            // A lone surrogate: witm's text, valid UTF-8, has none.
            let never = self.never();
            self.out.push_str(never);
            return;
        }
        let unit = self.unit(c);
        if eff.i && eff.ascii {
            match char::from_u32(c) {
                Some(ch) if ch.is_ascii_alphabetic() => self.out.push_str(&format!(
                    "[{}{}]",
                    ch.to_ascii_lowercase(),
                    ch.to_ascii_uppercase()
                )),
                _ => self.out.push_str(&unit),
            }
        } else if eff.i {
            self.out.push_str(&format!("(?i:{unit})"));
        } else {
            self.out.push_str(&unit);
        }
    }

    fn class(&mut self, negate: bool, items: &[Item], eff: Eff) {
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        let mut body = String::new();
        for item in items {
            match *item {
                Item::Lit(c) => ranges.push((c, c)),
                Item::Range(a, b) => ranges.push((a, b)),
                Item::Cat(c) => body.push_str(&self.cat(c, eff.ascii)),
            }
        }
        if eff.i && eff.ascii {
            // ASCII case folding: each letter also in its other case.
            let mut other = Vec::new();
            for &(a, b) in &ranges {
                for (lo, hi, shift) in [(0x61, 0x7A, -32i64), (0x41, 0x5A, 32)] {
                    let (x, y) = (a.max(lo), b.min(hi));
                    if x <= y {
                        other.push(((x as i64 + shift) as u32, (y as i64 + shift) as u32));
                    }
                }
            }
            ranges.extend(other);
        }
        for (a, b) in ranges {
            let pieces: Vec<(u32, u32)> = if self.bytes {
                vec![(a, b)]
            } else {
                // Surrogates are no characters of witm's text.
                let mut pieces = Vec::new();
                if a <= 0xD7FF {
                    pieces.push((a, b.min(0xD7FF)));
                }
                if b >= 0xE000 {
                    pieces.push((a.max(0xE000), b));
                }
                pieces
            };
            for (x, y) in pieces {
                body.push_str(&self.unit(x));
                if y != x {
                    body.push('-');
                    body.push_str(&self.unit(y));
                }
            }
        }
        if body.is_empty() {
            let text = if negate { self.any() } else { self.never() };
            self.out.push_str(text);
            return;
        }
        let class = format!("[{}{body}]", if negate { "^" } else { "" });
        if eff.i && !eff.ascii {
            self.out.push_str(&format!("(?i:{class})"));
        } else {
            self.out.push_str(&class);
        }
    }
}

#[cfg(test)]
mod tests {
    //! What the translation writes and refuses; what the filters then match
    //! is `tests/filter_table.rs`, checked against mitmproxy itself.

    use super::*;

    fn units(pattern: &str) -> Vec<u32> {
        pattern.chars().map(u32::from).collect()
    }

    fn text(pattern: &str) -> Result<String, String> {
        translate(&units(pattern), Options::default())
            .map(|t| t.pattern)
            .map_err(|e| e.message)
    }

    fn bytes(pattern: &str) -> Result<String, String> {
        let options = Options {
            bytes: true,
            ..Options::default()
        };
        translate(&units(pattern), options)
            .map(|t| t.pattern)
            .map_err(|e| e.message)
    }

    #[test]
    fn python_reads_what_the_regex_crate_reads_otherwise() {
        assert_eq!(text(r"a$").unwrap(), r"a(?:\n?\z)");
        assert_eq!(text(r"a\Z").unwrap(), r"a\z");
        assert_eq!(text(r"\<").unwrap(), r"\x{3C}");
        assert_eq!(text(r"[[]").unwrap(), r"[\x{5B}]");
        assert_eq!(text(r"a{,2}").unwrap(), r"(?:a){0,2}");
        assert_eq!(text(r"a{x}").unwrap(), r"a\x{7B}x\x{7D}");
        assert_eq!(text(r"\101").unwrap(), "A");
        assert_eq!(text(r"\0").unwrap(), r"\x{0}");
        assert_eq!(text(r"(?x) a b # c").unwrap(), "ab");
        assert_eq!(text(r"(?i)k").unwrap(), "(?i:k)");
        assert_eq!(text(r"(?ai)k").unwrap(), "[kK]");
        // Bytes: UTF-8 units, ASCII classes.
        assert_eq!(bytes("é").unwrap(), r"\xC3\xA9");
        assert_eq!(bytes(r"\d").unwrap(), "[0-9]");
        assert_eq!(text(r"\d").unwrap(), r"[\p{Nd}]");
        // \B never matches the empty text.
        let t = translate(&units(r"\B"), Options::default()).unwrap();
        assert_eq!(t.empty.as_deref(), Some(r"[^\x{0}-\x{10FFFF}]"));
    }

    #[test]
    fn errors_are_pythons() {
        for (pattern, message) in [
            ("a(", "missing ), unterminated subpattern"),
            ("a)", "unbalanced parenthesis"),
            ("*", "nothing to repeat"),
            ("a**", "multiple repeat"),
            ("^*", "nothing to repeat"),
            ("[", "unterminated character set"),
            ("[b-a]", "bad character range"),
            (r"\q", r"bad escape \q"),
            ("\\", "bad escape (end of pattern)"),
            (r"\x4", r"incomplete escape \x4"),
            (r"\1", "invalid group reference 1"),
            (r"(a\1)", "cannot refer to an open group"),
            ("a(?i)", "global flags not at the start of the expression"),
            (
                "(?L)",
                "bad inline flags: cannot use 'L' flag with a str pattern",
            ),
            ("(?i-i:a)", "bad inline flags: flag turned on and off"),
            (
                "(?P<a>x)(?P<a>y)",
                "redefinition of group name 'a' as group 2; was group 1",
            ),
            ("(?P<1>x)", "bad character in group name '1'"),
            ("a{3,2}", "min repeat greater than max repeat"),
            ("a{4294967295}", "the repetition number is too large"),
            ("(?a)(?u)", "ASCII and UNICODE flags are incompatible"),
        ] {
            assert_eq!(text(pattern), Err(message.to_owned()), "{pattern:?}");
        }
        assert_eq!(
            bytes("(?u)"),
            Err("bad inline flags: cannot use 'u' flag with a bytes pattern".to_owned())
        );
        assert_eq!(bytes(r"\u0041"), Err(r"bad escape \u".to_owned()));
    }

    #[test]
    fn what_the_regex_crate_lacks_is_named() {
        for (pattern, feature) in [
            ("(?=a)", "look-ahead"),
            ("(?!a)", "look-ahead"),
            ("(?<=a)", "look-behind"),
            ("(?<!a)", "look-behind"),
            (r"(a)\1", "backreferences"),
            ("(?P<n>a)(?P=n)", "backreferences"),
            ("(a)?(?(1)b|c)", "conditional groups"),
            ("(?>a)", "atomic groups"),
            ("a++", "possessive quantifiers"),
            (r"\N{BULLET}", "named characters"),
            ("(?t)a", "the t (template) flag"),
        ] {
            let message = text(pattern).expect_err(pattern);
            assert!(
                message.starts_with(feature) && message.contains("not supported"),
                "{pattern:?}: {message}"
            );
        }
        // A `$` with more after it, in a text that may hold newlines.
        assert!(
            text("a$b")
                .unwrap_err()
                .contains("a $ followed by more pattern")
        );
        let one_line = Options {
            one_line: true,
            ..Options::default()
        };
        assert_eq!(translate(&units("a$b"), one_line).unwrap().pattern, r"a\zb");
        let multi_line = Options {
            multi_line: true,
            ..Options::default()
        };
        assert_eq!(
            translate(&units("a$b"), multi_line).unwrap().pattern,
            "a(?m:$)b"
        );
    }

    #[test]
    fn surrogates_match_nothing_and_cannot_be_bytes() {
        let lone = [0xD800];
        assert_eq!(
            translate(&lone, Options::default()).unwrap().pattern,
            r"[^\x{0}-\x{10FFFF}]"
        );
        let options = Options {
            bytes: true,
            ..Options::default()
        };
        assert!(translate(&lone, options).is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}a{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert!(text(&ok).is_ok());
        let deep = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
        assert_eq!(
            text(&deep),
            Err(format!(
                "groups nested too deeply (more than {MAX_NESTING})"
            ))
        );
    }
}
