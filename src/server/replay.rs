//! Loading the AOF at start-up: its commands are replayed through the
//! normal command path (dispatch, routing, the transaction layer) by a
//! client without a socket, so every key lands on the shard that owns it and
//! MULTI/EXEC blocks run as transactions, as Redis's fake AOF client does.

use super::client::{Client, ClientShared};
use super::dispatch::{dispatch_later, dispatch_now, Now, Pipeline};
use crate::persistence::aof;
use crate::protocol::{Args, Reply};
use crate::runtime;
use std::rc::Rc;

/// The files to replay (and `aof-load-truncated`), set by start-up for shard 0.
pub static PLAN: std::sync::Mutex<Option<Plan>> = std::sync::Mutex::new(None);

/// The files (each with whether it is the last) and `aof-load-truncated`.
pub type Plan = (Vec<(String, bool)>, bool);

/// Replays `files` in order (the last may have a truncated tail); false
/// when start-up must stop (the reason is logged as Redis logs it).
pub async fn replay(files: Vec<(String, bool)>, load_truncated: bool) -> bool {
    let now = runtime::now_ms();
    let shared = Rc::new(ClientShared::new(runtime::next_client_id(), -1, String::new(), String::new(), now, now));
    let mut c = Client::new(shared, true);
    let mut pipe = Pipeline::new(runtime::nshards(), true);
    let mut out = Reply::new(false);
    for (i, (f, last)) in files.iter().enumerate() {
        let t0 = std::time::Instant::now();
        let name = f.rsplit('/').next().unwrap_or(f);
        let cmds = match aof::read_for_replay(f, *last, load_truncated) {
            Ok(c) => c,
            Err(e) => {
                crate::log_warning!("{}", e);
                return false;
            }
        };
        let (mut data, mut spans) = (Vec::new(), Vec::new());
        for argv in cmds {
            data.clear();
            spans.clear();
            for a in &argv {
                let s = data.len();
                data.extend_from_slice(a);
                spans.push((s, data.len()));
            }
            let args = Args::new(&data, &spans);
            if crate::commands::table::lookup(&args).is_err() {
                crate::log_warning!("Unknown command '{}' reading the append only file {}", String::from_utf8_lossy(&argv[0]), name);
                return false;
            }
            if let Now::Later(cmd, keep) = dispatch_now(&mut c, &mut pipe, &args, &mut out) {
                dispatch_later(&mut c, &mut pipe, cmd, args, &mut out, keep).await;
            }
            pipe.flush(&mut out).await;
            out.buf.clear();
        }
        let kind = if i == 0 && name.contains(".base.") { "base" } else { "incr" };
        crate::log_notice!("DB loaded from {} file {}: {:.3} seconds", kind, name, t0.elapsed().as_secs_f64());
    }
    true
}
