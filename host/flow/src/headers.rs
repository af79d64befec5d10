//! HTTP headers as a proxy must keep them: in wire order, names in their
//! original case, several values per name.

use bytes::Bytes;

/// Room a received head's list keeps for fields added to it (a plugin's
/// `set` of a new name, `append`): the first few do not move the list.
const ROOM_TO_ADD: usize = 2;

/// An ordered, multi-valued header list with case-insensitive lookup
/// (mitmproxy's `Headers`).
///
/// Unlike `http::HeaderMap`, this keeps the order of different names and the
/// case of each name as received, so a proxy that edits one header does not
/// reshape the others.
///
/// The fields of a received head are places in that head's buffer, held
/// once for the list ([`Headers::from_wire`]): making the list, and
/// dropping it, counts no reference per field.
#[derive(Clone, Default)]
pub struct Headers {
    /// The buffer [`Field::InHead`] fields lie in (empty when none do).
    head: Bytes,
    fields: Vec<Field>,
    /// Set by [`Headers::mark_received`]: which head the fields came in,
    /// and how many of the first fields are still as they came. Not part
    /// of what the headers are (equality ignores it).
    received: Option<Received>,
}

/// [`Headers::received`].
#[derive(Clone, Copy, Debug)]
struct Received {
    head: usize,
    untouched: usize,
}

/// One field of a [`Headers`].
#[derive(Clone)]
enum Field {
    /// Where its name and value lie in the list's head: name from, name
    /// length, value from, value length ([`Headers::from_wire`]).
    InHead([u32; 4]),
    /// A field with a name and value of its own.
    Own(Name, Bytes),
}

impl Field {
    fn name<'a>(&'a self, head: &'a [u8]) -> &'a [u8] {
        match self {
            Field::InHead([from, len, ..]) => span(head, *from, *len),
            Field::Own(name, _) => &name.0,
        }
    }

    fn value<'a>(&'a self, head: &'a [u8]) -> &'a [u8] {
        match self {
            Field::InHead([_, _, from, len]) => span(head, *from, *len),
            Field::Own(_, value) => value,
        }
    }

    /// The name as text (empty if a wrong span made it anything else).
    fn name_str<'a>(&'a self, head: &'a [u8]) -> &'a str {
        std::str::from_utf8(self.name(head)).unwrap_or_default()
    }

    fn is(&self, head: &[u8], name: &str) -> bool {
        self.name(head).eq_ignore_ascii_case(name.as_bytes())
    }

    /// The value as a `Bytes` sharing the head, not a copy.
    fn value_bytes(&self, head: &Bytes) -> Bytes {
        match self {
            Field::InHead([_, _, from, len]) => shared_span(head, *from, *len),
            Field::Own(_, value) => value.clone(),
        }
    }

    /// The name as a `Bytes` sharing the head, not a copy.
    fn name_bytes(&self, head: &Bytes) -> Name {
        match self {
            Field::InHead([from, len, ..]) => Name(shared_span(head, *from, *len)),
            Field::Own(name, _) => name.clone(),
        }
    }
}

/// `from..from + len` as indices.
fn range(from: u32, len: u32) -> std::ops::Range<usize> {
    let from = from as usize;
    from..from + len as usize
}

/// `head[from..from + len]`; empty if it is not all in the head (never,
/// for spans a parse of the head found).
fn span(head: &[u8], from: u32, len: u32) -> &[u8] {
    head.get(range(from, len)).unwrap_or_default()
}

/// [`span`] as a `Bytes` sharing the head.
fn shared_span(head: &Bytes, from: u32, len: u32) -> Bytes {
    let range = range(from, len);
    if range.end <= head.len() {
        head.slice(range)
    } else {
        Bytes::new()
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        let (head, other_head) = (&self.head[..], &other.head[..]);
        self.len() == other.len()
            && self.fields.iter().zip(&other.fields).all(|(f, o)| {
                f.name(head) == o.name(other_head) && f.value(head) == o.value(other_head)
            })
    }
}

impl Eq for Headers {}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

/// A field's own name: text, kept as `Bytes` so that a name taken from a
/// head still shares its buffer.
#[derive(Clone, PartialEq, Eq)]
struct Name(Bytes);

