//! The client commands: which is which, their arity and options, Redis's
//! exact error wording, the commands that only touch the connection's own
//! state (`SELECT`, `CLIENT`, `HELLO`, `CONFIG GET`), and the membership
//! commands (`CLUSTER ADDLEARNER | PROMOTE | REMOVE | MEMBERS`).
//!
//! [`parse`] is pure: it turns one RESP command into a reply the client
//! thread sends at once, or a [`Request`] for the event loop. Writes come
//! out as [`Command`]s with their TTLs as the client gave them; the leader
//! stamps them with its clock when it proposes them (see `store.rs`).

use std::net::SocketAddr;

use crate::auth::Password;
use crate::resp::Reply;
use crate::server::{Admin, Member, Request};
use crate::store::{Command, Cond, Query, Ttl};
use zaft::NodeId;

/// The version `HELLO` and `INFO` claim: the Redis whose commands these
/// follow, so client libraries enable what they support.
pub const REDIS_VERSION: &str = "7.0.0";

/// What a connection remembers between commands.
#[derive(Debug, Default)]
pub struct Session {
    /// `CLIENT ID`: unique among this process's connections.
    pub id: u64,
    /// The client's address, for `CLIENT INFO`.
    pub addr: String,
    /// `CLIENT SETNAME`.
    pub name: Option<Vec<u8>>,
    /// `CLIENT SETINFO LIB-NAME` and `LIB-VER`.
    pub lib_name: Option<Vec<u8>>,
    pub lib_ver: Option<Vec<u8>>,
    /// What `AUTH` must be given (`--requirepass`), if anything.
    pub password: Password,
    /// `AUTH` succeeded, or no password is required.
    pub authed: bool,
}

/// What the client thread does with a command.
pub enum Parsed {
    /// Answer at once.
    Local(Reply),
    /// Answer at once and count a bad request.
    Bad(Reply),
    /// Answer at once and count a wrong password.
    AuthFailed(Reply),
    /// Ask the event loop.
    Loop(Request),
    Quit,
}

/// `CONFIG GET`'s answers: what redis-benchmark and client libraries ask
/// about, with the values that describe kv_store.
const CONFIG: &[(&str, &str)] = &[
    // No RDB snapshots; every write is in the WAL and fsynced before it is
    // acknowledged.
    ("save", ""),
    ("appendonly", "yes"),
    ("appendfsync", "always"),
    ("databases", "1"),
    ("maxmemory", "0"),
    ("maxmemory-policy", "noeviction"),
    ("maxclients", "1024"),
    ("timeout", "0"),
    ("proto-max-bulk-len", "1048576"),
    ("cluster-enabled", "no"),
];

fn arity(name: &str) -> Parsed {
    Parsed::Bad(Reply::err(format!(
        "ERR wrong number of arguments for '{name}' command"
    )))
}

fn syntax() -> Parsed {
    Parsed::Bad(Reply::err("ERR syntax error"))
}

fn not_integer() -> Parsed {
    Parsed::Bad(Reply::err("ERR value is not an integer or out of range"))
}

fn int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

fn log(cmd: Command) -> Parsed {
    Parsed::Loop(Request::Log(cmd))
}

fn read(q: Query) -> Parsed {
    Parsed::Loop(Request::Read(q))
}

