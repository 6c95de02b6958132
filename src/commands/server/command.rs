//! COMMAND and its subcommands: the table rendered as Redis 7.0.15 does.

use crate::commands::connection::write_help;
use crate::commands::doc::{self, CommandMeta};
use crate::commands::keyspec;
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
    t.client("command|getkeysandflags", command_getkeysandflags);
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
        for sc in c.subs.iter().filter_map(|n| table::table().get(n)) {
            v.push((sc.meta.name, sc));
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
    getkeys(args, false, out)
}

fn command_getkeysandflags(_c: &mut Client, args: Args, out: &mut Reply) {
    getkeys(args, true, out)
}

/// Redis's lookupCommand over the generated metadata (every Redis 7.0
/// command, implemented or not): a container without a subcommand argument
/// is the container itself.
fn lookup_meta(argv: &Args) -> Option<&'static CommandMeta> {
    let base = doc::find(std::str::from_utf8(argv.get(0)).ok()?)?;
    if argv.len() == 1 || !base.is_container() {
        return Some(base);
    }
    // Redis's subcommand dict is keyed by the bare name only.
    let sub = std::str::from_utf8(argv.get(1)).ok().filter(|s| !s.contains('|'))?;
    base.subcommand(sub)
}

/// getKeysSubcommandImpl: COMMAND GETKEYS / GETKEYSANDFLAGS.
fn getkeys(args: Args, with_flags: bool, out: &mut Reply) {
    let sub = args.tail(2);
    let Some(meta) = lookup_meta(&sub) else {
        return out.error("ERR Invalid command specified");
    };
    let specs = keyspec::specs(meta);
    if !specs.has_keys() {
        return out.error("ERR The command has no key arguments");
    }
    let (arity, argc) = (meta.arity as i64, sub.len() as i64);
    if (arity > 0 && arity != argc) || argc < -arity {
        return out.error("ERR Invalid number of arguments specified for command");
    }
    let mut keys = Vec::new();
    if keyspec::keys_with(specs, &sub, &mut keys).is_err() {
        return out.error("ERR Invalid arguments specified for command");
    }
    out.array_len(keys.len());
    for k in keys {
        if with_flags {
            out.array_len(2);
            out.bulk(sub.get(k.pos));
            let names = keyspec::flags::NAMES.iter().filter(|(f, _)| k.flags & f != 0);
            out.set_len(names.clone().count());
            for (_, n) in names {
                out.status(n.as_bytes());
            }
        } else {
            out.bulk(sub.get(k.pos));
        }
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
