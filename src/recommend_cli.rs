//! `wxpilot eval recommend` and `wxpilot bench recommend`: the offline evaluation on
//! MovieLens-100k and the synthetic scale benchmark of the recommender.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};
use wxpilot_recommend::bench::{ScaleConfig, run_scale};
use wxpilot_recommend::eval::{EvalConfig, compare_models};
use wxpilot_recommend::movielens::parse_inter;

/// Where `scripts/fetch-data.sh movielens` puts the file.
fn default_movielens_path() -> PathBuf {
    let dir = std::env::var_os("WXPILOT_DATASETS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/wxpilot/data")
        });
    dir.join("recbole-1.2.1/recbole/dataset_example/ml-100k/ml-100k.inter")
}

/// Runs the comparison on `dataset` (only `ml-100k`) and prints a table or one JSON object.
pub fn eval(dataset: &str, data: Option<&Path>, json: bool) -> anyhow::Result<()> {
    if dataset != "ml-100k" {
        bail!("unknown dataset {dataset:?} (known: ml-100k)");
    }
    let path = data
        .map(Path::to_path_buf)
        .unwrap_or_else(default_movielens_path);
    if !path.exists() {
        bail!(
            "{} is missing: run scripts/fetch-data.sh movielens",
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let ratings = parse_inter(&text).with_context(|| format!("parsing {}", path.display()))?;
    let config = EvalConfig::default();
    let results = compare_models(&ratings.interactions, &config)?;
    if json {
        let mut out = Map::new();
        for r in &results {
            out.insert(
                r.model.to_string(),
                json!({
                    "precision@10": r.metrics.precision,
                    "map@10": r.metrics.map,
                    "ndcg@10": r.metrics.ndcg,
                    "recall@10": r.metrics.recall,
                    "users": r.metrics.users,
                    "train_seconds": r.train_seconds,
                }),
            );
        }
        println!("{}", Value::Object(out));
        return Ok(());
    }
    println!(
        "MovieLens-100k: {} users, {} items, {} interactions; per-user 80/20 split (seed {}), K = {}",
        ratings.users.len(),
        ratings.items.len(),
        ratings.interactions.nnz(),
        config.seed,
        config.k
    );
    println!(
        "{:<22} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "model", "P@10", "MAP@10", "NDCG@10", "R@10", "train s"
    );
    for r in &results {
        let m = r.metrics;
        println!(
            "{:<22} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>9.3}",
            r.model, m.precision, m.map, m.ndcg, m.recall, r.train_seconds
        );
    }
    Ok(())
}

/// Peak resident set size of this process in KiB (Linux `VmHWM`), if readable.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Trains and scores a synthetic account and prints the timings and peak memory.
pub fn bench(config: ScaleConfig, json: bool) -> anyhow::Result<()> {
    let r = run_scale(&config)?;
    let rss_mib = peak_rss_kib().map(|k| k as f64 / 1024.0);
    if json {
        let out = json!({
            "followers": config.followers,
            "items": config.items,
            "interactions": r.nnz,
            "embedding_dim": config.embedding_dim,
            "k": config.k,
            "generate_seconds": r.generate_seconds,
            "train_seconds": r.train_seconds,
            "score_seconds": r.score_seconds,
            "recommendations": r.recommendations,
            "in_taste_share": r.in_taste_share,
            "peak_rss_mib": rss_mib,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "{} followers, {} items, {} interactions, {}-dim embeddings: train {:.1} s, top-{} with reasons for all followers {:.1} s, peak RSS {}",
        config.followers,
        config.items,
        r.nnz,
        config.embedding_dim,
        r.train_seconds,
        config.k,
        r.score_seconds,
        rss_mib
            .map(|m| format!("{m:.0} MiB"))
            .unwrap_or_else(|| "unknown".into())
    );
    println!(
        "{:.1}% of recommendations fall in the follower's planted taste",
        100.0 * r.in_taste_share
    );
    Ok(())
}
