//! Forecasting of account metrics: models, backtests, holidays, charts, M3 evaluation.
//!
//! Everything here is pure computation on slices and dates; the evaluation module reads the
//! benchmark files fetched by `scripts/fetch-data.sh` and nothing else. The entry point for
//! the product is [`forecast_daily`] (or [`forecast_monthly`]); [`render_svg`] draws the result.

pub mod backtest;
pub mod chart;
pub mod daily;
pub mod effects;
pub mod eval;
pub mod holidays;
pub mod metrics;
pub mod models;
pub mod monthly;
pub mod seasonality;

pub use chart::render_svg;
pub use daily::{
    DailyValue, ForecastError, ForecastOptions, ForecastPoint, ForecastResult, Frequency,
    forecast_daily,
};
pub use holidays::{CalendarEvent, HolidayCalendar};
pub use models::ModelKind;
pub use monthly::forecast_monthly;
