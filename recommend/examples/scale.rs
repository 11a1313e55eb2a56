//! The scale benchmark without the product binary:
//! `cargo run --release -p wxpilot-recommend --example scale -- [followers items interactions dim]`

use wxpilot_recommend::bench::{ScaleConfig, run_scale};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let d = ScaleConfig::default();
    let config = ScaleConfig {
        followers: a.first().copied().unwrap_or(d.followers),
        items: a.get(1).copied().unwrap_or(d.items),
        interactions: a.get(2).copied().unwrap_or(d.interactions),
        embedding_dim: a.get(3).copied().unwrap_or(d.embedding_dim),
        ..d
    };
    let r = run_scale(&config)?;
    println!("{r:#?}");
    Ok(())
}
