//! Grandfather-father-son retention: which snapshots to keep, as a pure decision over the
//! times they were taken. The newest `last` are kept, then the newest of each of the
//! `daily` most recent days that have a snapshot, of the `weekly` most recent ISO weeks,
//! and of the `monthly` most recent months (UTC). Counting periods that have a snapshot,
//! not calendar periods back from now, means a backup that stopped for a month still
//! leaves its newest snapshots kept.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;

/// How many of each to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetentionPolicy {
    /// `RETAIN_LAST` (default 24, at least 1): the newest snapshots.
    pub last: usize,
    /// `RETAIN_DAILY` (default 7): the newest of each day.
    pub daily: usize,
    /// `RETAIN_WEEKLY` (default 4): the newest of each ISO week.
    pub weekly: usize,
    /// `RETAIN_MONTHLY` (default 12): the newest of each month.
    pub monthly: usize,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            last: 24,
            daily: 7,
            weekly: 4,
            monthly: 12,
        }
    }
}

/// The decision: positions in the list given, each list newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetentionPlan {
    /// What stays.
    pub keep: Vec<usize>,
    /// What goes.
    pub delete: Vec<usize>,
}

/// Decides over the snapshots taken at `taken`. The newest snapshot is always kept,
/// whatever the policy says.
pub fn plan(taken: &[DateTime<Utc>], policy: &RetentionPolicy) -> RetentionPlan {
    let mut order: Vec<usize> = (0..taken.len()).collect();
    // Newest first; equal times by position, so the decision does not depend on the sort.
    order.sort_by(|&a, &b| taken[b].cmp(&taken[a]).then(b.cmp(&a)));
    let mut keep: BTreeSet<usize> = order.iter().copied().take(policy.last.max(1)).collect();
    let mut newest_of = |count: usize, period: &dyn Fn(&DateTime<Utc>) -> (i32, u32)| {
        let mut seen = BTreeSet::new();
        for &i in &order {
            if seen.len() == count {
                break;
            }
            if seen.insert(period(&taken[i])) {
                keep.insert(i);
            }
        }
    };
    newest_of(policy.daily, &|t| (t.year(), t.ordinal()));
    newest_of(policy.weekly, &|t| {
        let week = t.iso_week();
        (week.year(), week.week())
    });
    newest_of(policy.monthly, &|t| (t.year(), t.month()));
    let (kept, deleted): (Vec<usize>, Vec<usize>) =
        order.into_iter().partition(|i| keep.contains(i));
    RetentionPlan {
        keep: kept,
        delete: deleted,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .expect("valid time")
    }

    #[test]
    fn keeps_the_newest_of_each_period_and_the_last_n() {
        // Two a day, 1 to 20 November 2026 (a Sunday, then Monday the 2nd...).
        let taken: Vec<_> = (1..=20)
            .flat_map(|d| [at(2026, 11, d, 3), at(2026, 11, d, 15)])
            .chain([at(2026, 10, 31, 15), at(2026, 9, 30, 15)])
            .collect();
        let policy = RetentionPolicy {
            last: 3,
            daily: 2,
            weekly: 2,
            monthly: 3,
        };
        let plan = plan(&taken, &policy);
        let mut kept: Vec<_> = plan.keep.iter().map(|&i| taken[i]).collect();
        kept.sort();
        assert_eq!(
            kept,
            vec![
                at(2026, 9, 30, 15),  // monthly: September
                at(2026, 10, 31, 15), // monthly: October
                at(2026, 11, 15, 15), // weekly: ISO week 46 (9-15 Nov)
                at(2026, 11, 19, 15), // last 3, daily
                at(2026, 11, 20, 3),  // last 3
                at(2026, 11, 20, 15), // last 3, daily, weekly, monthly
            ]
        );
        assert_eq!(plan.keep.len() + plan.delete.len(), taken.len());
    }

    #[test]
    fn fifteen_hundred_hourly_snapshots_keep_exactly_the_policy() {
        let start = at(2026, 9, 1, 0);
        let taken: Vec<_> = (0..1500).map(|h| start + Duration::hours(h)).collect();
        let plan = plan(&taken, &RetentionPolicy::default());
        let newest = *taken.last().expect("snapshots");
        // Brute force, period by period, from the definition.
        let mut expected = BTreeSet::new();
        for t in taken.iter().rev().take(24) {
            expected.insert(*t);
        }
        let mut days: Vec<_> = taken.iter().map(|t| t.date_naive()).collect();
        days.dedup();
        for day in days.iter().rev().take(7) {
            expected.insert(
                *taken
                    .iter()
                    .filter(|t| t.date_naive() == *day)
                    .max()
                    .expect("day"),
            );
        }
        let mut weeks: Vec<_> = taken.iter().map(|t| t.iso_week()).collect();
        weeks.dedup();
        for week in weeks.iter().rev().take(4) {
            expected.insert(
                *taken
                    .iter()
                    .filter(|t| t.iso_week() == *week)
                    .max()
                    .expect("week"),
            );
        }
        let mut months: Vec<_> = taken.iter().map(|t| (t.year(), t.month())).collect();
        months.dedup();
        for month in months.iter().rev().take(12) {
            expected.insert(
                *taken
                    .iter()
                    .filter(|t| (t.year(), t.month()) == *month)
                    .max()
                    .expect("month"),
            );
        }
        let kept: BTreeSet<_> = plan.keep.iter().map(|&i| taken[i]).collect();
        assert_eq!(kept, expected);
        // The hours end on Monday 2 November, 11:00. The newest 24 hold 1 and 2 November;
        // days add 27-31 October (5); ISO weeks add 25 and 18 October (2); months add 30
        // September (October's newest is a daily one already).
        assert_eq!(kept.len(), 24 + 5 + 2 + 1, "{kept:?}");
        assert!(kept.contains(&newest));
        assert_eq!(plan.delete.len(), 1500 - kept.len());
    }

    #[test]
    fn the_newest_is_kept_even_by_a_policy_of_nothing() {
        let taken = vec![at(2026, 1, 1, 0), at(2026, 1, 2, 0)];
        let nothing = RetentionPolicy {
            last: 0,
            daily: 0,
            weekly: 0,
            monthly: 0,
        };
        let plan = plan(&taken, &nothing);
        assert_eq!(plan.keep, vec![1]);
        assert_eq!(plan.delete, vec![0]);
    }
}
