//! The blocked-client handle shared by the shards a blocked command waits on
//! (see `exec/block.rs` for the protocol), and the process-wide registry of
//! blocked clients that CLIENT UNBLOCK reads.

use super::reply::ReplyTx;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

const WAITING: u8 = 0;
const SERVING: u8 = 1;
const DONE: u8 = 2;

/// How a wait ended, as the serving shard (or CLIENT UNBLOCK) tells it.
pub enum Wake {
    /// A shard served the command: its reply.
    Served(Vec<u8>),
    /// A key of a cross-shard move may have data: run the move again.
    Retry,
    /// CLIENT UNBLOCK: with ERROR an error reply, else the timeout reply.
    Unblocked { error: bool },
}

/// One blocked command, shared by the shards it is registered on.
pub struct Handle {
    pub id: u64,
    state: AtomicU8,
    tx: Mutex<Option<ReplyTx<Wake>>>,
}

impl Handle {
    /// A fresh handle that delivers its wake through `tx`.
    pub fn new(tx: ReplyTx<Wake>) -> Handle {
        Handle {
            id: NEXT_HANDLE.fetch_add(1, Ordering::Relaxed),
            state: AtomicU8::new(WAITING),
            tx: Mutex::new(Some(tx)),
        }
    }

    /// WAITING -> SERVING: this caller alone may now serve or end it.
    pub fn claim(&self) -> bool {
        self.state.compare_exchange(WAITING, SERVING, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Back to WAITING after a serve attempt that found nothing.
    pub fn unclaim(&self) {
        self.state.store(WAITING, Ordering::Release);
    }

    /// Ends a claimed handle, delivering `w` to the waiting connection.
    pub fn finish(&self, w: Wake) {
        self.state.store(DONE, Ordering::Release);
        let tx = self.tx.lock().ok().and_then(|mut t| t.take());
        if let Some(tx) = tx {
            tx.send(w);
        }
    }

    pub fn waiting(&self) -> bool {
        self.state.load(Ordering::Acquire) == WAITING
    }

    /// Claims the handle from the waiting side (timeout, disconnect): false when
    /// a shard already served it (its reply is on the way). A shard in the
    /// middle of a serve attempt finishes it within microseconds: spin.
    pub fn cancel(&self) -> bool {
        let mut spins = 0u32;
        loop {
            match self.state.compare_exchange(WAITING, DONE, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(DONE) => return false,
                Err(_) => {
                    spins += 1;
                    if spins > 1000 {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
            }
        }
    }
}

static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// Blocked clients by client id, for CLIENT UNBLOCK (any shard may ask).
pub fn by_client() -> &'static Mutex<HashMap<u64, Arc<Handle>>> {
    static M: OnceLock<Mutex<HashMap<u64, Arc<Handle>>>> = OnceLock::new();
    M.get_or_init(Default::default)
}

/// CLIENT UNBLOCK: true when `client` was blocked and is now unblocked.
pub fn unblock_client(client: u64, error: bool) -> bool {
    let h = by_client().lock().ok().and_then(|m| m.get(&client).cloned());
    match h {
        Some(h) if h.cancel() => {
            let tx = h.tx.lock().ok().and_then(|mut t| t.take());
            if let Some(tx) = tx {
                tx.send(Wake::Unblocked { error });
            }
            true
        }
        _ => false,
    }
}
