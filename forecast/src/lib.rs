//! Forecasting of account metrics: models, backtests, holidays, charts, M3 evaluation.
