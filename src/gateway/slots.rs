//! A bounded number of slots (open event streams, running searches) of which one token's subject
//! may hold at most half: one client cannot take every slot from the others.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct Slots {
    total: Arc<Semaphore>,
    per_holder: usize,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is taken.
    Full,
    /// This holder has its share (`per_holder`) already.
    HolderFull { per_holder: usize },
}

/// A slot, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    holder: String,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

impl Slots {
    pub fn new(total: usize) -> Self {
        Self { total: Arc::new(Semaphore::new(total)), per_holder: total.div_ceil(2).max(1), held: Arc::default() }
    }

    pub fn take(&self, holder: &str) -> Result<Slot, Refusal> {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = held.get(holder).copied().unwrap_or(0);
        if mine >= self.per_holder {
            return Err(Refusal::HolderFull { per_holder: self.per_holder });
        }
        let permit = self.total.clone().try_acquire_owned().map_err(|_| Refusal::Full)?;
        held.insert(holder.to_owned(), mine + 1);
        Ok(Slot { _permit: permit, holder: holder.to_owned(), held: self.held.clone() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.holder) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.holder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_takes_at_most_half_and_a_returned_slot_is_free_again() {
        let slots = Slots::new(4);
        let first = slots.take("a").unwrap();
        let _second = slots.take("a").unwrap();
        assert_eq!(slots.take("a").unwrap_err(), Refusal::HolderFull { per_holder: 2 });
        let _third = slots.take("b").unwrap();
        let _fourth = slots.take("c").unwrap();
        assert_eq!(slots.take("d").unwrap_err(), Refusal::Full);
        drop(first);
        assert!(slots.take("a").is_ok());
        assert_eq!(Slots::new(1).take("a").map(|_| ()), Ok(()), "a single slot is anyone's");
    }
}
