//! The changes made elsewhere that this mount applied lately, kept so that a listing which was
//! on its way meanwhile can be brought up to date when it lands.
//!
//! A listing carries the version of the session state it shows (`seq`: every event up to it is
//! in the listing). Events the mount applied while the listing was on its way were applied to
//! the picture the listing then replaces; those numbered above the listing's version are
//! applied again after it is merged, those at or below it are in it already. An event without
//! a number (`seq` 0) counts as newer than any listing asked for before it arrived.

use std::collections::VecDeque;

use crate::events::RemoteEvent;

/// Events kept: far more than arrive during one listing's round trip, unless another client
/// changes thousands of files at once (a listing older than the oldest kept is not trusted).
pub const KEPT: usize = 4096;

pub struct RecentEvents {
    /// `(arrival number, event)`, oldest first.
    events: VecDeque<(u64, RemoteEvent)>,
    cap: usize,
    /// Events that ever arrived.
    arrived: u64,
    /// The highest sequence number among the events dropped to stay within `cap`.
    dropped_up_to: i64,
}

/// Where a listing stands against the events: taken before it is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark(u64);

/// What a listing that was on its way must be brought up to date with.
#[derive(Debug, PartialEq, Eq)]
pub enum Missed {
    /// Apply these again, oldest first.
    Events(Vec<RemoteEvent>),
    /// Some were dropped: the listing cannot be trusted as fresh.
    Unknown,
}

impl RecentEvents {
    pub fn new(cap: usize) -> RecentEvents {
        RecentEvents {
            events: VecDeque::new(),
            cap: cap.max(1),
            arrived: 0,
            dropped_up_to: 0,
        }
    }

    pub fn push(&mut self, ev: RemoteEvent) {
        self.arrived += 1;
        self.events.push_back((self.arrived, ev));
        while self.events.len() > self.cap {
            if let Some((_, old)) = self.events.pop_front() {
                self.dropped_up_to = self.dropped_up_to.max(old.seq);
            }
        }
    }

    pub fn mark(&self) -> Mark {
        Mark(self.arrived)
    }

    /// The events a listing asked for at `mark` and showing version `version` may not show:
    /// those numbered above the version (whenever they arrived: an event can reach the mount
    /// before the server's state that shows it is readable), and those without a number or
    /// version that arrived after the mark.
    pub fn missed_by(&self, mark: Mark, version: Option<i64>) -> Missed {
        let since_mark = |arrival: u64| arrival > mark.0;
        match version {
            Some(v) => {
                if self.dropped_up_to > v {
                    return Missed::Unknown;
                }
                Missed::Events(
                    self.events
                        .iter()
                        .filter(|(arrival, ev)| ev.seq > v || (ev.seq == 0 && since_mark(*arrival)))
                        .map(|(_, ev)| ev.clone())
                        .collect(),
                )
            }
            None => {
                let dropped_since_mark = self.events.front().is_some_and(|(first, _)| first - 1 > mark.0);
                if dropped_since_mark {
                    return Missed::Unknown;
                }
                Missed::Events(
                    self.events
                        .iter()
                        .filter(|(arrival, _)| since_mark(*arrival))
                        .map(|(_, ev)| ev.clone())
                        .collect(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    fn ev(seq: i64, path: &str) -> RemoteEvent {
        RemoteEvent {
            seq,
            ..RemoteEvent::new(EventKind::Write, Some(path), &serde_json::Value::Null)
        }
    }

    fn paths(m: Missed) -> Vec<String> {
        match m {
            Missed::Events(evs) => evs.into_iter().filter_map(|e| e.path).collect(),
            Missed::Unknown => vec!["?".into()],
        }
    }

    #[test]
    fn a_listing_misses_the_events_above_its_version_whenever_they_arrived() {
        let mut r = RecentEvents::new(10);
        r.push(ev(5, "before"));
        let mark = r.mark();
        r.push(ev(7, "during-old"));
        r.push(ev(9, "during-new"));
        // The listing shows version 7: event 5 and 7 are in it, 9 is not.
        assert_eq!(paths(r.missed_by(mark, Some(7))), ["during-new"]);
        // A version below an event that arrived before it was asked (the server's state lagged
        // its event log): that event is missed too.
        assert_eq!(
            paths(r.missed_by(mark, Some(4))),
            ["before", "during-old", "during-new"]
        );
        assert_eq!(paths(r.missed_by(mark, Some(9))), Vec::<String>::new());
    }

    #[test]
    fn without_numbers_what_arrived_meanwhile_is_missed() {
        let mut r = RecentEvents::new(10);
        r.push(ev(0, "before"));
        let mark = r.mark();
        r.push(ev(0, "during"));
        assert_eq!(paths(r.missed_by(mark, Some(100))), ["during"]);
        assert_eq!(paths(r.missed_by(mark, None)), ["during"]);
    }

    #[test]
    fn a_listing_older_than_what_is_kept_is_not_trusted() {
        let mut r = RecentEvents::new(2);
        let mark = r.mark();
        for seq in 1..=3 {
            r.push(ev(seq, "f"));
        }
        // Event 1 was dropped.
        assert_eq!(r.missed_by(mark, Some(0)), Missed::Unknown);
        assert_eq!(paths(r.missed_by(mark, Some(1))), ["f", "f"]);
        assert_eq!(r.missed_by(mark, None), Missed::Unknown);
        let late = r.mark();
        assert_eq!(paths(r.missed_by(late, None)), Vec::<String>::new());
    }
}
