//! zaft: a sans-IO Raft consensus library.
//!
//! A [`Node`] is one member of a Raft cluster as a deterministic state
//! machine. It never touches a clock, a socket, a file or a thread: the host
//! feeds it [`Input`]s through [`Node::step`] and it answers with a [`Ready`]
//! batch — messages to send, entries and hard state to persist, committed
//! entries to apply. The host does that work and acknowledges durability with
//! [`Node::advance`], which may release more work.
//!
//! # The run loop
//!
//! ```text
//! loop {
//!     // Time first: after a stall, every missed tick (Input::Ticks(n)).
//!     let ready = node.step(next_input())?;     // Tick | Message | Propose | ...
//!     storage.append(ready.entries());          // truncate at entries[0].index, then append
//!     storage.save(ready.hard_state());         // term, vote, commit
//!     network.send(ready.messages());           // safe now, even before the fsync
//!     state_machine.apply(ready.committed());   // in index order
//!     clients.on_role_change(ready.soft_state()); // role / leader, only when changed
//!     if ready.must_sync() { storage.sync(); }  // one fsync may cover many Readies
//!     let follow_up = node.advance(ready.id())?; // handle it the same way
//! }
//! ```
//!
//! The rules that make the loop hard to misuse:
//!
//! 1. Messages in a `Ready` are always safe to send at once. A vote grant or
//!    an append acknowledgement depends on durability, and no message of a
//!    term may leave before the term is durable, so the node holds such
//!    messages and releases them from the `advance` that acknowledges the
//!    write.
//! 2. A node counts itself towards a quorum (its own vote, its own log) only
//!    once `advance` says it is durable. A one-node cluster commits on
//!    `advance`, not on `step`.
//! 3. `advance(id)` is cumulative: step many times, fsync once, advance the
//!    last id. An id never handed out, or one already acknowledged, is an
//!    [`Error::Misuse`].
//! 4. Every proposal gets an outcome: its `(term, index)` is in
//!    [`Ready::proposed`]; it later shows up in [`Ready::committed`] or, if a
//!    new leader overwrote it, in [`Ready::lost`].
//! 5. Committed entries come in order, once — across restarts too, given the
//!    applied index in [`Restored`].
//!
//! # Time
//!
//! A tick is elapsed time, not a loop iteration. The host ticks by a
//! monotonic clock and, after any stall (a GC pause, swapping, a stopped
//! process), delivers every tick it missed with [`Input::Ticks`] before it
//! steps any other input: a leader's lease is counted in its ticks, and
//! ticks that never arrive would let it outlive the real time it was granted
//! for (see [`Config::lease_reads`]).
//!
//! # Lost data
//!
//! A node whose disk lost writes (a truncated or wiped log) must not vote on
//! a log it no longer has: restore it with [`Restored::lost_data`] (a log
//! ending below the restored commit index is noticed without it). The
//! leader notices a follower whose log went backwards and catches it up.
//!
//! # Membership changes
//!
//! The configuration ([`ConfState`]: voters, learners, and while a joint
//! configuration is in force the outgoing voters) lives in the log. A leader
//! proposes a change with [`Input::ChangeMembership`]: a single voter added
//! or removed, or learners added, is a simple change; several voters at
//! once go through a joint configuration (thesis §4.3) that the leader
//! leaves on its own, or when the host says ([`Input::LeaveJoint`], after
//! [`Transition::JointExplicit`]). A configuration is in force on a node
//! from the moment its entry is in the node's log, committed or not, and
//! [`Ready::conf_state`] reports it then; the argument for why that is safe
//! (one change at a time, a leader first commits an entry of its own term)
//! is on [`MembershipChange`].
//!
//! - **A brand-new cluster**: every founding member gets the same
//!   [`Config::voters`] and an empty [`Restored`].
//! - **A node that joins**: start it with empty `Config::voters` and an
//!   empty `Restored`; it waits, never campaigning. Then, at the leader,
//!   add it as a learner ([`MembershipChange::add_learner`]), let it catch
//!   up ([`Node::progress`] shows its match index), and promote it
//!   ([`MembershipChange::add_voter`]). It learns every configuration from
//!   the leader's log.
//! - **Replacing a machine**: add the new node (learner, then voter), then
//!   remove the old one ([`MembershipChange::remove`]); or both at once in
//!   one joint change. A leader that removes itself steps down once the
//!   removal commits ([`Config::step_down_on_removal`]).
//! - **Restarts** need nothing more than the log: the node recomputes its
//!   configuration from [`Restored::conf_state`] (the configuration before
//!   the first restored entry; `None` for `Config::voters`) and the
//!   membership entries of [`Restored::entries`].
//!
//! # Example: three nodes in one process
//!
//! Three nodes, a perfect in-memory network and in-memory storage; node 1
//! campaigns, then proposes a command that every node applies.
//!
//! ```
//! use std::collections::VecDeque;
//! use zaft::{Config, Entry, EntryKind, Input, Message, Node, NodeId, Ready, Restored};
//!
//! struct Host { node: Node, log: Vec<Entry>, applied: Vec<Vec<u8>> }
//!
//! impl Host {
//!     /// Handles a Ready as the run loop says, and the follow-ups it causes.
//!     fn handle(&mut self, mut ready: Ready, net: &mut VecDeque<Message>) {
//!         loop {
//!             if let Some(first) = ready.entries().first() {
//!                 self.log.truncate(first.index.get() as usize - 1);
//!                 self.log.extend_from_slice(ready.entries());
//!             }
//!             // (a real host saves ready.hard_state() here)
//!             net.extend(ready.take_messages());
//!             for e in ready.committed() {
//!                 if e.kind == EntryKind::Normal {
//!                     self.applied.push(e.data.to_vec());
//!                 }
//!             }
//!             // (a real host fsyncs here)
//!             ready = self.node.advance(ready.id()).unwrap();
//!             if ready.is_empty() {
//!                 break;
//!             }
//!         }
//!     }
//! }
//!
//! let ids = [NodeId(1), NodeId(2), NodeId(3)];
//! let mut hosts: Vec<Host> = ids
//!     .iter()
//!     .map(|&id| {
//!         let node = Node::new(Config::new(id, ids), Restored::default()).unwrap();
//!         Host { node, log: Vec::new(), applied: Vec::new() }
//!     })
//!     .collect();
//! let mut net = VecDeque::new();
//!
//! // Deliver messages until the network is quiet.
//! fn deliver(hosts: &mut [Host], net: &mut VecDeque<Message>) {
//!     while let Some(m) = net.pop_front() {
//!         let h = &mut hosts[m.to.get() as usize - 1];
//!         let ready = h.node.step(Input::Message(m)).unwrap();
//!         h.handle(ready, net);
//!     }
//! }
//!
//! let ready = hosts[0].node.step(Input::Campaign).unwrap();
//! hosts[0].handle(ready, &mut net);
//! deliver(&mut hosts, &mut net);
//! assert!(hosts[0].node.is_leader());
//!
//! let ready = hosts[0].node.step(Input::Propose("x=1".into())).unwrap();
//! let proposed = ready.proposed().unwrap();
//! hosts[0].handle(ready, &mut net);
//! deliver(&mut hosts, &mut net);
//! // One heartbeat round tells the followers the new commit index.
//! let ready = hosts[0].node.step(Input::Tick).unwrap();
//! hosts[0].handle(ready, &mut net);
//! deliver(&mut hosts, &mut net);
//!
//! for h in &hosts {
//!     assert_eq!(h.applied, vec![b"x=1".to_vec()]);
//!     assert_eq!(h.log.last().unwrap().id(), proposed.ids().next().unwrap());
//! }
//! ```
//!
//! # Features
//!
//! - `std` (default): `std::error::Error` impls. Without it the crate is
//!   `#![no_std]` and needs only `alloc`.
//! - `sim`: the deterministic cluster simulator and its checkers.
//! - `tracing`: structured [`tracing`](https://docs.rs/tracing) events at
//!   the protocol's decisions (elections, role and term changes, dropped
//!   messages, flow control, refused proposals, leadership transfers, lost
//!   data), listed with their fields in `trace_events`. Off by default, and
//!   `no_std` too; without it the events compile to nothing.
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;

