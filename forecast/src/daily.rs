//! Forecasting an account's daily metric: gap filling, holiday effects, rolling-origin
//! backtest of every model, selection, the forecast with intervals, and the events in the
//! horizon.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::backtest::{ModelScore, Split, rolling_origins, score_model, select};
use crate::effects::HolidayEffects;
use crate::holidays::{CalendarEvent, HolidayCalendar};
use crate::models::{ModelError, ModelForecast, ModelKind, predict};

/// Fewer days than this is a cold start: a naive forecast with wide intervals.
pub const COLD_START_DAYS: usize = 14;
/// The longest horizon accepted, in days.
pub const MAX_HORIZON: usize = 366;
/// Seasonal periods of a daily series: the week, and the year for MSTL once two fit.
const DAILY_PERIODS: [usize; 2] = [7, 365];

/// One day's value of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DailyValue {
    /// The day.
    pub date: NaiveDate,
    /// The metric's value that day.
    pub value: f64,
}

/// One forecast day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecastPoint {
    /// The day.
    pub date: NaiveDate,
    /// Point forecast.
    pub value: f64,
    /// 80% interval, lower bound.
    pub lo80: f64,
    /// 80% interval, upper bound.
    pub hi80: f64,
    /// 95% interval, lower bound.
    pub lo95: f64,
    /// 95% interval, upper bound.
    pub hi95: f64,
}

/// What to forecast and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastOptions {
    /// Days to forecast (1..=366).
    pub horizon: usize,
    /// Backtest origins (a horizon apart, the last one ending at the last day).
    pub backtest_origins: usize,
    /// Candidate models, compared by backtest MASE.
    pub models: Vec<ModelKind>,
    /// Apply holiday and marketing-day effects.
    pub holiday_effects: bool,
}

impl Default for ForecastOptions {
    fn default() -> Self {
        Self {
            horizon: 14,
            backtest_origins: 3,
            models: vec![
                ModelKind::SeasonalNaive,
                ModelKind::Naive2,
                ModelKind::Theta,
                ModelKind::Ets,
                ModelKind::Mstl,
                ModelKind::Ensemble,
            ],
            holiday_effects: true,
        }
    }
}

/// How often a metric has a value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    /// One value per day (the default).
    #[default]
    Daily,
    /// One value per calendar month, dated on its first day.
    Monthly,
}

/// A forecast with everything needed to show and judge it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastResult {
    /// Days or months: every date of `history` and `points` is a day, or a month's first day.
    #[serde(default)]
    pub frequency: Frequency,
    /// The history the models saw (sorted, one value per step, gaps filled).
    pub history: Vec<DailyValue>,
    /// Steps (days, or months) filled by linear interpolation because the input had no value
    /// for them.
    pub filled_days: usize,
    /// The forecast, one point per step after the history.
    pub points: Vec<ForecastPoint>,
    /// The model that made it.
    pub model: ModelKind,
    /// Backtest accuracy of each candidate (empty on a cold start or a short history).
    pub backtest: Vec<ModelScore>,
    /// True when the history was too short for real models.
    pub cold_start: bool,
    /// Forecast days adjusted by a holiday or marketing-day effect.
    pub holiday_adjusted_days: usize,
    /// Holidays and marketing events overlapping the forecast horizon.
    pub holidays: Vec<CalendarEvent>,
}

/// Why a forecast could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForecastError {
    /// No history at all.
    #[error("the history is empty")]
    EmptyHistory,
    /// A value is NaN or infinite.
    #[error("the value on {0} is not a finite number")]
    NonFinite(NaiveDate),
    /// The horizon is 0 or too long.
    #[error("horizon must be between 1 and {MAX_HORIZON} days, got {0}")]
    Horizon(usize),
    /// A monthly forecast was asked of a metric with several values in one month.
    #[error(
        "the metric has more than one value in the month of {0}: a monthly forecast needs one value per month (forecast it daily instead)"
    )]
    NotMonthly(NaiveDate),
    /// A monthly horizon is 0 or too long.
    #[error("horizon must be between 1 and {max} months, got {0}", max = crate::monthly::MAX_HORIZON_MONTHS)]
    MonthlyHorizon(usize),
    /// Every model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Sorts by date, keeps the last value given for a date, and fills missing days by linear
