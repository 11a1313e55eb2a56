//! Forecasting a monthly metric (a figure reported once a month, such as an M3 monthly
//! series): one value per calendar month, gaps filled, a rolling-origin backtest of every
//! model with the yearly period, selection, and the forecast with intervals. Holiday effects
//! are a daily matter and do not apply.

use std::collections::BTreeMap;

use chrono::{Datelike, Months, NaiveDate};

use crate::backtest::{Split, rolling_origins, score_model, select};
use crate::daily::{
    DailyValue, ForecastError, ForecastOptions, ForecastPoint, ForecastResult, Frequency,
    cold_start_forecast, predict_with_fallback,
};
use crate::models::{ModelKind, predict};

/// The longest monthly horizon: five years.
pub const MAX_HORIZON_MONTHS: usize = 60;
/// Fewer months than this is a cold start: a naive forecast with wide intervals.
pub const COLD_START_MONTHS: usize = 12;
/// The seasonal period of a monthly series: the year.
const MONTHLY_PERIODS: [usize; 1] = [12];
/// Backtest origins leave at least two years to fit on.
const MIN_TRAIN_MONTHS: usize = 24;

/// The first day of `date`'s month.
pub fn month_start(date: NaiveDate) -> NaiveDate {
    date.with_day(1).unwrap_or(date)
}

/// The first day of the month `n` months after `start`'s (`start` itself when out of range,
/// which needs a date past the year 262,000).
fn months_after(start: NaiveDate, n: usize) -> NaiveDate {
    u32::try_from(n)
        .ok()
        .and_then(|n| month_start(start).checked_add_months(Months::new(n)))
        .unwrap_or(start)
}

/// Months from `a`'s month to `b`'s (`b` not earlier).
fn months_between(a: NaiveDate, b: NaiveDate) -> i64 {
    i64::from(b.year() - a.year()) * 12 + i64::from(b.month()) - i64::from(a.month())
}

