//! Bulkheads: each provider has at most its `max_in_flight` sends (and
//! status callbacks) running at once, so a provider that answers slowly, or
//! not at all, holds only its own slots and never another provider's.
//!
//! A bulkhead lives as long as the process, keyed by provider name; its
//! limit follows the config a send runs under, so a reload changes it for
//! the next send while the sends in flight keep their slots.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Every provider's bulkhead.
#[derive(Default)]
pub struct Bulkheads {
    by_provider: Mutex<HashMap<String, Arc<Bulkhead>>>,
}

struct Bulkhead {
    slots: Arc<Semaphore>,
    limit: Mutex<Limit>,
}

struct Limit {
    limit: u32,
    /// Slots still to be taken away after a lowered limit: each is retired
    /// when a send in flight gives it back.
    owed: u32,
}

/// One slot in a provider's bulkhead, given back when dropped.
pub struct Slot {
    bulkhead: Arc<Bulkhead>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut limit = self.bulkhead.limit.lock().unwrap();
        if limit.owed > 0
            && let Some(permit) = self.permit.take()
        {
            limit.owed -= 1;
            permit.forget();
        }
    }
}

/// How long a send may wait for a slot.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// Not at all: there is another provider to try.
    No,
    /// Until this instant.
    Until(Instant),
}

impl Bulkheads {
    /// A slot at `provider`, whose limit is now `limit`; `None` if none came
    /// free within `wait`.
    pub async fn enter(&self, provider: &str, limit: u32, wait: Wait) -> Option<Slot> {
        let bulkhead = self.of(provider, limit);
        let permit = match wait {
            Wait::No => bulkhead.slots.clone().try_acquire_owned().ok()?,
            Wait::Until(at) => tokio::time::timeout_at(at, bulkhead.slots.clone().acquire_owned()).await.ok()?.ok()?,
        };
        Some(Slot { bulkhead, permit: Some(permit) })
    }

    /// Sends in flight at `provider`.
    pub fn in_flight(&self, provider: &str) -> u32 {
        let Some(b) = self.by_provider.lock().unwrap().get(provider).cloned() else { return 0 };
        let limit = b.limit.lock().unwrap();
        (limit.limit + limit.owed).saturating_sub(b.slots.available_permits() as u32)
    }

    /// `provider`'s bulkhead, made or brought to `limit`.
    fn of(&self, provider: &str, limit: u32) -> Arc<Bulkhead> {
        let bulkhead = {
            let mut map = self.by_provider.lock().unwrap();
            match map.get(provider) {
                Some(b) => b.clone(),
                None => {
                    let b = Arc::new(Bulkhead {
                        slots: Arc::new(Semaphore::new(limit as usize)),
                        limit: Mutex::new(Limit { limit, owed: 0 }),
                    });
                    map.insert(provider.to_string(), b.clone());
                    return b;
                }
            }
        };
        bulkhead.set_limit(limit);
        bulkhead
    }
}

impl Bulkhead {
    fn set_limit(&self, new: u32) {
        let mut l = self.limit.lock().unwrap();
        if new > l.limit {
            let raise = new - l.limit;
            // Cancel slots still owed before adding any.
            let cancelled = raise.min(l.owed);
            l.owed -= cancelled;
            self.slots.add_permits((raise - cancelled) as usize);
        } else if new < l.limit {
            let cut = l.limit - new;
            let free = self.slots.forget_permits(cut as usize) as u32;
            l.owed += cut - free;
        }
        l.limit = new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn fill(b: &Bulkheads, limit: u32) -> Vec<Slot> {
        let mut held = Vec::new();
        while let Some(slot) = b.enter("p", limit, Wait::No).await {
            held.push(slot);
            assert!(held.len() <= 1000, "a bulkhead has a bound");
        }
        held
    }

    #[tokio::test]
    async fn a_full_provider_turns_away_sends_that_may_not_wait_and_lets_others_in() {
        let b = Bulkheads::default();
        let held = fill(&b, 3).await;
        assert_eq!(held.len(), 3);
        assert_eq!(b.in_flight("p"), 3);
        assert!(b.enter("other", 3, Wait::No).await.is_some(), "another provider has its own slots");
        drop(held);
        assert_eq!(b.in_flight("p"), 0);
        assert!(b.enter("p", 3, Wait::No).await.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_send_gets_the_first_slot_given_back_or_gives_up_at_its_deadline() {
        let b = Arc::new(Bulkheads::default());
        let mut held = fill(&b, 1).await;
        let soon = Instant::now() + Duration::from_secs(1);
        assert!(b.enter("p", 1, Wait::Until(soon)).await.is_none());
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.enter("p", 1, Wait::Until(Instant::now() + Duration::from_secs(5))).await })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        held.clear();
        assert!(waiter.await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_reloaded_limit_applies_to_the_next_send_and_in_flight_sends_keep_their_slots() {
        let b = Bulkheads::default();
        let mut held = fill(&b, 4).await;
        assert_eq!(held.len(), 4);
        // Lowered to 2 while 4 are in flight: none more until 2 have left.
        assert!(b.enter("p", 2, Wait::No).await.is_none());
        held.truncate(2);
        assert!(b.enter("p", 2, Wait::No).await.is_none());
        held.truncate(1);
        let one = b.enter("p", 2, Wait::No).await;
        assert!(one.is_some());
        assert!(b.enter("p", 2, Wait::No).await.is_none());
        drop((held, one));
        assert_eq!(fill(&b, 2).await.len(), 2);
        // Raised: room at once.
        assert_eq!(fill(&b, 6).await.len(), 6);
        // Lowered, then raised again before the owed slots came back.
        let held = fill(&b, 6).await;
        assert!(b.enter("p", 3, Wait::No).await.is_none());
        assert!(b.enter("p", 5, Wait::No).await.is_none());
        drop(held);
        assert_eq!(fill(&b, 5).await.len(), 5);
    }
}
