//! SAVE: one RDB file holding every shard's keys as of one instant.
//!
//! **The consistent point.** The save takes a *shared whole-shard lock on
//! every shard* through the transaction layer (`exec::on_every_shard`, as
//! KEYS and DBSIZE do): all locks are granted before any shard serializes,
//! so no cross-shard transaction (MSET, RENAME, EXEC, a script) is seen half
//! done, and writes wait while the locks are held. Each shard then encodes
//! its own partition, database by database, in parallel with the others,
//! into memory; the locks go as soon as every shard answered. The
//! coordinator writes the file (header, per database SELECTDB/RESIZEDB and
//! each shard's bytes, EOF, CRC64) to `temp-<pid>.rdb`, fsyncs it, renames
//! it over `dbfilename` and fsyncs the directory, as rdbSave does.
//!
//! Writes that happen after the locks are released are not in the file:
//! each shard's `dirty` counter is lowered by what it had when it was
//! serialized, so `rdb_changes_since_last_save` counts exactly those.

use super::rdb::encode::{file_header, AccessHint, Encoder};
use super::rdb::{opcode, CRC64};
use crate::exec::on_every_shard;
use crate::runtime::locks::Mode;
use crate::runtime::{self, Ctx};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One shard's serialized database.
struct DbPart {
    keys: u64,
    expires: u64,
    bytes: Vec<u8>,
    /// The database's `dirty` when it was serialized.
    dirty: u64,
}

/// Which access hint precedes each key (rdbSaveKeyValuePair: IDLE under an
/// LRU policy, FREQ under LFU, nothing otherwise).
#[derive(Clone, Copy)]
enum Hints {
    None,
    Lru,
    Lfu,
}

/// A SAVE in progress: another one waits (Redis runs them one at a time).
static SAVING: AtomicBool = AtomicBool::new(false);

struct Turn;

impl Drop for Turn {
    fn drop(&mut self) {
        SAVING.store(false, Ordering::Release);
    }
}

/// rdbSave of the whole keyspace to `dbfilename` in the working directory
/// (`dir`). Err: why it failed (already logged, as Redis logs it).
pub async fn save() -> Result<(), String> {
    while SAVING.swap(true, Ordering::Acquire) {
        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
    }
    let _turn = Turn;
    super::SAVES.fetch_add(1, Ordering::Relaxed);
    let (path, policy) = match runtime::rt_ref().config.read() {
        Ok(c) => (c.dbfilename(), c.maxmemory_policy()),
        Err(_) => return Err("config lock poisoned".into()),
    };
    use crate::config::MaxmemoryPolicy::*;
    let hints = match policy {
        AllkeysLru | VolatileLru => Hints::Lru,
        AllkeysLfu | VolatileLfu => Hints::Lfu,
        _ => Hints::None,
    };
    let compress = super::compression();
    let parts = on_every_shard(0, Mode::Shared, move |ctx: &mut Ctx| serialize(ctx, compress, hints))
        .await
        .map_err(|_| {
            crate::log_warning!("Write error saving DB on disk: a shard did not answer");
            "a shard did not answer".to_string()
        })?;
    // The function libraries (rdbSaveFunctions), as they are at this point.
    let mut libs = Encoder::new(compress);
    for lib in crate::scripting::functions::libraries(None) {
        libs.put_u8(opcode::FUNCTION2);
        libs.put_string(&lib.code);
    }
    write_file(&path, &libs.buf, &parts, super::checksum())?;
    // Only what was in the file stops counting as a change.
    let dirty: Arc<Vec<Vec<u64>>> = Arc::new(parts.iter().map(|p| p.iter().map(|d| d.dirty).collect()).collect());
    let _ = runtime::broadcast(move |s| {
        if let Some(mine) = dirty.get(s.id) {
            for (db, d) in s.dbs.iter_mut().zip(mine) {
                db.hook.dirty = db.hook.dirty.saturating_sub(*d);
            }
        }
    })
    .await;
    crate::log_notice!("DB saved on disk");
    runtime::rt_ref().lastsave.store(runtime::now_ms() / 1000, Ordering::Relaxed);
    super::LAST_SAVE_OK.store(true, Ordering::Relaxed);
    Ok(())
}