impl From<&str> for Name {
    fn from(name: &str) -> Self {
        Name(Bytes::copy_from_slice(name.as_bytes()))
    }
}

/// Most fields a message may carry when it is put on the wire, and most
/// bytes of names and values in all: past them `http::HeaderMap` panics
/// (32,768 fields) and peers refuse the message long before. A plugin or a
/// saved file asking for more gets an error, not a crash.
pub const MAX_FIELDS: usize = 1000;
/// See [`MAX_FIELDS`].
pub const MAX_HEADER_BYTES: usize = 256 << 10;
/// What one field costs the host beyond its name and value (the two
/// `Bytes` headers), for memory budgets.
pub const FIELD_OVERHEAD: usize = 64;

/// Why a header name or value was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidHeader(pub String);

impl std::fmt::Display for InvalidHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidHeader {}

/// Checks that `name: value` can go on the wire, so that a plugin's mistake is
/// reported to the plugin instead of breaking the connection later.
///
/// The rules are `http`'s (`HeaderName::from_bytes`, `HeaderValue::from_bytes`),
/// checked without building the name and value those make, which copied an
/// uncommon name and every value into new buffers only to drop them (the
/// test below holds the two to the same answers).
pub fn validate(name: &str, value: &[u8]) -> Result<(), InvalidHeader> {
    if !is_header_name(name.as_bytes()) {
        return Err(InvalidHeader(format!("invalid header name {name:?}")));
    }
    if !is_header_value(value) {
        return Err(InvalidHeader(format!("invalid value for header {name:?}")));
    }
    Ok(())
}

/// Longest name `http::HeaderName` takes.
const MAX_NAME_LEN: usize = (1 << 16) - 1;

/// A token (RFC 9110): letters, digits and ``!#$%&'*+-.^_`|~``.
fn is_header_name(name: &[u8]) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// No control character but tab.
fn is_header_value(value: &[u8]) -> bool {
    // No early return, so the loop vectorizes (as `http`'s does).
    value
        .iter()
        .fold(true, |ok, &b| ok & ((b >= 32 && b != 127) || b == b'\t'))
}

impl Headers {
    /// An empty header list.
    pub const fn new() -> Self {
        Self {
            head: Bytes::new(),
            fields: Vec::new(),
            received: None,
        }
    }