/// interpolation between their neighbours (a missing export day should not read as zero).
/// Returns the series and how many days were filled.
pub fn prepare_history(history: &[DailyValue]) -> Result<(Vec<DailyValue>, usize), ForecastError> {
    let mut by_date: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for point in history {
        if !point.value.is_finite() {
            return Err(ForecastError::NonFinite(point.date));
        }
        by_date.insert(point.date, point.value);
    }
    let mut out: Vec<DailyValue> = Vec::with_capacity(by_date.len());
    let mut filled = 0;
    for (&date, &value) in &by_date {
        if let Some(previous) = out.last().copied() {
            let gap = (date - previous.date).num_days();
            for k in 1..gap {
                let share = k as f64 / gap as f64;
                out.push(DailyValue {
                    date: previous.date + Duration::days(k),
                    value: previous.value + share * (value - previous.value),
                });
                filled += 1;
            }
        }
        out.push(DailyValue { date, value });
    }
    if out.is_empty() {
        return Err(ForecastError::EmptyHistory);
    }
    Ok((out, filled))
}

/// Forecasts `options.horizon` days after the history.
pub fn forecast_daily(
    history: &[DailyValue],
    calendar: &HolidayCalendar,
    options: &ForecastOptions,
) -> Result<ForecastResult, ForecastError> {
    let h = options.horizon;
    if h == 0 || h > MAX_HORIZON {
        return Err(ForecastError::Horizon(h));
    }
    let (history, filled_days) = prepare_history(history)?;
    let values: Vec<f64> = history.iter().map(|d| d.value).collect();
    let start = history[0].date;
    let first_day = history[history.len() - 1].date + Duration::days(1);
    let nonnegative = values.iter().all(|v| *v >= 0.0);

    let (mut forecast, model, backtest, cold_start, adjusted) = if values.len() < COLD_START_DAYS {
        (
            cold_start_forecast(&values, h)?,
            ModelKind::Naive,
            Vec::new(),
            true,
            0,
        )
    } else {
        let prepared = Prepared::new(calendar, start, &values, options.holiday_effects);
        let backtest = backtest_models(calendar, start, &values, options);
        let chosen = select(&backtest).unwrap_or(ModelKind::Ensemble);
        let (mut forecast, model) =
            predict_with_fallback(chosen, &prepared.cleaned, &DAILY_PERIODS, h)?;
        let adjusted = prepared.effects.apply(calendar, first_day, &mut forecast);
        (forecast, model, backtest, false, adjusted)
    };
    if nonnegative {
        forecast.clamp_below(0.0);
    }
    let points = (0..h)
        .map(|j| ForecastPoint {
            date: first_day + Duration::days(j as i64),
            value: forecast.point[j],
            lo80: forecast.lo80[j],
            hi80: forecast.hi80[j],
            lo95: forecast.lo95[j],
            hi95: forecast.hi95[j],
        })
        .collect();
    let last_day = first_day + Duration::days(h as i64 - 1);
    Ok(ForecastResult {
        frequency: Frequency::Daily,
        history,
        filled_days,
        points,
        model,
        backtest,
        cold_start,
        holiday_adjusted_days: adjusted,
        holidays: calendar.events_between(first_day, last_day),
    })
}

/// A history ready for the models: event days replaced by their baselines, and the effects
/// to put back.
struct Prepared {
    cleaned: Vec<f64>,
    effects: HolidayEffects,
}

impl Prepared {
    fn new(
        calendar: &HolidayCalendar,
        start: NaiveDate,
        values: &[f64],
        use_effects: bool,
    ) -> Self {
        if !use_effects {
            return Self {
                cleaned: values.to_vec(),
                effects: HolidayEffects::default(),
            };
        }
        Self {
            cleaned: HolidayEffects::clean(calendar, start, values),
            effects: HolidayEffects::estimate(calendar, start, values),
        }
    }
}

