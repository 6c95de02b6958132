//! Serving new connections while a shard runs a slow script.
//!
//! A shard whose script has run past `busy-reply-threshold` cannot serve
//! anything: its thread is inside the script. Redis answers every client
//! with BUSY then (processEventsWhileBlocked), which is how SCRIPT KILL and
//! SHUTDOWN NOSAVE reach a runaway script. Clients of the *other* shards get
//! BUSY from their own dispatch; this module covers the connections the
//! kernel hands the busy shard's listeners meanwhile (with one shard: every
//! new connection). A thread, asleep until a script becomes slow, accepts
//! on the busy shards' listeners (the same sockets: whichever accepts first
//! gets the connection, the shard's ring then finds nothing) and answers the
//! requests as processCommand would while a script is slow: lookup, arity
//! and auth errors, BUSY for what is not `allow_busy`, and it runs SCRIPT
//! KILL, FUNCTION KILL, FUNCTION STATS, AUTH, QUIT and SHUTDOWN NOSAVE itself
//! (they touch no shard state). Any other `allow_busy` command (MULTI, WATCH,
//! HELLO...) and everything after it waits, unparsed, for the
//! shard: the connection is then handed to it like a migrating connection
//! (`migrate::adopt_accepted`), with its unparsed bytes, its AUTH state and
//! the statistics of what was answered here, so its order is kept.
//!
//! Connections the busy shard already served wait for the script, as
//! before: their sockets' receives are armed in the shard's own ring.
//! Only with the io_uring engine on every shard (the adoption opens the
//! socket in the shard's ring).

use super::migrate;
use super::net::uring;
use crate::commands::table::{self, flags};
use crate::protocol::parser::{Parsed, Parser, Source, BIG_TAG};
use crate::protocol::reply::Reply;
use crate::protocol::Args;
use crate::runtime;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

/// Every shard's listening sockets (dups, so that a shard closing its own
/// never leaves a number here that the kernel reuses).
static LISTENERS: Mutex<Vec<Vec<OwnedFd>>> = Mutex::new(Vec::new());

/// A request this large without its end waits for the shard (admin
/// commands are small; the shard's parser handles big arguments).
const MAX_HELD_REQUEST: usize = 64 * 1024;
/// Bytes received past a held request are read no further than this (the
/// client then waits on TCP's flow control).
const MAX_HELD_BYTES: usize = 1 << 20;

/// Records shard `shard`'s listening sockets (called by the shard when it
/// installs or replaces them; an empty list on shutdown).
pub fn set_listeners(shard: usize, fds: &[RawFd]) {
    let dups: Vec<OwnedFd> = fds
        .iter()
        .filter_map(|&fd| {
            // SAFETY: `fd` is an open listening socket of the calling shard.
            let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
            // SAFETY: a fresh descriptor we own.
            let d = (d >= 0).then(|| unsafe { OwnedFd::from_raw_fd(d) })?;
            Some(d)
        })
        .collect();
    let mut l = LISTENERS.lock().unwrap_or_else(|e| e.into_inner());
    if l.len() <= shard {
        l.resize_with(shard + 1, Vec::new);
    }
    l[shard] = dups;
}

/// Starts the thread (once, at start-up).
pub fn start() {
    let _ = std::thread::Builder::new().name("busy-responder".into()).spawn(run);
}

/// What happened here, for the shard's statistics (applied when it adopts
/// the connection, or by a job when the connection ends here).
#[derive(Default)]
struct Tally {
    input: u64,
    output: u64,
    /// (command id, the reply's error line or empty, rejected before running).
    events: Vec<(Option<usize>, Vec<u8>, bool)>,
}

struct Held {
    fd: OwnedFd,
    shard: usize,
    id: u64,
    addr: String,
    laddr: String,
    created_ms: u64,
    buf: Vec<u8>,
    out: Vec<u8>,
    authed: bool,
    /// A request the shard must run: nothing more is parsed here.
    frozen: bool,
    /// Close once `out` is sent (QUIT, a protocol error).
    close: bool,
    /// The peer closed, or a socket error: drop it.
    gone: bool,
    tally: Tally,
}