#[cfg(any(feature = "sim", zaft_bugs))]
mod bugs;
// The injected bugs are the simulator's: its `Bug` names them.
#[cfg(all(zaft_bugs, not(feature = "sim")))]
compile_error!(
    "--cfg zaft_bugs needs the `sim` feature (the bug hunts: RUSTFLAGS=\"--cfg zaft_bugs\" CARGO_TARGET_DIR=target/bugs cargo test --all-features --test bugs)"
);
pub mod codec;
mod config;
mod durability;
mod entries;
mod error;
mod input;
mod log;
mod membership;
mod message;
mod node;
mod outbox;
mod progress;
mod quorum;
mod raft;
mod read_index;
mod ready;
mod rng;
#[cfg(feature = "sim")]
pub mod sim;
mod status;
mod trace;
#[cfg(feature = "tracing")]
pub mod trace_events;
mod tracker;
mod types;
mod wire;

pub use codec::{Codec, DecodeError, EncodeError};
pub use config::Config;
pub use entries::Entries;
pub use error::{Busy, ConfigError, Error, Misuse, RestoreError};
pub use input::Input;
pub use membership::{
    ConfChange, ConfState, MembershipChange, MembershipEntry, MembershipError, Transition,
};
pub use message::{AppendResponse, Body, Entry, EntryKind, HardState, Message};
pub use node::{Node, Restored};
pub use ready::{
    DrainMessages, Proposed, ReadState, Ready, ReadyId, SoftState, TransferEnded, TransferOutcome,
};
pub use status::{DropCounters, DropReason, PeerProgress, ProgressState, Role, Status};
pub use types::{Index, LogId, NodeId, Term};
