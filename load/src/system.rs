//! What Linux tells about processes and the machine: a process's memory and CPU time from `/proc`,
//! the open-file limit, and the facts a benchmark result is stamped with.

use std::{fs, io, time::Instant};

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use serde::{Deserialize, Serialize};

/// Which process to read: the generator itself, or another one by pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// The generator.
    Myself,
    /// Another process, such as the server under load.
    Pid(u32),
}

impl Process {
    fn proc_path(self, file: &str) -> String {
        match self {
            Process::Myself => format!("/proc/self/{file}"),
            Process::Pid(pid) => format!("/proc/{pid}/{file}"),
        }
    }

    /// Resident memory in bytes (`VmRSS` of `/proc/PID/status`).
    pub fn rss_bytes(self) -> io::Result<u64> {
        let status = fs::read_to_string(self.proc_path("status"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .ok_or_else(|| io::Error::other("no VmRSS line in /proc/PID/status"))
    }

    /// CPU time used so far, user and system, in clock ticks (fields 14 and 15 of
    /// `/proc/PID/stat`, counted after the command name, which may contain spaces).
    pub fn cpu_ticks(self) -> io::Result<u64> {
        let stat = fs::read_to_string(self.proc_path("stat"))?;
        let after_name = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .ok_or_else(|| io::Error::other("unexpected /proc/PID/stat"))?;
        // After the name: state (field 3), ..., utime (14), stime (15).
        let mut fields = after_name.split_whitespace().skip(11);
        let mut next = || -> io::Result<u64> {
            fields
                .next()
                .and_then(|field| field.parse().ok())
                .ok_or_else(|| io::Error::other("unexpected /proc/PID/stat"))
        };
        Ok(next()? + next()?)
    }

    /// The soft limit on open files (`Max open files` in `/proc/PID/limits`); `None` if unlimited
    /// or unreadable.
    pub fn open_file_limit(self) -> Option<u64> {
        let limits = fs::read_to_string(self.proc_path("limits")).ok()?;
        let line = limits
            .lines()
            .find(|line| line.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse().ok()
    }
}

/// Clock ticks per second, the unit of `/proc/PID/stat` times (100 on Linux, asked anyway).
pub fn ticks_per_second() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        _ => 100.0,
    }
}

/// The machine's CPU time so far, from the first line of `/proc/stat`: (busy, total) ticks, all
/// cores together. Idle and iowait are not busy.
pub fn machine_ticks() -> io::Result<(u64, u64)> {
    parse_machine_ticks(&fs::read_to_string("/proc/stat")?)
}

/// The (busy, total) ticks in the text of `/proc/stat`.
fn parse_machine_ticks(stat: &str) -> io::Result<(u64, u64)> {
    let line = stat
        .lines()
        .next()
        .filter(|line| line.starts_with("cpu "))
        .ok_or_else(|| io::Error::other("unexpected /proc/stat"))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest times are already in user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Ok((total.saturating_sub(idle), total))
}

/// A starting point for measuring how much CPU a process (and the machine) used over a period.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    at: Instant,
    process_ticks: Option<u64>,
    machine: Option<(u64, u64)>,
}

impl CpuMark {
    /// Marks now, for `process`.
    pub fn now(process: Process) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            process_ticks: process.cpu_ticks().ok(),
            machine: machine_ticks().ok(),
        }
    }

    /// The cores `process` used on average since this mark (1.0 = one core all the time).
    pub fn cores_used(&self, process: Process) -> Option<f64> {
        let ticks = process.cpu_ticks().ok()?.checked_sub(self.process_ticks?)?;
        let seconds = self.at.elapsed().as_secs_f64();
        (seconds > 0.0).then(|| ticks as f64 / ticks_per_second() / seconds)
    }

    /// How busy the whole machine was since this mark, from 0 (idle) to 1 (every core busy).
    pub fn machine_busy(&self) -> Option<f64> {
        let (busy_then, total_then) = self.machine?;
        let (busy, total) = machine_ticks().ok()?;
        let total = total.checked_sub(total_then)?;
        (total > 0).then(|| busy.saturating_sub(busy_then) as f64 / total as f64)
    }
}

/// The generator's open-file limit after trying to make room for a run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileLimit {
    /// The soft limit in force now.
    pub soft: u64,
    /// The hard limit, which only root can raise.
    pub hard: u64,
    /// Files the run needs.
    pub needed: u64,
}

impl FileLimit {
    /// Whether the run fits.
    pub fn enough(&self) -> bool {
        self.soft >= self.needed
    }
}

