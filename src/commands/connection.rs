//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT.

use super::table::{AsyncFn, Table};
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::runtime::{self, now_ms};
use crate::server::client::{self, Client, ReplyMode};
use std::sync::atomic::Ordering;

pub fn register(t: &mut Table) {
    t.client("ping", ping);
    t.client("echo", echo);
    t.client("hello", hello);
    t.client("auth", auth);
    t.client("select", select);
    t.client("quit", quit);
    t.client("reset", reset);
    t.client("client|id", client_id);
    t.client("client|setname", client_setname);
    t.client("client|getname", client_getname);
    t.client("client|info", client_info);
    t.client("client|no-evict", client_no_evict);
    t.client("client|unblock", client_unblock);
    t.client("client|reply", client_reply);
    t.client("client|pause", client_pause);
    t.client("client|unpause", client_unpause);
    t.client("client|help", client_help);
    t.asynch("client|list", CLIENT_LIST);
    t.asynch("client|kill", CLIENT_KILL);
}

fn ping(c: &mut Client, args: Args, out: &mut Reply) {
    if args.len() > 2 {
        out.error("ERR wrong number of arguments for 'ping' command");
    } else if !c.resp3 && c.shared.subscribed() {
        // RESP2 subscribed mode: a two-element array, as Redis.
        out.array_len(2);
        out.bulk(b"pong");
        out.bulk(if args.len() == 2 { args.get(1) } else { b"" });
    } else if args.len() == 2 {
        out.bulk(args.get(1));
    } else {
        out.status(b"PONG");
    }
}

fn echo(_c: &mut Client, args: Args, out: &mut Reply) {
    out.bulk(args.get(1));
}

