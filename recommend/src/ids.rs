//! Dense indices for the caller's ids.

use std::collections::HashMap;
use std::hash::Hash;

/// Assigns `0, 1, 2, …` to ids in first-seen order and maps back.
#[derive(Debug, Clone)]
pub struct IdMap<T> {
    index: HashMap<T, u32>,
    ids: Vec<T>,
}

impl<T> Default for IdMap<T> {
    fn default() -> Self {
        Self {
            index: HashMap::new(),
            ids: Vec::new(),
        }
    }
}

impl<T: Eq + Hash + Clone> IdMap<T> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of `id`, assigning the next one when it is new.
    pub fn intern(&mut self, id: T) -> u32 {
        if let Some(&i) = self.index.get(&id) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.index.insert(id.clone(), i);
        self.ids.push(id);
        i
    }

    /// The index of `id`, if it has one.
    pub fn get(&self, id: &T) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The id with index `i`.
    pub fn id(&self, i: u32) -> Option<&T> {
        self.ids.get(i as usize)
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no id was interned.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_in_first_seen_order() {
        let mut m = IdMap::new();
        assert_eq!(m.intern("b".to_string()), 0);
        assert_eq!(m.intern("a".to_string()), 1);
        assert_eq!(m.intern("b".to_string()), 0);
        assert_eq!(m.len(), 2);
        assert_eq!(m.id(1).map(String::as_str), Some("a"));
        assert_eq!(m.get(&"c".to_string()), None);
    }
}
