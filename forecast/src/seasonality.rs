//! The M4 seasonality test and classical multiplicative decomposition (the basis of Naive2,
//! and of the seasonal adjustment applied before the non-seasonal ETS and Theta models).

/// Autocorrelation of `y` at `lag` (the usual biased estimator).
pub fn acf(y: &[f64], lag: usize) -> f64 {
    let n = y.len();
    if lag >= n {
        return 0.0;
    }
    let mean = y.iter().sum::<f64>() / n as f64;
    let denominator: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    if denominator == 0.0 {
        return 0.0;
    }
    let numerator: f64 = (lag..n).map(|t| (y[t] - mean) * (y[t - lag] - mean)).sum();
    numerator / denominator
}

/// The 90% autocorrelation test used by the M4 benchmarks: seasonal when the lag-`period`
/// autocorrelation exceeds 1.645 standard errors (Bartlett) and there are at least three
/// seasons of data.
pub fn is_seasonal(y: &[f64], period: usize) -> bool {
    if period <= 1 || y.len() < 3 * period {
        return false;
    }
    let sum_sq: f64 = (1..period).map(|k| acf(y, k).powi(2)).sum();
    let limit = 1.645 * ((1.0 + 2.0 * sum_sq) / y.len() as f64).sqrt();
    acf(y, period).abs() > limit
}

/// Seasonal indices of a series, one per position in the season; index `t % period` applies
/// to observation `t` (and to the future steps counted on from the history's start).
#[derive(Debug, Clone, PartialEq)]
pub struct SeasonalIndices {
    indices: Vec<f64>,
}

impl SeasonalIndices {
    /// No seasonality: every index is 1.
    pub fn none() -> Self {
        Self { indices: vec![1.0] }
    }

    /// The index for absolute step `t` (0 = the first observation).
    pub fn at(&self, t: usize) -> f64 {
        self.indices[t % self.indices.len()]
    }

    /// Whether any index differs from 1.
    pub fn is_seasonal(&self) -> bool {
        self.indices.len() > 1
    }

    /// `y / index` for each observation.
    pub fn adjust(&self, y: &[f64]) -> Vec<f64> {
        y.iter().enumerate().map(|(t, v)| v / self.at(t)).collect()
    }

    /// Multiplies `values` (steps `start..`) back by their indices.
    pub fn reseasonalize(&self, start: usize, values: &mut [f64]) {
        for (i, v) in values.iter_mut().enumerate() {
            *v *= self.at(start + i);
        }
    }
}

/// Classical multiplicative decomposition indices when [`is_seasonal`] says so and the data
/// is strictly positive; otherwise [`SeasonalIndices::none`].
pub fn multiplicative_indices(y: &[f64], period: usize) -> SeasonalIndices {
    if !is_seasonal(y, period) || y.iter().any(|v| *v <= 0.0 || !v.is_finite()) {
        return SeasonalIndices::none();
    }
    let trend = centred_moving_average(y, period);
    let mut sums = vec![0.0; period];
    let mut counts = vec![0usize; period];
    for (t, value) in trend.iter().enumerate() {
        if let Some(level) = value
            && *level > 0.0
        {
            sums[t % period] += y[t] / level;
            counts[t % period] += 1;
        }
    }
    if counts.contains(&0) {
        return SeasonalIndices::none();
    }
    let mut indices: Vec<f64> = sums
        .iter()
        .zip(&counts)
        .map(|(s, c)| s / *c as f64)
        .collect();
    let mean = indices.iter().sum::<f64>() / period as f64;
    if mean <= 0.0 {
        return SeasonalIndices::none();
    }
    for index in &mut indices {
        *index /= mean;
    }
    SeasonalIndices { indices }
}

/// The centred moving average of order `period` (2×`period` for an even period), `None`
/// where the window does not fit.
fn centred_moving_average(y: &[f64], period: usize) -> Vec<Option<f64>> {
    let n = y.len();
    let half = period / 2;
    (0..n)
        .map(|t| {
            if t < half || t + half >= n {
                return None;
            }
            if period % 2 == 1 {
                let window = &y[t - half..=t + half];
                Some(window.iter().sum::<f64>() / period as f64)
            } else {
                // Even period: the two end points get half weight.
                let inner: f64 = y[t + 1 - half..t + half].iter().sum();
                let ends = 0.5 * (y[t - half] + y[t + half]);
                Some((inner + ends) / period as f64)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seasonal_series() -> Vec<f64> {
        let pattern = [0.8, 1.0, 1.3, 0.9];
        (0..40)
            .map(|t| (100.0 + t as f64) * pattern[t % 4])
            .collect()
    }

    #[test]
    fn detects_seasonality_and_recovers_indices() {
        let y = seasonal_series();
        assert!(is_seasonal(&y, 4));
        let indices = multiplicative_indices(&y, 4);
        assert!(indices.is_seasonal());
        let expected = [0.8, 1.0, 1.3, 0.9];
        for (i, e) in expected.iter().enumerate() {
            assert!((indices.at(i) - e).abs() < 0.02, "{i}: {}", indices.at(i));
        }
        let adjusted = indices.adjust(&y);
        assert!((adjusted[2] - 102.0).abs() < 2.0, "{}", adjusted[2]);
    }

    #[test]
    fn noise_is_not_seasonal() {
        // A fixed pseudo-random sequence (linear congruential) around 50.
        let mut state: u64 = 7;
        let y: Vec<f64> = (0..40)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                50.0 + (state >> 33) as f64 / (1u64 << 31) as f64
            })
            .collect();
        assert!(!multiplicative_indices(&y, 4).is_seasonal());
        assert!(!is_seasonal(&y[..10], 4), "fewer than three seasons");
    }
}
