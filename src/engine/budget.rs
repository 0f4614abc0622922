//! What a job may spend on outside model calls: a time budget from its first call, a per-call
//! timeout, the worker-wide bound on calls in flight, and the job's stop token. Once the budget is
//! spent or the job is stopped, further calls are refused at once and the planner uses the
//! extractive text (or the centroid) instead.
//!
//! Each attempt runs on a thread of its own while the caller waits in short slices, so a stop
//! lands within a slice even while an endpoint never answers; an abandoned attempt ends at its
//! own timeout and holds its place in the worker's bound until then.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::domain::ModelUsage;

/// How often a waiting caller looks at the stop token and the budget.
const SLICE: Duration = Duration::from_millis(50);
/// Room an attempt's thread gets past its own timeout before the caller stops waiting for it.
const MARGIN: Duration = Duration::from_secs(1);

/// Why a call was not made, or not waited for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the job was stopped")]
    Stopped,
    #[error("the job's model budget of {} s is spent", .0.as_secs_f64())]
    Spent(Duration),
    #[error("no answer within {0} ms")]
    TimedOut(u128),
    #[error("could not start the call: {0}")]
    Thread(String),
}

/// The worker-wide bound on outside calls in flight, shared by every job's clients.
#[derive(Debug)]
pub struct Gate {
    size: usize,
    free: Mutex<usize>,
    freed: Condvar,
}

impl Gate {
    pub fn new(size: usize) -> Arc<Gate> {
        let size = size.max(1);
        Arc::new(Gate { size, free: Mutex::new(size), freed: Condvar::new() })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// One place, waiting in slices until `give_up` says to stop.
    fn enter(self: &Arc<Self>, give_up: impl Fn() -> Result<(), Refusal>) -> Result<Permit, Refusal> {
        let mut free = self.free.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            give_up()?;
            if *free > 0 {
                *free -= 1;
                return Ok(Permit(self.clone()));
            }
            free = self.freed.wait_timeout(free, SLICE).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
    }
}

/// A place in the gate, given back when dropped (by the attempt's thread, when it ends).
pub struct Permit(Arc<Gate>);

impl Drop for Permit {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// One job's allowance, shared by its synthesizer and embedder clients.
#[derive(Debug)]
pub struct JobBudget {
    /// None: no limit (a client used outside a job).
    budget: Option<Duration>,
    gate: Arc<Gate>,
    stop: CancellationToken,
    first_call: OnceLock<Instant>,
    spent: AtomicBool,
    fallbacks: AtomicU64,
}

impl JobBudget {
    pub fn new(budget: Duration, gate: Arc<Gate>, stop: CancellationToken) -> Arc<JobBudget> {
        JobBudget::with(Some(budget), gate, stop)
    }

    /// No budget and no stop, at most `concurrency` calls at once.
    pub fn unlimited(concurrency: usize) -> Arc<JobBudget> {
        JobBudget::with(None, Gate::new(concurrency), CancellationToken::new())
    }

    fn with(budget: Option<Duration>, gate: Arc<Gate>, stop: CancellationToken) -> Arc<JobBudget> {
        Arc::new(JobBudget {
            budget,
            gate,
            stop,
            first_call: OnceLock::new(),
            spent: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// Calls this job's clients may have in flight at once (the worker's bound).
    pub fn concurrency(&self) -> usize {
        self.gate.size()
    }

    /// The time the next attempt may take (at most `call_timeout`), or why there is none.
    fn next_attempt(&self, call_timeout: Duration) -> Result<Duration, Refusal> {
        if self.stop.is_cancelled() {
            return Err(Refusal::Stopped);
        }
        let Some(budget) = self.budget else { return Ok(call_timeout) };
        let first = *self.first_call.get_or_init(Instant::now);
        let left = budget.saturating_sub(first.elapsed());
        if left.is_zero() {
            self.spent.store(true, Ordering::Relaxed);
            return Err(Refusal::Spent(budget));
        }
        Ok(left.min(call_timeout))
    }

    /// Still worth waiting: not stopped, budget not spent.
    fn going_on(&self) -> Result<(), Refusal> {
        self.next_attempt(Duration::MAX).map(|_| ())
    }

    /// Runs `call` with the time it may take, on a thread of its own, once the gate admits it;
    /// returns as soon as the job is stopped or its budget is spent, whether or not it answered.
    pub fn call<T: Send + 'static>(
        &self,
        call_timeout: Duration,
        call: impl FnOnce(Duration) -> T + Send + 'static,
    ) -> Result<T, Refusal> {
        let permit = self.gate.enter(|| self.going_on())?;
        let timeout = self.next_attempt(call_timeout)?;
        let (answer, answered) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("model-call".to_owned())
            .spawn(move || {
                let value = call(timeout);
                drop(permit);
                let _ = answer.send(value);
            })
            .map_err(|error| Refusal::Thread(error.to_string()))?;
        let give_up = Instant::now() + timeout + MARGIN;
        loop {
            match answered.recv_timeout(SLICE) {
                Ok(value) => return Ok(value),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Refusal::Thread("the call panicked".into())),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.going_on()?;
                    if Instant::now() >= give_up {
                        return Err(Refusal::TimedOut(timeout.as_millis()));
                    }
                }
            }
        }
    }

