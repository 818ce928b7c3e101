//! A loaded host on demand (`bootlab bench --load N`): N CPU-bound worker processes
//! that the harness starts once, lets run (SIGCONT) during the loaded pass of each
//! round and stops (SIGSTOP) during the quiet one, and kills and reaps when the
//! session ends, also on an error or a panic (drop). Each worker also asks the
//! kernel for SIGKILL when the harness dies ([`worker`]), so none outlives it.

use std::ffi::OsString;
use std::process::{Child, Command, Stdio};

/// The command line of one worker: the program and its arguments (the harness adds
/// nothing). `bootlab load-worker --parent PID` in the CLI.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub workers: u32,
    pub command: Vec<OsString>,
}

/// Running workers (stopped or running); killed and reaped on drop.
#[derive(Debug)]
pub struct Load {
    children: Vec<Child>,
}

fn signal(child: &Child, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) on a child of ours that has not been reaped yet (we reap only
    // in `drop`), so the pid cannot have been reused.
    unsafe { libc::kill(pid, sig) };
}

impl Load {
    /// Starts `spec.workers` workers and stops them at once (quiet until
    /// [`Load::run`]).
    pub fn start(spec: &LoadSpec) -> std::io::Result<Load> {
        let mut load = Load {
            children: Vec::new(),
        };
        let Some((program, args)) = spec.command.split_first() else {
            return Ok(load);
        };
        for _ in 0..spec.workers {
            use std::os::unix::process::CommandExt;
            let mut command = Command::new(program);
            command
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                // Its own process group: the terminal's Ctrl-C goes to the harness,
                // which stops the session and kills the workers itself.
                .process_group(0);
            // SAFETY: the closure runs in the forked child before execve and makes
            // only prctl(2), which is async-signal-safe and touches no memory of
            // ours. The death signal is asked for here, before execve (which keeps
            // it), and not only in the worker: `pause` stops a worker right after
            // spawn, possibly before its own prctl ran, and a harness killed then
            // left that worker stopped for good.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
            let child = command.spawn()?;
            load.children.push(child);
        }
        load.pause();
        Ok(load)
    }

    /// Lets the workers run.
    pub fn run(&self) {
        for c in &self.children {
            signal(c, libc::SIGCONT);
        }
    }

    /// Stops the workers (SIGSTOP): they use no CPU until [`Load::run`].
    pub fn pause(&self) {
        for c in &self.children {
            signal(c, libc::SIGSTOP);
        }
    }

    /// The workers' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// CPU time the workers used so far (user + system), ms, from /proc.
    pub fn cpu_ms(&self) -> u64 {
        // SAFETY: sysconf has no memory effects.
        let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
            .unwrap_or(100)
            .max(1);
        self.children
            .iter()
            .filter_map(|c| std::fs::read_to_string(format!("/proc/{}/stat", c.id())).ok())
            .filter_map(|stat| cpu_ticks(&stat))
            .map(|ticks| ticks * 1000 / hz)
            .sum()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.children {
            // A stopped process dies of SIGKILL all the same.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line, in clock ticks. The
/// command name (field 2) may hold spaces and parentheses: fields are counted after
/// its last `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The 1, 5 and 15 minute load averages of /proc/loadavg, as written there.
pub fn loadavg() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The body of one worker process: dies with its parent `parent` (PR_SET_PDEATHSIG,
/// then a check that the parent did not exit before that took effect), then spins
/// on the CPU until killed.
pub fn worker(parent: u32) -> ! {
    // SAFETY: prctl(PR_SET_PDEATHSIG) with a signal number and getppid have no
    // memory effects.
    let ppid = unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::getppid()
    };
    if u32::try_from(ppid).ok() != Some(parent) {
        std::process::exit(0);
    }
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_after_the_command_name() {
        // A real line of /proc/PID/stat, with a command name holding ") (".
        let stat = "4242 (a) (b) R 1 4242 4242 0 -1 4194304 87 0 0 0 1234 56 0 0 20 0 1 0 \
                    5000 2000000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        assert_eq!(cpu_ticks(stat), Some(1290));
        assert_eq!(cpu_ticks("garbage"), None);
    }
}
