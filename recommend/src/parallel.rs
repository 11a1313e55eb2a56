//! Row-parallel loops over scoped threads. Each row is computed by one thread from inputs that
//! do not change during the loop, so results are identical whatever the thread count.

use std::num::NonZeroUsize;

/// Threads to use: the machine's parallelism, capped by the work.
pub fn threads(work: usize) -> usize {
    let hw = std::thread::available_parallelism()
        .map(NonZeroUsize::get)
        .unwrap_or(1);
    hw.min(work.max(1))
}

/// Calls `f(row_index, row)` for every `width`-long row of `data`, rows split among threads.
pub fn for_each_row<F>(data: &mut [f32], width: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    if width == 0 {
        return;
    }
    let rows = data.len() / width;
    let t = threads(rows / 64);
    if t <= 1 {
        for (r, row) in data.chunks_exact_mut(width).enumerate() {
            f(r, row);
        }
        return;
    }
    let per = rows.div_ceil(t);
    std::thread::scope(|s| {
        for (c, chunk) in data.chunks_mut(per * width).enumerate() {
            let f = &f;
            s.spawn(move || {
                for (k, row) in chunk.chunks_exact_mut(width).enumerate() {
                    f(c * per + k, row);
                }
            });
        }
    });
}

/// Maps `0..n` to values in parallel, in order. Indices are handed out in contiguous blocks.
pub fn map_range<T, F>(n: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize) -> T + Sync,
{
    let t = threads(n / 16);
    if t <= 1 {
        return (0..n).map(f).collect();
    }
    let per = n.div_ceil(t);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..t)
            .map(|c| {
                let f = &f;
                s.spawn(move || (c * per..((c + 1) * per).min(n)).map(f).collect::<Vec<T>>())
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for h in handles {
            // A worker only panics if `f` did; re-raise it on this thread.
            match h.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}
