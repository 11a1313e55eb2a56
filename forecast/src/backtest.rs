//! Rolling-origin backtests and deterministic model selection.

use serde::{Deserialize, Serialize};

use crate::metrics::{coverage, mase, smape};
use crate::models::{ModelError, ModelForecast, ModelKind};

/// One backtest split: the model sees `y[..origin]` and is scored on
/// `y[origin..origin + horizon]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// First index of the test window (the length of the training window).
    pub origin: usize,
    /// Length of the test window.
    pub horizon: usize,
}

/// Up to `count` origins for a series of length `n`, `step` apart, the last one leaving
/// exactly `horizon` observations to score; origins that would leave fewer than `min_train`
/// training observations are dropped. Returned oldest first.
pub fn rolling_origins(
    n: usize,
    horizon: usize,
    count: usize,
    step: usize,
    min_train: usize,
) -> Vec<Split> {
    let step = step.max(1);
    let mut splits: Vec<Split> = (0..count)
        .filter_map(|k| n.checked_sub(horizon + k * step))
        .filter(|&origin| origin >= min_train.max(1))
        .map(|origin| Split { origin, horizon })
        .collect();
    splits.reverse();
    splits
}

/// Backtest accuracy of one model, averaged over the origins it could forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelScore {
    /// The model.
    pub model: ModelKind,
    /// Mean MASE over origins.
    pub mase: f64,
    /// Mean sMAPE over origins, in percent.
    pub smape: f64,
    /// Share of test values inside the 80% interval.
    pub coverage80: f64,
    /// Share of test values inside the 95% interval.
    pub coverage95: f64,
    /// How many origins were scored.
    pub origins: usize,
}

/// Scores `forecaster(origin, horizon)` — a forecast made from `y[..origin]` — on every split.
/// `period` is the MASE seasonal scale. `None` when no split could be scored.
pub fn score_model(
    model: ModelKind,
    y: &[f64],
    period: usize,
    splits: &[Split],
    forecaster: impl Fn(usize, usize) -> Result<ModelForecast, ModelError>,
) -> Option<ModelScore> {
    let mut sums = [0.0; 4];
    let mut scored = 0usize;
    let mut covered = 0usize;
    for split in splits {
        let end = split.origin + split.horizon;
        if end > y.len() {
            continue;
        }
        let Ok(forecast) = forecaster(split.origin, split.horizon) else {
            continue;
        };
        if forecast.len() != split.horizon {
            continue;
        }
        let history = &y[..split.origin];
        let actual = &y[split.origin..end];
        let (Some(m), Some(s), Some(c80), Some(c95)) = (
            mase(history, period, actual, &forecast.point),
            smape(actual, &forecast.point),
            coverage(actual, &forecast.lo80, &forecast.hi80),
            coverage(actual, &forecast.lo95, &forecast.hi95),
        ) else {
            continue;
        };
        sums[0] += m;
        sums[1] += s;
        // Coverage is weighted by the number of test values, not by origin.
        sums[2] += c80 * split.horizon as f64;
        sums[3] += c95 * split.horizon as f64;
        scored += 1;
        covered += split.horizon;
    }
    (scored > 0).then(|| ModelScore {
        model,
        mase: sums[0] / scored as f64,
        smape: sums[1] / scored as f64,
        coverage80: sums[2] / covered as f64,
        coverage95: sums[3] / covered as f64,
        origins: scored,
    })
}

/// The model with the lowest MASE among those scored on the most origins (a model that failed
/// on some origins is not compared on an easier subset); ties go to the earlier model in
/// [`ModelKind`] order, so the choice never depends on the order of `scores`.
pub fn select(scores: &[ModelScore]) -> Option<ModelKind> {
    let most = scores.iter().map(|s| s.origins).max()?;
    scores
        .iter()
        .filter(|s| s.origins == most && s.mase.is_finite())
        .min_by(|a, b| a.mase.total_cmp(&b.mase).then(a.model.cmp(&b.model)))
        .map(|s| s.model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_step_back_from_the_end() {
        let splits = rolling_origins(100, 14, 3, 7, 28);
        let origins: Vec<usize> = splits.iter().map(|s| s.origin).collect();
        assert_eq!(origins, vec![72, 79, 86]);
        assert!(splits.iter().all(|s| s.horizon == 14));
        // The last split ends exactly at the end of the series.
        assert_eq!(splits[2].origin + splits[2].horizon, 100);
        // Too little training data drops early origins.
        let short: Vec<usize> = rolling_origins(40, 14, 3, 7, 20)
            .iter()
            .map(|s| s.origin)
            .collect();
        assert_eq!(short, vec![26]);
        assert!(rolling_origins(10, 14, 3, 7, 1).is_empty());
    }

    #[test]
    fn scoring_uses_only_data_before_each_origin() {
        // y = 0, 1, 2, …; a naive forecaster that reads y[origin - 1].
        let y: Vec<f64> = (0..20).map(f64::from).collect();
        let splits = rolling_origins(20, 2, 2, 2, 5);
        let seen = std::cell::RefCell::new(Vec::new());
        let score = score_model(ModelKind::Naive, &y, 1, &splits, |origin, h| {
            seen.borrow_mut().push(origin);
            crate::models::predict(ModelKind::Naive, &y[..origin], &[1], h)
        })
        .unwrap();
        assert_eq!(*seen.borrow(), vec![16, 18]);
        // Errors 1 and 2 on each origin; in-sample MAE of the naive forecast is 1 → MASE 1.5.
        assert!((score.mase - 1.5).abs() < 1e-9, "{}", score.mase);
        assert_eq!(score.origins, 2);
    }

    fn score(model: ModelKind, mase: f64, origins: usize) -> ModelScore {
        ModelScore {
            model,
            mase,
            smape: 0.0,
            coverage80: 0.8,
            coverage95: 0.95,
            origins,
        }
    }

    #[test]
    fn selection_is_deterministic() {
        let scores = vec![
            score(ModelKind::Ensemble, 0.9, 3),
            score(ModelKind::Ets, 0.9, 3),
            score(ModelKind::Naive, 1.2, 3),
            score(ModelKind::Mstl, 0.5, 1),
        ];
        // MSTL scored fewer origins; ETS and the ensemble tie and ETS comes first.
        assert_eq!(select(&scores), Some(ModelKind::Ets));
        let mut reversed = scores.clone();
        reversed.reverse();
        assert_eq!(select(&reversed), Some(ModelKind::Ets));
        assert_eq!(select(&[]), None);
    }
}
