//! One client connection: read, parse every complete request in the buffer,
//! run them (locally, forwarded in per-shard batches, or as cross-shard
//! transactions), and write all replies of the read in one go, in order.

use super::client::{self, Client, ClientShared};
use super::dispatch::{dispatch, Pipeline};
use super::obuf;
use crate::protocol::{Args, Parsed, Parser, Reply, Source};
use crate::runtime::{self, with_shard};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
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

/// Read buffer size, and the size a buffer is given back after a huge request or reply.
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
pub async fn serve(mut stream: TcpStream, shared: Rc<ClientShared>) {
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
    let mut rbuf: Vec<u8> = vec![0; BUF_SIZE];
    let (mut start, mut end) = (0usize, 0usize);
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(16);
    let mut out = Reply::with_buf(Vec::with_capacity(BUF_SIZE), false);
    let mut pipe = Pipeline::new(runtime::nshards(), ordered);
    let bufs = &shared.bufs;
    bufs.out_cap.set(out.buf.capacity());
    'conn: loop {
        let into_big = parser.big_spare(end - start).is_some();
        if !into_big {
            if start == end {
                start = 0;
                end = 0;
            } else if start > 0 && end == rbuf.len() {
                rbuf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            }
            if end == rbuf.len() {
                let grow = rbuf.len().max(BUF_SIZE);
                rbuf.resize(rbuf.len() + grow, 0);
            }
        }
        bufs.in_mem
            .set(rbuf.capacity() + parser.big_mem() + parser.inline.capacity() + spans.capacity() * std::mem::size_of::<(usize, usize)>());
        let read = {
            // A big argument is read straight into its own buffer.
            let dst: &mut [u8] = match parser.big_spare(end - start) {
                Some(spare) => spare,
                None => &mut rbuf[end..],
            };
            if shared.monitor.get() {
                // A MONITOR client also gets lines pushed by other connections.
                let ev = futures_lite::future::or(async { Some(stream.read(dst).await) }, async {
                    wait_push(&shared).await;
                    None
                })
                .await;
                match ev {
                    Some(r) => r,
                    None => {
                        let data = std::mem::take(&mut *shared.pushed.borrow_mut());
                        if !data.is_empty() && stream.write_all(&data).await.is_err() {
                            break;
                        }
                        if shared.killed.get() {
                            break;
                        }
                        continue;
                    }
                }
            } else {
                stream.read(dst).await
            }
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if shared.killed.get() {
            break;
        }
        if into_big {
            parser.big_filled(n);
        } else {
            end += n;
        }
        with_shard(|s| s.stats.net_input_bytes += n as u64);
        // Redis's sdslen(querybuf): what was received and not parsed into arguments.
        let qlen = parser.query_len(end - start);
        shared.qbuf.set(qlen);
        bufs.qbuf_free.set(parser.big_free().unwrap_or(rbuf.len() - end));
        if qlen as u64 > qbuf_limit {
            // As Redis's readQueryFromClient: no reply, the client is just closed.
            crate::log_warning!(
                "Closing client that reached max query buffer length: {} (qbuf initial bytes: {})",
                shared.info_line(runtime::now_ms()),
                repr64(&rbuf[start..end])
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
            match parser.parse(&rbuf[start..end], &mut spans, c.authed) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Empty { consumed }) => start += consumed,
                Ok(Parsed::Command { consumed, source }) => {
                    let data: &[u8] = match source {
                        Source::Input => &rbuf[start..end],
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
                    dispatch(&mut c, &mut pipe, args, &mut out).await;
                    start += consumed;
                    if c.close_after_reply {
                        close = true;
                        break;
                    }
                    if out.buf.len() > obuf::REPLY_CHUNK && obuf_overcome(&shared, &mut limits, out.buf.len(), c.now_ms) {
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
        pipe.flush(&mut out).await;
        if !close && out.buf.len() > obuf::REPLY_CHUNK && obuf_overcome(&shared, &mut limits, out.buf.len(), c.now_ms) {
            break 'conn;
        }
        shared.qbuf.set(parser.query_len(end - start));
        bufs.qbuf_free.set(parser.big_free().unwrap_or(rbuf.len() - end));
        bufs.argv_mem.set(parser.argv_len());
        if !out.buf.is_empty() {
            with_shard(|s| s.stats.net_output_bytes += out.buf.len() as u64);
            if out.buf.len() > bufs.out_peak.get() {
                bufs.out_peak.set(out.buf.len());
            }
            bufs.out_cap.set(out.buf.capacity());
            // Written piecewise so CLIENT LIST and the cron's soft-limit check see the progress.
            let mut written = 0;
            while written < out.buf.len() {
                bufs.out_pending.set(out.buf.len() - written);
                match stream.write(&out.buf[written..]).await {
                    Ok(0) | Err(_) => break 'conn,
                    Ok(n) => written += n,
                }
            }
            bufs.out_pending.set(0);
            bufs.soft_since.set(None);
            out.buf.clear();
            // One huge reply must not pin its memory for the rest of the connection.
            if out.buf.capacity() > KEEP_MAX {
                out.buf = Vec::with_capacity(BUF_SIZE);
                bufs.out_cap.set(out.buf.capacity());
                bufs.out_peak.set(0);
            }
        }
        if close || shared.killed.get() {
            break;
        }
        // Likewise for the read buffer after a huge request: keep only what is still unparsed.
        if rbuf.len() > KEEP_MAX && end - start <= BUF_SIZE / 2 {
            let mut fresh = vec![0; BUF_SIZE];
            fresh[..end - start].copy_from_slice(&rbuf[start..end]);
            rbuf = fresh;
            end -= start;
            start = 0;
        }
        if spans.capacity() > 1024 && parser.idle() {
            spans = Vec::with_capacity(16);
        }
    }
    let _ = stream.close().await;
    if shared.monitor.get() {
        super::monitor::remove(&shared);
    }
    client::unregister(shared.id);
    rt.connected_clients.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}