/// One shard's keys, database by database (run under the shared lock).
fn serialize(ctx: &mut Ctx, compress: bool, hints: Hints) -> Vec<DbPart> {
    let now = ctx.now;
    ctx.shard
        .dbs
        .iter()
        .map(|db| {
            let mut e = Encoder::new(compress);
            let mut expires = 0;
            for (k, entry) in db.iter() {
                let at = db.expire_at(k);
                expires += (at != 0) as u64;
                let hint = match hints {
                    Hints::None => AccessHint::None,
                    Hints::Lru => AccessHint::Idle(crate::keyspace::db::idle_secs(entry.lru, now)),
                    Hints::Lfu => AccessHint::Freq(crate::keyspace::access::lfu_counter(entry.lfu, now) as u8),
                };
                e.put_key_value(k, &entry.val, at, hint);
            }
            DbPart {
                keys: db.len() as u64,
                expires,
                bytes: e.buf,
                dirty: db.hook.dirty,
            }
        })
        .collect()
}

/// Writes the file as rdbSave does: a temp file, flushed and fsynced,
/// renamed over `path`, the directory fsynced.
fn write_file(path: &str, functions: &[u8], parts: &[Vec<DbPart>], checksum: bool) -> Result<(), String> {
    let cwd = || std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "unknown".into());
    let tmp = format!("temp-{}.rdb", std::process::id());
    let file = std::fs::File::create(&tmp).map_err(|e| {
        let m = format!("Failed opening the temp RDB file {} (in server root dir {}) for saving: {}", tmp, cwd(), e);
        crate::log_warning!("{}", m);
        m
    })?;
    let fail = |op: &str, e: std::io::Error| {
        let m = format!("Write error saving DB on disk({op}): {e}");
        crate::log_warning!("{}", m);
        let _ = std::fs::remove_file(&tmp);
        m
    };
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut digest = CRC64.digest();
    let mut put = |w: &mut std::io::BufWriter<std::fs::File>, b: &[u8]| -> std::io::Result<()> {
        digest.update(b);
        w.write_all(b)
    };
    let now_s = runtime::now_ms() / 1000;
    let body = (|| -> std::io::Result<()> {
        put(&mut w, &file_header(now_s, crate::util::alloc::used_memory() as u64))?;
        put(&mut w, functions)?;
        let ndbs = parts.iter().map(|p| p.len()).max().unwrap_or(0);
        for db in 0..ndbs {
            let keys: u64 = parts.iter().filter_map(|p| p.get(db)).map(|d| d.keys).sum();
            if keys == 0 {
                continue;
            }
            let expires: u64 = parts.iter().filter_map(|p| p.get(db)).map(|d| d.expires).sum();
            let mut e = Encoder::new(false);
            e.put_db_start(db, keys, expires);
            put(&mut w, &e.buf)?;
            for p in parts {
                if let Some(d) = p.get(db) {
                    put(&mut w, &d.bytes)?;
                }
            }
        }
        put(&mut w, &[opcode::EOF])?;
        Ok(())
    })();
    body.map_err(|e| fail("rdbSaveRio", e))?;
    let crc = if checksum { digest.finalize() } else { 0 };
    w.write_all(&crc.to_le_bytes()).map_err(|e| fail("rdbSaveRio", e))?;
    w.flush().map_err(|e| fail("fflush", e))?;
    let file = w.into_inner().map_err(|e| fail("fflush", e.into_error()))?;
    file.sync_all().map_err(|e| fail("fsync", e))?;
    drop(file);
    if let Err(e) = std::fs::rename(&tmp, path) {
        let m = format!(
            "Error moving temp DB file {} on the final destination {} (in server root dir {}): {}",
            tmp,
            path,
            cwd(),
            e
        );
        crate::log_warning!("{}", m);
        let _ = std::fs::remove_file(&tmp);
        return Err(m);
    }
    // fsyncFileDir: the rename itself must reach the disk.
    let dir = std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| fail("fsyncFileDir", e))?;
    Ok(())
}
