//! SAVE, BGSAVE and the save points, over the streaming snapshot writer
//! (`snapshot.rs`: the point, copy-on-write, the file).
//!
//! One snapshot writes at a time (`SAVING`): a SAVE waits for the one in
//! progress, as Redis runs them one after the other. SAVE is blocking for
//! its caller only (it answers once the file is renamed); BGSAVE answers at
//! once and the snapshot runs as a task of the shard that asked. Neither
//! forks nor holds the dataset in memory.
//!
//! State mirrors Redis's: `lastsave`, `lastbgsave_status`, `lastbgsave_try`
//! (the 5 s retry after a failed background save, CONFIG_BGSAVE_RETRY_DELAY),
//! `rdb_bgsave_scheduled`, the bgsave's start and last duration.

use crate::runtime;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

/// A snapshot is being written (SAVE or BGSAVE).
static SAVING: AtomicBool = AtomicBool::new(false);
/// A BGSAVE is in progress (Redis's child_type == CHILD_TYPE_RDB).
static BG_RUNNING: AtomicBool = AtomicBool::new(false);
/// BGSAVE SCHEDULE / a save point that met a running save (rdb_bgsave_scheduled).
static BG_SCHEDULED: AtomicBool = AtomicBool::new(false);
/// When the running BGSAVE started (Unix ms).
static BG_STARTED_MS: AtomicU64 = AtomicU64::new(0);
/// rdb_save_time_last: seconds the last BGSAVE took (-1: none yet).
static BG_LAST_SECS: AtomicI64 = AtomicI64::new(-1);
/// lastbgsave_try (Unix seconds).
static BG_LAST_TRY: AtomicU64 = AtomicU64::new(0);
/// Copy-on-write bytes of the last BGSAVE (rdb_last_cow_size).
static LAST_COW: AtomicU64 = AtomicU64::new(0);
/// CONFIG_BGSAVE_RETRY_DELAY.
const RETRY_DELAY_SECS: u64 = 5;

/// The one snapshot writing (see `SAVING`); released on drop.
pub struct Turn;

impl Drop for Turn {
    fn drop(&mut self) {
        SAVING.store(false, Relaxed);
    }
}

async fn take_turn() -> Turn {
    while SAVING.swap(true, Relaxed) {
        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
    }
    Turn
}

fn paths(tmp_prefix: &str) -> (String, String) {
    let file = runtime::rt_ref().config.read().map(|c| c.dbfilename()).unwrap_or_else(|_| "dump.rdb".into());
    (file, format!("{tmp_prefix}-{}.rdb", std::process::id()))
}

/// rdbSave of the whole keyspace to `dbfilename` in the working directory
/// (`dir`). Err: why it failed (already logged, as Redis logs it).
pub async fn save() -> Result<(), String> {
    let _turn = take_turn().await;
    super::SAVES.fetch_add(1, Relaxed);
    let (path, tmp) = paths("temp");
    super::snapshot::take_point().await?.write(&path, &tmp, false).await?;
    crate::log_notice!("DB saved on disk");
    runtime::rt_ref().lastsave.store(runtime::now_ms() / 1000, Relaxed);
    super::LAST_SAVE_OK.store(true, Relaxed);
    Ok(())
}

/// Whether a BGSAVE is in progress (SAVE and BGSAVE then refuse).
pub fn bgsave_in_progress() -> bool {
    BG_RUNNING.load(Relaxed)
}

/// BGSAVE SCHEDULE's flag.
pub fn schedule_bgsave() {
    BG_SCHEDULED.store(true, Relaxed);
}

/// rdbSaveBackground: takes the point (so what was acknowledged before
/// this returns is in the file, as after Redis's fork) and writes it in a
/// task of this shard; false if a BGSAVE is already in progress.
pub async fn bgsave_start() -> bool {
    if BG_RUNNING.swap(true, Relaxed) {
        return false;
    }
    let now = runtime::now_ms();
    BG_LAST_TRY.store(now / 1000, Relaxed);
    BG_STARTED_MS.store(now, Relaxed);
    super::SAVES.fetch_add(1, Relaxed);
    let turn = take_turn().await;
    let point = super::snapshot::take_point().await;
    crate::log_notice!("Background saving started");
    glommio::spawn_local(async move {
        let r = match point {
            Ok(p) => {
                let (path, tmp) = paths("temp-bgsave");
                p.write(&path, &tmp, true).await
            }
            Err(e) => Err(e),
        };
        drop(turn);
        let end = runtime::now_ms();
        BG_LAST_SECS.store((end / 1000).saturating_sub(BG_STARTED_MS.load(Relaxed) / 1000) as i64, Relaxed);
        match r {
            Ok(o) => {
                crate::log_notice!("DB saved on disk");
                LAST_COW.store(o.cow_bytes, Relaxed);
                runtime::rt_ref().lastsave.store(end / 1000, Relaxed);
                super::LAST_SAVE_OK.store(true, Relaxed);
                crate::log_notice!("Background saving terminated with success");
            }
            Err(_) => {
                super::LAST_SAVE_OK.store(false, Relaxed);
                crate::log_warning!("Background saving error");
            }
        }
        BG_RUNNING.store(false, Relaxed);
    })
    .detach();
    true
}

