//! CPU-heavy reading work — parsing, canonical checks and SHA-256 over
//! whole logs — on threads of its own at a lower scheduling priority.
//!
//! A verification of a large log keeps every core busy for seconds. On the
//! tokio blocking pool at normal priority it competes as an equal with the
//! async threads that answer `/health` and take events, and their latency
//! becomes the kernel's time slice. At nice +19 the kernel runs the async
//! threads first whenever they are ready, and the verification takes what
//! is left — all of it on an idle machine, about 1.5 % of a core beside a
//! thread that never sleeps. (+10 left `/health`'s p99 over 5× its
//! idle value in 3 of 6 rounds of `health_under_load`, +19 in 3 of 12:
//! docs/BENCHMARKS.md.) Dedicated threads, not the
//! pool's: a pool thread would keep the lowered priority for whatever it
//! runs next (a write's `fsync`, say), and an unprivileged process cannot
//! raise it back.
//!
//! That yielding is for a process with threads to protect. A one-shot
//! command (`agenttrace-audit export`, `verify`) has none: there the
//! heavy threads *are* the work, and at nice +19 on a machine with other
//! load the helper threads starve while the calling thread waits to join
//! them, so a two-core export ran on one core. Such a process calls
//! [`set_heavy_read_priority`] with [`HeavyReadPriority::Same`] once, at
//! start.

use std::sync::atomic::{AtomicBool, Ordering};

use audit_storage::{StorageError, StorageErrorKind};

/// How much nicer than their creator the threads doing heavy reads are
/// (nice values run from -20, first, to 19, last).
const HEAVY_NICE: i32 = 19;

/// Where this process's heavy reads run against its other threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeavyReadPriority {
    /// Below every other thread of the process (nice +19): for a server,
    /// or an application embedding the service, whose other threads must
    /// keep answering. The default.
    #[default]
    Yield,
    /// At the priority of the thread that starts them: for a one-shot
    /// command whose heavy reads are all it does.
    Same,
}

/// Set when the process chose [`HeavyReadPriority::Same`]. The choice is
/// the process's (a server or a command), not any one read's, so it is
/// made once rather than passed through every reading function.
static SAME_PRIORITY: AtomicBool = AtomicBool::new(false);

/// Chooses where this process's heavy reads run from now on.
pub fn set_heavy_read_priority(priority: HeavyReadPriority) {
    SAME_PRIORITY.store(priority == HeavyReadPriority::Same, Ordering::Relaxed);
}

/// Where this process's heavy reads run.
pub(crate) fn heavy_read_priority() -> HeavyReadPriority {
    if SAME_PRIORITY.load(Ordering::Relaxed) { HeavyReadPriority::Same } else { HeavyReadPriority::Yield }
}

/// Lowers the calling thread's priority by [`HEAVY_NICE`] when the process
/// yields its heavy reads (Linux: the nice value is per thread). Best
/// effort: where it cannot be changed, the work simply runs at the
/// priority it had.
pub(crate) fn lower_this_threads_priority() {
    lower_this_threads_priority_for(heavy_read_priority());
}

fn lower_this_threads_priority_for(priority: HeavyReadPriority) {
    #[cfg(target_os = "linux")]
    if priority == HeavyReadPriority::Yield
        && let Ok(now) = rustix::process::getpriority_process(None)
    {
        let _ = rustix::process::setpriority_process(None, (now + HEAVY_NICE).min(19));
    }
}

/// Runs `work` on a new low-priority thread and waits for its result
/// without blocking the async thread that awaits it.
pub(crate) async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, StorageError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("audit-heavy-read".into())
        .spawn(move || {
            lower_this_threads_priority();
            let _ = tx.send(work());
        })
        .map_err(|e| StorageError::new(StorageErrorKind::Io, format!("cannot start a verification thread: {e}")))?;
    rx.await.map_err(|_| StorageError::new(StorageErrorKind::Unexpected, "a verification thread panicked"))
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn heavy_work_runs_below_the_callers_priority_and_leaves_the_caller_alone() {
        let caller = rustix::process::getpriority_process(None).unwrap();
        let inside = super::run(|| rustix::process::getpriority_process(None).unwrap()).await.unwrap();
        assert_eq!(inside, (caller + super::HEAVY_NICE).min(19), "the heavy thread is niced");
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), caller, "the caller keeps its priority");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_that_chose_the_same_priority_keeps_it_on_its_heavy_threads() {
        // The process-wide switch is left alone (tests share the process):
        // the per-choice step beneath it is what is checked.
        let caller = rustix::process::getpriority_process(None).unwrap();
        let inside = std::thread::spawn(|| {
            super::lower_this_threads_priority_for(super::HeavyReadPriority::Same);
            rustix::process::getpriority_process(None).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(inside, caller, "no lowering when the process chose the same priority");
        let yielded = std::thread::spawn(|| {
            super::lower_this_threads_priority_for(super::HeavyReadPriority::Yield);
            rustix::process::getpriority_process(None).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(yielded, (caller + super::HEAVY_NICE).min(19));
    }
}
