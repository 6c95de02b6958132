//! COMMAND and its subcommands: the table rendered as Redis 7.0.15 does.

use crate::commands::connection::write_help;
use crate::commands::doc::CommandMeta;
use crate::commands::table::{self, Command, Table};
use crate::protocol::reply::err;
use crate::protocol::{Args, Reply};
use crate::server::client::Client;

pub fn register(t: &mut Table) {
    t.client("command", command_all);
    t.client("command|count", command_count);
    t.client("command|list", command_list);
    t.client("command|info", command_info);
    t.client("command|docs", command_docs);
    t.client("command|getkeys", command_getkeys);
    t.client("command|help", command_help);
}

// ---------------------------------------------------------------- COMMAND

fn write_command_info(cmd: &Command, out: &mut Reply) {
    let subs: Vec<&CommandMeta> = cmd.subcommand_metas();
    cmd.meta.write_info(out, &subs);
}

fn command_all(_c: &mut Client, _args: Args, out: &mut Reply) {
    let cmds = table::table().commands();
    out.array_len(cmds.len());
    for c in cmds {
        write_command_info(c, out);
    }
}

fn command_count(_c: &mut Client, _args: Args, out: &mut Reply) {
    out.int(table::table().commands().len() as i64);
}

/// All implemented names: top-level commands and "container|sub" names.
fn all_names() -> Vec<(&'static str, &'static Command)> {
    let mut v = Vec::new();
    for c in table::table().commands() {
        v.push((c.meta.name, c));
        for s in &c.subs {
            v.push((s.meta.name, *s));
        }
    }
    v
}

fn command_list(_c: &mut Client, args: Args, out: &mut Reply) {
    let names = all_names();
    if args.len() == 2 {
        out.array_len(names.len());
        for (n, _) in names {
            out.bulk(n.as_bytes());
        }
        return;
    }
    if args.len() != 5 || !args.is(2, "filterby") {
        return out.error(err::SYNTAX);
    }
    let val = args.get(4);
    let keep: Vec<&str> = if args.is(3, "module") {
        Vec::new()
    } else if args.is(3, "aclcat") {
        let want = String::from_utf8_lossy(val).to_ascii_lowercase();
        names
            .iter()
            .filter(|(_, c)| c.meta.acl_categories.iter().any(|a| a.trim_start_matches('@') == want))
            .map(|(n, _)| *n)
            .collect()
    } else if args.is(3, "pattern") {
        names
            .iter()
            .filter(|(n, _)| crate::util::glob::glob_match(val, n.as_bytes(), true))
            .map(|(n, _)| *n)
            .collect()
    } else {
        return out.error(err::SYNTAX);
    };
    out.array_len(keep.len());
    for n in keep {
        out.bulk(n.as_bytes());
    }
}

/// Finds an implemented command by a user-given name ("get", "client|list").
fn find_by_name(name: &[u8]) -> Option<&'static Command> {
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    table::table().get(&lower)
}

fn command_info(_c: &mut Client, args: Args, out: &mut Reply) {
    if args.len() == 2 {
        return command_all(_c, args, out);
    }
    out.array_len(args.len() - 2);
    for i in 2..args.len() {
        match find_by_name(args.get(i)) {
            Some(c) => write_command_info(c, out),
            None => out.null(),
        }
    }
}

fn command_docs(_c: &mut Client, args: Args, out: &mut Reply) {
    let found: Vec<&Command> = if args.len() == 2 {
        table::table().commands()
    } else {
        (2..args.len()).filter_map(|i| find_by_name(args.get(i))).collect()
    };
    out.map_len(found.len());
    for c in found {
        out.bulk(c.meta.name.as_bytes());
        let subs = c.subcommand_metas();
        c.meta.write_docs(out, &subs);
    }
}

fn command_getkeys(_c: &mut Client, args: Args, out: &mut Reply) {
    let sub = args.tail(2);
    let cmd = match table::lookup(&sub) {
        Ok(c) => c,
        Err(_) => return out.error("ERR Invalid command specified"),
    };
    let has_keys = cmd.meta.info.items().get(8).map(|k| !k.items().is_empty()).unwrap_or(false);
    if !has_keys {
        return out.error("ERR The command has no key arguments");
    }
    if !cmd.arity_ok(sub.len()) {
        return out.error("ERR Invalid number of arguments specified for command");
    }
    let keys: Vec<usize> = cmd.key_positions(sub.len()).collect();
    if keys.is_empty() {
        return out.error("ERR Invalid arguments specified for command");
    }
    out.array_len(keys.len());
    for i in keys {
        out.bulk(sub.get(i));
    }
}

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
    "HELP",
    "    Prints this help.",
];

fn command_help(_c: &mut Client, _args: Args, out: &mut Reply) {
    write_help(out, COMMAND_HELP);
}