/// Backtests every candidate with the whole pipeline (effects estimated from the data before
/// each origin only), scored on the raw values with the weekly MASE scale.
fn backtest_models(
    calendar: &HolidayCalendar,
    start: NaiveDate,
    values: &[f64],
    options: &ForecastOptions,
) -> Vec<ModelScore> {
    let h = options.horizon;
    let splits: Vec<Split> = rolling_origins(values.len(), h, options.backtest_origins, h, 28);
    let prepared: BTreeMap<usize, Prepared> = splits
        .iter()
        .map(|s| {
            let p = Prepared::new(
                calendar,
                start,
                &values[..s.origin],
                options.holiday_effects,
            );
            (s.origin, p)
        })
        .collect();
    let mut kinds = options.models.clone();
    kinds.sort();
    kinds.dedup();
    kinds
        .into_iter()
        .filter_map(|kind| {
            score_model(kind, values, 7, &splits, |origin, h| {
                let p = prepared.get(&origin).ok_or(ModelError::NotEnoughData {
                    needed: origin,
                    got: 0,
                })?;
                let mut forecast = predict(kind, &p.cleaned, &DAILY_PERIODS, h)?;
                p.effects.apply(
                    calendar,
                    start + Duration::days(origin as i64),
                    &mut forecast,
                );
                Ok(forecast)
            })
        })
        .collect()
}

