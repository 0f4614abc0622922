//! Where the stages that may call an outside model run their units (a merge, a topic): on the
//! compute pool when every model they use is offline; otherwise on that many plain threads, so
//! that a unit waiting on an endpoint never holds a compute thread other jobs need. Units not
//! started when the job is stopped are skipped.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use tokio_util::sync::CancellationToken;

/// `f` of each item, in order; `None` for the items skipped after `stop`.
pub fn map_units<T: Sync, R: Send>(
    items: &[T],
    outside_calls: Option<usize>,
    stop: &CancellationToken,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<Option<R>> {
    let unit = |item: &T| (!stop.is_cancelled()).then(|| f(item));
    let Some(threads) = outside_calls else { return items.par_iter().map(unit).collect() };
    // The caller's span (the job's), so what a unit logs names the job.
    let span = tracing::Span::current();
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, Option<R>)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                let _job = span.enter();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { return };
                    let result = unit(item);
                    done.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((i, result));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_keep_their_order_on_either_kind_of_thread() {
        let items: Vec<u32> = (0..100).collect();
        let stop = CancellationToken::new();
        let on_pool = map_units(&items, None, &stop, |x| x * 2);
        let off_pool = map_units(&items, Some(3), &stop, |x| x * 2);
        assert_eq!(on_pool, off_pool);
        assert_eq!(off_pool[99], Some(198));
    }

    #[test]
    fn outside_calls_run_on_plain_threads_and_not_on_the_pool() {
        let items = vec![(); 8];
        let stop = CancellationToken::new();
        let off_pool = map_units(&items, Some(2), &stop, |_| rayon::current_thread_index());
        assert!(off_pool.iter().all(|index| *index == Some(None)), "{off_pool:?}");
    }

    #[test]
    fn units_after_a_stop_are_skipped() {
        let items: Vec<u32> = (0..50).collect();
        let stop = CancellationToken::new();
        let results = map_units(&items, Some(1), &stop, |x| {
            if *x == 9 {
                stop.cancel();
            }
            *x
        });
        assert_eq!(results.iter().flatten().count(), 10, "one thread: units 0..=9 ran, the rest were skipped");
    }
}
