//! The host loop: what a host does with each Ready its node hands it, in the
//! order of the crate docs' run loop (persist to the write buffer, send,
//! apply, then fsync and `advance`), with the points where an armed crash
//! strikes in the middle of it; the fsync that completes in virtual time;
//! ticks; and a restart from what the disk kept. The checks of the host
//! contract (Ready ids in order, no gap in the log, entries handed out once,
//! in order and only once durable, no message of a term the disk does not
//! hold) run here, as the host carries a Ready out.

use crate::input::Input;
use crate::message::{Body, Entry, EntryKind};
use crate::node::{Node, Restored};
use crate::ready::{Ready, ReadyId};
use crate::sim::check::{Check, Fail, chain, fail, over_the_wire};
use crate::sim::client::Reply;
use crate::sim::cluster::{Cluster, Ev};
use crate::sim::host::{CrashPoint, Seen, SyncJob, Write};
use crate::sim::kv::{Applied, Command};
#[cfg(zaft_bugs)]
use crate::sim::options::BugTarget;
use crate::sim::rng::Rng;
use crate::sim::trace::{MsgSum, Rec};
use crate::types::{LogId, NodeId};

impl Cluster {
    /// Gives node `n` (up) `ticks` ticks, one `Tick` or, after a stall, one
    /// `Ticks(n)`; then checks that a CheckQuorum leader cut off from a
    /// majority has stepped down. The caller checks the node as usual.
    pub(crate) fn give_ticks(&mut self, n: usize, ticks: u32) -> Result<(), Fail> {
        self.stats.ticks += u64::from(ticks);
        self.hosts[n].ticks += u64::from(ticks);
        let input = if ticks == 1 {
            Input::Tick
        } else {
            Input::Ticks(ticks)
        };
        self.step_node(n, input)?;
        self.check_step_down(n)
    }

    pub(crate) fn step_node(&mut self, n: usize, input: Input) -> Result<(), Fail> {
        let Some(node) = self.hosts[n].node.as_mut() else {
            return Ok(());
        };
        match node.step(input) {
            Ok(ready) => self.process(n, ready),
            Err(e) => fail(Check::NodeError, format!("n{}: step failed: {e}", n + 1)),
        }
    }

