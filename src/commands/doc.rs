//! Typed command metadata captured from Redis 7.0.15 (see `tools/gen_commands.py`,
//! which generates `meta.rs` from a live redis-server).
//!
//! `COMMAND INFO` / `COMMAND DOCS` replies are stored as [`Doc`] trees that keep
//! Redis's RESP3 types, so they render byte for byte like Redis in RESP2 and RESP3.

use crate::protocol::Reply;

/// A reply tree captured from Redis 7.0.15 with its RESP3 types, so it can be
/// rendered in RESP2 or RESP3 exactly as Redis renders it.
#[derive(Debug)]
pub enum Doc {
    /// `+...` (simple string in both protocols).
    Status(&'static str),
    /// `$len\r\n...` bulk string.
    Bulk(&'static str),
    /// `:n`.
    Int(i64),
    /// RESP3 `_`, RESP2 `$-1` (Redis `addReplyNull`).
    Null,
    /// `*n`.
    Array(&'static [Doc]),
    /// RESP3 `~n`, RESP2 `*n`.
    Set(&'static [Doc]),
    /// RESP3 `%n` (n pairs), RESP2 `*2n` flattened key, value, key, value...
    Map(&'static [(Doc, Doc)]),
}

impl Doc {
    /// Render this tree into `out` in the connection's protocol.
    pub fn write(&self, out: &mut Reply) {
        match self {
            Doc::Status(s) => out.status(s.as_bytes()),
            Doc::Bulk(s) => out.bulk(s.as_bytes()),
            Doc::Int(v) => out.int(*v),
            Doc::Null => out.null(),
            Doc::Array(items) => {
                out.array_len(items.len());
                for d in items.iter() {
                    d.write(out);
                }
            }
            Doc::Set(items) => {
                out.set_len(items.len());
                for d in items.iter() {
                    d.write(out);
                }
            }
            Doc::Map(pairs) => {
                out.map_len(pairs.len());
                for (k, v) in pairs.iter() {
                    k.write(out);
                    v.write(out);
                }
            }
        }
    }

    /// Elements of an `Array`/`Set` (empty slice for anything else).
    pub fn items(&self) -> &'static [Doc] {
        match self {
            Doc::Array(items) | Doc::Set(items) => items,
            _ => &[],
        }
    }

    /// Pairs of a `Map` (empty slice for anything else).
    pub fn pairs(&self) -> &'static [(Doc, Doc)] {
        match self {
            Doc::Map(pairs) => pairs,
            _ => &[],
        }
    }

    /// The string of a `Status`/`Bulk`.
    pub fn as_str(&self) -> Option<&'static str> {
        match self {
            Doc::Status(s) | Doc::Bulk(s) => Some(s),
            _ => None,
        }
    }

    /// Value of `key` in a `Map` whose keys are strings.
    pub fn get(&self, key: &str) -> Option<&'static Doc> {
        self.pairs().iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }
}

/// Metadata of one Redis 7.0.15 command or subcommand.
#[derive(Debug)]
pub struct CommandMeta {
    /// Full name as `COMMAND INFO` gives it: `"get"`, `"client|list"`.
    pub name: &'static str,
    pub arity: i32,
    /// Command flags without the `+`, e.g. `["write", "denyoom"]`.
    pub flags: &'static [&'static str],
    /// Legacy key positions (`COMMAND INFO` elements 4-6).
    pub first_key: i32,
    pub last_key: i32,
    pub key_step: i32,
    /// e.g. `["@write", "@string", "@slow"]`.
    pub acl_categories: &'static [&'static str],
    /// Command tips, e.g. `["nondeterministic_output"]`.
    pub tips: &'static [&'static str],
    /// The `COMMAND INFO` entry WITHOUT its 10th element (subcommands): a
    /// `Doc::Array` of 9 elements `[name, arity, flags(set), first_key,
    /// last_key, step, acl_categories(set), tips(set), key_specs(set)]`.
    ///
    /// The full entry Redis sends is `*10`: these 9 elements, then the 10th:
    /// * container (has subcommands): an ARRAY (`*n` in both protocols) of the
    ///   subcommands' full entries; each of those is again `*10` = its 9 info
    ///   elements + an empty SET (`~0` in RESP3, `*0` in RESP2);
    /// * any other command: an empty SET (`~0` in RESP3, `*0` in RESP2).
    ///
    /// (Redis 7.0's `addReplyCommandSubCommands` uses `addReplySetLen(c, 0)`
    /// when there is no subcommand dict but `addReplyArrayLen` otherwise.)
    /// See [`CommandMeta::write_info`].
    pub info: Doc,
    /// The `COMMAND DOCS` value map WITHOUT the `"subcommands"` key: a
    /// `Doc::Map` of `summary, since, group, complexity, [doc_flags],
    /// [deprecated_since], [replaced_by], [history], [arguments]` in Redis's
    /// order.
    ///
    /// For a container (a command with subcommands) Redis appends exactly one
    /// more pair as the LAST pair of the map (so the map has `pairs().len() + 1`
    /// pairs): key `Bulk("subcommands")`, value a map (RESP3 `%n`, RESP2 `*2n`)
    /// from each subcommand's full name as a bulk string (`"client|list"`) to
    /// that subcommand's docs map (which has no `"subcommands"` key). Every
    /// Redis container has this pair; `write_docs` emits it for a container
    /// even when `subs` is empty (`%0` / `*0`).
    /// The whole `COMMAND DOCS a b` reply is itself a map from each found
    /// command's full name (bulk, lower-case, e.g. `"client|list"`) to its
    /// docs map. See [`CommandMeta::write_docs`].
    ///
    /// Redis iterates subcommands in the order of a randomly seeded hash
    /// table (it differs between processes and can even change between calls
    /// while the dict rehashes), so no subcommand order is canonical.
    pub docs: Doc,
    /// Subcommands (containers only), sorted by name.
    pub subcommands: &'static [CommandMeta],
}