    /// Builds headers from `(name, value)` pairs, in order.
    pub fn from_pairs<N: Into<String>, V: Into<Bytes>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        Self {
            fields: pairs
                .into_iter()
                .map(|(n, v)| Field::Own(Name(Bytes::from(n.into())), v.into()))
                .collect(),
            ..Self::new()
        }
    }

    /// An empty header list with room for `fields` fields.
    pub fn with_capacity(fields: usize) -> Self {
        Self {
            fields: Vec::with_capacity(fields),
            ..Self::new()
        }
    }

    /// The fields of a head read off the wire, in order: `spans` says where
    /// each one's name and value lie in `head` (name from, name length,
    /// value from, value length), as a parse of it found them (httparse's
    /// names are tokens: text). Neither is copied, and the list keeps room
    /// for [`ROOM_TO_ADD`] more fields, which a plugin adds without moving
    /// it.
    ///
    /// Not checked here: a check per field cost a tenth of what making the
    /// list costs. What a wrong span does is bounded instead: a name or
    /// value outside `head` reads as empty, a name that is not text as
    /// empty (which no wire takes: [`Headers::to_header_map`] refuses it).
    pub fn from_wire(head: Bytes, spans: &[[u32; 4]]) -> Self {
        let mut fields = Vec::with_capacity(spans.len().saturating_add(ROOM_TO_ADD));
        fields.extend(spans.iter().map(|&span| Field::InHead(span)));
        Self {
            head,
            fields,
            received: None,
        }
    }

    /// Notes that the fields are, so far, those of the head the caller
    /// names `head` (an identity it keeps beside its own parse of that
    /// head, such as the address of the head's buffer). Every change to
    /// one of them is tracked from here on, so that
    /// [`Headers::appended_to_received`] can tell whether they are still
    /// as they came.
    pub fn mark_received(&mut self, head: usize) {
        self.received = Some(Received {
            head,
            untouched: self.fields.len(),
        });
    }

    /// The fields added after the `count` fields of head `head`, when those
    /// are all still as they came ([`Headers::mark_received`]): the message
    /// can then go as the caller's own parse of that head plus these. `None`
    /// when any of them was changed, removed or moved, or the headers are
    /// not that head's.
    pub fn appended_to_received(
        &self,
        head: usize,
        count: usize,
    ) -> Option<impl Iterator<Item = (&str, Bytes)> + Clone> {
        let received = self.received?;
        (received.head == head && received.untouched == count && self.fields.len() >= count).then(
            || {
                self.fields[count..]
                    .iter()
                    .map(|f| (f.name_str(&self.head), f.value_bytes(&self.head)))
            },
        )
    }

    /// Where the first field's name lies in memory (0 with no field): while
    /// that field is as it came, the address of its head's bytes, which
    /// only lists made from that head hold ([`Headers::mark_received`]'s
    /// `head`). Not through [`Headers::iter`], which checks the name is
    /// text.
    pub fn first_name_address(&self) -> usize {
        self.fields
            .first()
            .map_or(0, |f| f.name(&self.head).as_ptr() as usize)
    }

    /// Fields from `index` on may no longer be as they came.
    /// Called after the change, so that a head no field lies in any more
    /// is let go, as the slices of it were before.
    fn touched_from(&mut self, index: usize) {
        if let Some(received) = &mut self.received {
            received.untouched = received.untouched.min(index);
        }
        if !self.head.is_empty() && !self.fields.iter().any(|f| matches!(f, Field::InHead(_))) {
            self.head = Bytes::new();
        }
    }

    /// Bytes of names and values, for the [`MAX_HEADER_BYTES`] limit.
    pub fn wire_bytes(&self) -> usize {
        self.fields
            .iter()
            .map(|f| f.name(&self.head).len() + f.value(&self.head).len())
            .sum()
    }

    /// In one pass: (fields, bytes of names and values) of all fields, and
    /// of the fields called `name` — what a write of `name` is checked with.
    pub fn sizes_with(&self, name: &str) -> ((usize, usize), (usize, usize)) {
        let (mut all, mut named) = ((0, 0), (0, 0));
        for field in &self.fields {
            let n = field.name(&self.head);
            let bytes = n.len() + field.value(&self.head).len();
            all = (all.0 + 1, all.1 + bytes);
            if n.eq_ignore_ascii_case(name.as_bytes()) {
                named = (named.0 + 1, named.1 + bytes);
            }
        }
        (all, named)
    }

    /// What the host holds for these headers, for memory budgets.
    pub fn held_bytes(&self) -> usize {
        self.wire_bytes() + self.fields.len() * FIELD_OVERHEAD
    }

    /// Number of fields (a name with two values counts twice).
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Keeps the first `len` fields and removes the rest: undoes fields
    /// added at the end (the rest are as they were).
    pub fn truncate(&mut self, len: usize) {
        self.fields.truncate(len);
        self.touched_from(len);
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// All fields in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields
            .iter()
            .map(|f| (f.name_str(&self.head), f.value(&self.head)))
    }

    /// All fields in wire order, each value a `Bytes` that shares the
    /// buffer it lies in (for writers that keep it, not a copy).
    pub fn iter_shared(&self) -> impl Iterator<Item = (&str, Bytes)> {
        self.fields
            .iter()
            .map(|f| (f.name_str(&self.head), f.value_bytes(&self.head)))
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |f| f.is(&self.head, name))
            .map(|f| f.value(&self.head))
    }

    /// The first value of `name`.
    pub fn get_first(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| f.is(&self.head, name))
            .map(|f| f.value(&self.head))
    }

    /// The value of `name` as text, several values folded into one.
    ///
    /// Values are joined with ", " (RFC 9110 §5.3), except `set-cookie`
    /// (joined with "\n": each is a cookie of its own) and `cookie` (joined
    /// with "; ", its own separator).
    pub fn get(&self, name: &str) -> Option<String> {
        let separator = if name.eq_ignore_ascii_case("set-cookie") {
            "\n"
        } else if name.eq_ignore_ascii_case("cookie") {
            "; "
        } else {
            ", "
        };
        let mut values = self.get_all(name).map(|v| String::from_utf8_lossy(v));
        let first = values.next()?;
        Some(values.fold(first.into_owned(), |mut acc, v| {
            acc.push_str(separator);
            acc.push_str(&v);
            acc
        }))
    }

    /// True when `name` has at least one value.
    pub fn contains(&self, name: &str) -> bool {
        self.get_first(name).is_some()
    }

    /// Replaces every value of `name` with `value`, at the position of the
    /// first one; appends when there was none.
    pub fn set(&mut self, name: &str, value: impl Into<Bytes>) {
        let value = value.into();
        let head = &self.head;
        match self.fields.iter().position(|f| f.is(head, name)) {
            Some(first) => {
                // The name as it was at that position, case and all.
                let kept = self.fields[first].name_bytes(head);
                self.fields[first] = Field::Own(kept, value);
                let mut index = 0;
                self.fields.retain(|f| {
                    let keep = index <= first || !f.is(head, name);
                    index += 1;
                    keep
                });
                self.touched_from(first);
            }
            None => self.fields.push(Field::Own(Name::from(name), value)),
        }
    }

    /// Inserts a field at `index` in wire order (at the end if `index` is
    /// past it).
    pub fn insert(&mut self, index: usize, name: &str, value: impl Into<Bytes>) {
        let index = index.min(self.fields.len());
        self.touched_from(index);
        self.fields
            .insert(index, Field::Own(Name::from(name), value.into()));
    }

    /// Adds a value for `name` after all existing fields.
    pub fn append(&mut self, name: &str, value: impl Into<Bytes>) {
        self.fields.push(Field::Own(Name::from(name), value.into()));
    }

    /// Removes every value of `name`; returns whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let head = &self.head;
        let Some(first) = self.fields.iter().position(|f| f.is(head, name)) else {
            return false;
        };
        self.fields.retain(|f| !f.is(head, name));
        self.touched_from(first);
        true
    }

    /// Keeps only the fields whose name `keep` accepts, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let head = &self.head;
        let mut index = 0;
        let mut first_gone = None;
        self.fields.retain(|f| {
            let kept = keep(f.name_str(head));
            if !kept && first_gone.is_none() {
                first_gone = Some(index);
            }
            index += 1;
            kept
        });
        if let Some(first) = first_gone {
            self.touched_from(first);
        }
    }

    /// Converts to the `http` crate's map for sending, leaving out the
    /// fields `skip` names. Fields the wire would refuse are left out too and
    /// returned by name, so the caller can log them.
    ///
    /// Fields are left out here rather than removed after: removing from a
    /// `HeaderMap` moves its last field into the hole, changing the order.
    pub fn to_header_map(&self, skip: impl Fn(&str) -> bool) -> (http::HeaderMap, Vec<String>) {
        let mut map = http::HeaderMap::try_with_capacity(self.fields.len().min(MAX_FIELDS))
            .unwrap_or_default();
        let mut refused = Vec::new();
        let mut bytes = 0;
        for field in &self.fields {
            let name = field.name_str(&self.head);
            if skip(name) {
                continue;
            }
            bytes += name.len() + field.value(&self.head).len();
            if map.len() >= MAX_FIELDS || bytes > MAX_HEADER_BYTES {
                refused.push(format!(
                    "{name} (over {MAX_FIELDS} fields or {MAX_HEADER_BYTES} bytes)"
                ));
                continue;
            }
            match (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_maybe_shared(field.value_bytes(&self.head)),
            ) {
                (Ok(n), Ok(v)) => {
                    if map.try_append(n, v).is_err() {
                        refused.push(name.to_owned());
                    }
                }
                _ => refused.push(name.to_owned()),
            }
        }
        (map, refused)
    }

    /// Takes headers from the `http` crate's map (names arrive lower-cased).
    ///
    /// The names and values are copied into one buffer, the list's head,
    /// as a head read off the wire is: one allocation, not two per field
    /// (an HTTP/2 head's ~2,500 instructions with a dozen fields).
    pub fn from_header_map(map: &http::HeaderMap) -> Self {
        let size = map
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum::<usize>();
        if u32::try_from(size).is_err() {
            // Past what offsets in a head can say (no head is this large):
            // each field its own copy.
            return Self::from_pairs(
                map.iter()
                    .map(|(n, v)| (n.as_str(), Bytes::copy_from_slice(v.as_bytes()))),
            );
        }
        let mut buffer = bytes::BytesMut::with_capacity(size);
        let mut spans = Vec::with_capacity(map.len());
        for (name, value) in map {
            let at = buffer.len() as u32;
            let name = name.as_str().as_bytes();
            buffer.extend_from_slice(name);
            buffer.extend_from_slice(value.as_bytes());
            let name_len = name.len() as u32;
            spans.push([at, name_len, at + name_len, value.len() as u32]);
        }
        Self::from_wire(buffer.freeze(), &spans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways a received head becomes a list (hyper's map, and the
    /// wire's spans, `from_wire`) keep the room.
    #[test]
    fn a_received_list_takes_a_few_added_fields_without_moving() {
        let mut map = http::HeaderMap::new();
        map.insert("content-type", "text/plain".parse().unwrap());
        map.insert("server", "nginx".parse().unwrap());
        let from_wire = wire(&[("Content-Type", "text/plain"), ("Server", "nginx")]);
        for mut headers in [Headers::from_header_map(&map), from_wire] {
            let at = headers.fields.as_ptr();
            headers.set("newheader", "foo");
            headers.append("x-two", "bar");
            assert_eq!(headers.fields.as_ptr(), at, "the list moved");
            assert_eq!(headers.len(), 4);
        }
    }

    #[test]
    fn a_huge_header_list_is_refused_not_a_panic() {
        let many = Headers::from_pairs((0..100_000).map(|i| (format!("x-{i}"), "v")));
        let (map, refused) = many.to_header_map(|_| false);
        assert_eq!(map.len(), MAX_FIELDS);
        assert_eq!(refused.len(), 100_000 - MAX_FIELDS);
        let big = Headers::from_pairs((0..10).map(|i| (format!("x-{i}"), "v".repeat(60_000))));
        let (map, refused) = big.to_header_map(|_| false);
        assert_eq!(map.len(), 4, "256 KiB of header bytes at most");
        assert_eq!(refused.len(), 6);
    }

    #[test]
    fn from_a_header_map_every_field_in_order_sharing_one_buffer() {
        let mut map = http::HeaderMap::new();
        map.append("content-type", "text/plain".parse().unwrap());
        map.append("set-cookie", "a=1".parse().unwrap());
        map.append("x-empty", http::HeaderValue::from_static(""));
        map.append("set-cookie", "b=2".parse().unwrap());
        map.append(
            "x-custom-name",
            http::HeaderValue::from_bytes(b"\xe9v").unwrap(),
        );
        let headers = Headers::from_header_map(&map);
        let fields: Vec<(&str, &[u8])> = headers.iter().collect();
        let expected: Vec<(&str, &[u8])> = map
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        assert_eq!(fields, expected);
        assert_eq!(headers.wire_bytes(), 10 + 12 + 3 + 10 + 7 + 10 + 3 + 13 + 2);
        // One buffer: each field lies right after the one before.
        let mut end = None;
        for (name, value) in headers.iter() {
            if let Some(end) = end {
                assert_eq!(name.as_ptr() as usize, end);
            }
            assert_eq!(value.as_ptr() as usize, name.as_ptr() as usize + name.len());
            end = Some(value.as_ptr() as usize + value.len());
        }
        assert!(Headers::from_header_map(&http::HeaderMap::new()).is_empty());
    }

    const SAMPLE: [(&str, &str); 6] = [
        ("Host", "a"),
        ("Accept", "x"),
        ("X-Two", "1"),
        ("accept", "y"),
        ("Set-Cookie", "a=1"),
        ("set-cookie", "b=2"),
    ];

    /// `pairs` as a head read off the wire: "Name: value" lines in one
    /// buffer, the list made of where each lies.
    fn wire(pairs: &[(&str, &str)]) -> Headers {
        let mut head = Vec::new();
        let mut spans = Vec::new();
        for (name, value) in pairs {
            let at = head.len() as u32;
            head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            let name_len = name.len() as u32;
            spans.push([at, name_len, at + name_len + 2, value.len() as u32]);
        }
        Headers::from_wire(Bytes::from(head), &spans)
    }

    /// The same fields made both ways: each field its own, and from a head.
    fn samples() -> [Headers; 2] {
        [Headers::from_pairs(SAMPLE), wire(&SAMPLE)]
    }

    fn sample() -> Headers {
        Headers::from_pairs(SAMPLE)
    }

    #[test]
    fn lookup_ignores_case_and_folds_values() {
        for h in samples() {
            assert_eq!(h.get("ACCEPT").as_deref(), Some("x, y"));
            assert_eq!(h.get("set-cookie").as_deref(), Some("a=1\nb=2"));
            assert_eq!(h.get("missing"), None);
            assert_eq!(h.get_first("x-two"), Some(&b"1"[..]));
            assert_eq!(
                h.wire_bytes(),
                4 + 1 + 6 + 1 + 5 + 1 + 6 + 1 + 10 + 3 + 10 + 3
            );
            // What a removal of `accept` frees: both values, either case.
            assert_eq!(h.sizes_with("ACCEPT"), ((6, 51), (2, 6 + 1 + 6 + 1)));
            assert_eq!(h.sizes_with("missing"), ((6, 51), (0, 0)));
        }
        let [own, from_wire] = samples();
        assert_eq!(own, from_wire, "equal whichever way they were made");
        let mut other = from_wire.clone();
        other.set("Host", "b");
        assert_ne!(own, other, "a value differs");
    }

    #[test]
    fn set_keeps_position_and_drops_other_values() {
        for h in samples() {
            set_keeps_position_and_drops_other_values_of(h);
        }
    }

    fn set_keeps_position_and_drops_other_values_of(mut h: Headers) {
        h.set("accept", "z");
        let names: Vec<_> = h.iter().map(|(n, _)| n.to_owned()).collect();
        assert_eq!(
            names,
            ["Host", "Accept", "X-Two", "Set-Cookie", "set-cookie"]
        );
        assert_eq!(h.get("accept").as_deref(), Some("z"));
        h.set("New", "v");
        assert_eq!(h.iter().last().unwrap().0, "New");
    }

    #[test]
    fn remove_and_append() {
        for mut h in samples() {
            assert!(h.remove("set-COOKIE"));
            assert!(!h.remove("set-cookie"));
            h.append("X-Two", "2");
            assert_eq!(h.get("x-two").as_deref(), Some("1, 2"));
            h.retain(|n| n != "Host");
            let names: Vec<_> = h.iter().map(|(n, _)| n.to_owned()).collect();
            assert_eq!(names, ["Accept", "X-Two", "accept", "X-Two"]);
        }
    }

    #[test]
    fn received_fields_are_tracked_until_changed() {
        let appended = |h: &Headers| -> Option<Vec<String>> {
            h.appended_to_received(7, 6)
                .map(|a| a.map(|(n, _)| n.to_owned()).collect())
        };
        let mut h = sample();
        assert_eq!(appended(&h), None, "not marked");
        h.mark_received(7);
        assert_eq!(appended(&h), Some(vec![]));
        assert_eq!(
            h.appended_to_received(8, 6).map(|_| ()),
            None,
            "another head"
        );
        assert_eq!(
            h.appended_to_received(7, 5).map(|_| ()),
            None,
            "another count"
        );
        h.append("New", "1");
        h.set("Other", "2");
        assert_eq!(appended(&h), Some(vec!["New".into(), "Other".into()]));
        assert!(!h.remove("missing"));
        h.retain(|_| true);
        assert_eq!(appended(&h).map(|a| a.len()), Some(2), "nothing changed");
        let changes: [fn(&mut Headers); 5] = [
            |h| h.set("set-cookie", "same"),
            |h| h.insert(5, "x", "1"),
            |h| {
                h.remove("x-two");
            },
            |h| h.retain(|n| n != "Host"),
            |h| h.set("Host", "a"),
        ];
        for change in changes {
            let mut h = sample();
            h.mark_received(7);
            change(&mut h);
            assert_eq!(appended(&h), None);
            let mut unmarked = sample();
            change(&mut unmarked);
            assert_eq!(h, unmarked, "equality is the fields', not the marking");
        }
        let mut h = sample();
        h.mark_received(7);
        h.set("New", "1");
        h.set("New", "2");
        assert_eq!(
            appended(&h),
            Some(vec!["New".into()]),
            "an added field may change"
        );
    }

    #[test]
    fn validate_refuses_what_the_wire_refuses() {
        assert!(validate("ok", b"fine").is_ok());
        assert!(validate("bad name", b"v").is_err());
        assert!(validate("x", b"line\nbreak").is_err());
    }

    /// The checks answer as `http` does, for every byte at the start, in
    /// the middle and at the end, and at the edges of a name's length.
    #[test]
    fn validate_agrees_with_http_on_every_byte() {
        for b in 0..=255u8 {
            for bytes in [vec![b], vec![b'a', b, b'b'], vec![b'a', b]] {
                assert_eq!(
                    is_header_name(&bytes),
                    http::HeaderName::from_bytes(&bytes).is_ok(),
                    "name {bytes:?}"
                );
                assert_eq!(
                    is_header_value(&bytes),
                    http::HeaderValue::from_bytes(&bytes).is_ok(),
                    "value {bytes:?}"
                );
            }
        }
        for len in [0, 1, 64, 65, MAX_NAME_LEN, MAX_NAME_LEN + 1] {
            let name = vec![b'A'; len];
            assert_eq!(
                is_header_name(&name),
                http::HeaderName::from_bytes(&name).is_ok(),
                "name of {len} bytes"
            );
        }
        assert!(is_header_value(b""), "an empty value");
    }

    /// A parse's fields are places in the head, not copies; a span that is
    /// wrong reads as empty, never a panic or another field's bytes.
    #[test]
    fn a_wire_list_is_places_in_its_head_and_a_wrong_span_reads_as_empty() {
        let head = Bytes::from_static(b"Content-Type:v x:v na\xc3\xafve:v \xff:v bad\xc3:v");
        let spans = [
            [0, 12, 13, 1],
            [15, 1, 17, 1],
            [19, 6, 26, 1],
            [28, 1, 30, 1],
            [32, 4, 37, 1],
            [15, 1, 17, 100],
            [u32::MAX, 2, 0, 1],
        ];
        let headers = Headers::from_wire(head.clone(), &spans);
        let fields: Vec<(&str, &[u8])> = headers.iter().collect();
        let expected: [(&str, &[u8]); 7] = [
            ("Content-Type", b"v"),
            ("x", b"v"),
            ("na\u{ef}ve", b"v"),
            ("", b"v"),
            ("", b"v"),
            ("x", b""),
            ("", b"C"),
        ];
        assert_eq!(fields, expected);
        assert_eq!(headers.get("na\u{ef}ve").as_deref(), Some("v"));
        let within = head.as_ptr_range();
        for (name, value) in headers.iter().take(3) {
            assert!(within.contains(&name.as_ptr()) && within.contains(&value.as_ptr()));
        }
        let (map, refused) = headers.to_header_map(|_| false);
        assert_eq!(map.len(), 3, "Content-Type and both x");
        assert_eq!(refused, ["na\u{ef}ve", "", "", ""], "no token, no name");
        let mut changed = headers.clone();
        changed.set("", "z");
        changed.set("X", "y");
        let names: Vec<&str> = changed.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Content-Type", "x", "na\u{ef}ve", "", "", ""]);
        let mut xs = headers.clone();
        xs.retain(|n| n == "x");
        assert!(!xs.head.is_empty(), "both x lie in it");
        xs.set("x", "z");
        assert!(xs.head.is_empty(), "no field lies in the head: let go");
        assert_eq!(xs.get("x").as_deref(), Some("z"));
        assert_eq!(
            changed.get_first("x"),
            Some(&b"y"[..]),
            "the first x's case kept"
        );
    }
}
