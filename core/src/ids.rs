//! Identifiers. ULIDs sort by creation time, so `ORDER BY id` is creation order and a
//! cursor is simply the last id seen.

/// A new ULID string (26 characters, Crockford base32). Ids made by one process increase
/// strictly, even within one millisecond, so `ORDER BY id` is creation order.
pub fn new_id() -> String {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut guard = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    let generator = guard.get_or_insert_with(ulid::Generator::new);
    // The generator only fails after 2^80 ids in one millisecond.
    generator
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

/// Whether `value` has the shape of an id we issued. Used to answer 404 early for
/// malformed path segments instead of querying with them.
pub fn is_id(value: &str) -> bool {
    ulid::Ulid::from_string(value).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_valid_and_increasing() {
        let a = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id();
        assert!(is_id(&a) && is_id(&b));
        assert_eq!(a.len(), 26);
        assert!(a < b, "{a} should sort before {b}");
    }

    #[test]
    fn ids_increase_within_a_millisecond() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn rejects_non_ids() {
        assert!(!is_id(""));
        assert!(!is_id("../etc/passwd"));
        assert!(!is_id("01HZZZZZZZZZZZZZZZZZZZZZZZZZZ"));
    }
}
