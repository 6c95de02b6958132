//! One client connection: read, parse every complete request in the buffer,
//! run them (locally, forwarded in per-shard batches, or as cross-shard
//! transactions), and write all replies of the read in one go, in order.

use super::client::{self, Client, ClientShared};
use super::dispatch::{dispatch, Pipeline};
use crate::protocol::{Args, Parsed, Parser, Reply, Source};
use crate::runtime::{self, with_shard};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::rc::Rc;

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
    let mut parser = Parser {
        max_bulk: max_bulk.min(i64::MAX as u64) as i64,
        ..Parser::default()
    };
    let mut rbuf: Vec<u8> = vec![0; 16 * 1024];
    let (mut start, mut end) = (0usize, 0usize);
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(16);
    let mut out = Reply::with_buf(Vec::with_capacity(16 * 1024), false);
    let mut pipe = Pipeline::new(runtime::nshards(), ordered);
    'conn: loop {
        if start == end {
            start = 0;
            end = 0;
        } else if start > 0 && end == rbuf.len() {
            rbuf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if end == rbuf.len() {
            let grow = rbuf.len().max(16 * 1024);
            rbuf.resize(rbuf.len() + grow, 0);
        }
        let read = if shared.monitor.get() {
            // A MONITOR client also gets lines pushed by other connections.
            let ev = futures_lite::future::or(async { Some(stream.read(&mut rbuf[end..]).await) }, async {
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
            stream.read(&mut rbuf[end..]).await
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if shared.killed.get() {
            break;
        }
        end += n;
        with_shard(|s| s.stats.net_input_bytes += n as u64);
        if (end - start) as u64 > qbuf_limit {
            // As Redis's readQueryFromClient: no reply, the client is just closed.
            crate::log_warning!(
                "Closing client that reached max query buffer length: id={} addr={} qbuf={}",
                shared.id,
                shared.addr,
                end - start
            );
            break;
        }
        // One clock read per read: every command of this pipeline sees the same time.
        c.now_ms = runtime::now_ms();
        shared.last_interaction_ms.set(c.now_ms);
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
                    dispatch(&mut c, &mut pipe, Args::new(data, &spans), &mut out).await;
                    start += consumed;
                    if c.close_after_reply {
                        close = true;
                        break;
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
        shared.qbuf.set(end - start);
        if !out.buf.is_empty() {
            with_shard(|s| s.stats.net_output_bytes += out.buf.len() as u64);
            if stream.write_all(&out.buf).await.is_err() {
                break 'conn;
            }
            out.buf.clear();
        }
        if close || shared.killed.get() {
            break;
        }
        // Keep the read buffer from growing without bound after a huge request.
        if start == end && rbuf.len() > 256 * 1024 {
            rbuf = vec![0; 16 * 1024];
            start = 0;
            end = 0;
        }
    }
    let _ = stream.close().await;
    if shared.monitor.get() {
        super::monitor::remove(&shared);
    }
    client::unregister(shared.id);
    rt.connected_clients.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}
