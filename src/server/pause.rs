//! CLIENT PAUSE: commands wait here while a pause applies to them.

use crate::commands::table::{flags, Command};
use crate::runtime::{self, now_ms};
use std::sync::atomic::Ordering;

/// CLIENT PAUSE: holds a command while the pause applies to it.
pub async fn wait_pause(cmd: &Command) {
    let rt = runtime::rt_ref();
    loop {
        let until = rt.pause_until.load(Ordering::SeqCst);
        let now = now_ms();
        if until == 0 || until <= now {
            return;
        }
        let writes_only = rt.pause_writes_only.load(Ordering::SeqCst);
        if writes_only && !cmd.has(flags::WRITE) {
            return;
        }
        glommio::timer::sleep(std::time::Duration::from_millis((until - now).min(10))).await;
    }
}