/// Parses one command (`args` is never empty).
pub fn parse(args: &[Vec<u8>], session: &mut Session) -> Parsed {
    let name = upper(&args[0]);
    let n = args.len();
    let lower = name.to_ascii_lowercase();
    let key = || args[1].clone();
    if !session.authed && !matches!(name.as_str(), "AUTH" | "HELLO" | "QUIT") {
        return Parsed::Bad(Reply::err("NOAUTH Authentication required."));
    }
    match (name.as_str(), n) {
        ("AUTH", 2) => auth(session, None, &args[1]),
        ("AUTH", 3) => auth(session, Some(&args[1]), &args[2]),
        ("AUTH", _) => arity("auth"),
        ("PING", 1) => Parsed::Local(Reply::Simple("PONG".into())),
        ("PING", 2) => Parsed::Local(Reply::Bulk(Some(args[1].clone()))),
        ("ECHO", 2) => Parsed::Local(Reply::Bulk(Some(args[1].clone()))),
        ("QUIT", _) => Parsed::Quit,
        // redis-cli asks for command docs when it starts; an empty answer is fine.
        ("COMMAND", _) => Parsed::Local(Reply::Array(Vec::new())),
        ("SELECT", 2) => match int(&args[1]) {
            None => not_integer(),
            Some(0) => Parsed::Local(Reply::ok()),
            Some(_) => Parsed::Bad(Reply::err("ERR DB index is out of range")),
        },
        ("HELLO", _) => hello(args, session),
        ("CLIENT", n) if n >= 2 => client(args, session),
        ("CONFIG", n) if n >= 2 => config(args),
        ("SET", n) if n >= 3 => set(args),
        ("GET", 2) => read(Query::Get { key: key() }),
        ("MGET", n) if n >= 2 => read(Query::MGet {
            keys: args[1..].to_vec(),
        }),
        ("EXISTS", n) if n >= 2 => read(Query::Exists {
            keys: args[1..].to_vec(),
        }),
        ("TTL", 2) => read(Query::Ttl {
            key: key(),
            ms: false,
        }),
        ("PTTL", 2) => read(Query::Ttl {
            key: key(),
            ms: true,
        }),
        ("DBSIZE", 1) => read(Query::DbSize),
        ("STALEGET", 2) => Parsed::Loop(Request::Stale(Query::Get { key: key() })),
        ("MSET", n) if n >= 3 && n % 2 == 1 => log(Command::MSet {
            pairs: args[1..]
                .chunks(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect(),
        }),
        ("DEL", n) if n >= 2 => log(Command::Del {
            keys: args[1..].to_vec(),
        }),
        ("INCR", 2) => log(Command::Incr { key: key(), by: 1 }),
        ("DECR", 2) => log(Command::Incr { key: key(), by: -1 }),
        ("INCRBY", 3) => match int(&args[2]) {
            Some(by) => log(Command::Incr { key: key(), by }),
            None => not_integer(),
        },
        ("DECRBY", 3) => match int(&args[2]).and_then(i64::checked_neg) {
            Some(by) => log(Command::Incr { key: key(), by }),
            None => not_integer(),
        },
        ("EXPIRE" | "PEXPIRE", 3) => {
            let Some(t) = int(&args[2]) else {
                return not_integer();
            };
            let ms = if name == "EXPIRE" {
                t.checked_mul(1000)
            } else {
                Some(t)
            };
            match ms {
                Some(ms) => log(Command::Expire {
                    key: key(),
                    ttl: Ttl::AfterMs(ms),
                }),
                None => Parsed::Bad(Reply::err(format!(
                    "ERR invalid expire time in '{lower}' command"
                ))),
            }
        }
        ("EXPIRE" | "PEXPIRE", n) if n > 3 => Parsed::Bad(Reply::err(format!(
            "ERR Unsupported option {}",
            String::from_utf8_lossy(&args[3])
        ))),
        ("INFO", _) => Parsed::Loop(Request::Info),
        ("TRANSFER", 2) => match int(&args[1]) {
            Some(id) if id >= 0 => Parsed::Loop(Request::Transfer(NodeId(id as u64))),
            _ => not_integer(),
        },
        ("CLUSTER", n) if n >= 2 => cluster(args),
        (
            "PING" | "ECHO" | "SELECT" | "CLIENT" | "CONFIG" | "SET" | "GET" | "MGET" | "EXISTS"
            | "TTL" | "PTTL" | "DBSIZE" | "STALEGET" | "MSET" | "DEL" | "INCR" | "DECR" | "INCRBY"
            | "DECRBY" | "EXPIRE" | "PEXPIRE" | "TRANSFER" | "CLUSTER",
            _,
        ) => arity(&lower),
        _ => {
            let mut msg = format!(
                "ERR unknown command '{}', with args beginning with: ",
                clip(&args[0])
            );
            for a in &args[1..] {
                msg.push_str(&format!("'{}' ", clip(a)));
            }
            Parsed::Bad(Reply::err(msg))
        }
    }
}

/// An argument shown in an error, at most 128 characters.
fn clip(b: &[u8]) -> String {
    String::from_utf8_lossy(b).chars().take(128).collect()
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`.
fn set(args: &[Vec<u8>]) -> Parsed {
    let mut cond = Cond::Always;
    let mut get = false;
    let mut ttl = Ttl::Clear;
    let mut i = 3;
    while i < args.len() {
        let opt = upper(&args[i]);
        match opt.as_str() {
            "NX" if cond != Cond::IfPresent => cond = Cond::IfAbsent,
            "XX" if cond != Cond::IfAbsent => cond = Cond::IfPresent,
            "GET" => get = true,
            "KEEPTTL" if ttl == Ttl::Clear => ttl = Ttl::Keep,
            "EX" | "PX" | "EXAT" | "PXAT" if ttl == Ttl::Clear && i + 1 < args.len() => {
                i += 1;
                let Some(v) = int(&args[i]) else {
                    return not_integer();
                };
                let scale = if opt.starts_with('E') { 1000 } else { 1 };
                let Some(ms) = v.checked_mul(scale).filter(|_| v > 0) else {
                    return Parsed::Bad(Reply::err("ERR invalid expire time in 'set' command"));
                };
                ttl = if opt.ends_with("AT") {
                    Ttl::AtMs(ms as u64)
                } else {
                    Ttl::AfterMs(ms)
                };
            }
            _ => return syntax(),
        }
        i += 1;
    }
    log(Command::Set {
        key: args[1].clone(),
        value: args[2].clone(),
        cond,
        get,
        ttl,
    })
}

/// `HELLO [protover [SETNAME name]]`: RESP2 only.
fn hello(args: &[Vec<u8>], session: &mut Session) -> Parsed {
    if let Some(v) = args.get(1) {
        match int(v) {
            None => {
                return Parsed::Bad(Reply::err(
                    "ERR Protocol version is not an integer or out of range",
                ));
            }
            Some(2) => {}
            Some(_) => {
                return Parsed::Bad(Reply::err(
                    "NOPROTO sorry, this protocol version is not supported",
                ));
            }
        }
    }
    let mut i = 2;
    let mut name = None;
    let mut credentials = None;
    while i < args.len() {
        match upper(&args[i]).as_str() {
            "AUTH" if i + 2 < args.len() => {
                credentials = Some((&args[i + 1], &args[i + 2]));
                i += 3;
            }
            "SETNAME" if i + 1 < args.len() => {
                if !valid_name(&args[i + 1]) {
                    return bad_name();
                }
                name = Some(args[i + 1].clone());
                i += 2;
            }
            _ => {
                return Parsed::Bad(Reply::err(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    clip(&args[i])
                )));
            }
        }
    }
    match credentials {
        Some((user, pass)) => {
            if let refused @ (Parsed::Bad(_) | Parsed::AuthFailed(_)) =
                auth(session, Some(user), pass)
            {
                return refused;
            }
        }
        None if !session.authed => {
            return Parsed::Bad(Reply::err(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise \
                 the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the \
                 client and select the RESP protocol version at the same time",
            ));
        }
        None => {}
    }
    if name.is_some() {
        session.name = name;
    }
    let s = |v: &str| Reply::Bulk(Some(v.as_bytes().to_vec()));
    Parsed::Local(Reply::Array(vec![
        s("server"),
        s("redis"),
        s("version"),
        s(REDIS_VERSION),
        s("proto"),
        Reply::Int(2),
        s("id"),
        Reply::Int(session.id as i64),
        s("mode"),
        s("standalone"),
        s("role"),
        s("master"),
        s("modules"),
        Reply::Array(Vec::new()),
    ]))
}

/// `AUTH [username] password`: the only user is `default`.
fn auth(session: &mut Session, user: Option<&Vec<u8>>, pass: &[u8]) -> Parsed {
    let default_user = user.is_none_or(|u| u.as_slice() == b"default");
    if !session.password.required() {
        // As Redis without requirepass: the default user takes any password.
        return match user {
            None => Parsed::Bad(Reply::err(
                "ERR AUTH <password> called without any password configured for the default \
                 user. Are you sure your configuration is correct?",
            )),
            Some(_) if default_user => Parsed::Local(Reply::ok()),
            Some(_) => wrong_pass(),
        };
    }
    if default_user && session.password.matches(pass) {
        session.authed = true;
        Parsed::Local(Reply::ok())
    } else {
        wrong_pass()
    }
}

fn wrong_pass() -> Parsed {
    Parsed::AuthFailed(Reply::err(
        "WRONGPASS invalid username-password pair or user is disabled.",
    ))
}

fn valid_name(b: &[u8]) -> bool {
    b.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

fn bad_name() -> Parsed {
    Parsed::Bad(Reply::err(
        "ERR Client names cannot contain spaces, newlines or special characters.",
    ))
}

/// `CLIENT ID | GETNAME | SETNAME name | SETINFO attr value | INFO`.
fn client(args: &[Vec<u8>], session: &mut Session) -> Parsed {
    let sub = upper(&args[1]);
    let n = args.len();
    match (sub.as_str(), n) {
        ("ID", 2) => Parsed::Local(Reply::Int(session.id as i64)),
        ("GETNAME", 2) => Parsed::Local(Reply::Bulk(session.name.clone())),
        ("SETNAME", 3) => {
            if !valid_name(&args[2]) {
                return bad_name();
            }
            // An empty name removes it.
            session.name = (!args[2].is_empty()).then(|| args[2].clone());
            Parsed::Local(Reply::ok())
        }
        ("SETINFO", 4) => {
            let v = Some(args[3].clone());
            match upper(&args[2]).as_str() {
                "LIB-NAME" => session.lib_name = v,
                "LIB-VER" => session.lib_ver = v,
                _ => {
                    return Parsed::Bad(Reply::err(format!(
                        "ERR Unrecognized option '{}'",
                        clip(&args[2])
                    )));
                }
            }
            Parsed::Local(Reply::ok())
        }
        ("INFO", 2) => {
            let text = |v: &Option<Vec<u8>>| {
                v.as_deref()
                    .map_or(String::new(), |b| String::from_utf8_lossy(b).into_owned())
            };
            Parsed::Local(Reply::Bulk(Some(
                format!(
                    "id={} addr={} name={} db=0 resp=2 lib-name={} lib-ver={}\n",
                    session.id,
                    session.addr,
                    text(&session.name),
                    text(&session.lib_name),
                    text(&session.lib_ver)
                )
                .into_bytes(),
            )))
        }
        ("ID" | "GETNAME" | "SETNAME" | "SETINFO" | "INFO", _) => {
            arity(&format!("client|{}", sub.to_ascii_lowercase()))
        }
        _ => Parsed::Bad(Reply::err(format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            clip(&args[1])
        ))),
    }
}

/// What `CLUSTER HELP` says.
const CLUSTER_HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> ...]. Subcommands are:",
    "ADDLEARNER <id> <peer-addr> <client-addr>",
    "    (leader) Add a node that receives the log but does not vote; every node learns its",
    "    addresses from the log. Start it first with --join-cluster.",
    "PROMOTE <id>",
    "    (leader) Make a learner a voter, once its log is within 64 entries of the commit",
    "    index (waits up to 5 s for it).",
    "REMOVE <id>",
    "    (leader) Remove a voter or a learner. Stop its process once this answers OK.",
    "MEMBERS",
    "    The configuration in force on this node: id, role (voter, learner or outgoing),",
    "    addresses, and on the leader each member's match index and replication state.",
    "HELP",
    "    Print this help.",
];

/// A node id: a non-negative integer (`0` is left for the node to refuse).
fn node_id(b: &[u8]) -> Option<NodeId> {
    std::str::from_utf8(b).ok()?.parse().ok().map(NodeId)
}

fn addr(b: &[u8]) -> Result<SocketAddr, Parsed> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            Parsed::Bad(Reply::err(format!(
                "ERR invalid address '{}': want IP:PORT",
                clip(b)
            )))
        })
}

/// `CLUSTER ADDLEARNER id peer-addr client-addr | PROMOTE id | REMOVE id |
/// MEMBERS | HELP`.
fn cluster(args: &[Vec<u8>]) -> Parsed {
    let sub = upper(&args[1]);
    let admin = |a| Parsed::Loop(Request::Admin(a));
    match (sub.as_str(), args.len()) {
        ("ADDLEARNER", 5) => {
            let Some(id) = node_id(&args[2]) else {
                return not_integer();
            };
            let (peer_addr, client_addr) = match (addr(&args[3]), addr(&args[4])) {
                (Ok(p), Ok(c)) => (p, c),
                (Err(bad), _) | (_, Err(bad)) => return bad,
            };
            admin(Admin::AddLearner(Member {
                id,
                peer_addr,
                client_addr,
            }))
        }
        ("PROMOTE", 3) => {
            node_id(&args[2]).map_or_else(not_integer, |id| admin(Admin::Promote(id)))
        }
        ("REMOVE", 3) => node_id(&args[2]).map_or_else(not_integer, |id| admin(Admin::Remove(id))),
        ("MEMBERS", 2) => Parsed::Loop(Request::Members),
        ("HELP", 2) => Parsed::Local(Reply::Array(
            CLUSTER_HELP
                .iter()
                .map(|l| Reply::Simple(l.to_string()))
                .collect(),
        )),
        ("ADDLEARNER" | "PROMOTE" | "REMOVE" | "MEMBERS" | "HELP", _) => {
            arity(&format!("cluster|{}", sub.to_ascii_lowercase()))
        }
        _ => Parsed::Bad(Reply::err(format!(
            "ERR unknown subcommand '{}'. Try CLUSTER HELP.",
            clip(&args[1])
        ))),
    }
}

/// `CONFIG GET pattern [pattern ...]`: name and value of every entry of
/// [`CONFIG`] some pattern matches.
fn config(args: &[Vec<u8>]) -> Parsed {
    let sub = upper(&args[1]);
    match sub.as_str() {
        "GET" if args.len() >= 3 => {
            let mut out = Vec::new();
            for (k, v) in CONFIG {
                if args[2..].iter().any(|p| glob(p, k.as_bytes())) {
                    out.push(Reply::Bulk(Some(k.as_bytes().to_vec())));
                    out.push(Reply::Bulk(Some(v.as_bytes().to_vec())));
                }
            }
            Parsed::Local(Reply::Array(out))
        }
        "GET" => arity("config|get"),
        "SET" | "RESETSTAT" | "REWRITE" => Parsed::Bad(Reply::err(format!(
            "ERR CONFIG {sub} is not supported: kv_store is configured by its command line"
        ))),
        _ => Parsed::Bad(Reply::err(format!(
            "ERR unknown subcommand '{}'. Try CONFIG HELP.",
            clip(&args[1])
        ))),
    }
}

/// Redis's glob, as `CONFIG GET` uses it: `*`, `?`, case-insensitive.
fn glob(pattern: &[u8], s: &[u8]) -> bool {
    match pattern.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((&c, rest)) => s.split_first().is_some_and(|(&d, tail)| {
            (c == b'?' || c.eq_ignore_ascii_case(&d)) && glob(rest, tail)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(cmd: &str) -> Parsed {
        let args: Vec<Vec<u8>> = cmd.split(' ').map(|a| a.as_bytes().to_vec()).collect();
        parse(
            &args,
            &mut Session {
                authed: true,
                ..Session::default()
            },
        )
    }

    fn error(cmd: &str) -> String {
        match p(cmd) {
            Parsed::Bad(Reply::Error(e)) => e,
            Parsed::Local(r) => panic!("{cmd}: answered {r:?}"),
            _ => panic!("{cmd}: not an error"),
        }
    }

    fn logged(cmd: &str) -> Command {
        match p(cmd) {
            Parsed::Loop(Request::Log(c)) => c,
            _ => panic!("{cmd}: not a write"),
        }
    }

    fn local(cmd: &str) -> Reply {
        match p(cmd) {
            Parsed::Local(r) => r,
            _ => panic!("{cmd}: not answered locally"),
        }
    }

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Some(s.as_bytes().to_vec()))
    }

    #[test]
    fn wrong_arity_is_worded_as_redis_words_it() {
        for (cmd, name) in [
            ("ECHO", "echo"),
            ("echo a b", "echo"),
            ("PING a b", "ping"),
            ("GET", "get"),
            ("get a b", "get"),
            ("SET k", "set"),
            ("MSET k", "mset"),
            ("MSET a 1 b", "mset"),
            ("MGET", "mget"),
            ("EXISTS", "exists"),
            ("TTL", "ttl"),
            ("PTTL a b", "pttl"),
            ("EXPIRE k", "expire"),
            ("DBSIZE x", "dbsize"),
            ("SELECT", "select"),
            ("INCRBY k", "incrby"),
            ("DEL", "del"),
            ("CLIENT", "client"),
            ("CONFIG", "config"),
            ("CONFIG GET", "config|get"),
            ("CLIENT SETNAME", "client|setname"),
            ("CLIENT ID x", "client|id"),
            ("CLUSTER", "cluster"),
            ("CLUSTER ADDLEARNER 4 127.0.0.1:7004", "cluster|addlearner"),
            ("CLUSTER PROMOTE", "cluster|promote"),
            ("cluster remove 1 2", "cluster|remove"),
            ("CLUSTER MEMBERS x", "cluster|members"),
        ] {
            assert_eq!(
                error(cmd),
                format!("ERR wrong number of arguments for '{name}' command"),
                "{cmd}"
            );
        }
        assert_eq!(
            error("FOO a b"),
            "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
        );
    }

    #[test]
    fn set_options_parse_and_bad_ones_are_refused() {
        let set = |cond, get, ttl| Command::Set {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            cond,
            get,
            ttl,
        };
        assert_eq!(logged("SET k v"), set(Cond::Always, false, Ttl::Clear));
        assert_eq!(
            logged("set k v nx ex 10"),
            set(Cond::IfAbsent, false, Ttl::AfterMs(10_000))
        );
        assert_eq!(
            logged("SET k v XX GET PX 1500"),
            set(Cond::IfPresent, true, Ttl::AfterMs(1500))
        );
        assert_eq!(
            logged("SET k v PXAT 1700000000000"),
            set(Cond::Always, false, Ttl::AtMs(1_700_000_000_000))
        );
        assert_eq!(
            logged("SET k v EXAT 1700000000"),
            set(Cond::Always, false, Ttl::AtMs(1_700_000_000_000))
        );
        assert_eq!(
            logged("SET k v KEEPTTL GET"),
            set(Cond::Always, true, Ttl::Keep)
        );
        for bad in [
            "SET k v NX XX",
            "SET k v EX 1 PX 1",
            "SET k v EX",
            "SET k v KEEPTTL EX 5",
            "SET k v WHAT",
        ] {
            assert_eq!(error(bad), "ERR syntax error", "{bad}");
        }
        assert_eq!(
            error("SET k v EX 0"),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            error("SET k v PX -5"),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            error("SET k v EX 9223372036854775807"),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            error("SET k v EX ten"),
            "ERR value is not an integer or out of range"
        );
    }

    #[test]
    fn multi_key_commands_and_expire_parse() {
        assert_eq!(
            logged("MSET a 1 b 2"),
            Command::MSet {
                pairs: vec![
                    (b"a".to_vec(), b"1".to_vec()),
                    (b"b".to_vec(), b"2".to_vec())
                ]
            }
        );
        assert!(matches!(
            p("MGET a b c"),
            Parsed::Loop(Request::Read(Query::MGet { keys })) if keys.len() == 3
        ));
        assert!(matches!(
            p("EXISTS a a"),
            Parsed::Loop(Request::Read(Query::Exists { keys })) if keys.len() == 2
        ));
        assert!(matches!(
            p("DBSIZE"),
            Parsed::Loop(Request::Read(Query::DbSize))
        ));
        assert!(matches!(
            p("PTTL k"),
            Parsed::Loop(Request::Read(Query::Ttl { ms: true, .. }))
        ));
        assert_eq!(
            logged("EXPIRE k 5"),
            Command::Expire {
                key: b"k".to_vec(),
                ttl: Ttl::AfterMs(5000)
            }
        );
        assert_eq!(
            logged("PEXPIRE k -1"),
            Command::Expire {
                key: b"k".to_vec(),
                ttl: Ttl::AfterMs(-1)
            }
        );
        assert_eq!(
            error("EXPIRE k 9223372036854775807"),
            "ERR invalid expire time in 'expire' command"
        );
        assert_eq!(error("EXPIRE k 5 NX"), "ERR Unsupported option NX");
        assert_eq!(
            logged("DECRBY k 3"),
            Command::Incr {
                key: b"k".to_vec(),
                by: -3
            }
        );
    }

    #[test]
    fn connection_commands_answer_locally() {
        assert_eq!(local("SELECT 0"), Reply::ok());
        assert_eq!(error("SELECT 1"), "ERR DB index is out of range");
        assert_eq!(
            error("SELECT x"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(local("ECHO hi"), bulk("hi"));
        assert_eq!(local("PING"), Reply::Simple("PONG".into()));

        let mut s = Session {
            id: 7,
            addr: "127.0.0.1:5".into(),
            authed: true,
            ..Session::default()
        };
        let mut run = |cmd: &str| {
            let args: Vec<Vec<u8>> = cmd.split(' ').map(|a| a.as_bytes().to_vec()).collect();
            match parse(&args, &mut s) {
                Parsed::Local(r) | Parsed::Bad(r) => r,
                _ => panic!("{cmd}: not answered locally"),
            }
        };
        assert_eq!(run("CLIENT ID"), Reply::Int(7));
        assert_eq!(run("CLIENT GETNAME"), Reply::Bulk(None));
        assert_eq!(run("CLIENT SETNAME app-1"), Reply::ok());
        assert_eq!(run("client getname"), bulk("app-1"));
        assert_eq!(run("CLIENT SETINFO LIB-NAME redis-py"), Reply::ok());
        assert_eq!(run("CLIENT SETINFO lib-ver 5.0.1"), Reply::ok());
        assert_eq!(
            run("CLIENT SETINFO color red"),
            Reply::err("ERR Unrecognized option 'color'")
        );
        assert_eq!(
            run("CLIENT INFO"),
            bulk("id=7 addr=127.0.0.1:5 name=app-1 db=0 resp=2 lib-name=redis-py lib-ver=5.0.1\n")
        );
        assert_eq!(
            run("CLIENT NOPE"),
            Reply::err("ERR unknown subcommand 'NOPE'. Try CLIENT HELP.")
        );
        let Reply::Array(hello) = run("HELLO 2 SETNAME other") else {
            panic!("HELLO answers a map");
        };
        assert_eq!(hello.len(), 14);
        assert_eq!(
            hello[4..8],
            [bulk("proto"), Reply::Int(2), bulk("id"), Reply::Int(7)]
        );
        assert_eq!(run("CLIENT GETNAME"), bulk("other"));
        assert!(matches!(run("HELLO"), Reply::Array(_)));
        assert_eq!(
            run("HELLO 3"),
            Reply::err("NOPROTO sorry, this protocol version is not supported")
        );
        assert_eq!(
            run("HELLO x"),
            Reply::err("ERR Protocol version is not an integer or out of range")
        );
    }

    #[test]
    fn cluster_subcommands_parse_and_bad_arguments_are_refused() {
        let admin = |cmd: &str| match p(cmd) {
            Parsed::Loop(Request::Admin(a)) => a,
            _ => panic!("{cmd}: not a membership change"),
        };
        assert_eq!(
            admin("CLUSTER ADDLEARNER 4 127.0.0.1:7004 127.0.0.1:6004"),
            Admin::AddLearner(Member {
                id: NodeId(4),
                peer_addr: "127.0.0.1:7004".parse().unwrap(),
                client_addr: "127.0.0.1:6004".parse().unwrap(),
            })
        );
        assert_eq!(admin("cluster promote 4"), Admin::Promote(NodeId(4)));
        assert_eq!(admin("CLUSTER REMOVE 2"), Admin::Remove(NodeId(2)));
        assert_eq!(
            admin("CLUSTER PROMOTE 0"),
            Admin::Promote(NodeId(0)),
            "the node refuses id 0 in its own words"
        );
        assert!(matches!(
            p("CLUSTER MEMBERS"),
            Parsed::Loop(Request::Members)
        ));
        assert!(matches!(local("CLUSTER HELP"), Reply::Array(v) if v.len() == CLUSTER_HELP.len()));
        assert_eq!(
            error("CLUSTER ADDLEARNER 4 localhost:7004 127.0.0.1:6004"),
            "ERR invalid address 'localhost:7004': want IP:PORT"
        );
        assert_eq!(
            error("CLUSTER ADDLEARNER 4 127.0.0.1:7004 6004"),
            "ERR invalid address '6004': want IP:PORT"
        );
        for bad in [
            "CLUSTER PROMOTE -1",
            "CLUSTER REMOVE two",
            "CLUSTER ADDLEARNER x a b",
        ] {
            assert_eq!(
                error(bad),
                "ERR value is not an integer or out of range",
                "{bad}"
            );
        }
        assert_eq!(
            error("CLUSTER NODES"),
            "ERR unknown subcommand 'NODES'. Try CLUSTER HELP."
        );
    }

    #[test]
    fn config_get_answers_what_redis_benchmark_asks() {
        assert_eq!(
            local("CONFIG GET save"),
            Reply::Array(vec![bulk("save"), bulk("")])
        );
        assert_eq!(
            local("config get APPENDONLY"),
            Reply::Array(vec![bulk("appendonly"), bulk("yes")])
        );
        assert_eq!(
            local("CONFIG GET save appendonly"),
            Reply::Array(vec![
                bulk("save"),
                bulk(""),
                bulk("appendonly"),
                bulk("yes")
            ])
        );
        assert_eq!(
            local("CONFIG GET append*"),
            Reply::Array(vec![
                bulk("appendonly"),
                bulk("yes"),
                bulk("appendfsync"),
                bulk("always")
            ])
        );
        assert_eq!(local("CONFIG GET nosuch"), Reply::Array(vec![]));
        match p("CONFIG GET *") {
            Parsed::Local(Reply::Array(v)) => assert_eq!(v.len(), 2 * CONFIG.len()),
            _ => panic!("CONFIG GET *"),
        }
        assert!(error("CONFIG SET save 1").contains("not supported"));
        assert!(glob(b"d?tabases", b"databases"));
        assert!(!glob(b"data", b"databases"));
    }

    #[test]
    fn auth_gates_every_command_until_the_password_is_given() {
        let mut s = Session {
            password: Password::new(Some(b"pw".to_vec())),
            ..Session::default()
        };
        let mut run = |cmd: &str| {
            let args: Vec<Vec<u8>> = cmd.split(' ').map(|a| a.as_bytes().to_vec()).collect();
            match parse(&args, &mut s) {
                Parsed::Local(r) => (r, "local"),
                Parsed::Bad(r) => (r, "bad"),
                Parsed::AuthFailed(r) => (r, "auth failed"),
                Parsed::Loop(_) => (Reply::Simple("loop".into()), "loop"),
                Parsed::Quit => (Reply::Simple("quit".into()), "quit"),
            }
        };
        let noauth = Reply::err("NOAUTH Authentication required.");
        let wrong = Reply::err("WRONGPASS invalid username-password pair or user is disabled.");
        assert_eq!(run("PING"), (noauth.clone(), "bad"));
        assert_eq!(run("GET k"), (noauth.clone(), "bad"));
        assert_eq!(run("CLIENT ID"), (noauth.clone(), "bad"));
        assert!(matches!(run("HELLO 2"), (Reply::Error(e), "bad") if e.starts_with("NOAUTH")));
        assert_eq!(
            run("AUTH"),
            (
                Reply::err("ERR wrong number of arguments for 'auth' command"),
                "bad"
            )
        );
        assert_eq!(run("AUTH nope"), (wrong.clone(), "auth failed"));
        assert_eq!(run("AUTH bob pw"), (wrong.clone(), "auth failed"));
        assert_eq!(run("HELLO 2 AUTH default nope"), (wrong, "auth failed"));
        assert_eq!(run("PING"), (noauth, "bad"));
        assert!(matches!(
            run("HELLO 2 AUTH default pw"),
            (Reply::Array(_), "local")
        ));
        assert_eq!(run("PING"), (Reply::Simple("PONG".into()), "local"));
        assert_eq!(run("GET k"), (Reply::Simple("loop".into()), "loop"));
        assert_eq!(run("QUIT"), (Reply::Simple("quit".into()), "quit"));

        // Without a password, as Redis: AUTH with one argument is an error,
        // AUTH default <anything> is fine.
        let mut open = Session {
            authed: true,
            ..Session::default()
        };
        let args =
            |c: &str| -> Vec<Vec<u8>> { c.split(' ').map(|a| a.as_bytes().to_vec()).collect() };
        assert!(matches!(
            parse(&args("AUTH x"), &mut open),
            Parsed::Bad(Reply::Error(e)) if e.contains("without any password configured")
        ));
        assert!(
            matches!(parse(&args("AUTH default x"), &mut open), Parsed::Local(r) if r == Reply::ok())
        );
    }
}
