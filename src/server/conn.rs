//! One client connection: read, parse every complete request in the buffer,
//! run them (locally, forwarded in per-shard batches, or as cross-shard
//! transactions), and write all replies of the read in one go, in order.

use super::client::{self, Client, ClientShared};
use super::dispatch::{dispatch_later, dispatch_now, Now, Pipeline};
use super::net::Transport;
use super::obuf;
use crate::protocol::{Args, Parsed, Parser, Reply, Source};
use crate::runtime::{self, with_shard};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Resolves when lines were pushed to this (MONITOR) client or it was killed.
async fn wait_push(shared: &ClientShared) {
    futures_lite::future::poll_fn(|cx| {
        if !shared.pushed.borrow().is_empty() || shared.killed.get() {
            std::task::Poll::Ready(())
        } else {
            *shared.push_waker.borrow_mut() = Some(cx.waker().clone());
            std::task::Poll::Pending
        }
    })
    .await
}

/// Size of the buffer that keeps a request split across reads, and the size a
/// buffer is given back after a huge request or reply.
const BUF_SIZE: usize = 16 * 1024;
/// Buffers larger than this are not kept once the request or reply that needed them is done.
const KEEP_MAX: usize = 64 * 1024;

/// Redis's securityWarningCommand: `POST` and `Host:` are HTTP, i.e. a browser
/// tricked into talking to us (cross protocol scripting). Logged at most once a minute.
fn is_http_attack(args: &Args) -> bool {
    let name = args.get(0);
    name.eq_ignore_ascii_case(b"post") || name.eq_ignore_ascii_case(b"host:")
}

fn log_security_attack() {
    static LOGGED: AtomicU64 = AtomicU64::new(0);
    let now = runtime::now_ms() / 1000;
    let last = LOGGED.load(Ordering::Relaxed);
    if now.abs_diff(last) > 60 && LOGGED.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        crate::log_warning!(
            "Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: commands to Redis. This is likely due to an attacker attempting to use Cross Protocol Scripting to compromise your Redis instance. Connection aborted."
        );
    }
}