/// A background save started by the cron (no client waits for the point);
/// called outside `with_shard`, as the save takes the shard itself.
pub fn bgsave_from_cron() {
    glommio::spawn_local(async {
        bgsave_start().await;
    })
    .detach();
}

/// Per-shard `dirty` sums, published by each shard's cron for shard 0's
/// save-point check (serverCron reads server.dirty).
static DIRTY: std::sync::OnceLock<Box<[AtomicU64]>> = std::sync::OnceLock::new();

fn dirty_slots() -> &'static [AtomicU64] {
    DIRTY.get_or_init(|| (0..runtime::nshards()).map(|_| AtomicU64::new(0)).collect())
}

/// Each shard's cron: publish its changes since the last save; on shard 0,
/// serverCron's save points and scheduled BGSAVE: true when a background
/// save is due ([`bgsave_from_cron`]).
pub fn cron(s: &mut runtime::Shard) -> bool {
    let dirty: u64 = s.dbs.iter().map(|d| d.hook.dirty).sum();
    if let Some(slot) = dirty_slots().get(s.id) {
        slot.store(dirty, Relaxed);
    }
    if s.id != 0 || BG_RUNNING.load(Relaxed) || SAVING.load(Relaxed) || super::aof::REWRITING.load(Relaxed) {
        return false;
    }
    let now = runtime::now_ms() / 1000;
    let may_retry = now.saturating_sub(BG_LAST_TRY.load(Relaxed)) > RETRY_DELAY_SECS || super::LAST_SAVE_OK.load(Relaxed);
    if !may_retry {
        return false;
    }
    let points = match runtime::rt_ref().config.read() {
        Ok(c) => c.shutdown_save_points(),
        Err(_) => return false,
    };
    let total: u64 = dirty_slots().iter().map(|d| d.load(Relaxed)).sum();
    let lastsave = runtime::rt_ref().lastsave.load(Relaxed);
    for (secs, changes) in points {
        if total >= changes as u64 && now.saturating_sub(lastsave) as i64 > secs {
            crate::log_notice!("{} changes in {} seconds. Saving...", changes, secs);
            return true;
        }
    }
    BG_SCHEDULED.swap(false, Relaxed)
}

/// The INFO persistence fields this module computes, in Redis's order from
/// `rdb_bgsave_in_progress` to `rdb_last_cow_size`.
pub fn info_fields(changes: u64) -> String {
    let running = BG_RUNNING.load(Relaxed);
    let current = if running {
        ((runtime::now_ms() / 1000).saturating_sub(BG_STARTED_MS.load(Relaxed) / 1000)) as i64
    } else {
        -1
    };
    format!(
        "rdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{}\r\nrdb_saves:{}\r\nrdb_last_cow_size:{}\r\n",
        changes,
        running as u8,
        runtime::rt_ref().lastsave.load(Relaxed),
        if super::LAST_SAVE_OK.load(Relaxed) { "ok" } else { "err" },
        BG_LAST_SECS.load(Relaxed),
        current,
        super::SAVES.load(Relaxed),
        LAST_COW.load(Relaxed),
    )
}

/// writeCommandsDeniedByDiskError for RDB: the last background save failed,
/// `stop-writes-on-bgsave-error yes` and save points are configured.
#[inline]
pub fn writes_denied() -> bool {
    !super::LAST_SAVE_OK.load(Relaxed) && super::STOP_WRITES.load(Relaxed)
}

/// shared.bgsaveerr, without its CRLF.
pub const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// The AOF rewrite's point (the snapshot's turn, held until its base file
/// is written): `at_cut` runs on each shard under its lock, right before
/// its copy-on-write state is installed.
pub async fn aof_point(at_cut: impl Fn() + Send + Sync + Clone + 'static, format: super::snapshot::Format) -> Result<(Turn, super::snapshot::Point), String> {
    let turn = take_turn().await;
    let p = super::snapshot::take_point_with(at_cut, format).await?;
    Ok((turn, p.aof_base()))
}