/// Makes sure this process may open `needed` files: raises the soft `RLIMIT_NOFILE` towards the
/// hard one when it is lower (no privilege needed for that). Child processes started afterwards
/// inherit the raised limit. Says what it got; the caller tells the user when it is not enough.
pub fn raise_open_file_limit(needed: u64) -> io::Result<FileLimit> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    let mut limit = FileLimit { soft, hard, needed };
    if soft < needed {
        let wanted = needed.min(hard).max(soft);
        setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).map_err(io::Error::from)?;
        limit.soft = wanted;
    }
    Ok(limit)
}

/// The machine a benchmark ran on, as a results file records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    /// The CPU model (`model name` of `/proc/cpuinfo`).
    pub cpu: String,
    /// Cores this process may use.
    pub cores: usize,
    /// Memory, in bytes (`MemTotal`).
    pub memory_bytes: u64,
    /// The kernel release.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// The load averages over 1, 5 and 15 minutes when the run started: other work on the machine
    /// shows here.
    pub load_average: String,
}

impl Machine {
    /// Reads the facts; what cannot be read says `unknown`.
    pub fn describe() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let rustc = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
        Machine {
            cpu: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_bytes: field(&meminfo, "MemTotal")
                .and_then(|kib| kib.trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kib| kib * 1024),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".into(), |text| text.trim().to_string()),
            rustc: rustc
                .filter(|text| !text.is_empty())
                .unwrap_or_else(|| "unknown".into()),
            load_average: fs::read_to_string("/proc/loadavg")
                .map(|text| {
                    text.split_whitespace()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_else(|_| "unknown".into()),
        }
    }
}

/// The value of `key: value` in a `/proc` text file.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim() == key)
        .map(|(_, value)| value.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator can read its own memory and CPU time, as it reads a server's.
    #[test]
    fn a_process_reports_its_memory_and_cpu_time() {
        let rss = Process::Myself
            .rss_bytes()
            .expect("reading /proc/self/status");
        assert!(
            rss > 1 << 20,
            "a running test process holds more than 1 MiB, got {rss}"
        );
        let mark = CpuMark::now(Process::Myself);
        let ticks = Process::Myself
            .cpu_ticks()
            .expect("reading /proc/self/stat");
        // Spin until the kernel has charged this process two more ticks (bounded, in case the
        // machine is so busy that it never gets them).
        let started = Instant::now();
        let mut spin = 0u64;
        while Process::Myself.cpu_ticks().is_ok_and(|now| now < ticks + 2)
            && started.elapsed().as_secs() < 10
        {
            spin = spin.wrapping_add(1);
        }
        let cores = mark
            .cores_used(Process::Myself)
            .expect("reading /proc/self/stat");
        assert!(
            cores > 0.0,
            "spinning should show as CPU time (spun {spin} times)"
        );
        // Some sandboxes (CI among them) hide or freeze `/proc/stat`; the generator then reports
        // no machine figure rather than a wrong one, which is what `None` means here.
        if let Some(busy) = mark.machine_busy() {
            assert!((0.0..=1.0).contains(&busy), "busy is a fraction: {busy}");
        }
    }

    /// The machine's busy and total ticks come from the first line of `/proc/stat`, with idle
    /// and iowait counted as not busy; anything else is an error, not a guess.
    #[test]
    fn machine_ticks_are_read_from_the_cpu_line() {
        let stat = "cpu  100 5 50 800 20 3 2 1 0 0\ncpu0 50 2 25 400 10 1 1 0 0 0\n";
        assert_eq!(
            parse_machine_ticks(stat).expect("a well-formed /proc/stat"),
            (161, 981),
            "busy = user+nice+system+irq+softirq+steal, total adds idle and iowait"
        );
        assert!(
            parse_machine_ticks("intr 1 2 3\n").is_err(),
            "a file without the cpu line is refused"
        );
    }

    /// Asking for no more files than the limit allows leaves the limit as it is.
    #[test]
    fn a_limit_already_high_enough_is_left_alone() {
        let limit = raise_open_file_limit(16).expect("reading RLIMIT_NOFILE");
        assert!(limit.enough(), "{limit:?}");
        assert_eq!(
            Some(limit.soft),
            Process::Myself.open_file_limit(),
            "the limit read back from /proc"
        );
    }

    /// The machine description has the facts a results file needs.
    #[test]
    fn the_machine_is_described() {
        let machine = Machine::describe();
        assert!(machine.cores >= 1);
        assert!(machine.memory_bytes > 0, "{machine:?}");
        assert_ne!(machine.kernel, "unknown", "{machine:?}");
    }
}
