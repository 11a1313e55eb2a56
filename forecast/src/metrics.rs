//! Accuracy measures as the M3/M4 competitions define them.

/// Symmetric MAPE in percent, as in the M3 and M4 competitions:
/// `200/h · Σ |y − ŷ| / (|y| + |ŷ|)`. A step where both are zero counts as a perfect one.
/// Returns `None` when the slices are empty or of different lengths.
pub fn smape(actual: &[f64], forecast: &[f64]) -> Option<f64> {
    if actual.is_empty() || actual.len() != forecast.len() {
        return None;
    }
    let total: f64 = actual
        .iter()
        .zip(forecast)
        .map(|(&y, &f)| {
            let denominator = y.abs() + f.abs();
            if denominator == 0.0 {
                0.0
            } else {
                (y - f).abs() / denominator
            }
        })
        .sum();
    Some(200.0 * total / actual.len() as f64)
}

/// The MASE scale of M4: the in-sample mean absolute error of the seasonal naive forecast
/// with the series' frequency `period` (the naive forecast when `period` is 1 or the history
/// has no full season plus one). `None` when it cannot be computed or is zero.
pub fn mase_scale(history: &[f64], period: usize) -> Option<f64> {
    let m = if period > 1 && history.len() > period {
        period
    } else {
        1
    };
    if history.len() <= m {
        return None;
    }
    let diffs = history.windows(m + 1).map(|w| (w[m] - w[0]).abs());
    let scale = diffs.sum::<f64>() / (history.len() - m) as f64;
    (scale > 0.0 && scale.is_finite()).then_some(scale)
}

/// Mean absolute scaled error: the forecast's mean absolute error divided by
/// [`mase_scale`] of the history.
pub fn mase(history: &[f64], period: usize, actual: &[f64], forecast: &[f64]) -> Option<f64> {
    if actual.is_empty() || actual.len() != forecast.len() {
        return None;
    }
    let scale = mase_scale(history, period)?;
    let mae = actual
        .iter()
        .zip(forecast)
        .map(|(y, f)| (y - f).abs())
        .sum::<f64>()
        / actual.len() as f64;
    Some(mae / scale)
}

/// Share (0..=1) of actual values inside `[lower, upper]`.
pub fn coverage(actual: &[f64], lower: &[f64], upper: &[f64]) -> Option<f64> {
    if actual.is_empty() || actual.len() != lower.len() || actual.len() != upper.len() {
        return None;
    }
    let inside = actual
        .iter()
        .zip(lower.iter().zip(upper))
        .filter(|(y, (lo, hi))| *lo <= *y && *y <= *hi)
        .count();
    Some(inside as f64 / actual.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn smape_matches_hand_computation() {
        // |10-8|/(10+8) = 1/9; |20-25|/(20+25) = 1/9; 200/2 · 2/9 = 22.222…
        let value = smape(&[10.0, 20.0], &[8.0, 25.0]).unwrap();
        assert!(close(value, 200.0 / 9.0), "{value}");
        assert!(close(smape(&[0.0, 4.0], &[0.0, 4.0]).unwrap(), 0.0));
        // Opposite signs give the maximum of 200.
        assert!(close(smape(&[1.0], &[-1.0]).unwrap(), 200.0));
        assert_eq!(smape(&[1.0], &[]), None);
    }

    #[test]
    fn mase_uses_seasonal_naive_scale() {
        // Period 2: in-sample seasonal differences |3-1|, |4-2|, |5-3| → scale 2.
        let history = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!(close(mase_scale(&history, 2).unwrap(), 2.0));
        // Forecast errors 1 and 3 → MAE 2 → MASE 1.
        let value = mase(&history, 2, &[6.0, 7.0], &[5.0, 10.0]).unwrap();
        assert!(close(value, 1.0), "{value}");
        // Period 1 scale: mean of |Δ| = 1.
        assert!(close(mase_scale(&history, 1).unwrap(), 1.0));
        // A flat history has no scale.
        assert_eq!(mase_scale(&[3.0, 3.0, 3.0], 1), None);
        // Too short for the season: falls back to lag 1.
        assert!(close(mase_scale(&[1.0, 3.0], 12).unwrap(), 2.0));
    }

    #[test]
    fn coverage_counts_inclusive_bounds() {
        let value = coverage(
            &[1.0, 2.0, 3.0, 4.0],
            &[0.0, 2.0, 3.5, 0.0],
            &[2.0, 2.0, 4.0, 3.0],
        );
        assert!(close(value.unwrap(), 0.5));
    }
}