    /// Whether an armed crash strikes at `point`; if so the node is down.
    fn crash_point(&mut self, n: usize, point: CrashPoint) -> Result<bool, Fail> {
        if self.hosts[n].armed == Some(point) {
            self.crash_now(n, point.name(), None)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Handles one Ready as the run loop says, and the Readies that
    /// immediate acknowledgements return.
    pub(crate) fn process(&mut self, n: usize, mut ready: Ready) -> Result<(), Fail> {
        for _ in 0..10_000 {
            let id = ready.id().get();
            let host = &mut self.hosts[n];
            if id != host.last_ready + 1 {
                return fail(
                    Check::ReadyContract,
                    format!(
                        "n{}: Ready ids jump from {} to {id}",
                        n + 1,
                        host.last_ready
                    ),
                );
            }
            host.last_ready = id;
            if ready.is_empty() {
                // Nothing to do; a later cumulative advance covers it.
                return Ok(());
            }
            // 1. Persist: into the volatile buffer (and the host's view).
            let has_writes = !ready.entries().is_empty() || ready.hard_state().is_some();
            let entries: Vec<Entry> = ready.entries().to_vec();
            if let Some(first) = entries.first() {
                let at = first.index;
                self.write_view(n, &entries)?;
                self.hosts[n].buffer.push((id, Write::Log { at, entries }));
            }
            if let Some(hs) = ready.hard_state() {
                self.hosts[n].buffer.push((id, Write::Hard(*hs)));
            }
            if let Some(conf) = ready.conf_state() {
                self.conf_changed(n, conf.clone());
            }
            if self.crash_point(n, CrashPoint::AfterPersist)? {
                return Ok(());
            }
            // 2. Send: never a message of a term the disk does not hold.
            let durable_term = self.hosts[n].durable.term();
            for m in ready.take_messages() {
                let proposed = matches!(
                    m.body,
                    Body::PreVote { .. } | Body::PreVoteResponse { granted: true }
                );
                if m.term > durable_term && !proposed {
                    return fail(
                        Check::DurableTerm,
                        format!(
                            "n{} sends {} in term {} but its disk holds term {durable_term}",
                            n + 1,
                            MsgSum::of(&m),
                            m.term
                        ),
                    );
                }
                let m = if self.plan.wire { over_the_wire(m)? } else { m };
                self.send(n, m);
            }
            if self.crash_point(n, CrashPoint::AfterSend)? {
                return Ok(());
            }
            // 3. Apply, and tell clients what became of their proposals.
            for &lost in ready.lost() {
                if let Some((client, seq, attempt)) =
                    self.hosts[n].proposals.remove(&(lost.index, lost.term))
                {
                    self.reply(client, seq, attempt, Reply::Lost);
                }
            }
            let committed: Vec<Entry> = ready.committed().to_vec();
            self.apply(n, committed)?;
            // Read-index answers: serve each read once the state machine has
            // applied up to the index it names (at once if it already has).
            for rs in ready.read_states() {
                let Some((client, seq, attempt, key)) = self.hosts[n].reads.remove(&rs.ctx) else {
                    continue;
                };
                match rs.index {
                    Some(index) => self.hosts[n]
                        .confirmed_reads
                        .push((index, client, seq, attempt, key)),
                    None => self.reply(client, seq, attempt, Reply::Refused(None)),
                }
            }
            self.serve_reads(n);
            if self.crash_point(n, CrashPoint::AfterApply)? {
                return Ok(());
            }
            // 4. Durability. A Ready without writes whose predecessors are
            // all acknowledged needs no fsync: acknowledge it at once.
            let host = &mut self.hosts[n];
            if !has_writes && host.acked + 1 == id && host.buffer.is_empty() {
                let Some(node) = host.node.as_mut() else {
                    return Ok(());
                };
                host.acked = id;
                ready = match node.advance(ReadyId(id)) {
                    Ok(r) => r,
                    Err(e) => {
                        return fail(
                            Check::NodeError,
                            format!("n{}: advance({id}) failed: {e}", n + 1),
                        );
                    }
                };
                continue;
            }
            host.dirty = true;
            self.maybe_sync(n);
            return Ok(());
        }
        fail(
            Check::ReadyContract,
            format!(
                "n{}: advance keeps returning new work (10000 rounds)",
                n + 1
            ),
        )
    }

    /// Applies a Ready's entries to the host's view of its log, checking Log
    /// Matching for each new entry.
    fn write_view(&mut self, n: usize, entries: &[Entry]) -> Result<(), Fail> {
        let host = &mut self.hosts[n];
        let at = entries[0].index;
        if at.0 == 0 || at.0 as usize > host.view.len() + 1 {
            return fail(
                Check::ReadyContract,
                format!(
                    "n{}: entries at {at} leave a gap after {}",
                    n + 1,
                    host.view.len()
                ),
            );
        }
        if at <= host.kv.applied {
            return fail(
                Check::ReadyContract,
                format!(
                    "n{}: a Ready truncates the log at {at}, below the applied index {}",
                    n + 1,
                    host.kv.applied
                ),
            );
        }
        let keep = at.0 as usize - 1;
        host.view.truncate(keep);
        host.hashes.truncate(keep);
        for e in entries {
            let h = chain(host.hashes.last().copied().unwrap_or(0), e);
            self.safety.written(host.id, e, h)?;
            host.view.push(e.clone());
            host.hashes.push(h);
        }
        Ok(())
    }

    fn maybe_sync(&mut self, n: usize) {
        let host = &self.hosts[n];
        if !host.is_up() || host.sync.is_some() || !host.dirty {
            return;
        }
        let slow = self.faults_on && self.disk_rng.chance(self.plan.slow_fsync_per_mille);
        let (lo, hi) = if slow {
            self.stats.faults.slow_fsyncs += 1;
            self.plan.slow_fsync_us
        } else {
            self.plan.fsync_us
        };
        let delay = self.disk_rng.range(lo, hi);
        let host = &mut self.hosts[n];
        let epoch = host.epoch;
        host.sync = Some(SyncJob {
            ops: host.buffer.len(),
            kv: host.kv.clone(),
            epoch,
        });
        let at = self.now + delay;
        self.schedule(at, Ev::SyncDone { node: n, epoch });
    }

    pub(crate) fn sync_done(&mut self, n: usize, epoch: u64) -> Result<(), Fail> {
        let host = &mut self.hosts[n];
        if host.epoch != epoch || !host.is_up() {
            return Ok(());
        }
        let Some(job) = host.sync.take_if(|j| j.epoch == epoch) else {
            return Ok(());
        };
        for (_, w) in host.buffer.drain(..job.ops) {
            if let Err(e) = host.durable.apply(&w) {
                return fail(Check::ReadyContract, format!("n{}: {e}", n + 1));
            }
        }
        host.durable.kv = job.kv;
        if self.crash_point(n, CrashPoint::BeforeAdvance)? {
            return Ok(());
        }
        let host = &mut self.hosts[n];
        // Every Ready whose writes are now all durable.
        let target = match host.buffer.first() {
            Some(&(id, _)) => id - 1,
            None => host.last_ready,
        };
        let advancing = target > host.acked;
        if advancing && host.node.is_none() {
            return Ok(());
        }
        if advancing {
            host.acked = target;
            if target == host.last_ready {
                host.dirty = false;
            }
        }
        self.trace.push(
            self.now,
            Rec::Synced {
                node: n as u64 + 1,
                ops: job.ops,
                advanced: if advancing { target } else { 0 },
            },
        );
        if let (true, Some(node)) = (advancing, self.hosts[n].node.as_mut()) {
            match node.advance(ReadyId(target)) {
                Ok(ready) => self.process(n, ready)?,
                Err(e) => {
                    return fail(
                        Check::NodeError,
                        format!("n{}: advance({target}) failed: {e}", n + 1),
                    );
                }
            }
        }
        self.maybe_sync(n);
        Ok(())
    }

    /// Applies committed entries in order, checking the host contract and
    /// State Machine Safety, and answers the clients waiting here.
    fn apply(&mut self, n: usize, committed: Vec<Entry>) -> Result<(), Fail> {
        let (Some(first), Some(last)) = (
            committed.first().map(|e| e.index),
            committed.last().map(|e| e.index),
        ) else {
            return Ok(());
        };
        for e in committed {
            let host = &mut self.hosts[n];
            let id = host.id;
            if e.index != host.kv.applied.next() {
                let what = if e.index <= host.kv.applied {
                    "again"
                } else {
                    "out of order"
                };
                return fail(
                    Check::Monotonic,
                    format!(
                        "n{id}: committed entry {} handed out {what}: the state machine has applied up to {}",
                        e.id(),
                        host.kv.applied
                    ),
                );
            }
            let durable = host
                .durable
                .entries
                .get(e.index.0 as usize - 1)
                .map(Entry::id);
            if durable != Some(e.id()) {
                return fail(
                    Check::ReadyContract,
                    format!(
                        "n{id}: committed entry {} handed out before it is durable (the disk holds {durable:?})",
                        e.id()
                    ),
                );
            }
            if self.safety.applied(id, &e)? {
                self.check_leaders_hold(&e)?;
                self.check_commit_quorum(&e)?;
            }
            let host = &mut self.hosts[n];
            host.kv.applied = e.index;
            host.proposals.remove(&(e.index, e.term));
            if e.kind != EntryKind::Normal {
                continue;
            }
            let Some(cmd) = Command::decode(&e.data) else {
                continue;
            };
            let answer = match host.kv.apply(&cmd) {
                Applied::Fresh(a) | Applied::Duplicate(a) => a,
                Applied::Stale => continue,
            };
            let client = cmd.client as usize;
            if let Some(attempt) = host.waiting.remove(&(client, cmd.seq)) {
                self.reply(client, cmd.seq, attempt, Reply::Done { answer, at: e.id() });
            }
        }
        self.trace.push(
            self.now,
            Rec::Applied {
                node: n as u64 + 1,
                first,
                last,
            },
        );
        Ok(())
    }

    /// Answers the confirmed reads whose index the state machine has reached.
    pub(crate) fn serve_reads(&mut self, n: usize) {
        let host = &mut self.hosts[n];
        if host.confirmed_reads.is_empty() {
            return;
        }
        let applied = host.kv.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut host.confirmed_reads)
            .into_iter()
            .partition(|r| r.0 <= applied);
        host.confirmed_reads = waiting;
        for (_, client, seq, attempt, key) in ready {
            let answer = self.hosts[n].kv.get(key);
            self.reply(
                client,
                seq,
                attempt,
                Reply::Done {
                    answer,
                    at: LogId::ZERO,
                },
            );
        }
    }

    pub(crate) fn restart_node(&mut self, n: usize) -> Result<(), Fail> {
        let host = &mut self.hosts[n];
        if host.is_up() || host.decommissioned {
            return Ok(());
        }
        // Founders know the founding voters; a spare knows none and learns
        // its configuration from the log that adds it.
        let voters: Vec<NodeId> = if host.spare {
            Vec::new()
        } else {
            (1..=self.plan.nodes as u64).map(NodeId).collect()
        };
        let mut cfg = self.plan.config.clone();
        cfg.id = host.id;
        cfg.voters = voters;
        cfg.seed = Rng::derive(self.seed, 1_000 + 64 * n as u64 + host.incarnation).next_u64();
        let restored = Restored {
            hard_state: host.durable.hard_state,
            entries: host.durable.entries.clone(),
            applied: host.durable.kv.applied,
            lost_data: host.lost_data,
            conf_state: None,
        };
        // Mutable for the bug hunts' injection below.
        #[cfg_attr(not(zaft_bugs), allow(unused_mut))]
        let mut node = match Node::new(cfg, restored) {
            Ok(node) => node,
            Err(e) => {
                return fail(
                    Check::NodeError,
                    format!("n{}: restart from disk failed: {e}", n + 1),
                );
            }
        };
        #[cfg(zaft_bugs)]
        if let Some(b) = self.plan.bug
            && (b.target == BugTarget::AllNodes || n == 0)
        {
            node.inject_bug(b.bug);
        }
        if host.incarnation > 0 {
            self.stats.faults.restarts += 1;
        }
        host.incarnation += 1;
        // A host that knows its node lost data says so at every restart
        // until the node has caught up.
        host.lost_data = host.amnesiac;
        if host.amnesiac {
            host.lost_term = node.term();
        }
        // The configuration the node restored: what its next report of a
        // change is compared with.
        host.confs.push(node.conf_state().clone());
        if host.confs.len() > 4 {
            host.confs.remove(0);
        }
        host.kv = host.durable.kv.clone();
        host.view = host.durable.entries.clone();
        host.hashes.clear();
        let mut h = 0;
        for e in &host.view {
            h = chain(h, e);
            host.hashes.push(h);
            self.safety.written(host.id, e, h)?;
        }
        let st = node.status();
        let durable_term = host.durable.hard_state.term;
        if st.term < durable_term {
            return fail(
                Check::Monotonic,
                format!(
                    "n{}: restarts in term {} below its durable term {durable_term}",
                    n + 1,
                    st.term
                ),
            );
        }
        if st.applied < host.kv.applied {
            return fail(
                Check::Monotonic,
                format!(
                    "n{}: restarts with applied index {} below its durable applied index {}",
                    n + 1,
                    st.applied,
                    host.kv.applied
                ),
            );
        }
        host.seen = Seen {
            role: Some(st.role),
            term: st.term,
            commit: st.commit,
            applied: st.applied,
        };
        self.trace.push(
            self.now,
            Rec::Restart {
                node: n as u64 + 1,
                term: st.term,
                last: st.last_log,
                applied: host.kv.applied,
            },
        );
        host.node = Some(node);
        Ok(())
    }
}
