//! Token texts with a hash index by text: one string buffer ([`Strings`]) and a table of
//! ids hashed by their text, so looking a text up needs no second copy of every string
//! (a `HashMap<String, u32>` beside a `Vec<String>` held Gemma's 262k-token vocabulary
//! three times over, ~45 MB; this is ~6 MB).

use crate::gguf::Strings;
use hashbrown::hash_table::{Entry, HashTable};
use std::hash::{BuildHasher, RandomState};

pub(crate) struct Texts {
    strings: Strings,
    table: HashTable<u32>,
    hasher: RandomState,
}

impl Texts {
    /// Index `strings`; `Err((first, second))` names two ids with the same text.
    pub(crate) fn new(strings: Strings) -> Result<Texts, (u32, u32)> {
        let hasher = RandomState::new();
        let mut table = HashTable::with_capacity(strings.len());
        for (i, s) in strings.iter().enumerate() {
            let entry = table.entry(
                hasher.hash_one(s),
                |&id: &u32| &strings[id as usize] == s,
                |&id: &u32| hasher.hash_one(&strings[id as usize]),
            );
            match entry {
                Entry::Occupied(e) => return Err((*e.get(), i as u32)),
                Entry::Vacant(e) => {
                    e.insert(i as u32);
                }
            }
        }
        Ok(Texts {
            strings,
            table,
            hasher,
        })
    }

    /// The id of `text`, if it is one of the texts.
    pub(crate) fn id(&self, text: &str) -> Option<u32> {
        let strings = &self.strings;
        self.table
            .find(self.hasher.hash_one(text), |&id| {
                &strings[id as usize] == text
            })
            .copied()
    }

    pub(crate) fn get(&self, id: u32) -> Option<&str> {
        self.strings.get(id as usize)
    }

    pub(crate) fn len(&self) -> usize {
        self.strings.len()
    }

    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.strings.iter()
    }
}

impl std::ops::Index<usize> for Texts {
    type Output = str;

    fn index(&self, i: usize) -> &str {
        &self.strings[i]
    }
}

impl std::fmt::Debug for Texts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Texts({} strings)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_text_and_refuses_duplicates() {
        let strings: Strings = ["a", "bb", "", "ccc", "é"].into_iter().collect();
        let texts = Texts::new(strings).unwrap();
        for (i, s) in ["a", "bb", "", "ccc", "é"].iter().enumerate() {
            assert_eq!(texts.id(s), Some(i as u32));
            assert_eq!(&texts[i], *s);
        }
        assert_eq!(texts.id("b"), None);
        let dup: Strings = ["x", "y", "x"].into_iter().collect();
        assert_eq!(Texts::new(dup).err(), Some((0, 2)));
    }
}
