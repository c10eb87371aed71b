//! A connection's authorized worker names, each with its books once it
//! has an accepted share.
//!
//! Almost every connection carries one name (a machine), a few carry a
//! handful, and a downstream proxy may carry hundreds. A hash map costs a
//! table of at least four buckets with its own allocation (~190 bytes
//! for one name); a list costs the name. The list is searched in place up
//! to [`INDEXED_FROM`] names, and through an index beyond.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_books::Worker as BookWorker;

/// Names from which a connection keeps an index instead of searching its
/// list.
const INDEXED_FROM: usize = 16;

/// A worker name and its books (none until its first accepted share).
type Entry = (Arc<str>, Option<Arc<BookWorker>>);

/// A connection's worker names, in the order they were authorized.
#[derive(Default)]
pub(super) struct Names {
    list: Vec<Entry>,
    /// Name → place in `list`, once there are many. Boxed: 8 bytes in
    /// every connection instead of 48, for a map few ever build.
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<Arc<str>, usize>>>,
}

impl Names {
    fn position(&self, name: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(name).copied(),
            None => self.list.iter().position(|(n, _)| &**n == name),
        }
    }

    /// The shared name and its books.
    pub(super) fn get_key_value(
        &self,
        name: &str,
    ) -> Option<(&Arc<str>, &Option<Arc<BookWorker>>)> {
        self.position(name)
            .map(|i| (&self.list[i].0, &self.list[i].1))
    }

    /// A name's books (`Some(None)`: authorized, no books yet).
    pub(super) fn get(&self, name: &str) -> Option<&Option<Arc<BookWorker>>> {
        self.position(name).map(|i| &self.list[i].1)
    }

    /// Adds a name, or sets the books of one already there.
    pub(super) fn insert(&mut self, name: Arc<str>, books: Option<Arc<BookWorker>>) {
        if let Some(i) = self.position(&name) {
            self.list[i].1 = books;
            return;
        }
        if let Some(index) = &mut self.index {
            index.insert(name.clone(), self.list.len());
        } else if self.list.len() + 1 >= INDEXED_FROM {
            let mut index: HashMap<Arc<str>, usize> = self
                .list
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.clone(), i))
                .collect();
            index.insert(name.clone(), self.list.len());
            self.index = Some(Box::new(index));
        }
        // One at a time while few (a connection's names rarely grow past
        // the first); by doubling beyond, for a downstream proxy's many.
        if self.index.is_none() {
            self.list.reserve_exact(1);
        }
        self.list.push((name, books));
    }

    /// How many names.
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    /// No name yet.
    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The names.
    pub(super) fn keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.list.iter().map(|(n, _)| n)
    }

    /// The names' books.
    pub(super) fn values(&self) -> impl Iterator<Item = &Option<Arc<BookWorker>>> {
        self.list.iter().map(|(_, b)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_listed_or_indexed() {
        let mut n = Names::default();
        assert!(n.is_empty());
        for i in 0..40 {
            let name: Arc<str> = format!("farm.m{i}").into();
            n.insert(name.clone(), None);
            assert_eq!(n.len(), i + 1);
            assert_eq!(n.index.is_some(), i + 1 >= INDEXED_FROM, "{i}");
            // Every name so far, the one shared (no copy of the string).
            for j in 0..=i {
                let (k, b) = n.get_key_value(&format!("farm.m{j}")).expect("found");
                assert_eq!(&**k, format!("farm.m{j}"));
                assert!(b.is_none());
            }
            assert!(Arc::ptr_eq(n.get_key_value(&name).unwrap().0, &name));
            assert!(n.get("farm.other").is_none());
        }
        // Inserting a name again changes its books, not the count.
        n.insert("farm.m3".into(), None);
        assert_eq!(n.len(), 40);
        assert_eq!(n.keys().count(), 40);
        assert_eq!(n.values().count(), 40);
    }

    #[test]
    fn one_name_costs_one_small_allocation() {
        let mut n = Names::default();
        n.insert("farm.s21-0001".into(), None);
        assert_eq!(n.list.capacity(), 1);
        assert!(n.index.is_none());
    }
}
