//! How many threads candle's CPU kernels use, settled once per process.
//!
//! candle asks for its thread count on every matrix multiplication. When
//! `RAYON_NUM_THREADS` is not set it counts the physical cores again each time, which on
//! Linux means reading and parsing `/proc/cpuinfo`: about a third of the time of a lone
//! 15-token embedding and of one decode step of the chat model on this project's 2-core
//! machines. Setting the variable once, before any thread starts, removes that cost and
//! changes nothing else: the value is the one candle would have found, bounded by the
//! CPUs this process may actually use (a container's quota or affinity mask).

/// The variable candle and rayon read.
pub const THREADS_VAR: &str = "RAYON_NUM_THREADS";

/// The value to give [`THREADS_VAR`], or `None` when the operator already set it.
///
/// `current` is the variable's present value, `physical` the physical cores and
/// `available` what the process may run on (`std::thread::available_parallelism`).
pub fn thread_count_setting(
    current: Option<&str>,
    physical: usize,
    available: usize,
) -> Option<String> {
    if current.is_some_and(|v| !v.trim().is_empty()) {
        return None;
    }
    Some(physical.min(available).max(1).to_string())
}

/// [`thread_count_setting`] for this process and machine.
pub fn thread_count_for_this_process() -> Option<String> {
    let current = std::env::var(THREADS_VAR).ok();
    let available = std::thread::available_parallelism().map_or(1, usize::from);
    thread_count_setting(current.as_deref(), num_cpus::get_physical(), available)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_setting_wins() {
        assert_eq!(thread_count_setting(Some("3"), 8, 8), None);
        assert_eq!(thread_count_setting(Some(" "), 8, 8), Some("8".into()));
    }

    #[test]
    fn physical_cores_bounded_by_what_the_process_may_use() {
        assert_eq!(thread_count_setting(None, 2, 2), Some("2".into()));
        assert_eq!(thread_count_setting(None, 16, 4), Some("4".into()));
        assert_eq!(thread_count_setting(None, 4, 8), Some("4".into()));
        assert_eq!(thread_count_setting(None, 0, 0), Some("1".into()));
    }
}
