//! `kv_store`: a replicated key-value server on zaft, spoken to with RESP so
//! `redis-cli` works.
//!
//! ```text
//! kv_store node --id 1 --data DIR --cluster 1=127.0.0.1:7001/127.0.0.1:6001,2=...,3=...
//!               [--bootstrap | --join-cluster | --rejoin] [--accept-data-loss] [--log LEVEL]
//! kv_store demo                       # processes on loopback: failover, membership changes
//! kv_store load --addr 127.0.0.1:6001[,...] [--clients 16] [--seconds 5] [--value-bytes 100]
//! kv_store bench [--clients 1,16,128] [--seconds 5]    # local cluster + load, + fsync cost
//! kv_store fsync-bench [--dir DIR] [--count 200]
//! ```
//!
//! One process is one node. `server.rs` is the event loop that owns the
//! `zaft::Node` (the part a user copies), `wal.rs` the durable log and hard
//! state, `datadir.rs` what a data directory must say before a node starts
//! from it, `peer.rs` the TCP links between nodes, `resp.rs` the client
//! protocol, `store.rs` the state machine. Only std: threads, std::net,
//! channels.

mod auth;
mod client;
mod cluster;
mod commands;
mod crc32c;
mod datadir;
mod demo;
mod load;
mod log;
mod peer;
mod resp;
mod server;
mod store;
mod wal;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use zaft::NodeId;

const USAGE: &str = "usage:
  kv_store node --id ID --data DIR --cluster ID=PEER_ADDR/CLIENT_ADDR,...
                [--reads index|lease|log] [--exit-with-parent]
                [--bootstrap | --join-cluster | --rejoin] [--accept-data-loss]
                [--log off|error|warn|info|debug|trace]
                [--cluster-secret FILE | --cluster-secret-env VAR]
                [--requirepass PASSWORD | --requirepass-env VAR]
      --cluster           this node and the members it knows of; the founding
                          voters on --bootstrap. Later members and removals come
                          from the log (CLUSTER ADDLEARNER carries the addresses)
      --bootstrap         first start of a brand-new cluster: set up an empty DIR
                          with the --cluster ids as the founding voters
      --join-cluster      first start of a node new to a running cluster: set up
                          an empty DIR with no voters (list the current members and
                          this node in --cluster); it waits, never campaigning,
                          until CLUSTER ADDLEARNER and CLUSTER PROMOTE on the leader
      --rejoin            this node lost its data: set up an empty DIR and catch up
                          from the current leader before voting again (--join is
                          the old name; a new id and --join-cluster is safer)
      --accept-data-loss  start from a damaged WAL with the entries before the
                          damage, then catch up from the leader
      --cluster-secret FILE, --cluster-secret-env VAR
                          authenticate peer links with this secret (the same on
                          every node, at least 16 bytes): a challenge-response
                          handshake, the secret never sent
      --requirepass PASSWORD, --requirepass-env VAR
                          clients must AUTH with this password first
      --log LEVEL         events to stderr at LEVEL or above (default info);
                          zaft's own (elections, role changes, ...) need a build
                          with --features tracing
  kv_store demo
  kv_store load --addr HOST:PORT[,HOST:PORT...] [--clients N] [--seconds S] [--value-bytes B]
  kv_store bench [--clients 1,16,128] [--seconds S] [--value-bytes B]
  kv_store fsync-bench [--dir DIR] [--count N]";