/// Up to 64 bytes of `b` quoted like Redis's sdscatrepr.
fn repr64(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in &b[..b.len().min(64)] {
        match c {
            b'\\' | b'"' => {
                s.push('\\');
                s.push(c as char);
            }
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x07 => s.push_str("\\a"),
            0x08 => s.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

/// Output-buffer limit check on new replies (Redis checks as replies are
/// appended): true, after logging, when the client must be closed.
fn obuf_overcome(shared: &ClientShared, limits: &mut Option<(u64, u64, i64)>, pending: usize, now_ms: u64) -> bool {
    if obuf::figures(pending).omem == 0 {
        return false;
    }
    let class = shared.bufs.class.get();
    let l = *limits.get_or_insert_with(|| obuf::limits(class));
    if !obuf::reached(l, &shared.bufs.soft_since, pending, now_ms / 1000) {
        return false;
    }
    shared.bufs.out_pending.set(pending);
    crate::log_warning!(
        "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
        shared.info_line(now_ms)
    );
    true
}

/// Serves one accepted connection until it closes.
pub async fn serve<T: Transport>(mut t: T, shared: Rc<ClientShared>, resume: Option<super::migrate::Resume>) {
    let rt = runtime::rt_ref();
    let authed = rt.requirepass.read().map(|p| p.is_none()).unwrap_or(true);
    let mut c = Client::new(shared.clone(), authed);
    let (max_bulk, qbuf_limit, ordered) = rt
        .config
        .read()
        .map(|c| (c.proto_max_bulk_len(), c.client_query_buffer_limit(), c.pipeline_ordering_strict()))
        .unwrap_or((512 << 20, 1 << 30, true));
    let mut parser = Parser::default();
    parser.max_bulk = max_bulk.min(i64::MAX as u64) as i64;
    // The unparsed tail of a request that did not fit in one received chunk.
    let mut rbuf: Vec<u8> = Vec::new();
    let (mut start, mut end) = (0usize, 0usize);
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(16);
    let mut out = Reply::with_buf(Vec::with_capacity(BUF_SIZE), false);
    let mut pipe = Pipeline::new(runtime::nshards(), ordered);
    let bufs = &shared.bufs;
    bufs.out_cap.set(out.buf.capacity());
    let migrate = super::migrate::possible();
    let me = runtime::shard_id();
    // A connection moved here from another shard: its state, and the bytes it
    // had received there, parsed before anything read here.
    let mut carried = false;
    if let Some(r) = resume {
        c.set_db(r.db);
        c.set_resp3(r.resp3);
        c.authed = r.authed;
        end = r.bytes.len();
        carried = end > 0;
        rbuf = r.bytes;
    }
    'conn: loop {
        bufs.in_mem
            .set(rbuf.capacity() + parser.big_mem() + parser.inline.capacity() + spans.capacity() * std::mem::size_of::<(usize, usize)>());
        let into_big = parser.big_spare(end - start).is_some();
        // Messages that arrived while this read was being served go out first.
        if !shared.pushed.borrow().is_empty() {
            let mut data = std::mem::take(&mut *shared.pushed.borrow_mut());
            if !t.send(&mut data, bufs).await {
                break;
            }
        }
        let ok = if shared.monitor.get() || shared.subscribed() || super::tracking::listens(&shared) {
            // MONITOR and subscribed clients also get lines pushed by other connections.
            let ev = futures_lite::future::or(async { Some(t.fill().await) }, async {
                wait_push(&shared).await;
                None
            })
            .await;
            match ev {
                Some(ok) => {
                    // Pushed before this request was read (both may be ready at
                    // once): it goes before the request's reply, as in Redis,
                    // whose output buffer already holds it.
                    if ok && !shared.pushed.borrow().is_empty() {
                        let mut data = std::mem::take(&mut *shared.pushed.borrow_mut());
                        if !t.send(&mut data, bufs).await {
                            break;
                        }
                    }
                    ok
                }
                None => {
                    let mut data = std::mem::take(&mut *shared.pushed.borrow_mut());
                    if !data.is_empty() {
                        let sent = t.send(&mut data, bufs).await && t.flush().await;
                        if !sent {
                            break;
                        }
                    }
                    if shared.killed.get() {
                        break;
                    }
                    continue;
                }
            }
        } else if into_big || std::mem::take(&mut carried) {
            true
        } else {
            t.fill().await
        };
        if !ok || shared.killed.get() {
            break;
        }
        // Where this read's bytes are parsed from: the received chunk itself when
        // nothing is left over from before, else the tail buffer they are appended to.
        let n;
        let direct;
        if into_big {
            // A big argument is read straight into its own buffer.
            let spare = parser.big_spare(end - start).expect("big argument in progress");
            n = t.read_into(spare).await;
            if n == 0 {
                break;
            }
            parser.big_filled(n);
            direct = false;
        } else {
            n = t.chunk().len();
            direct = start == end;
            if !direct {
                if start > 0 {
                    rbuf.copy_within(start..end, 0);
                    end -= start;
                    start = 0;
                }
                rbuf.truncate(end);
                rbuf.extend_from_slice(t.chunk());
                end = rbuf.len();
                t.consume(n);
            } else {
                start = 0;
                end = 0;
            }
        }
        with_shard(|s| s.stats.net_input_bytes += n as u64);
        let chunk: &[u8] = if direct { t.chunk() } else { &rbuf };
        let (mut pos, lim) = if direct { (0, chunk.len()) } else { (start, end) };
        // Redis's sdslen(querybuf): what was received and not parsed into arguments.
        let qlen = parser.query_len(lim - pos);
        shared.qbuf.set(qlen);
        bufs.qbuf_free.set(parser.big_free().unwrap_or(rbuf.capacity() - rbuf.len()));
        if qlen as u64 > qbuf_limit {
            // As Redis's readQueryFromClient: no reply, the client is just closed.
            crate::log_warning!(
                "Closing client that reached max query buffer length: {} (qbuf initial bytes: {})",
                shared.info_line(runtime::now_ms()),
                repr64(&chunk[pos..lim])
            );
            break;
        }
        // One clock read per read: every command of this pipeline sees the same time.
        c.now_ms = runtime::now_ms();
        shared.last_interaction_ms.set(c.now_ms);
        // The limits are read from the config at most once per read, and only when a check needs them.
        let mut limits = None;
        let mut close = false;
        loop {
            match parser.parse(&chunk[pos..lim], &mut spans, c.authed) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Empty { consumed }) => pos += consumed,
                Ok(Parsed::Command { consumed, source }) => {
                    let data: &[u8] = match source {
                        Source::Input => &chunk[pos..lim],
                        Source::Inline => &parser.inline,
                    };
                    let args = Args::with_big(data, &spans, &parser.big);
                    // Like last_cmd, one store per command: CLIENT INFO shows its own arguments, as Redis.
                    bufs.argv_mem.set(match source {
                        Source::Input => parser.argv_len(),
                        Source::Inline => parser.inline.len(),
                    });
                    if is_http_attack(&args) {
                        // Closed at once: no reply, not even those of earlier commands.
                        pipe.flush(&mut out).await;
                        out.buf.clear();
                        log_security_attack();
                        break 'conn;
                    }
                    if let Now::Later(cmd, keep) = dispatch_now(&mut c, &mut pipe, &args, &mut out) {
                        dispatch_later(&mut c, &mut pipe, cmd, args, &mut out, keep).await;
                    }
                    pos += consumed;
                    if c.close_after_reply {
                        close = true;
                        break;
                    }
                    if out.buf.len() > obuf::REPLY_CHUNK && obuf_overcome(&shared, &mut limits, out.buf.len() + bufs.out_pending.get(), c.now_ms) {
                        pipe.flush(&mut out).await;
                        break 'conn;
                    }
                }
                Err(e) => {
                    pipe.flush(&mut out).await;
                    out.error(&e.0);
                    close = true;
                    break;
                }
            }
        }
        if direct {
            // Keep only the unparsed tail; the chunk goes back to the transport.
            if pos < lim {
                rbuf.clear();
                rbuf.extend_from_slice(&t.chunk()[pos..lim]);
            }
            start = 0;
            end = lim - pos;
            t.consume(n);
        } else {
            start = pos;
        }
        pipe.flush(&mut out).await;
        if !close && out.buf.len() > obuf::REPLY_CHUNK && obuf_overcome(&shared, &mut limits, out.buf.len() + bufs.out_pending.get(), c.now_ms) {
            break 'conn;
        }
        shared.qbuf.set(parser.query_len(end - start));
        bufs.qbuf_free.set(parser.big_free().unwrap_or(rbuf.capacity() - rbuf.len()));
        bufs.argv_mem.set(parser.argv_len());
        if crate::runtime::propagate::on() {
            // appendfsync always: no reply before the fsync covering its writes.
            crate::persistence::aof::before_reply().await;
        }
        if !out.buf.is_empty() {
            with_shard(|s| s.stats.net_output_bytes += out.buf.len() as u64);
            if out.buf.len() > bufs.out_peak.get() {
                bufs.out_peak.set(out.buf.len());
            }
            bufs.out_cap.set(out.buf.capacity());
            if !t.send(&mut out.buf, bufs).await {
                break 'conn;
            }
            // One huge reply must not pin its memory for the rest of the connection.
            if out.buf.capacity() > KEEP_MAX {
                out.buf = Vec::with_capacity(BUF_SIZE);
                bufs.out_peak.set(0);
            }
            bufs.out_cap.set(out.buf.capacity());
        }
        if close || shared.killed.get() {
            break;
        }
        // Likewise for the tail buffer after a huge request: keep only what is still unparsed.
        if rbuf.capacity() > KEEP_MAX && end - start <= BUF_SIZE / 2 {
            let mut fresh = Vec::with_capacity(BUF_SIZE);
            fresh.extend_from_slice(&rbuf[start..end]);
            rbuf = fresh;
            end -= start;
            start = 0;
        }
        if spans.capacity() > 1024 && parser.idle() {
            spans = Vec::with_capacity(16);
        }
        // Everything so far has run and been answered: if the keys live on
        // one other shard, move there (see server/migrate.rs).
        if migrate
            && pipe.streak >= super::migrate::threshold()
            && pipe.streak_shard != me
            && start == end
            && parser.idle()
            && !shared.monitor.get()
            && c.reply_mode == client::ReplyMode::On
            && c.multi.is_none()
            && shared.watch.borrow().is_empty()
            && !shared.subscribed()
            && !super::tracking::listens(&shared)
        {
            pipe.streak = 0;
            match t.detach().await {
                Ok((fd, bytes)) => {
                    super::migrate::hand_over(&c, fd, bytes, pipe.streak_shard);
                    return;
                }
                Err(back) => t = back,
            }
        }
    }
    // Replies already produced (an error before a close, QUIT's OK) go out first.
    let _ = t.flush().await;
    t.close().await;
    if shared.monitor.get() {
        super::monitor::remove(&shared);
    }
    super::pubsub::forget(&shared);
    super::tracking::disable(&shared);
    shared.watch.borrow_mut().unwatch_all();
    client::unregister(shared.id);
    rt.connected_clients.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}