/// One value per month, dated on the month's first day: a value dated any day of a month is
/// that month's, and missing months are filled by linear interpolation. Two values in one
/// month mean a daily metric, which a monthly forecast would misread: refused. Returns the
/// series and how many months were filled.
pub fn prepare_monthly(history: &[DailyValue]) -> Result<(Vec<DailyValue>, usize), ForecastError> {
    let mut by_month: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for point in history {
        if !point.value.is_finite() {
            return Err(ForecastError::NonFinite(point.date));
        }
        let month = month_start(point.date);
        if by_month.insert(month, point.value).is_some() {
            return Err(ForecastError::NotMonthly(month));
        }
    }
    let mut out: Vec<DailyValue> = Vec::with_capacity(by_month.len());
    let mut filled = 0;
    for (&date, &value) in &by_month {
        if let Some(previous) = out.last().copied() {
            let gap = months_between(previous.date, date);
            for k in 1..gap {
                let share = k as f64 / gap as f64;
                out.push(DailyValue {
                    date: months_after(previous.date, k as usize),
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

/// Forecasts `options.horizon` months after the history (`options.holiday_effects` is
/// ignored).
pub fn forecast_monthly(
    history: &[DailyValue],
    options: &ForecastOptions,
) -> Result<ForecastResult, ForecastError> {
    let h = options.horizon;
    if h == 0 || h > MAX_HORIZON_MONTHS {
        return Err(ForecastError::MonthlyHorizon(h));
    }
    let (history, filled) = prepare_monthly(history)?;
    let values: Vec<f64> = history.iter().map(|d| d.value).collect();
    let last_month = history[history.len() - 1].date;
    let nonnegative = values.iter().all(|v| *v >= 0.0);
    let (mut forecast, model, backtest, cold_start) = if values.len() < COLD_START_MONTHS {
        (
            cold_start_forecast(&values, h)?,
            ModelKind::Naive,
            Vec::new(),
            true,
        )
    } else {
        let splits: Vec<Split> = rolling_origins(
            values.len(),
            h,
            options.backtest_origins,
            h,
            MIN_TRAIN_MONTHS,
        );
        let mut kinds = options.models.clone();
        kinds.sort();
        kinds.dedup();
        let backtest: Vec<_> = kinds
            .into_iter()
            .filter_map(|kind| {
                score_model(kind, &values, 12, &splits, |origin, h| {
                    predict(kind, &values[..origin], &MONTHLY_PERIODS, h)
                })
            })
            .collect();
        let chosen = select(&backtest).unwrap_or(ModelKind::Ensemble);
        let (forecast, model) = predict_with_fallback(chosen, &values, &MONTHLY_PERIODS, h)?;
        (forecast, model, backtest, false)
    };
    if nonnegative {
        forecast.clamp_below(0.0);
    }
    let points = (0..h)
        .map(|j| ForecastPoint {
            date: months_after(last_month, j + 1),
            value: forecast.point[j],
            lo80: forecast.lo80[j],
            hi80: forecast.hi80[j],
            lo95: forecast.lo95[j],
            hi95: forecast.hi95[j],
        })
        .collect();
    Ok(ForecastResult {
        frequency: Frequency::Monthly,
        history,
        filled_days: filled,
        points,
        model,
        backtest,
        cold_start,
        holiday_adjusted_days: 0,
        holidays: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(y: i32, m: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, 1).unwrap()
    }

    /// Six years of a trend with a strong yearly pattern (December high, February low).
    fn seasonal_series() -> Vec<DailyValue> {
        (0..72)
            .map(|k| {
                let season = [
                    0.0, -30.0, -10.0, 0.0, 5.0, 10.0, 0.0, -5.0, 0.0, 10.0, 20.0, 60.0,
                ];
                DailyValue {
                    date: months_after(month(2020, 1), k),
                    value: 200.0 + 2.0 * k as f64 + season[k % 12],
                }
            })
            .collect()
    }

    #[test]
    fn months_are_normalised_and_filled_and_daily_data_refused() {
        let daily = [
            DailyValue {
                date: NaiveDate::from_ymd_opt(2024, 1, 15).unwrap(),
                value: 10.0,
            },
            DailyValue {
                date: NaiveDate::from_ymd_opt(2024, 1, 16).unwrap(),
                value: 12.0,
            },
        ];
        assert_eq!(
            prepare_monthly(&daily),
            Err(ForecastError::NotMonthly(month(2024, 1)))
        );
        let history = [
            DailyValue {
                date: NaiveDate::from_ymd_opt(2024, 1, 31).unwrap(),
                value: 12.0,
            },
            DailyValue {
                date: month(2024, 4),
                value: 18.0,
            },
        ];
        let (series, filled) = prepare_monthly(&history).unwrap();
        let dates: Vec<NaiveDate> = series.iter().map(|d| d.date).collect();
        assert_eq!(
            dates,
            [
                month(2024, 1),
                month(2024, 2),
                month(2024, 3),
                month(2024, 4)
            ]
        );
        let values: Vec<f64> = series.iter().map(|d| d.value).collect();
        assert_eq!(values, [12.0, 14.0, 16.0, 18.0]);
        assert_eq!(filled, 2);
    }

    #[test]
    fn a_yearly_pattern_is_forecast_month_by_month() {
        let options = ForecastOptions {
            horizon: 18,
            ..ForecastOptions::default()
        };
        let result = forecast_monthly(&seasonal_series(), &options).unwrap();
        assert_eq!(result.frequency, Frequency::Monthly);
        assert!(!result.cold_start);
        assert_eq!(result.points.len(), 18);
        assert_eq!(result.points[0].date, month(2026, 1));
        assert_eq!(result.points[17].date, month(2027, 6));
        assert!(!result.backtest.is_empty());
        // December stands out over the November before it and the January after it.
        let december = result.points[11].value;
        assert!(
            december > result.points[10].value + 20.0,
            "{:?}",
            result.points
        );
        assert!(
            december > result.points[12].value + 20.0,
            "{:?}",
            result.points
        );
        // The trend carries on: next year's months are above this year's.
        assert!(result.points[12].value > result.points[0].value);
        for p in &result.points {
            assert!(p.lo95 <= p.lo80 && p.lo80 <= p.value && p.value <= p.hi80 && p.hi80 <= p.hi95);
        }
    }

    #[test]
    fn a_short_history_is_a_cold_start_and_bad_horizons_are_refused() {
        let short: Vec<DailyValue> = seasonal_series().into_iter().take(6).collect();
        let options = ForecastOptions {
            horizon: 3,
            ..ForecastOptions::default()
        };
        let result = forecast_monthly(&short, &options).unwrap();
        assert!(result.cold_start);
        assert_eq!(result.points[0].date, month(2020, 7));
        for horizon in [0, MAX_HORIZON_MONTHS + 1] {
            let options = ForecastOptions {
                horizon,
                ..ForecastOptions::default()
            };
            assert_eq!(
                forecast_monthly(&short, &options),
                Err(ForecastError::MonthlyHorizon(horizon))
            );
        }
        assert_eq!(
            forecast_monthly(&[], &options),
            Err(ForecastError::EmptyHistory)
        );
    }

    #[test]
    fn the_chart_labels_months() {
        let options = ForecastOptions {
            horizon: 12,
            ..ForecastOptions::default()
        };
        let result = forecast_monthly(&seasonal_series(), &options).unwrap();
        let svg = crate::render_svg(&result, "monthly", 640, 320).unwrap();
        assert!(svg.contains("2026-"), "month labels expected");
    }
}
