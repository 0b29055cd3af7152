//! Facts about processes on this machine: its host name (for worker ids
//! and the registry) and whether a registered worker's process is gone.

use crate::store::{Serves, WorkerRecord};

/// This machine's host name.
pub(crate) fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let status = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if status == 0 && !name.is_empty() => name.to_owned(),
        _ => "localhost".to_owned(),
    }
}

/// True when `worker` provably died: it registered from this host and its
/// process no longer exists. A worker of another host, or one whose pid is
/// this process's own (a restarted container reuses pids), cannot be
/// proven dead here; its lease decides.
pub(crate) fn is_dead_here(worker: &WorkerRecord, this_host: &str) -> bool {
    let Ok(pid) = libc::pid_t::try_from(worker.info.pid) else {
        return false;
    };
    // A remote worker names its own host and process: nothing here can
    // check them, so its jobs wait out their leases.
    if matches!(worker.info.serves, Serves::Remote(_))
        || worker.info.host != this_host
        || worker.info.pid == std::process::id()
        || pid <= 0
    {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let status = unsafe { libc::kill(pid, 0) };
    status != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Raises this process's soft limit on open files towards its hard limit
/// (a server holds a descriptor per connection, and the common soft limit
/// of 1,024 is far below what the hard limit allows) and returns the limit
/// in force afterwards. A hard limit of "unlimited" is taken as 1,048,576,
/// the kernel's usual ceiling; if raising fails, the old limit stays.
pub(crate) fn raise_open_file_limit() -> std::io::Result<u64> {
    const CEILING: libc::rlim_t = 1 << 20;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let wanted = limit.rlim_max.min(CEILING);
    if limit.rlim_cur < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit; raising the soft limit up to
        // the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = wanted;
        }
    }
    Ok(limit.rlim_cur)
}