/// `--key value` pairs and `--flag`s after the mode.
fn parse_flags(args: &[String]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let Some(k) = a.strip_prefix("--") else {
            return Err(format!("unexpected argument {a:?}"));
        };
        let v = match it.peek() {
            Some(v) if !v.starts_with("--") => it.next().cloned().unwrap_or_default(),
            _ => String::new(),
        };
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

fn num<T: std::str::FromStr>(
    flags: &HashMap<String, String>,
    key: &str,
    default: T,
) -> Result<T, String> {
    match flags.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{key}: not a number: {v:?}")),
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = args.first() else {
        return Err(USAGE.into());
    };
    let flags = parse_flags(&args[1..])?;
    match mode.as_str() {
        "node" => {
            let level = log::parse_level(flags.get("log").map_or(log::DEFAULT, String::as_str))?;
            let id = NodeId(num(&flags, "id", 0)?);
            let data_dir = PathBuf::from(flags.get("data").ok_or("--data is required")?);
            let members =
                cluster::parse_cluster(flags.get("cluster").ok_or("--cluster is required")?)?;
            if flags.contains_key("exit-with-parent") {
                exit_with_parent();
            }
            let read_mode = match flags.get("reads").map_or("index", String::as_str) {
                "index" => server::ReadMode::Index,
                "lease" => server::ReadMode::Lease,
                "log" => server::ReadMode::Log,
                other => return Err(format!("--reads: want index, lease or log, not {other:?}")),
            };
            let starts = [
                ("bootstrap", datadir::Start::Bootstrap),
                ("join-cluster", datadir::Start::JoinCluster),
                ("rejoin", datadir::Start::Rejoin),
                ("join", datadir::Start::Rejoin),
            ];
            let given: Vec<_> = starts
                .iter()
                .filter(|(f, _)| flags.contains_key(*f))
                .collect();
            let start = match given[..] {
                [] => datadir::Start::Restart,
                [&(_, s)] => s,
                _ => {
                    let names: Vec<String> = given.iter().map(|(f, _)| format!("--{f}")).collect();
                    return Err(format!("{} exclude each other", names.join(" and ")));
                }
            };
            log::init(level);
            let cluster_secret =
                match (flags.get("cluster-secret"), flags.get("cluster-secret-env")) {
                    (None, None) => None,
                    (Some(f), None) => Some(auth::ClusterSecret::from_file(f)?),
                    (None, Some(v)) => Some(auth::ClusterSecret::from_env(v)?),
                    (Some(_), Some(_)) => {
                        return Err(
                            "--cluster-secret and --cluster-secret-env exclude each other".into(),
                        );
                    }
                };
            let password = match (flags.get("requirepass"), flags.get("requirepass-env")) {
                (None, None) => None,
                (Some(p), None) => Some(p.clone().into_bytes()),
                (None, Some(v)) => Some(
                    std::env::var(v)
                        .map_err(|_| format!("--requirepass-env: ${v} is not set"))?
                        .into_bytes(),
                ),
                (Some(_), Some(_)) => {
                    return Err("--requirepass and --requirepass-env exclude each other".into());
                }
            };
            if password.as_ref().is_some_and(Vec::is_empty) {
                return Err("--requirepass: the password is empty".into());
            }
            server::run(server::NodeOptions {
                cluster_secret,
                password: auth::Password::new(password),
                id,
                members,
                data_dir,
                read_mode,
                start,
                accept_data_loss: flags.contains_key("accept-data-loss"),
            })
        }
        "demo" => demo::run(),
        "load" => {
            let addrs = flags
                .get("addr")
                .ok_or("--addr is required")?
                .split(',')
                .map(|a| a.parse().map_err(|_| format!("bad address {a:?}")))
                .collect::<Result<Vec<_>, _>>()?;
            let r = load::run_load(
                &addrs,
                num(&flags, "clients", 16)?,
                Duration::from_secs_f64(num(&flags, "seconds", 5.0)?),
                num(&flags, "value-bytes", 100)?,
            );
            println!("{}", r.line());
            Ok(())
        }
        "bench" => {
            let counts = flags
                .get("clients")
                .map_or("1,16,128", String::as_str)
                .split(',')
                .map(|c| c.parse().map_err(|_| format!("bad client count {c:?}")))
                .collect::<Result<Vec<usize>, _>>()?;
            load::bench(
                &counts,
                Duration::from_secs_f64(num(&flags, "seconds", 5.0)?),
                num(&flags, "value-bytes", 100)?,
            )
        }
        "fsync-bench" => {
            let dir = flags
                .get("dir")
                .map_or_else(std::env::temp_dir, PathBuf::from);
            println!("fsync on {}:", dir.display());
            load::fsync_bench(&dir, num(&flags, "count", 200)?)
        }
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown mode {other:?}\n{USAGE}")),
    }
}

/// Exits when the parent process goes away, so a demo interrupted with
/// Ctrl-C leaves no nodes behind.
fn exit_with_parent() {
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(0);
            }
        }
    });
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv_store: {e}");
            ExitCode::FAILURE
        }
    }
}