/// Redis's validateClientName: printable ASCII without spaces.
fn valid_name(n: &[u8]) -> bool {
    n.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

fn set_name(c: &mut Client, n: &[u8]) {
    *c.shared.name.borrow_mut() = if n.is_empty() { None } else { Some(n.to_vec()) };
}

/// Checks a password for `user` against requirepass (the only user is "default").
fn password_ok(user: &[u8], pass: &[u8]) -> bool {
    if user != b"default" {
        return false;
    }
    match runtime::rt_ref().requirepass.read() {
        Ok(g) => match g.as_ref() {
            None => true,
            Some(p) => p.as_slice() == pass,
        },
        Err(_) => false,
    }
}

fn hello(c: &mut Client, args: Args, out: &mut Reply) {
    let mut ver = 0i64;
    let mut next = 1;
    if args.len() >= 2 {
        match crate::util::num::string2ll(args.get(1)) {
            Some(v) => ver = v,
            None => return out.error("ERR Protocol version is not an integer or out of range"),
        }
        next = 2;
        if !(2..=3).contains(&ver) {
            return out.error("NOPROTO unsupported protocol version");
        }
    }
    let mut auth: Option<(&[u8], &[u8])> = None;
    let mut name: Option<&[u8]> = None;
    let mut j = next;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if args.is(j, "auth") && more >= 2 {
            auth = Some((args.get(j + 1), args.get(j + 2)));
            j += 3;
        } else if args.is(j, "setname") && more >= 1 {
            let n = args.get(j + 1);
            if !valid_name(n) {
                return out.error(BAD_NAME);
            }
            name = Some(n);
            j += 2;
        } else {
            let mut m = b"ERR Syntax error in HELLO option '".to_vec();
            m.extend_from_slice(args.get(j));
            m.push(b'\'');
            return out.error_bytes(&m);
        }
    }
    if let Some((u, p)) = auth {
        if !password_ok(u, p) {
            return out.error("WRONGPASS invalid username-password pair or user is disabled.");
        }
        c.authed = true;
    }
    if !c.authed {
        return out.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(n) = name {
        set_name(c, n);
    }
    if ver != 0 {
        c.set_resp3(ver == 3);
        out.resp3 = c.resp3;
    }
    out.map_len(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(crate::REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(if c.resp3 { 3 } else { 2 });
    out.bulk(b"id");
    out.int(c.id as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array_len(0);
}

fn auth(c: &mut Client, args: Args, out: &mut Reply) {
    match check_auth(&args) {
        Ok(()) => {
            c.authed = true;
            out.ok();
        }
        Err(e) => out.error(e),
    }
}

/// AUTH [user] password against requirepass: Ok when it authenticates, else
/// the error to answer (also used while a slow script holds the shard).
pub fn check_auth(args: &Args) -> Result<(), &'static str> {
    if args.len() > 3 {
        return Err(err::SYNTAX);
    }
    let (user, pass): (&[u8], &[u8]) = if args.len() == 2 {
        let nopass = runtime::rt_ref().requirepass.read().map(|p| p.is_none()).unwrap_or(true);
        if nopass {
            return Err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
        }
        (b"default", args.get(1))
    } else {
        (args.get(1), args.get(2))
    };
    if password_ok(user, pass) {
        Ok(())
    } else {
        Err("WRONGPASS invalid username-password pair or user is disabled.")
    }
}

fn select(c: &mut Client, args: Args, out: &mut Reply) {
    let id = match crate::util::num::string2ll(args.get(1)) {
        Some(v) if v >= i32::MIN as i64 && v <= i32::MAX as i64 => v,
        _ => return out.error(err::NOT_INT),
    };
    let dbs = runtime::with_shard(|s| s.dbs.len()) as i64;
    if id < 0 || id >= dbs {
        return out.error(err::DB_INDEX);
    }
    c.set_db(id as usize);
    out.ok();
}

fn quit(c: &mut Client, _args: Args, out: &mut Reply) {
    out.ok();
    c.close_after_reply = true;
}

fn reset(c: &mut Client, _args: Args, out: &mut Reply) {
    if c.shared.monitor.get() {
        crate::server::monitor::remove(&c.shared);
    }
    crate::server::pubsub::forget(&c.shared);
    crate::server::tracking::disable(&c.shared);
    super::tx::discard_transaction(c);
    c.set_db(0);
    c.set_resp3(false);
    out.resp3 = false;
    c.authed = runtime::rt_ref().requirepass.read().map(|p| p.is_none()).unwrap_or(true);
    *c.shared.name.borrow_mut() = None;
    c.reply_mode = ReplyMode::On;
    c.shared.no_evict.set(false);
    out.status(b"RESET");
}

fn client_id(c: &mut Client, _args: Args, out: &mut Reply) {
    out.int(c.id as i64);
}

fn client_setname(c: &mut Client, args: Args, out: &mut Reply) {
    let n = args.get(2);
    if !valid_name(n) {
        return out.error(BAD_NAME);
    }
    set_name(c, n);
    out.ok();
}

fn client_getname(c: &mut Client, _args: Args, out: &mut Reply) {
    match c.shared.name.borrow().as_ref() {
        Some(n) => out.bulk(n),
        None => out.null(),
    }
}

fn client_info(c: &mut Client, _args: Args, out: &mut Reply) {
    let mut line = c.shared.info_line(now_ms());
    line.push('\n');
    out.verbatim(line.as_bytes());
}

fn client_no_evict(c: &mut Client, args: Args, out: &mut Reply) {
    if args.is(2, "on") {
        c.shared.no_evict.set(true);
    } else if args.is(2, "off") {
        c.shared.no_evict.set(false);
    } else {
        return out.error(err::SYNTAX);
    }
    out.ok();
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: ends another client's blocking command
/// (the blocked-client registry is process-wide, whatever its shard).
fn client_unblock(_c: &mut Client, args: Args, out: &mut Reply) {
    if args.len() > 4 {
        let sub = String::from_utf8_lossy(args.get(1)).into_owned();
        return out.error(&format!("ERR unknown subcommand or wrong number of arguments for '{sub}'. Try CLIENT HELP."));
    }
    let mut error = false;
    if args.len() == 4 {
        if args.is(3, "timeout") {
            error = false;
        } else if args.is(3, "error") {
            error = true;
        } else {
            return out.error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
        }
    }
    let Some(id) = crate::util::num::string2ll(args.get(2)) else {
        return out.error(err::NOT_INT);
    };
    let done = id > 0 && crate::runtime::blocking::unblock_client(id as u64, error);
    out.int(done as i64);
}

fn client_reply(c: &mut Client, args: Args, out: &mut Reply) {
    if args.is(2, "on") {
        c.reply_mode = ReplyMode::On;
        out.ok();
    } else if args.is(2, "off") {
        c.reply_mode = ReplyMode::Off;
    } else if args.is(2, "skip") {
        if c.reply_mode != ReplyMode::Off {
            c.reply_mode = ReplyMode::SkipNext;
        }
    } else {
        out.error(err::SYNTAX);
    }
}

fn client_pause(_c: &mut Client, args: Args, out: &mut Reply) {
    let ms = match crate::util::num::string2ll(args.get(2)) {
        Some(v) => v,
        None => return out.error("ERR timeout is not an integer or out of range"),
    };
    if ms < 0 {
        return out.error("ERR timeout is negative");
    }
    let writes_only = if args.len() == 4 {
        if args.is(3, "write") {
            true
        } else if args.is(3, "all") {
            false
        } else {
            return out.error("ERR CLIENT PAUSE mode must be WRITE or ALL");
        }
    } else if args.len() > 4 {
        return out.error(err::SYNTAX);
    } else {
        false
    };
    let rt = runtime::rt_ref();
    let until = now_ms().saturating_add(ms as u64);
    // A pause can only be extended or made stricter, as Redis's pauseClients.
    let cur = rt.pause_until.load(Ordering::SeqCst);
    let cur_writes = rt.pause_writes_only.load(Ordering::SeqCst);
    if cur == 0 || until > cur {
        rt.pause_until.store(until.max(1), Ordering::SeqCst);
    }
    if cur == 0 || cur < now_ms() {
        rt.pause_writes_only.store(writes_only, Ordering::SeqCst);
    } else if cur_writes && !writes_only {
        rt.pause_writes_only.store(false, Ordering::SeqCst);
    }
    out.ok();
}

fn client_unpause(_c: &mut Client, _args: Args, out: &mut Reply) {
    runtime::rt_ref().pause_until.store(0, Ordering::SeqCst);
    out.ok();
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
];

/// Help replies are arrays of status lines, as Redis's addReplyHelp.
pub fn write_help(out: &mut Reply, lines: &[&str]) {
    out.array_len(lines.len());
    for l in lines {
        out.status(l.as_bytes());
    }
}

fn client_help(_c: &mut Client, _args: Args, out: &mut Reply) {
    write_help(out, CLIENT_HELP);
}

/// Client types of CLIENT LIST/KILL TYPE (Redis's getClientType: a
/// subscribed client is "pubsub", a MONITOR one "normal"; no replicas here).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    Pubsub,
    /// master / replica / slave: nobody.
    Nobody,
}

impl ClientType {
    fn matches(self, cl: &client::ClientShared) -> bool {
        match self {
            ClientType::Normal => !cl.subscribed(),
            ClientType::Pubsub => cl.subscribed(),
            ClientType::Nobody => false,
        }
    }
}

fn client_type_ok(t: &[u8]) -> Option<ClientType> {
    let t = t.to_ascii_lowercase();
    match t.as_slice() {
        b"normal" => Some(ClientType::Normal),
        b"pubsub" => Some(ClientType::Pubsub),
        b"master" | b"replica" | b"slave" => Some(ClientType::Nobody),
        _ => None,
    }
}

const CLIENT_LIST: AsyncFn = |c, args, out| Box::pin(client_list(c, args, out));

async fn client_list(_c: &mut Client, args: Args<'_>, out: &mut Reply) {
    let mut ids: Option<Vec<u64>> = None;
    let mut of_type: Option<ClientType> = None;
    if args.len() == 4 && args.is(2, "type") {
        match client_type_ok(args.get(3)) {
            Some(v) => of_type = Some(v),
            None => {
                let mut m = b"ERR Unknown client type '".to_vec();
                m.extend_from_slice(args.get(3));
                m.push(b'\'');
                return out.error_bytes(&m);
            }
        }
    } else if args.len() > 3 && args.is(2, "id") {
        let mut v = Vec::new();
        for i in 3..args.len() {
            match crate::util::num::string2ll(args.get(i)) {
                Some(x) => v.push(x as u64),
                None => return out.error("ERR Invalid client ID"),
            }
        }
        ids = Some(v);
    } else if args.len() != 2 {
        return out.error(err::SYNTAX);
    }
    let lines = runtime::broadcast(move |_s| {
        let now = now_ms();
        let mut v: Vec<(u64, String)> = Vec::new();
        client::for_each(|cl| {
            if of_type.is_none_or(|t| t.matches(cl)) {
                v.push((cl.id, cl.info_line(now)));
            }
        });
        v
    })
    .await;
    let Ok(lines) = lines else {
        return out.error(err::SHARD_LOST);
    };
    let mut all: Vec<(u64, String)> = lines.into_iter().flatten().collect();
    all.sort_by_key(|x| x.0);
    let mut text = String::new();
    for (id, line) in all {
        if let Some(ids) = &ids {
            if !ids.contains(&id) {
                continue;
            }
        }
        text.push_str(&line);
        text.push('\n');
    }
    out.verbatim(text.as_bytes());
}

/// Filters of CLIENT KILL's new form.
#[derive(Clone, Default)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    user: Option<String>,
    of_type: Option<ClientType>,
    skipme: bool,
    me: u64,
}

const CLIENT_KILL: AsyncFn = |c, args, out| Box::pin(client_kill(c, args, out));

async fn client_kill(c: &mut Client, args: Args<'_>, out: &mut Reply) {
    let mut f = KillFilter {
        skipme: true,
        me: c.id,
        ..Default::default()
    };
    let old_form = args.len() == 3;
    if old_form {
        f.addr = Some(String::from_utf8_lossy(args.get(2)).into_owned());
        f.skipme = false;
    } else if args.len() > 3 {
        let mut i = 2;
        while i < args.len() {
            if i + 1 >= args.len() {
                return out.error(err::SYNTAX);
            }
            let v = args.get(i + 1);
            let vs = String::from_utf8_lossy(v).into_owned();
            if args.is(i, "id") {
                match crate::util::num::string2ll(v) {
                    Some(x) if x > 0 => f.id = Some(x as u64),
                    _ => return out.error("ERR client-id should be greater than 0"),
                }
            } else if args.is(i, "type") {
                match client_type_ok(v) {
                    Some(n) => f.of_type = Some(n),
                    None => return out.error_bytes(format!("ERR Unknown client type '{vs}'").as_bytes()),
                }
            } else if args.is(i, "addr") {
                f.addr = Some(vs);
            } else if args.is(i, "laddr") {
                f.laddr = Some(vs);
            } else if args.is(i, "user") {
                if vs != "default" {
                    return out.error_bytes(format!("ERR No such user '{vs}'").as_bytes());
                }
                f.user = Some(vs);
            } else if args.is(i, "skipme") {
                if args.is(i + 1, "yes") {
                    f.skipme = true;
                } else if args.is(i + 1, "no") {
                    f.skipme = false;
                } else {
                    return out.error(err::SYNTAX);
                }
            } else {
                return out.error(err::SYNTAX);
            }
            i += 2;
        }
    } else {
        return out.error(err::SYNTAX);
    }
    let filt = f.clone();
    let killed = runtime::broadcast(move |_s| {
        let mut n = 0;
        client::for_each(|cl| {
            if filt.skipme && cl.id == filt.me {
                return;
            }
            if filt.id.is_some_and(|id| id != cl.id)
                || filt.addr.as_ref().is_some_and(|a| *a != cl.addr)
                || filt.laddr.as_ref().is_some_and(|a| *a != cl.laddr)
                || filt.of_type.is_some_and(|t| !t.matches(cl))
            {
                return;
            }
            if cl.id == filt.me {
                // Killing ourselves: reply first, then close (Redis's CLOSE_AFTER_REPLY).
                cl.killed.set(true);
            } else {
                cl.kill();
            }
            n += 1;
        });
        n
    })
    .await;
    let Ok(killed) = killed.map(|v| v.into_iter().sum::<usize>()) else {
        return out.error(err::SHARD_LOST);
    };
    if old_form {
        if killed == 0 {
            out.error("ERR No such client");
        } else {
            out.ok();
        }
    } else {
        out.int(killed as i64);
    }
}
