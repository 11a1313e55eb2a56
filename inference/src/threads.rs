//! How many threads candle's CPU kernels use, settled once per process.
//!
//! candle asks for its thread count on every matrix multiplication. When
//! `RAYON_NUM_THREADS` is not set it works the count out again each time, which on Linux
//! x86 means reading and parsing `/proc/cpuinfo`: about a third of the time of a lone
//! 15-token embedding and of one decode step of the chat model on this project's 2-core
//! machines. The binary sets the variable once, before any thread starts, to the count
//! candle itself works out (it honours `CANDLE_CPU_MASK` and prefers the big cores of a
//! hybrid CPU), bounded by the CPUs this process may use (a container's quota or affinity
//! mask).
//!
//! rayon's global pool reads the same variable, so it gets that many threads too: one per
//! physical core rather than per logical CPU on a host with SMT. candle's matrix kernels
//! and element-wise ops, the encoder's GELU and the tokenizer all run there. Child
//! processes inherit the variable.

/// The variable candle and rayon read.
pub const THREADS_VAR: &str = "RAYON_NUM_THREADS";

/// The value to give [`THREADS_VAR`], or `None` when the operator already set a usable one.
///
/// `current` is the variable's present value (a value candle would ignore, such as `0` or
/// `abc`, counts as unset), `candle` works out candle's count (only asked when needed),
/// and `available` is what the process may run on (`std::thread::available_parallelism`).
pub fn thread_count_setting(
    current: Option<&str>,
    candle: impl FnOnce() -> usize,
    available: usize,
) -> Option<String> {
    if is_usable(current) {
        return None;
    }
    Some(candle().min(available).max(1).to_string())
}

/// Whether a value of [`THREADS_VAR`] is one candle and rayon act on (a positive number).
fn is_usable(value: Option<&str>) -> bool {
    value
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|n| n > 0)
}

/// [`thread_count_setting`] for this process and machine.
pub fn thread_count_for_this_process() -> Option<String> {
    let current = std::env::var(THREADS_VAR).ok();
    let available = std::thread::available_parallelism().map_or(1, usize::from);
    thread_count_setting(
        current.as_deref(),
        candle_core::utils::get_num_threads,
        available,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_setting_wins_unless_candle_would_ignore_it() {
        assert_eq!(thread_count_setting(Some("3"), || 8, 8), None);
        assert_eq!(thread_count_setting(Some(" 3 "), || 8, 8), None);
        for ignored in [" ", "0", "abc", "-1"] {
            assert_eq!(
                thread_count_setting(Some(ignored), || 8, 8),
                Some("8".into()),
                "{ignored:?}"
            );
        }
    }

    #[test]
    fn candles_count_bounded_by_what_the_process_may_use() {
        assert_eq!(thread_count_setting(None, || 2, 2), Some("2".into()));
        assert_eq!(thread_count_setting(None, || 16, 4), Some("4".into()));
        assert_eq!(thread_count_setting(None, || 4, 8), Some("4".into()));
        assert_eq!(thread_count_setting(None, || 0, 0), Some("1".into()));
    }
}
