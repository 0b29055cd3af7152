//! This process's CPU and memory use, for `/queue/stats`.

use std::sync::Mutex;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Samples this process's CPU and memory use.
pub struct ProcessMonitor {
    system: Option<Mutex<System>>,
    pid: Option<Pid>,
}

impl ProcessMonitor {
    /// A monitor of the current process.
    pub fn new() -> ProcessMonitor {
        ProcessMonitor {
            system: System::new().ok().map(Mutex::new),
            pid: sysinfo::get_current_pid().ok(),
        }
    }

    /// CPU percent since the last sample, and resident MiB.
    pub fn sample(&self) -> (f64, f64) {
        let (Some(pid), Some(system)) = (self.pid, self.system.as_ref()) else {
            return (0.0, 0.0);
        };
        let mut system = system
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        match system.process(pid) {
            Some(process) => (
                (process.cpu_usage() as f64 * 10.0).round() / 10.0,
                (process.memory() as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0,
            ),
            None => (0.0, 0.0),
        }
    }
}

impl Default for ProcessMonitor {
    fn default() -> ProcessMonitor {
        ProcessMonitor::new()
    }
}
