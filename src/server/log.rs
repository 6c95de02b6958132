//! Redis-style log lines: `pid:role dd Mon yyyy hh:mm:ss.mmm <level-char> message`.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

pub const DEBUG: u8 = 0;
pub const VERBOSE: u8 = 1;
pub const NOTICE: u8 = 2;
pub const WARNING: u8 = 3;

static LEVEL: AtomicU8 = AtomicU8::new(NOTICE);
static FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);

pub fn level_code(l: crate::config::LogLevel) -> u8 {
    use crate::config::LogLevel::*;
    match l {
        Debug => DEBUG,
        Verbose => VERBOSE,
        Notice => NOTICE,
        Warning => WARNING,
    }
}

pub fn set_level(l: u8) {
    LEVEL.store(l, Ordering::Relaxed);
}

/// Sends logs to `path` (empty = stdout).
pub fn set_file(path: &str) -> std::io::Result<()> {
    if path.is_empty() {
        return Ok(());
    }
    let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    if let Ok(mut g) = FILE.lock() {
        *g = Some(f);
    }
    Ok(())
}

pub fn log(level: u8, msg: &str) {
    if level < LEVEL.load(Ordering::Relaxed) {
        return;
    }
    let c = ['.', '-', '*', '#'][level.min(3) as usize];
    let now = super::super::runtime::now_ms();
    let line = format!("{}:M {} {} {}\n", std::process::id(), fmt_time(now), c, msg);
    if let Ok(mut g) = FILE.lock() {
        if let Some(f) = g.as_mut() {
            let _ = f.write_all(line.as_bytes());
            return;
        }
    }
    let _ = std::io::stdout().write_all(line.as_bytes());
}

fn fmt_time(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r only writes into the tm we own.
    unsafe {
        libc::localtime_r(&secs, &mut tm);
    }
    const MON: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{:02} {} {} {:02}:{:02}:{:02}.{:03}",
        tm.tm_mday,
        MON[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        ms % 1000
    )
}

#[macro_export]
macro_rules! log_notice { ($($a:tt)*) => { $crate::server::log::log($crate::server::log::NOTICE, &format!($($a)*)) } }
#[macro_export]
macro_rules! log_warning { ($($a:tt)*) => { $crate::server::log::log($crate::server::log::WARNING, &format!($($a)*)) } }
#[macro_export]
macro_rules! log_verbose { ($($a:tt)*) => { $crate::server::log::log($crate::server::log::VERBOSE, &format!($($a)*)) } }
