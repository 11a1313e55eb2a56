//! Timing of the embedding encoder on its own, without the batcher:
//! `cargo run --release -p wxpilot-inference --example bench_encoder [rounds]`.
//!
//! Reads all-MiniLM-L6-v2 from the models folder (`scripts/fetch-models.sh`) and times one
//! short text at a time (the sentences of `wxpilot bench inference`), one batch of 32 short
//! texts, a long passage alone, and the same passage batched with 31 short texts (where
//! padding to the longest would cost most).
//! Set `RAYON_NUM_THREADS` as the binary does (one thread per core) for figures that match
//! `wxpilot bench inference`.

use std::time::Instant;

use wxpilot_inference::InferenceError;
use wxpilot_inference::bench::SENTENCES;
use wxpilot_inference::local::embed::EncodedText;
use wxpilot_inference::local::{EmbedPrefix, EmbeddingModel, default_embedding_dir, models_dir};
use wxpilot_inference::types::EmbedKind;

/// Mean milliseconds of `runs` calls of `f`, after one untimed call.
fn time_ms(
    runs: usize,
    mut f: impl FnMut() -> Result<(), InferenceError>,
) -> Result<f64, InferenceError> {
    f()?;
    let start = Instant::now();
    for _ in 0..runs {
        f()?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e3 / runs.max(1) as f64)
}

fn main() -> Result<(), InferenceError> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let dir = default_embedding_dir(&models_dir());
    let model = EmbeddingModel::load(&dir, EmbedPrefix::None, &candle_core::Device::Cpu)?;
    let short: Vec<EncodedText> = (0..32)
        .map(|i| {
            let text = format!("{} (#{})", SENTENCES[i % SENTENCES.len()], 100 + i);
            model.encode(EmbedKind::Passage, &text)
        })
        .collect::<Result<_, _>>()?;
    let tokens: usize = short.iter().map(|t| t.ids.len()).sum();
    let longest = short.iter().map(|t| t.ids.len()).max().unwrap_or(0);
    let passage = "Refunds take five working days after we receive the parcel back. ";
    let long = model.encode(EmbedKind::Passage, &passage.repeat(40))?;
    let mut mixed = short.clone();
    mixed[0] = long.clone();
    println!(
        "32 short texts: {tokens} tokens, longest {longest}; long passage: {} tokens",
        long.ids.len()
    );
    for round in 1..=rounds {
        let mut next = 0;
        let lone = time_ms(200, || {
            next = (next + 1) % short.len();
            model.embed_encoded(&short[next..=next]).map(drop)
        })?;
        let batch = time_ms(20, || model.embed_encoded(&short).map(drop))?;
        let long_alone = time_ms(5, || {
            model.embed_encoded(std::slice::from_ref(&long)).map(drop)
        })?;
        let long_mixed = time_ms(5, || model.embed_encoded(&mixed).map(drop))?;
        println!(
            "round {round}: one short text {lone:.2} ms ({:.0}/s); 32 at once {batch:.1} ms \
             ({:.0}/s, {:.2}x); long passage alone {long_alone:.1} ms, with 31 short texts \
             {long_mixed:.1} ms",
            1e3 / lone,
            32e3 / batch,
            lone * 32.0 / batch,
        );
    }
    Ok(())
}