fn run() {
    let mut held: Vec<Held> = Vec::new();
    loop {
        if held.is_empty() {
            crate::util::alloc::publish_pending();
            crate::scripting::wait_busy(Duration::from_secs(1));
        }
        let rt = runtime::rt_ref();
        if rt.shutting_down.load(Ordering::Relaxed) {
            for h in held.drain(..) {
                drop_held(h);
            }
            if crate::scripting::busy_shards().is_empty() {
                std::thread::sleep(Duration::from_millis(50));
            }
            continue;
        }
        // Adoption needs every shard's ring.
        let ready = uring::COUNTERS.shards.load(Ordering::Relaxed) as usize == runtime::nshards();
        let busy = if ready { crate::scripting::busy_shards() } else { Vec::new() };
        if busy.is_empty() && held.is_empty() {
            // The glommio engine, or the script is ending: `busy()` may stay
            // true a moment longer, so do not spin on it.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let listeners = LISTENERS.lock().unwrap_or_else(|e| e.into_inner());
        let mut pfds: Vec<libc::pollfd> = Vec::new();
        let mut owners: Vec<usize> = Vec::new();
        for &s in &busy {
            for l in listeners.get(s).map(|v| v.as_slice()).unwrap_or_default() {
                pfds.push(libc::pollfd {
                    fd: l.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                owners.push(s);
            }
        }
        let nl = pfds.len();
        for h in &held {
            let mut ev = 0;
            if h.buf.len() < MAX_HELD_BYTES {
                ev |= libc::POLLIN;
            }
            if !h.out.is_empty() {
                ev |= libc::POLLOUT;
            }
            pfds.push(libc::pollfd {
                fd: h.fd.as_raw_fd(),
                events: ev,
                revents: 0,
            });
        }
        // SAFETY: `pfds` is a valid array of pollfd of that length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 10) };
        if n > 0 {
            for (i, p) in pfds[..nl].iter().enumerate() {
                if p.revents & libc::POLLIN != 0 {
                    accept_all(p.fd, owners[i], &mut held);
                }
            }
        }
        drop(listeners);
        for h in held.iter_mut() {
            receive(h);
            answer(h);
            send(h);
        }
        // Hand over what the shard can take, drop what ended.
        let still: Vec<usize> = crate::scripting::busy_shards();
        let mut keep = Vec::with_capacity(held.len());
        for h in held.drain(..) {
            if h.gone || (h.close && h.out.is_empty()) {
                drop_held(h);
            } else if h.out.is_empty() && !h.close && (h.frozen || !still.contains(&h.shard)) {
                hand_over(h);
            } else {
                keep.push(h);
            }
        }
        held = keep;
    }
}

/// Accepts the pending connections of one listener (acceptCommonHandler's checks).
fn accept_all(lfd: RawFd, shard: usize, held: &mut Vec<Held>) {
    let rt = runtime::rt_ref();
    for i in 0.. {
        let mut p = libc::pollfd {
            fd: lfd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if i > 0 && unsafe { libc::poll(&mut p, 1, 0) } != 1 {
            return;
        }
        // Listening sockets are blocking, and stay so for the ring's ACCEPT.
        // Should the ring take the connection between the poll above and
        // this accept4 (the script just ended), a receive timeout set only
        // around the call bounds the wait.
        // SAFETY: `lfd` is a listening socket kept open by LISTENERS' lock.
        let lfd_b = unsafe { std::os::fd::BorrowedFd::borrow_raw(lfd) };
        let sk = socket2::SockRef::from(&lfd_b);
        let _ = sk.set_read_timeout(Some(Duration::from_millis(5)));
        // SAFETY: accept4 on a listening socket; null address out-pointers are allowed.
        let fd = unsafe { libc::accept4(lfd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) };
        let _ = sk.set_read_timeout(None);
        if fd < 0 {
            return;
        }
        // SAFETY: a fresh socket we own.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let sk = socket2::SockRef::from(&owned);
        let _ = sk.set_nodelay(true);
        let ka = rt.config.read().map(|c| c.tcp_keepalive()).unwrap_or(300);
        if ka > 0 {
            let _ = sk.set_keepalive(true);
            let _ = sk.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(Duration::from_secs(ka)));
        }
        let peer = sk.peer_addr().ok().and_then(|a| a.as_socket());
        let local = sk.local_addr().ok().and_then(|a| a.as_socket());
        let refuse = if rt.connected_clients.load(Ordering::Relaxed) >= rt.maxclients.load(Ordering::Relaxed) as usize {
            runtime::send(shard, Box::new(|| runtime::with_shard(|s| s.stats.rejected_connections += 1)));
            Some(&b"-ERR max number of clients reached\r\n"[..])
        } else if peer.is_some_and(|p| super::protected_mode_denies(p.ip())) {
            Some(super::PROTECTED_MODE_ERR.as_bytes())
        } else {
            None
        };
        runtime::send(shard, Box::new(|| runtime::with_shard(|s| s.stats.connections_received += 1)));
        if let Some(msg) = refuse {
            // SAFETY: a fresh socket's send buffer takes the one line.
            unsafe { libc::send(fd, msg.as_ptr() as *const libc::c_void, msg.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
            continue;
        }
        rt.connected_clients.fetch_add(1, Ordering::Relaxed);
        let now = runtime::now_ms();
        held.push(Held {
            fd: owned,
            shard,
            id: runtime::next_client_id(),
            addr: peer.map(|a| a.to_string()).unwrap_or_default(),
            laddr: local.map(|a| a.to_string()).unwrap_or_default(),
            created_ms: now,
            buf: Vec::new(),
            out: Vec::new(),
            authed: rt.requirepass.read().map(|p| p.is_none()).unwrap_or(true),
            frozen: false,
            close: false,
            gone: false,
            tally: Tally::default(),
        });
    }
}

fn receive(h: &mut Held) {
    let mut chunk = [0u8; 16 * 1024];
    while !h.gone && h.buf.len() < MAX_HELD_BYTES {
        // SAFETY: reading into a local buffer of that length.
        let n = unsafe { libc::recv(h.fd.as_raw_fd(), chunk.as_mut_ptr() as *mut libc::c_void, chunk.len(), libc::MSG_DONTWAIT) };
        if n > 0 {
            h.buf.extend_from_slice(&chunk[..n as usize]);
            h.tally.input += n as u64;
        } else if n == 0 {
            h.gone = true;
        } else {
            let e = std::io::Error::last_os_error().raw_os_error();
            if e != Some(libc::EAGAIN) && e != Some(libc::EINTR) {
                h.gone = true;
            }
            return;
        }
    }
}

fn send(h: &mut Held) {
    while !h.gone && !h.out.is_empty() {
        // SAFETY: sending from our own buffer.
        let n = unsafe {
            libc::send(
                h.fd.as_raw_fd(),
                h.out.as_ptr() as *const libc::c_void,
                h.out.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n > 0 {
            h.tally.output += n as u64;
            h.out.drain(..n as usize);
        } else {
            let e = std::io::Error::last_os_error().raw_os_error();
            if e != Some(libc::EAGAIN) && e != Some(libc::EINTR) {
                h.gone = true;
            }
            return;
        }
    }
}

/// What a request gets here.
enum Answer {
    /// The reply; the command is done (`Some(id)` counts in commandstats;
    /// `true`: rejected before running).
    Reply(Vec<u8>, Option<usize>, bool),
    /// The shard must run this one (and everything after it).
    Wait,
    /// Nothing more: the connection closes after `Vec` (QUIT, SHUTDOWN).
    Close(Vec<u8>, Option<usize>),
}

/// Parses and answers the complete requests received so far.
fn answer(h: &mut Held) {
    let rt = runtime::rt_ref();
    let max_bulk = rt.config.read().map(|c| c.proto_max_bulk_len()).unwrap_or(512 << 20);
    let mut pos = 0;
    while !h.frozen && !h.close && !h.gone {
        let mut parser = Parser::default();
        parser.max_bulk = max_bulk.min(i64::MAX as u64) as i64;
        let mut spans = Vec::new();
        match parser.parse(&h.buf[pos..], &mut spans, h.authed) {
            Err(e) => {
                let r = format!("-{}\r\n", e.0).into_bytes();
                h.tally.events.push((None, r.clone(), true));
                h.out.extend_from_slice(&r);
                h.close = true;
            }
            Ok(Parsed::Incomplete) => {
                if h.buf.len() - pos > MAX_HELD_REQUEST {
                    h.frozen = true;
                }
                break;
            }
            Ok(Parsed::Empty { consumed }) => pos += consumed,
            Ok(Parsed::Command { consumed, source }) => {
                if spans.iter().any(|&(s, _)| s & BIG_TAG != 0) {
                    h.frozen = true;
                    break;
                }
                let data: &[u8] = match source {
                    Source::Input => &h.buf[pos..],
                    Source::Inline => &parser.inline,
                };
                let args = Args::new(data, &spans);
                match respond(&args, &mut h.authed) {
                    Answer::Wait => h.frozen = true,
                    Answer::Reply(r, id, rejected) => {
                        pos += consumed;
                        h.tally.events.push((id, error_line(&r), rejected));
                        h.out.extend_from_slice(&r);
                    }
                    Answer::Close(r, id) => {
                        pos += consumed;
                        h.tally.events.push((id, error_line(&r), false));
                        h.out.extend_from_slice(&r);
                        h.close = true;
                    }
                }
            }
        }
    }
    h.buf.drain(..pos);
}

fn error_line(r: &[u8]) -> Vec<u8> {
    if r.first() == Some(&b'-') {
        r.to_vec()
    } else {
        Vec::new()
    }
}

/// processCommand's checks while a script is slow, in Redis's order.
fn respond(args: &Args<'_>, authed: &mut bool) -> Answer {
    let mut out = Reply::new(false);
    let cmd = match table::lookup(args) {
        Ok(cmd) => cmd,
        Err(e) => {
            table::write_lookup_error(e, args, &mut out);
            return Answer::Reply(out.buf, None, true);
        }
    };
    let id = Some(cmd.id);
    if !cmd.arity_ok(args.len()) || !cmd.groups_ok(args.len()) {
        table::write_arity_error(cmd, &mut out);
        return Answer::Reply(out.buf, id, true);
    }
    if !*authed && !cmd.has(flags::NOAUTH) {
        out.error(crate::protocol::reply::err::NOAUTH);
        return Answer::Reply(out.buf, id, true);
    }
    if !crate::scripting::busy() {
        // The script ended meanwhile: the shard serves it normally.
        return Answer::Wait;
    }
    if !cmd.has(flags::ALLOW_BUSY) {
        out.error(crate::scripting::busy_error());
        return Answer::Reply(out.buf, id, true);
    }
    match cmd.meta.name {
        "function|stats" => crate::commands::functions::write_function_stats(&mut out),
        "script|kill" | "function|kill" => match crate::scripting::kill(cmd.meta.name == "script|kill") {
            Ok(()) => out.ok(),
            Err(e) => out.error(e),
        },
        "auth" => match crate::commands::connection::check_auth(args) {
            Ok(()) => {
                *authed = true;
                out.ok();
            }
            Err(e) => out.error(e),
        },
        "quit" => {
            out.ok();
            return Answer::Close(out.buf, id);
        }
        "shutdown" => match crate::commands::server::parse_shutdown(args) {
            Ok(_) => {
                crate::log_warning!("User requested shutdown...");
                super::initiate_shutdown();
                return Answer::Close(Vec::new(), id);
            }
            Err(e) => out.error(e),
        },
        _ => return Answer::Wait,
    }
    Answer::Reply(out.buf, id, false)
}

/// Applies what was answered here to the shard's statistics (on its thread).
fn settle(t: Tally) {
    runtime::with_shard(|s| {
        s.stats.net_input_bytes += t.input;
        s.stats.net_output_bytes += t.output;
        for (id, err, rejected) in &t.events {
            if let Some(id) = *id {
                if *rejected {
                    s.stats.cmd_mut(id).rejected += 1;
                } else {
                    s.stats.commands += 1;
                    let c = s.stats.cmd_mut(id);
                    c.calls += 1;
                    if !err.is_empty() {
                        c.failed += 1;
                    }
                }
            }
            if !err.is_empty() {
                s.stats.count_error(err);
            }
        }
    });
}

fn drop_held(h: Held) {
    runtime::rt_ref().connected_clients.fetch_sub(1, Ordering::Relaxed);
    let t = h.tally;
    runtime::send(h.shard, Box::new(move || settle(t)));
    // The socket closes with `h.fd`.
}

fn hand_over(h: Held) {
    let tally = h.tally;
    let fd = h.fd;
    migrate::adopt_accepted(
        h.shard,
        migrate::Accepted {
            id: h.id,
            addr: h.addr,
            laddr: h.laddr,
            created_ms: h.created_ms,
            authed: h.authed,
            bytes: h.buf,
        },
        fd,
        Box::new(move || settle(tally)),
    );
}
