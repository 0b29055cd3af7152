//! Giving freed memory back to the system. glibc's malloc keeps what a
//! burst freed in its heaps for reuse and hands back only a heap's free
//! top, which one live allocation above it pins: after 5,000 SSE streams
//! closed, 65 MiB stayed resident for good although jobd held none of it
//! (`malloc_trim` brought the process back to its baseline).
//! `malloc_trim(0)` also releases the free pages inside the heaps, so one
//! thread per process calls it every [`TRIM_INTERVAL`]; a call costs well
//! under a millisecond when there is little to give back, about 16 ms when
//! it returns those 65 MiB. Jemalloc with background purging also gave the
//! memory back, but held more at baseline and, for large listings, at peak
//! (README, "Memory after a burst"). Other C libraries have no
//! `malloc_trim`: there this does nothing.

use std::sync::Once;
use std::time::Duration;

/// How often freed memory is handed back.
pub(crate) const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Starts the trimming thread, once per process, for the process's life.
pub(crate) fn spawn_trimmer() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            let started = std::thread::Builder::new()
                .name("jobd-malloc-trim".into())
                .stack_size(64 * 1024)
                .spawn(|| {
                    loop {
                        std::thread::sleep(TRIM_INTERVAL);
                        // SAFETY: malloc_trim has no preconditions; it takes
                        // the allocator's own locks.
                        unsafe { libc::malloc_trim(0) };
                    }
                });
            if let Err(e) = started {
                tracing::warn!(error = %e, "cannot start the malloc_trim thread; freed memory stays with the allocator");
            }
        }
    });
}
