//! Occurrences: an alert is delivered only after it was seen `count` times within `window`.
//! The sightings of one fingerprint are kept (at most `count` of them, newest last) in its
//! persisted alert record, so a restart neither forgets nor double-counts them.
//!
//! It must never let an alert through on fewer sightings than its rule asks for, and never keep
//! more than `count` timestamps per alert (memory is bounded by the fingerprints, not the traffic).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::alert::OccurrencesConfig;

/// The rule an alert is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OccurrenceRule {
    pub count: u32,
    pub window_ms: u64,
}

impl From<&OccurrencesConfig> for OccurrenceRule {
    fn from(config: &OccurrencesConfig) -> Self {
        Self {
            count: config.count.max(1),
            window_ms: duration_ms(config.window.get()),
        }
    }
}

pub fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The outcome of one sighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// Seen `count` times within the window: goes on to IssuedAlerts.
    Reached,
    /// Not yet: `seen` of `needed` sightings inside the window.
    Waiting { seen: u32, needed: u32 },
}

/// Sightings of one fingerprint, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sightings(pub Vec<u64>);

impl Sightings {
    /// Records a sighting at `now_ms` and says whether the rule is met.
    pub fn sight(&mut self, now_ms: u64, rule: OccurrenceRule) -> Sighting {
        self.0
            .retain(|&at| now_ms.saturating_sub(at) < rule.window_ms);
        self.0.push(now_ms);
        let keep = rule.count.max(1) as usize;
        if self.0.len() > keep {
            let excess = self.0.len() - keep;
            self.0.drain(..excess);
        }
        let seen = self.0.len() as u32;
        if seen >= rule.count {
            Sighting::Reached
        } else {
            Sighting::Waiting {
                seen,
                needed: rule.count,
            }
        }
    }

    /// Whether a sighting at `now_ms` would reach the rule, without recording it.
    pub fn would_reach(&self, now_ms: u64, rule: OccurrenceRule) -> bool {
        let inside = self
            .0
            .iter()
            .filter(|&&at| now_ms.saturating_sub(at) < rule.window_ms)
            .count();
        inside + 1 >= rule.count as usize
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: OccurrenceRule = OccurrenceRule {
        count: 3,
        window_ms: 1_000,
    };

    #[test]
    fn three_sightings_within_the_window_reach_it() {
        let mut sightings = Sightings::default();
        assert_eq!(
            sightings.sight(0, RULE),
            Sighting::Waiting { seen: 1, needed: 3 }
        );
        assert_eq!(
            sightings.sight(400, RULE),
            Sighting::Waiting { seen: 2, needed: 3 }
        );
        assert_eq!(sightings.sight(800, RULE), Sighting::Reached);
        assert_eq!(sightings.sight(900, RULE), Sighting::Reached);
        assert_eq!(sightings.0.len(), 3, "bounded by count");
    }

    #[test]
    fn sightings_outside_the_window_do_not_count() {
        let mut sightings = Sightings::default();
        sightings.sight(0, RULE);
        sightings.sight(600, RULE);
        // 0 fell out of the window (1000 ms before 1000 is 0, which is not inside).
        assert_eq!(
            sightings.sight(1_000, RULE),
            Sighting::Waiting { seen: 2, needed: 3 }
        );
        assert_eq!(sightings.sight(1_500, RULE), Sighting::Reached);
        assert_eq!(
            sightings.sight(5_000, RULE),
            Sighting::Waiting { seen: 1, needed: 3 }
        );
    }

    #[test]
    fn count_one_delivers_on_first_sight() {
        let mut sightings = Sightings::default();
        let rule = OccurrenceRule {
            count: 1,
            window_ms: 10,
        };
        assert_eq!(sightings.sight(7, rule), Sighting::Reached);
    }
}
