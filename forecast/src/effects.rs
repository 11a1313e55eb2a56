//! Holiday and marketing-day effects for daily series: each event day's ratio (or difference)
//! to an ordinary-day baseline is estimated from history, event days are replaced by the
//! baseline before the models are fitted, and the effects are put back on forecast days that
//! fall on the same events.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::holidays::{HolidayCalendar, kind_name};
use crate::models::{ModelForecast, median};

/// The event a day belongs to, for effect estimation. One per day: a day off outranks a
/// make-up day, which outranks a marketing date.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventKey {
    /// `spring_festival`, `makeup_workday`, `double_11`, …
    pub kind: String,
    /// Day within the holiday block (0 = first day off); 0 for single-day events.
    pub day: usize,
}

/// The event `date` falls on, if any.
pub fn event_key(calendar: &HolidayCalendar, date: NaiveDate) -> Option<EventKey> {
    if let Some((holiday, day)) = calendar.holiday_on(date) {
        return Some(EventKey {
            kind: kind_name(&holiday.kind),
            // Long blocks share the effect of their later days: day 6 and beyond are alike.
            day: day.min(6),
        });
    }
    if calendar.is_makeup_workday(date) {
        return Some(EventKey {
            kind: "makeup_workday".to_owned(),
            day: 0,
        });
    }
    let event = calendar.marketing_on(date).next()?;
    Some(EventKey {
        kind: kind_name(&event.kind),
        day: 0,
    })
}

/// One estimated effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// Multiplicative (ratio to baseline) or additive (difference).
    pub multiplicative: bool,
    /// Median ratio or difference over the occurrences.
    pub value: f64,
    /// Relative spread of the occurrences (median absolute deviation over |value|), used to
    /// widen the intervals on the day.
    pub spread: f64,
    /// How many historical days it was estimated from.
    pub occurrences: usize,
}

/// Effects by event key, and by kind alone as the fallback for a day of a block never seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HolidayEffects {
    by_key: BTreeMap<EventKey, Effect>,
    by_kind: BTreeMap<String, Effect>,
}

/// Ordinary-day baseline for each day: the median of up to six nearest same-weekday days
/// (within ten weeks either side) that are not event days. `None` without any.
pub fn baselines(values: &[f64], events: &[Option<EventKey>]) -> Vec<Option<f64>> {
    let n = values.len();
    (0..n)
        .map(|t| {
            let mut near = Vec::with_capacity(6);
            for k in 1..=10usize {
                for candidate in [t.checked_sub(7 * k), Some(t + 7 * k)] {
                    if let Some(c) = candidate
                        && c < n
                        && events[c].is_none()
                        && near.len() < 6
                    {
                        near.push(values[c]);
                    }
                }
            }
            (!near.is_empty()).then(|| median(near))
        })
        .collect()
}

impl HolidayEffects {
    /// Estimates effects from a daily history starting on `start`. Multiplicative when the
    /// history is strictly positive, additive otherwise.
    pub fn estimate(calendar: &HolidayCalendar, start: NaiveDate, values: &[f64]) -> Self {
        let events = event_keys(calendar, start, values.len());
        let base = baselines(values, &events);
        let multiplicative = values.iter().all(|v| *v > 0.0);
        let mut by_key: BTreeMap<EventKey, Vec<f64>> = BTreeMap::new();
        let mut by_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for ((value, event), baseline) in values.iter().zip(&events).zip(&base) {
            let (Some(event), Some(baseline)) = (event, baseline) else {
                continue;
            };
            let observed = if multiplicative {
                if *baseline <= 0.0 {
                    continue;
                }
                value / baseline
            } else {
                value - baseline
            };
            by_key.entry(event.clone()).or_default().push(observed);
            by_kind
                .entry(event.kind.clone())
                .or_default()
                .push(observed);
        }
        let summarize = |observed: Vec<f64>| -> Effect {
            let occurrences = observed.len();
            let value = median(observed.clone());
            let mad = median(observed.iter().map(|o| (o - value).abs()).collect());
            let spread = if value.abs() > 0.0 {
                mad / value.abs()
            } else {
                0.0
            };
            Effect {
                multiplicative,
                value,
                spread,
                occurrences,
            }
        };
        Self {
            by_key: by_key.into_iter().map(|(k, v)| (k, summarize(v))).collect(),
            by_kind: by_kind
                .into_iter()
                .map(|(k, v)| (k, summarize(v)))
                .collect(),
        }
    }

