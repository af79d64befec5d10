//! Flows and handles to their parts — a request, a response, a message's
//! headers — kept in typed slots of their own rather than in the store's
//! [`ResourceTable`](wasmtime::component::ResourceTable).
//!
//! The table boxes every entry as a `dyn Any`: an allocation when a handle
//! is made, a copy into it, a free when it is dropped, and a type check at
//! each use. These are the handles every flow event makes: the lent flow,
//! and add-header's `response` and `headers` (~650 instructions of the
//! table's work per event, `bench/instructions.sh`). Here a handle's rep is
//! its slot's index; a dropped handle's slot is reused by the next one.
//!
//! Bounded like the table: at most `max_handles` of these at a time across
//! the four kinds (the table's other entries, connections and the context,
//! have a bound of their own), and a plugin past it gets the same error.
//! A duplicated flow's entry is charged to the plugin's host budget, and a
//! kind's slots give their memory back once none is held
//! ([`KEPT_WHEN_EMPTY`]).

use wasmtime::component::Resource;

use crate::resources::{FlowEntry, HeadersHandle, RequestHandle, ResponseHandle};

/// The views one store's guest holds.
pub(crate) struct Views {
    /// Flows lent for an event, and the guest's duplicates.
    pub(crate) flows: ViewSlots<FlowEntry>,
    pub(crate) requests: ViewSlots<RequestHandle>,
    pub(crate) responses: ViewSlots<ResponseHandle>,
    pub(crate) headers: ViewSlots<HeadersHandle>,
    /// Most views held at once, of all four kinds (`max_handles`).
    most: usize,
}

/// The guest holds `most` handles of a kind already.
#[derive(Debug)]
pub(crate) struct Full {
    pub(crate) most: usize,
}

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the plugin holds too many handles ({} at most, max_handles): it must drop the \
             ones it no longer needs",
            self.most
        )
    }
}

impl std::error::Error for Full {}

/// Slots a kind keeps while none is taken; past this, emptying the kind
/// gives its slots' memory back (a plugin that once held thousands of
/// duplicated flows does not leave megabytes behind it), and an event's
/// lent flow and its handles come and go without an allocation.
const KEPT_WHEN_EMPTY: usize = 4;

/// One kind of view, by slot.
pub(crate) struct ViewSlots<T> {
    slots: Vec<Slot<T>>,
    /// The first free slot; each free slot names the next.
    free: Option<u32>,
    /// Slots taken.
    taken: usize,
}

enum Slot<T> {
    Taken(T),
    Free(Option<u32>),
}

impl Views {
    pub(crate) fn new(most: usize) -> Self {
        Self {
            flows: ViewSlots::default(),
            requests: ViewSlots::default(),
            responses: ViewSlots::default(),
            headers: ViewSlots::default(),
            most,
        }
    }

    /// Keeps `view` in its kind's slots (`kind` picks them), as a handle
    /// the guest owns. Inlined, so that a flow is built where it is kept,
    /// not copied there.
    #[inline]
    pub(crate) fn push<T: 'static>(
        &mut self,
        kind: fn(&mut Self) -> &mut ViewSlots<T>,
        view: T,
    ) -> Result<Resource<T>, Full> {
        self.room()?;
        Ok(Resource::new_own(kind(self).put(view)))
    }

    /// Whether one more view may be kept: asked before a flow is moved
    /// into a view, so that a refusal does not lose it.
    pub(crate) fn room(&self) -> Result<(), Full> {
        let held =
            self.flows.taken + self.requests.taken + self.responses.taken + self.headers.taken;
        match held < self.most {
            true => Ok(()),
            false => Err(Full { most: self.most }),
        }
    }
}

impl<T> Default for ViewSlots<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: None,
            taken: 0,
        }
    }
}

