//! Grid search of ALS settings on MovieLens-100k under the evaluation protocol.
//! `cargo run --release -p wxpilot-recommend --example tune -- <ml-100k.inter> [factors,reg,alpha,iters,k1,b ...]`

use std::time::Instant;

use wxpilot_recommend::eval::{EvalConfig, compare_models};
use wxpilot_recommend::movielens::parse_inter;
use wxpilot_recommend::{AlsConfig, Weighting};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: tune <ml-100k.inter> [factors,reg,alpha,iters,k1,b ...]")?;
    let ratings = parse_inter(&std::fs::read_to_string(path)?)?;
    let grid: Vec<String> = args.collect();
    for spec in grid {
        let v: Vec<f32> = spec.split(',').map(str::parse).collect::<Result<_, _>>()?;
        let [factors, reg, alpha, iters, k1, b] = v[..] else {
            return Err("need 6 values".into());
        };
        let weighting = if k1 > 0.0 {
            Weighting::Bm25 { k1, b }
        } else {
            Weighting::None
        };
        let config = EvalConfig {
            weighting,
            als: AlsConfig {
                factors: factors as usize,
                regularization: reg.abs(),
                // A negative λ on the command line asks for ALS-WR scaling.
                scale_regularization: reg < 0.0,
                alpha,
                iterations: iters as usize,
                ..AlsConfig::default()
            },
            seed: std::env::var("SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(42),
            ..EvalConfig::default()
        };
        let t = Instant::now();
        let results = compare_models(&ratings.interactions, &config)?;
        for r in &results {
            println!(
                "{spec:>28} {:>10} ndcg {:.4} p {:.4} map {:.4} recall {:.4} train {:.2}s",
                r.model,
                r.metrics.ndcg,
                r.metrics.precision,
                r.metrics.map,
                r.metrics.recall,
                r.train_seconds
            );
        }
        eprintln!("total {:.1}s", t.elapsed().as_secs_f64());
    }
    Ok(())
}