    /// Waits `delay` (a retry's backoff) unless the job is stopped or the budget runs out first.
    pub fn pause(&self, delay: Duration) -> Result<(), Refusal> {
        let until = Instant::now() + delay;
        loop {
            self.going_on()?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            std::thread::sleep(SLICE.min(until - now));
        }
    }

    /// A text used the offline result because its model call failed or was refused.
    pub fn fell_back(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Texts that fell back, and whether the budget ran out (the clients count calls and tokens).
    pub fn usage(&self) -> ModelUsage {
        ModelUsage {
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            budget_spent: self.spent.load(Ordering::Relaxed),
            ..ModelUsage::default()
        }
    }

    /// The plan's warning once the budget ran out.
    pub fn spent_warning(&self, fallbacks: u64) -> String {
        let budget = self.budget.map_or(0.0, |b| b.as_secs_f64());
        format!(
            "model budget of {budget} s spent (MODEL_JOB_BUDGET_SECS); texts that used the extractive text or \
             the centroid instead of the model: {fallbacks}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: Duration) {
        std::thread::sleep(Duration::from_secs(600));
    }

    #[test]
    fn a_call_that_never_answers_gives_up_at_its_timeout_and_frees_the_caller() {
        let budget = JobBudget::unlimited(2);
        let started = Instant::now();
        assert_eq!(budget.call(Duration::from_millis(200), never), Err(Refusal::TimedOut(200)));
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn the_budget_bounds_every_call_and_once_spent_refuses_at_once() {
        let budget = JobBudget::new(Duration::from_millis(300), Gate::new(2), CancellationToken::new());
        let granted = budget.call(Duration::from_secs(30), |timeout| timeout).unwrap();
        assert!(granted <= Duration::from_millis(300), "the attempt gets what is left of the budget: {granted:?}");
        let started = Instant::now();
        assert_eq!(budget.call(Duration::from_secs(30), never), Err(Refusal::Spent(Duration::from_millis(300))));
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        let started = Instant::now();
        assert_eq!(budget.call(Duration::from_secs(30), |_| ()), Err(Refusal::Spent(Duration::from_millis(300))));
        assert!(started.elapsed() < Duration::from_millis(500), "refused without waiting");
        let usage = budget.usage();
        assert!(usage.budget_spent && usage.fallbacks == 0, "{usage:?}");
        assert!(budget.spent_warning(3).contains("budget of 0.3 s spent"), "{}", budget.spent_warning(3));
    }

    #[test]
    fn a_stop_ends_a_waiting_call_and_a_backoff_within_a_slice() {
        let stop = CancellationToken::new();
        let budget = JobBudget::new(Duration::from_secs(600), Gate::new(1), stop.clone());
        let stopper = std::thread::spawn({
            let stop = stop.clone();
            move || {
                std::thread::sleep(Duration::from_millis(300));
                stop.cancel();
            }
        });
        let started = Instant::now();
        assert_eq!(budget.call(Duration::from_secs(60), never), Err(Refusal::Stopped));
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(budget.pause(Duration::from_secs(60)), Err(Refusal::Stopped));
        stopper.join().unwrap();
    }

    #[test]
    fn the_gate_bounds_calls_in_flight_across_jobs() {
        let gate = Gate::new(1);
        let first = JobBudget::new(Duration::from_secs(600), gate.clone(), CancellationToken::new());
        let (release, hold) = mpsc::channel::<()>();
        // The first job's call holds the only place until told to end.
        let holder = std::thread::spawn(move || first.call(Duration::from_secs(30), move |_| hold.recv().ok()));
        while *gate.free.lock().unwrap() > 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stop = CancellationToken::new();
        let second = JobBudget::new(Duration::from_secs(600), gate.clone(), stop.clone());
        let waiting = std::thread::spawn(move || second.call(Duration::from_secs(30), |_| "second"));
        std::thread::sleep(Duration::from_millis(200));
        assert!(!waiting.is_finished(), "the second call waits for the place");
        release.send(()).unwrap();
        assert_eq!(waiting.join().unwrap(), Ok("second"));
        assert_eq!(holder.join().unwrap(), Ok(Some(())));
        assert_eq!(*gate.free.lock().unwrap(), 1, "every place is given back");
        drop(stop);
    }
}