impl CommandMeta {
    /// Subcommand of this container by bare (`"list"`) or full
    /// (`"client|list"`) name, case-insensitive.
    pub fn subcommand(&self, sub: &str) -> Option<&'static CommandMeta> {
        let bare = match sub.split_once('|') {
            Some((container, bare)) => {
                if !container.eq_ignore_ascii_case(self.name) {
                    return None;
                }
                bare
            }
            None => sub,
        };
        let plen = self.name.len() + 1;
        // `subcommands` is sorted by full name, hence by bare name too.
        let i = self
            .subcommands
            .binary_search_by(|m| cmp_ignore_case(m.name.get(plen..).unwrap_or(""), bare))
            .ok()?;
        Some(&self.subcommands[i])
    }

    /// Whether `f` (without `+`, e.g. `"write"`) is one of the command flags.
    pub fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x.eq_ignore_ascii_case(f))
    }

    /// Whether this command is a container (has subcommands in Redis).
    pub fn is_container(&self) -> bool {
        !self.subcommands.is_empty()
    }

    /// Write the full `COMMAND INFO` entry for this command the way Redis does:
    /// `*10`, the 9 elements of [`CommandMeta::info`], then for a container an
    /// array (`*n`) of `subs`' full entries, for any other command an empty
    /// set (`~0` / RESP2 `*0`). `subs` is ignored for non-containers.
    pub fn write_info(&self, out: &mut Reply, subs: &[&CommandMeta]) {
        let items = self.info.items();
        out.array_len(items.len() + 1);
        for d in items {
            d.write(out);
        }
        if self.is_container() {
            out.array_len(subs.len());
            for s in subs {
                s.write_info(out, &[]);
            }
        } else {
            out.set_len(0);
        }
    }

    /// Write the `COMMAND DOCS` value map for this command the way Redis does:
    /// the pairs of [`CommandMeta::docs`] and, for a container, a last
    /// `"subcommands"` pair mapping each of `subs`' full names to its docs.
    /// (`subs` is ignored for non-containers, as Redis has no such key there.)
    pub fn write_docs(&self, out: &mut Reply, subs: &[&CommandMeta]) {
        let pairs = self.docs.pairs();
        let container = self.is_container();
        out.map_len(pairs.len() + container as usize);
        for (k, v) in pairs {
            k.write(out);
            v.write(out);
        }
        if container {
            out.bulk(b"subcommands");
            out.map_len(subs.len());
            for s in subs {
                out.bulk(s.name.as_bytes());
                s.write_docs(out, &[]);
            }
        }
    }
}

/// Top-level command by name, case-insensitive (`"GET"`, `"client"`).
pub fn find(name: &str) -> Option<&'static CommandMeta> {
    let table = super::meta::COMMANDS;
    // The generator sorts `COMMANDS` by (lower-case) name.
    let i = table.binary_search_by(|m| cmp_ignore_case(m.name, name)).ok()?;
    Some(&table[i])
}

/// Compare a lower-case table name with `key` ASCII-case-insensitively.
fn cmp_ignore_case(table: &str, key: &str) -> std::cmp::Ordering {
    let a = table.bytes().map(|b| b.to_ascii_lowercase());
    let b = key.bytes().map(|b| b.to_ascii_lowercase());
    a.cmp(b)
}
