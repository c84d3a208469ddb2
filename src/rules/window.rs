//! The window buffer of the windowed rule kinds: per series, one bucket per minute of data time
//! (sum, count, min, max), kept only as far back as the rule needs (its window; a day and a
//! window for day-over-day and hour-day; a week for week-over-week), under one global memory
//! budget. The formulas of every windowed kind are here, as pure functions of the buckets.
//!
//! History comes from this compact downsampled buffer rather than from queries to the shards:
//! evaluation stays on the ingest thread with no network round trip, no load on the backends
//! and no dependence on a replica being up; the price is that history starts when the proxy
//! starts (or when the rule is added) and that window edges are whole minutes. It must never grow
//! beyond its budget: at the cap new buckets are refused and counted, existing ones still update.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::config::{Direction, RuleKind};

/// Estimated heap bytes of one bucket in a `BTreeMap<i64, Bucket>` (key, value, node overhead).
pub const BUCKET_COST: usize = 64;

const MINUTES_PER_DAY: i64 = 24 * 60;
const MINUTES_PER_WEEK: i64 = 7 * MINUTES_PER_DAY;

/// One minute of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub sum: f64,
    pub count: u32,
    pub min: f64,
    pub max: f64,
}

impl Bucket {
    fn new(value: f64) -> Self {
        Bucket {
            sum: value,
            count: 1,
            min: value,
            max: value,
        }
    }

    fn add(&mut self, value: f64) {
        self.sum += value;
        self.count += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    fn avg(&self) -> f64 {
        self.sum / f64::from(self.count.max(1))
    }
}

/// The memory budget shared by every series of every rule.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    cap: usize,
    refused: AtomicU64,
}

impl Budget {
    pub fn new(cap_bytes: u64) -> Self {
        Budget {
            used: AtomicUsize::new(0),
            cap: usize::try_from(cap_bytes).unwrap_or(usize::MAX),
            refused: AtomicU64::new(0),
        }
    }

    pub fn used_bytes(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn cap_bytes(&self) -> usize {
        self.cap
    }

    /// Buckets refused at the cap since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn take(&self) -> bool {
        let taken = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used + BUCKET_COST <= self.cap).then_some(used + BUCKET_COST)
            })
            .is_ok();
        if !taken {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    fn give_back(&self, buckets: usize) {
        self.used
            .fetch_sub(buckets * BUCKET_COST, Ordering::Relaxed);
    }
}

/// The minutes of history a kind needs behind the newest bucket.
pub fn horizon_minutes(kind: RuleKind, window_minutes: i64) -> i64 {
    match kind {
        RuleKind::DayOverDay => MINUTES_PER_DAY + 1,
        RuleKind::WeekOverWeek => MINUTES_PER_WEEK + 1,
        RuleKind::HourDay => MINUTES_PER_DAY + window_minutes,
        _ => window_minutes,
    }
}

/// The buckets of one series for one rule.
#[derive(Debug, Default)]
pub struct SeriesWindow {
    buckets: BTreeMap<i64, Bucket>,
}

/// Sum, count, min and max over a range of buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    pub sum: f64,
    pub count: u64,
    pub min: f64,
    pub max: f64,
}

impl SeriesWindow {
    /// Adds `value` at `minute` (minutes since the epoch, data time) and drops buckets older than
    /// `horizon` minutes behind the newest. False when the value was not kept: older than the
    /// horizon, or a new bucket at the budget's cap.
    pub fn add(&mut self, minute: i64, value: f64, horizon: i64, budget: &Budget) -> bool {
        let newest = self
            .buckets
            .last_key_value()
            .map_or(minute, |(&last, _)| last.max(minute));
        let oldest_kept = newest - horizon;
        if minute <= oldest_kept {
            return false;
        }
        if let Some(bucket) = self.buckets.get_mut(&minute) {
            bucket.add(value);
        } else {
            if !budget.take() {
                return false;
            }
            self.buckets.insert(minute, Bucket::new(value));
        }
        let before = self.buckets.len();
        self.buckets = self.buckets.split_off(&(oldest_kept + 1));
        budget.give_back(before - self.buckets.len());
        true
    }

