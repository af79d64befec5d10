//! `headers`: a live view of a request's or response's headers. Writes are
//! checked for the wire (valid name and value, at most
//! [`MAX_FIELDS`](witm_flow::headers::MAX_FIELDS) fields and
//! [`MAX_HEADER_BYTES`](witm_flow::headers::MAX_HEADER_BYTES) per message)
//! and charged to the budget.

use wasmtime::component::Resource;
use witm_flow::Headers;
use witm_flow::headers::{FIELD_OVERHEAD, MAX_FIELDS, MAX_HEADER_BYTES, validate};

use super::{HeadersHandle, HostResult, MessageRef, Result, invalid, stale};
use crate::bindings::types::{self, HostError};
use crate::state::HostView;

/// How a write changes the fields of a name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    /// Replaces every field of the name.
    Set,
    /// Adds one at the end.
    Append,
    /// Adds one at a position.
    Insert(usize),
}

/// Refuses a write that would take `headers` past the wire's limits.
pub(super) fn check_limits(fields: usize, bytes: usize) -> std::result::Result<(), HostError> {
    if fields > MAX_FIELDS {
        return Err(invalid(format!(
            "a message may carry at most {MAX_FIELDS} header fields ({fields} asked)"
        )));
    }
    if bytes > MAX_HEADER_BYTES {
        return Err(invalid(format!(
            "a message may carry at most {MAX_HEADER_BYTES} bytes of header names and values \
             ({bytes} asked)"
        )));
    }
    Ok(())
}

impl HostView<'_> {
    fn headers_of(&self, h: &Resource<HeadersHandle>) -> Result<(MessageRef, &Headers)> {
        /// What a view of trailers shows when the message has none.
        static NONE: Headers = Headers::new();
        let handle = self.views.headers.get(h).ok_or_else(stale)?;
        let (m, trailers) = (handle.message, handle.trailers);
        let message = self.message(m)?;
        Ok((
            m,
            match trailers {
                false => message.headers(),
                true => message.trailers().unwrap_or(&NONE),
            },
        ))
    }

    /// The headers `h` names, to change: `adds_only` when the change only
    /// adds fields at the end.
    fn headers_mut_of(
        &mut self,
        h: &Resource<HeadersHandle>,
        adds_only: bool,
    ) -> Result<&mut Headers> {
        let handle = self.views.headers.get(h).ok_or_else(stale)?;
        let (m, trailers) = (handle.message, handle.trailers);
        if let (MessageRef::Response(r), false) = (m, trailers) {
            return self.flow_response_headers_mut(r, adds_only);
        }
        let message = self.message_mut(m)?;
        Ok(match trailers {
            false => message.headers_mut(),
            true => message.trailers_mut(),
        })
    }

    fn write_header(
        &mut self,
        h: &Resource<HeadersHandle>,
        name: String,
        value: String,
        write: Write,
    ) -> HostResult<()> {
        if let Err(e) = validate(&name, value.as_bytes()) {
            return Ok(Err(invalid(e.0)));
        }
        let (m, headers) = self.headers_of(h)?;
        let new = name.len() + value.len();
        let ((count, wire), (named, named_wire)) = headers.sizes_with(&name);
        let (fields, bytes, removed) = match write {
            Write::Set => (
                count - named + 1,
                wire - named_wire + new,
                named_wire + named * FIELD_OVERHEAD,
            ),
            Write::Append | Write::Insert(_) => (count + 1, wire + new, 0),
        };
        if let Err(e) = check_limits(fields, bytes) {
            return Ok(Err(e));
        }
        if let Err(e) = self.charge(m, new + FIELD_OVERHEAD, removed)? {
            return Ok(Err(e));
        }
        let adds_only = match write {
            Write::Set => named == 0,
            Write::Append => true,
            Write::Insert(index) => index >= count,
        };
        let headers = self.headers_mut_of(h, adds_only)?;
        match write {
            Write::Set => headers.set(&name, value),
            Write::Append => headers.append(&name, value),
            Write::Insert(index) => headers.insert(index, &name, value),
        }
        Ok(Ok(()))
    }
}

impl types::HostHeaders for HostView<'_> {
    fn get(&mut self, h: Resource<HeadersHandle>, name: String) -> Result<Option<String>> {
        Ok(self.headers_of(&h)?.1.get(&name))
    }

    fn get_all(&mut self, h: Resource<HeadersHandle>, name: String) -> Result<Vec<String>> {
        Ok(self
            .headers_of(&h)?
            .1
            .get_all(&name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect())
    }

    fn set(&mut self, h: Resource<HeadersHandle>, name: String, value: String) -> HostResult<()> {
        self.write_header(&h, name, value, Write::Set)
    }

    fn append(
        &mut self,
        h: Resource<HeadersHandle>,
        name: String,
        value: String,
    ) -> HostResult<()> {
        self.write_header(&h, name, value, Write::Append)
    }

    fn insert(
        &mut self,
        h: Resource<HeadersHandle>,
        index: u32,
        name: String,
        value: String,
    ) -> HostResult<()> {
        self.write_header(&h, name, value, Write::Insert(index as usize))
    }

    fn remove(&mut self, h: Resource<HeadersHandle>, name: String) -> Result<()> {
        let (m, headers) = self.headers_of(&h)?;
        if headers.contains(&name) {
            let (_, (named, named_wire)) = headers.sizes_with(&name);
            let freed = named_wire + named * FIELD_OVERHEAD;
            self.headers_mut_of(&h, false)?.remove(&name);
            // Removing never fails; it gives back what the plugin added.
            let _ = self.charge(m, 0, freed)?;
        }
        Ok(())
    }

    fn entries(&mut self, h: Resource<HeadersHandle>) -> Result<Vec<(String, String)>> {
        Ok(self
            .headers_of(&h)?
            .1
            .iter()
            .map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect())
    }

    fn drop(&mut self, h: Resource<HeadersHandle>) -> Result<()> {
        self.views.headers.discard(&h);
        Ok(())
    }
}