/// `kind`, else Naive2, else naive: a product forecast should not fail because one model
/// could not fit an odd history.
pub(crate) fn predict_with_fallback(
    kind: ModelKind,
    y: &[f64],
    periods: &[usize],
    h: usize,
) -> Result<(ModelForecast, ModelKind), ModelError> {
    let mut last_error = None;
    for candidate in [kind, ModelKind::Naive2, ModelKind::Naive] {
        match predict(candidate, y, periods, h) {
            Ok(forecast) => return Ok((forecast, candidate)),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or(ModelError::NotEnoughData {
        needed: 2,
        got: y.len(),
    }))
}

/// Naive forecast with deliberately wide intervals: with under two weeks of data neither the
/// weekly pattern nor the noise level is known. The spread is at least 25% of the mean level
/// and doubles the observed day-to-day variation.
pub(crate) fn cold_start_forecast(values: &[f64], h: usize) -> Result<ModelForecast, ModelError> {
    let last = values[values.len() - 1];
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let variation = if values.len() > 1 {
        let diffs: Vec<f64> = values.windows(2).map(|w| (w[1] - w[0]).powi(2)).collect();
        (diffs.iter().sum::<f64>() / diffs.len() as f64).sqrt()
    } else {
        0.0
    };
    let sigma = (2.0 * variation).max(0.25 * mean.abs()).max(1.0);
    let sigmas: Vec<f64> = (1..=h).map(|j| sigma * (j as f64).sqrt()).collect();
    Ok(ModelForecast::from_sigma(vec![last; h], &sigmas))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::event_keys;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// Deterministic noise in [-1, 1).
    fn noise(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    /// Trend + weekly pattern + noise, with Double 11 at 2.5× the ordinary level.
    fn synthetic(start: NaiveDate, days: usize, calendar: &HolidayCalendar) -> Vec<DailyValue> {
        let weekly = [1.0, 1.05, 1.1, 1.05, 1.0, 0.8, 0.75];
        let events = event_keys(calendar, start, days);
        let mut seed = 42;
        (0..days)
            .map(|t| {
                let date = start + Duration::days(t as i64);
                let level = 200.0 + 0.2 * t as f64;
                let mut value = level * weekly[t % 7] * (1.0 + 0.03 * noise(&mut seed));
                if matches!(&events[t], Some(k) if k.kind == "double_11") {
                    value *= 2.5;
                }
                DailyValue { date, value }
            })
            .collect()
    }

    #[test]
    fn recovers_a_planted_holiday_spike_and_covers_nominally() {
        let calendar = HolidayCalendar::china().unwrap();
        // Three years from Monday 2022-11-14 (index 0 = Monday) up to 2025-11-03.
        let start = day(2022, 11, 14);
        let all = synthetic(start, 3 * 365 + 21, &calendar);
        let cut = all.iter().position(|d| d.date == day(2025, 11, 4)).unwrap();
        let (history, future) = all.split_at(cut);
        let options = ForecastOptions {
            horizon: 14,
            ..ForecastOptions::default()
        };
        let result = forecast_daily(history, &calendar, &options).unwrap();
        assert!(!result.cold_start);
        assert_eq!(result.points.len(), 14);
        assert_eq!(result.points[0].date, day(2025, 11, 4));
        // The spike: 11 November is step 7.
        let spike = result.points[7];
        assert_eq!(spike.date, day(2025, 11, 11));
        let truth = future[7].value;
        assert!(
            (spike.value - truth).abs() / truth < 0.12,
            "forecast {} vs actual {truth}",
            spike.value
        );
        // Ordinary days around it stay ordinary (well under the spike).
        assert!(result.points[6].value < 0.6 * spike.value);
        assert!(result.points[8].value < 0.6 * spike.value);
        assert!(result.holidays.iter().any(|e| e.kind == "double_11"));
        assert!(result.holiday_adjusted_days >= 1);
        // Backtests of every candidate were run and a model chosen among them.
        assert_eq!(result.backtest.len(), options.models.len());
        assert!(result.backtest.iter().any(|s| s.model == result.model));
        // The actual spike lies inside the widened 95% interval of the day.
        assert!(
            spike.lo95 <= truth && truth <= spike.hi95,
            "{spike:?} vs {truth}"
        );
        let best = result
            .backtest
            .iter()
            .find(|s| s.model == result.model)
            .unwrap();
        assert!(
            best.coverage95 >= 0.75,
            "95% coverage {:?}",
            result.backtest
        );
    }

    #[test]
    fn interval_coverage_over_many_origins() {
        // Coverage measured on 20 two-week windows of the synthetic series (no spike days).
        let calendar = HolidayCalendar::china().unwrap();
        let start = day(2021, 1, 4);
        let all = synthetic(start, 900, &calendar);
        let values: Vec<f64> = all.iter().map(|d| d.value).collect();
        let mut inside80 = 0;
        let mut inside95 = 0;
        let mut total = 0;
        let options = ForecastOptions {
            horizon: 14,
            backtest_origins: 1,
            models: vec![ModelKind::Ets],
            holiday_effects: true,
        };
        for k in 0..20 {
            let origin = 600 + 14 * k;
            let result = forecast_daily(&all[..origin], &calendar, &options).unwrap();
            for (j, p) in result.points.iter().enumerate() {
                let actual = values[origin + j];
                inside80 += usize::from(p.lo80 <= actual && actual <= p.hi80);
                inside95 += usize::from(p.lo95 <= actual && actual <= p.hi95);
                total += 1;
            }
        }
        let c80 = inside80 as f64 / total as f64;
        let c95 = inside95 as f64 / total as f64;
        assert!((0.65..=0.97).contains(&c80), "80% coverage {c80}");
        assert!((0.85..=1.0).contains(&c95), "95% coverage {c95}");
        assert!(c95 > c80);
    }

    #[test]
    fn cold_start_is_flagged_with_wide_intervals() {
        let calendar = HolidayCalendar::china().unwrap();
        let history: Vec<DailyValue> = (0..10)
            .map(|t| DailyValue {
                date: day(2026, 3, 1) + Duration::days(t),
                value: 50.0 + t as f64,
            })
            .collect();
        let result = forecast_daily(&history, &calendar, &ForecastOptions::default()).unwrap();
        assert!(result.cold_start);
        assert_eq!(result.model, ModelKind::Naive);
        assert!(result.backtest.is_empty());
        let first = result.points[0];
        assert_eq!(first.value, 59.0);
        // At least ±25% of the mean level (54.5) at 1.96σ.
        assert!(first.hi95 - first.value >= 0.25 * 54.5 * 1.9);
    }

    #[test]
    fn gaps_are_filled_and_bad_input_rejected() {
        let history = [
            DailyValue {
                date: day(2026, 1, 3),
                value: 30.0,
            },
            DailyValue {
                date: day(2026, 1, 1),
                value: 10.0,
            },
            DailyValue {
                date: day(2026, 1, 1),
                value: 12.0,
            },
        ];
        let (series, filled) = prepare_history(&history).unwrap();
        assert_eq!(filled, 1);
        let values: Vec<f64> = series.iter().map(|d| d.value).collect();
        assert_eq!(values, vec![12.0, 21.0, 30.0]);
        let calendar = HolidayCalendar::china().unwrap();
        assert_eq!(
            forecast_daily(&[], &calendar, &ForecastOptions::default()),
            Err(ForecastError::EmptyHistory)
        );
        let options = ForecastOptions {
            horizon: 0,
            ..ForecastOptions::default()
        };
        assert_eq!(
            forecast_daily(&history, &calendar, &options),
            Err(ForecastError::Horizon(0))
        );
        let nan = [DailyValue {
            date: day(2026, 1, 1),
            value: f64::NAN,
        }];
        assert!(matches!(
            forecast_daily(&nan, &calendar, &ForecastOptions::default()),
            Err(ForecastError::NonFinite(_))
        ));
    }
}
