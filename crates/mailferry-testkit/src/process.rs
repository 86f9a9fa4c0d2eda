//! Processes of the servers a test starts, seen from outside: list a process group's members by
//! name, send them signals, wait for them to end. Crash tests use it to make a server slow on
//! purpose (SIGSTOP the `imap` process serving a session, SIGCONT it later) instead of hoping
//! the machine is slow at the right moment.
//!
//! Design decisions, and why:
//! - **`/proc`, not `ps`**: a process's group and name are fields of `/proc/PID/stat`, read
//!   without spawning anything, so a test can poll it cheaply. Linux only, like the Dovecot
//!   launcher.
//! - **Signals through `kill(1)`**: std has no signal API and the workspace denies
//!   `unsafe_code`, so no libc call.

use std::process::{Command, Stdio};

/// The pid, process group and command name (`comm`) of a running process, from
/// `/proc/PID/stat`; `None` if it is gone or a zombie.
fn stat(pid: u32) -> Option<(i64, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split at the
    // last ')'.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let mut rest = text.get(close + 1..)?.split_whitespace();
    let state = rest.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let _ppid = rest.next()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some((pgrp, comm))
}

/// The live processes of process group `pgrp` whose command name is `name`, in pid order.
pub fn group_members(pgrp: u32, name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat(*pid).is_some_and(|(g, comm)| g == i64::from(pgrp) && comm == name))
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether `pid` is a live process (not gone, not a zombie).
pub fn is_alive(pid: u32) -> bool {
    stat(pid).is_some()
}

/// Sends `signal` (a name such as `"STOP"`, `"CONT"`, `"KILL"`) to `pid`; returns whether
/// `kill(1)` succeeded (it fails when the process is already gone).
pub fn send_signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args(["-s", signal, "--", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
