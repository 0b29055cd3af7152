//! Caps on the SSE streams and long-polls a process holds open
//! (`max_open_streams`) and one caller holds open in it
//! (`max_open_streams_per_caller`): `/status/{id}/stream`,
//! `/status/{id}/poll`, `/status/{id}/logs/stream` and `/queue/stream`.
//! Each takes a [`StreamSlot`] before it starts, or is answered 429
//! `TooManyStreamsError` at once (nothing waits in a queue); the slot is
//! given back when the slot is dropped: with the poll's handler, or with
//! the stream's body, which the server drops when the stream ends or its
//! client goes away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::{Stream, StreamExt};

use crate::api::error::ApiError;

/// The open streams and long-polls of this process, in total and per
/// caller (a caller with none has no entry, so the map holds at most as
/// many callers as there are open streams).
#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_caller: HashMap<String, usize>,
}

/// The caps and what is open under them.
#[derive(Debug)]
pub(crate) struct StreamSlots {
    max_total: usize,
    max_per_caller: Option<usize>,
    open: Mutex<Open>,
}

impl StreamSlots {
    /// Caps of `max_total` per process and `max_per_caller` per caller
    /// (`None`: none per caller).
    pub(crate) fn new(max_total: usize, max_per_caller: Option<usize>) -> StreamSlots {
        StreamSlots {
            max_total,
            max_per_caller,
            open: Mutex::default(),
        }
    }

    /// Takes a slot for `caller`, or refuses with `TooManyStreamsError`
    /// naming the cap that is reached.
    pub(crate) fn acquire(self: &Arc<Self>, caller: &str) -> Result<StreamSlot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max_total {
            return Err(ApiError::TooManyStreams(format!(
                "This server has {} streams and long-polls open, its limit",
                self.max_total
            )));
        }
        let held = open.by_caller.get(caller).copied().unwrap_or(0);
        if let Some(max) = self.max_per_caller.filter(|max| held >= *max) {
            return Err(ApiError::TooManyStreams(format!(
                "Caller '{caller}' has {max} streams and long-polls open, the limit per caller"
            )));
        }
        open.total += 1;
        open.by_caller.insert(caller.to_owned(), held + 1);
        Ok(StreamSlot {
            slots: self.clone(),
            caller: caller.to_owned(),
        })
    }

    /// Streams and long-polls open now, in total.
    #[cfg(test)]
    fn total(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }

    fn release(&self, caller: &str) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(held) = open.by_caller.get_mut(caller) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                open.by_caller.remove(caller);
            }
        }
    }
}

/// One open stream or long-poll's place under the caps, given back on drop.
/// As an extractor (`api::extract`) it takes the place for the request's
/// caller before the handler runs.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    slots: Arc<StreamSlots>,
    caller: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.slots.release(&self.caller);
    }
}

impl StreamSlot {
    /// `stream`, holding this slot for as long as it lives.
    pub(crate) fn hold<S: Stream>(self, stream: S) -> impl Stream<Item = S::Item> {
        stream.map(move |item| {
            let _held = &self;
            item
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_process_and_per_caller_and_drops_give_slots_back() {
        let slots = Arc::new(StreamSlots::new(3, Some(2)));
        let a1 = slots.acquire("a").unwrap();
        let a2 = slots.acquire("a").unwrap();
        let refused = slots.acquire("a").unwrap_err();
        assert!(refused.to_string().contains("per caller"), "{refused}");
        let b1 = slots.acquire("b").unwrap();
        let refused = slots.acquire("c").unwrap_err();
        assert!(refused.to_string().contains("This server"), "{refused}");
        drop(a1);
        let a3 = slots.acquire("a").unwrap();
        drop((a2, a3, b1));
        assert_eq!(slots.total(), 0);
        assert!(slots.open.lock().unwrap().by_caller.is_empty());
    }

    #[tokio::test]
    async fn a_held_stream_gives_its_slot_back_when_dropped() {
        let slots = Arc::new(StreamSlots::new(1, None));
        let stream = slots
            .acquire("a")
            .unwrap()
            .hold(futures::stream::iter([1, 2]));
        assert!(slots.acquire("b").is_err());
        assert_eq!(stream.collect::<Vec<_>>().await, [1, 2]);
        assert_eq!(slots.total(), 0);
    }
}