    /// Returns this series' buckets to the budget (when the series or its rule is dropped).
    pub fn release(&mut self, budget: &Budget) {
        budget.give_back(self.buckets.len());
        self.buckets.clear();
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Aggregate of the buckets with `from < minute <= to`; None when there are none.
    pub fn aggregate(&self, from_exclusive: i64, to_inclusive: i64) -> Option<Aggregate> {
        let mut out: Option<Aggregate> = None;
        for bucket in self
            .buckets
            .range(from_exclusive + 1..=to_inclusive)
            .map(|(_, b)| b)
        {
            let agg = out.get_or_insert(Aggregate {
                sum: 0.0,
                count: 0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
            });
            agg.sum += bucket.sum;
            agg.count += u64::from(bucket.count);
            agg.min = agg.min.min(bucket.min);
            agg.max = agg.max.max(bucket.max);
        }
        out
    }

    fn avg_at(&self, minute: i64) -> Option<f64> {
        self.buckets.get(&minute).map(Bucket::avg)
    }

    /// The value a windowed kind compares with its `op value`, as of `minute`; None when there
    /// is not enough history or the reference is below `baseline` (or zero).
    pub fn evaluate(
        &self,
        kind: RuleKind,
        minute: i64,
        window_minutes: i64,
        direction: Direction,
        baseline: Option<f64>,
    ) -> Option<f64> {
        let below_baseline = |reference: f64| baseline.is_some_and(|b| reference < b);
        match kind {
            RuleKind::Max => Some(self.aggregate(minute - window_minutes, minute)?.max),
            RuleKind::Min => Some(self.aggregate(minute - window_minutes, minute)?.min),
            RuleKind::Volatility => {
                let agg = self.aggregate(minute - window_minutes, minute)?;
                let avg = agg.sum / agg.count as f64;
                if below_baseline(avg) {
                    return None;
                }
                let ratio = match direction {
                    Direction::Up => nonzero(avg).map(|avg| (agg.max - avg) / avg),
                    Direction::Down => nonzero(avg).map(|avg| (avg - agg.min) / avg),
                    Direction::Interval => nonzero(agg.max).map(|max| (agg.max - agg.min) / max),
                }?;
                Some(ratio)
            }
            RuleKind::DayOverDay | RuleKind::WeekOverWeek => {
                let back = if kind == RuleKind::DayOverDay {
                    MINUTES_PER_DAY
                } else {
                    MINUTES_PER_WEEK
                };
                let current = self.avg_at(minute)?;
                let earlier = self.avg_at(minute - back)?;
                if below_baseline(earlier) {
                    return None;
                }
                nonzero(earlier).map(|earlier| (current - earlier) / earlier)
            }
            RuleKind::HourDay => {
                let current = self.aggregate(minute - window_minutes, minute)?;
                let earlier_end = minute - MINUTES_PER_DAY;
                let earlier = self.aggregate(earlier_end - window_minutes, earlier_end)?;
                if below_baseline(earlier.sum) {
                    return None;
                }
                nonzero(earlier.sum).map(|earlier| (current.sum - earlier) / earlier)
            }
            RuleKind::Threshold | RuleKind::Keyword | RuleKind::Deadman => None,
        }
    }
}

fn nonzero(x: f64) -> Option<f64> {
    (x != 0.0 && x.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(points: &[(i64, f64)], kind: RuleKind, window: i64) -> SeriesWindow {
        let budget = Budget::new(1 << 30);
        let mut w = SeriesWindow::default();
        for &(minute, value) in points {
            w.add(minute, value, horizon_minutes(kind, window), &budget);
        }
        w
    }

    const T: i64 = 29_000_000; // some minute

    #[test]
    fn max_and_min_cover_the_window_only() {
        let w = window(
            &[(T - 10, 500.0), (T - 4, 3.0), (T - 1, 9.0), (T, 5.0)],
            RuleKind::Max,
            5,
        );
        assert_eq!(
            w.evaluate(RuleKind::Max, T, 5, Direction::Up, None),
            Some(9.0)
        );
        assert_eq!(
            w.evaluate(RuleKind::Min, T, 5, Direction::Up, None),
            Some(3.0)
        );
        // the 500 fell out of the 5-minute horizon
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn volatility_formulas_and_baseline() {
        // values 10, 20, 30 -> avg 20, max 30, min 10
        let w = window(
            &[(T - 2, 10.0), (T - 1, 20.0), (T, 30.0)],
            RuleKind::Volatility,
            15,
        );
        let eval = |d, b| w.evaluate(RuleKind::Volatility, T, 15, d, b);
        assert_eq!(eval(Direction::Up, None), Some(0.5)); // (30-20)/20
        assert_eq!(eval(Direction::Down, None), Some(0.5)); // (20-10)/20
        assert_eq!(eval(Direction::Interval, None), Some(20.0 / 30.0)); // (30-10)/30
        assert_eq!(eval(Direction::Up, Some(25.0)), None); // avg below the baseline
        assert_eq!(eval(Direction::Up, Some(20.0)), Some(0.5));
    }

    #[test]
    fn day_and_week_over_week() {
        let w = window(&[(T - 1440, 50.0), (T, 80.0)], RuleKind::DayOverDay, 5);
        assert_eq!(
            w.evaluate(RuleKind::DayOverDay, T, 5, Direction::Up, None),
            Some(0.6)
        );
        let w = window(&[(T - 10080, 100.0), (T, 25.0)], RuleKind::WeekOverWeek, 5);
        assert_eq!(
            w.evaluate(RuleKind::WeekOverWeek, T, 5, Direction::Up, None),
            Some(-0.75)
        );
        // nothing a week ago: no verdict
        let w = window(&[(T - 10079, 100.0), (T, 25.0)], RuleKind::WeekOverWeek, 5);
        assert_eq!(
            w.evaluate(RuleKind::WeekOverWeek, T, 5, Direction::Up, None),
            None
        );
    }

    #[test]
    fn hour_day_compares_sums() {
        let mut points = vec![];
        for m in 0..60 {
            points.push((T - 1440 - m, 1.0)); // yesterday's hour: sum 60
        }
        for m in 0..30 {
            points.push((T - m, 3.0)); // this hour so far: sum 90
        }
        let w = window(&points, RuleKind::HourDay, 60);
        assert_eq!(
            w.evaluate(RuleKind::HourDay, T, 60, Direction::Up, None),
            Some(0.5)
        );
        assert_eq!(
            w.evaluate(RuleKind::HourDay, T, 60, Direction::Up, Some(61.0)),
            None
        );
    }

    #[test]
    fn the_budget_caps_new_buckets_and_is_given_back() {
        let budget = Budget::new(3 * BUCKET_COST as u64);
        let mut w = SeriesWindow::default();
        for m in 0..5 {
            w.add(T + m, 1.0, 100, &budget);
        }
        assert_eq!(w.len(), 3);
        assert_eq!(budget.refused(), 2);
        assert!(
            w.add(T, 2.0, 100, &budget),
            "an existing bucket still updates"
        );
        w.release(&budget);
        assert_eq!(budget.used_bytes(), 0);
    }
}