    /// The effect for `key`: its own, else its kind's, else none.
    pub fn get(&self, key: &EventKey) -> Option<&Effect> {
        self.by_key.get(key).or_else(|| self.by_kind.get(&key.kind))
    }

    /// Whether nothing was estimated.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The history with each event day replaced by its baseline, so models fitted on it see
    /// ordinary days only.
    pub fn clean(calendar: &HolidayCalendar, start: NaiveDate, values: &[f64]) -> Vec<f64> {
        let events = event_keys(calendar, start, values.len());
        let base = baselines(values, &events);
        values
            .iter()
            .zip(events.iter().zip(&base))
            .map(|(v, (event, baseline))| match (event, baseline) {
                (Some(_), Some(b)) => *b,
                _ => *v,
            })
            .collect()
    }

    /// Applies the effects to a forecast whose first step is `first_day`; intervals widen by
    /// the effect's spread. Returns how many steps were adjusted.
    pub fn apply(
        &self,
        calendar: &HolidayCalendar,
        first_day: NaiveDate,
        forecast: &mut ModelForecast,
    ) -> usize {
        let mut adjusted = 0;
        for j in 0..forecast.len() {
            let date = first_day + Duration::days(j as i64);
            let Some(effect) = event_key(calendar, date).and_then(|key| self.get(&key).cloned())
            else {
                continue;
            };
            if effect.multiplicative {
                forecast.scale_step(j, effect.value);
            } else {
                forecast.shift_step(j, effect.value);
            }
            // One occurrence says little about the next: widen more when the effect rests on
            // few days, and by the spread seen between occurrences.
            let thin = 1.0 / (effect.occurrences as f64).sqrt();
            forecast.widen_step(j, 1.0 + effect.spread + 0.25 * thin);
            adjusted += 1;
        }
        adjusted
    }
}

/// Event keys of `count` consecutive days from `start`.
pub fn event_keys(
    calendar: &HolidayCalendar,
    start: NaiveDate,
    count: usize,
) -> Vec<Option<EventKey>> {
    (0..count)
        .map(|t| event_key(calendar, start + Duration::days(t as i64)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_and_applies_a_planted_effect() {
        let calendar = HolidayCalendar::china().unwrap_or_else(|e| panic!("{e}"));
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let days = 600;
        let events = event_keys(&calendar, start, days);
        // Flat 100 with Double 11 at 3×.
        let values: Vec<f64> = events
            .iter()
            .map(|e| match e {
                Some(k) if k.kind == "double_11" => 300.0,
                _ => 100.0,
            })
            .collect();
        let effects = HolidayEffects::estimate(&calendar, start, &values);
        let key = EventKey {
            kind: "double_11".to_owned(),
            day: 0,
        };
        let effect = effects.get(&key).unwrap();
        assert!((effect.value - 3.0).abs() < 1e-9);
        assert_eq!(effect.occurrences, 1, "only 2024-11-11 is in the history");
        let cleaned = HolidayEffects::clean(&calendar, start, &values);
        assert!(cleaned.iter().all(|v| (*v - 100.0).abs() < 1e-9));
        let first_day = NaiveDate::from_ymd_opt(2025, 11, 10).unwrap();
        let mut forecast = ModelForecast::from_sigma(vec![100.0; 3], &[1.0; 3]);
        assert_eq!(effects.apply(&calendar, first_day, &mut forecast), 1);
        assert!((forecast.point[1] - 300.0).abs() < 1e-9);
        assert_eq!(forecast.point[0], 100.0);
        assert!(forecast.hi95[1] - forecast.point[1] > 3.0 * 1.96);
    }
}