impl<T: 'static> ViewSlots<T> {
    /// The view `handle` names, if it is held.
    pub(crate) fn get(&self, handle: &Resource<T>) -> Option<&T> {
        match self.slots.get(handle.rep() as usize)? {
            Slot::Taken(view) => Some(view),
            Slot::Free(_) => None,
        }
    }

    /// The view `handle` names, to change.
    pub(crate) fn get_mut(&mut self, handle: &Resource<T>) -> Option<&mut T> {
        match self.slots.get_mut(handle.rep() as usize)? {
            Slot::Taken(view) => Some(view),
            Slot::Free(_) => None,
        }
    }

    /// Takes the view `handle` names out of its slots (the guest dropped
    /// it, or gave it to a flow).
    pub(crate) fn remove(&mut self, handle: &Resource<T>) -> Option<T> {
        let (rep, next) = (handle.rep(), self.free);
        let old = std::mem::replace(self.taken_slot(rep)?, Slot::Free(next));
        self.emptied(rep);
        match old {
            Slot::Taken(view) => Some(view),
            Slot::Free(_) => None,
        }
    }

    /// Drops the view `handle` names where it lies (a large one is not
    /// moved out to be dropped).
    pub(crate) fn discard(&mut self, handle: &Resource<T>) {
        let rep = handle.rep();
        let next = self.free;
        if let Some(slot) = self.taken_slot(rep) {
            *slot = Slot::Free(next);
            self.emptied(rep);
        }
    }

    #[inline]
    fn put(&mut self, view: T) -> u32 {
        self.taken += 1;
        match self.free {
            Some(rep) => {
                let slot = &mut self.slots[rep as usize];
                if let Slot::Free(next) = *slot {
                    self.free = next;
                }
                *slot = Slot::Taken(view);
                rep
            }
            None => {
                // `Views::most` bounds the slots far below `u32::MAX`.
                let rep = self.slots.len() as u32;
                self.slots.push(Slot::Taken(view));
                rep
            }
        }
    }

    fn taken_slot(&mut self, rep: u32) -> Option<&mut Slot<T>> {
        self.slots
            .get_mut(rep as usize)
            .filter(|slot| matches!(slot, Slot::Taken(_)))
    }

    /// Books slot `rep`, just made free: at the head of the free list, or,
    /// with none taken any more, the slots' memory given back.
    fn emptied(&mut self, rep: u32) {
        self.free = Some(rep);
        self.taken -= 1;
        if self.taken == 0 && self.slots.len() > KEPT_WHEN_EMPTY {
            self.slots = Vec::new();
            self.free = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::MessageRef;

    /// Views come back as they went in, a dropped one's slot is reused,
    /// and a dropped or never-made handle names nothing.
    #[test]
    fn views_are_kept_and_their_slots_reused() {
        let mut slots = ViewSlots::<u32>::default();
        let handle = |rep| Resource::<u32>::new_own(rep);
        let (a, b, c) = (slots.put(1), slots.put(2), slots.put(3));
        assert_eq!(slots.get(&handle(b)), Some(&2));
        assert_eq!(slots.remove(&handle(b)), Some(2));
        assert_eq!(
            slots.get(&handle(b)),
            None,
            "a dropped handle names nothing"
        );
        assert_eq!(
            slots.remove(&handle(b)),
            None,
            "nor can it be dropped twice"
        );
        assert_eq!(slots.put(4), b, "the freed slot is reused");
        assert_eq!(slots.get(&handle(99)), None);
        assert_eq!(slots.remove(&handle(99)), None);
        *slots.get_mut(&handle(a)).unwrap() = 10;
        assert_eq!(
            [a, b, c].map(|rep| slots.get(&handle(rep)).copied()),
            [Some(10), Some(4), Some(3)]
        );
        // Freed in any order, every slot is found again before a new one.
        for rep in [c, a, b] {
            slots.remove(&handle(rep)).unwrap();
        }
        let mut again = [slots.put(0), slots.put(0), slots.put(0)];
        again.sort_unstable();
        assert_eq!(again, [0, 1, 2]);
        assert_eq!(slots.put(0), 3);
    }

    /// A kind that held more than a few views gives their memory back
    /// once none is held (dropped where they lie or taken out), and its
    /// handles start again from the first slot; a few are kept.
    #[test]
    fn an_emptied_kind_gives_its_memory_back() {
        let mut slots = ViewSlots::<u32>::default();
        let handle = |rep| Resource::<u32>::new_own(rep);
        let reps: Vec<u32> = (0..1000).map(|n| slots.put(n)).collect();
        let (last, rest) = reps.split_last().unwrap();
        for &rep in rest {
            slots.discard(&handle(rep));
        }
        assert!(slots.slots.capacity() >= 1000, "one is still held");
        assert_eq!(slots.remove(&handle(*last)), Some(999));
        assert_eq!(slots.slots.capacity(), 0);
        assert_eq!(slots.get(&handle(*last)), None);
        assert_eq!(slots.put(7), 0);

        let mut few = ViewSlots::<u32>::default();
        let reps: Vec<u32> = (0..KEPT_WHEN_EMPTY as u32).map(|n| few.put(n)).collect();
        for &rep in &reps {
            few.discard(&handle(rep));
        }
        assert_eq!(few.slots.len(), KEPT_WHEN_EMPTY, "a few slots stay");
    }

    /// No more than `most` views are held at once, of all kinds together;
    /// a dropped one makes room.
    #[test]
    fn views_are_bounded_across_kinds() {
        let mut views = Views::new(3);
        let view = || {
            HeadersHandle::headers(MessageRef::Detached {
                rep: 0,
                generation: 0,
            })
        };
        let response = || ResponseHandle::Detached {
            response: Box::new(witm_flow::Response::make(
                200,
                witm_flow::Headers::new(),
                "",
            )),
            generation: 0,
            charged: 0,
        };
        let first = views.push(|v| &mut v.headers, view()).unwrap();
        views.push(|v| &mut v.headers, view()).unwrap();
        views.push(|v| &mut v.responses, response()).unwrap();
        assert!(views.push(|v| &mut v.headers, view()).is_err());
        assert!(views.push(|v| &mut v.responses, response()).is_err());
        assert!(views.headers.remove(&first).is_some());
        assert!(views.headers.remove(&first).is_none());
        let again = views.push(|v| &mut v.headers, view()).unwrap();
        assert!(views.push(|v| &mut v.headers, view()).is_err());
        // Dropped where it lies, a view makes room as a removed one does,
        // once.
        views.headers.discard(&again);
        assert!(views.headers.get(&again).is_none());
        views.headers.discard(&again);
        views.push(|v| &mut v.headers, view()).unwrap();
        assert!(views.push(|v| &mut v.headers, view()).is_err());
    }
}
