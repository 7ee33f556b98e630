//! Computing the versions of one key from its events.

use super::{Cell, Event, Op};

/// One version of a key: a silver row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    /// The sequence value of the event that opened it.
    pub valid_from: i64,
    /// The sequence value of the event that closed it; `None` while current.
    pub valid_to: Option<i64>,
    /// The tracked values.
    pub tracked: Vec<Cell>,
}

impl Version {
    /// Whether this is the version in force now.
    pub fn is_current(&self) -> bool {
        self.valid_to.is_none()
    }
}

/// Different events of one key at one sequence value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Conflict {
    /// The sequence value they share.
    pub sequence: i64,
    /// The event that reached silver.
    pub winner: Event,
    /// The events that did not, greatest first.
    pub losers: Vec<Event>,
}

/// The history of one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The versions, oldest first.
    pub versions: Vec<Version>,
    /// The events that decided the versions (after duplicates and conflict
    /// losers are removed), oldest first: the silver event log of this key.
    pub events: Vec<Event>,
    /// Exact duplicates dropped.
    pub duplicates: usize,
    /// Sequence conflicts resolved.
    pub conflicts: Vec<Conflict>,
}

/// The history of one key from all of its valid events, in any order.
pub fn history(mut events: Vec<Event>) -> History {
    // Sorting by (sequence, op, tracked) puts exact duplicates side by side
    // and, within one sequence value, the conflict winner last.
    events.sort_unstable();
    let before = events.len();
    events.dedup();
    let duplicates = before - events.len();

    let mut survivors: Vec<Event> = Vec::with_capacity(events.len());
    let mut conflicts = Vec::new();
    let mut sorted = events.into_iter().peekable();
    while let Some(mut winner) = sorted.next() {
        // Within one sequence value the events are ascending: the last wins.
        let mut losers = Vec::new();
        while let Some(next) = sorted.next_if(|e| e.sequence == winner.sequence) {
            losers.push(std::mem::replace(&mut winner, next));
        }
        if !losers.is_empty() {
            losers.reverse();
            conflicts.push(Conflict {
                sequence: winner.sequence,
                winner: winner.clone(),
                losers,
            });
        }
        survivors.push(winner);
    }

    let mut versions: Vec<Version> = Vec::new();
    let mut in_force: Option<usize> = None;
    for event in &survivors {
        match event.op {
            Op::Delete => {
                if let Some(open) = in_force.take() {
                    versions[open].valid_to = Some(event.sequence);
                }
            }
            Op::Create | Op::Update => {
                if let Some(open) = in_force {
                    if versions[open].tracked == event.tracked {
                        continue;
                    }
                    versions[open].valid_to = Some(event.sequence);
                }
                versions.push(Version {
                    valid_from: event.sequence,
                    valid_to: None,
                    tracked: event.tracked.clone(),
                });
                in_force = Some(versions.len() - 1);
            }
        }
    }
    History {
        versions,
        events: survivors,
        duplicates,
        conflicts,
    }
}
