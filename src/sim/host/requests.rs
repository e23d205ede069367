//! Client requests at a host: a request that arrives is proposed at once,
//! batched with others for a moment (`Plan::batching`), or, for a read,
//! asked as `Input::ReadIndex` (`Plan::read_index`). The host tells the
//! client at once whether its node accepted, forwarded or refused the
//! request; the outcome follows from the host loop, when the entry is
//! applied or reported lost, or when the read index is confirmed and
//! applied.

use crate::error::Error;
use crate::input::Input;
use crate::sim::check::{Check, Fail, fail};
use crate::sim::client::Reply;
use crate::sim::cluster::{Cluster, Ev};
use crate::sim::host::Request;
use crate::sim::kv::Command;
use crate::sim::linearizability::Op;
use crate::sim::options::TICK_US;
use crate::sim::trace::Rec;
use crate::types::LogId;

impl Cluster {
    pub(crate) fn client_arrive(&mut self, n: usize, req: Request) -> Result<Option<usize>, Fail> {
        if !self.hosts[n].is_up() {
            self.trace_attempt(&req, n, "refused: node down");
            self.reply(req.client, req.seq, req.attempt, Reply::Refused(None));
            return Ok(None);
        }
        if self.plan.read_index
            && let Some(Command {
                op: Op::Read { key },
                ..
            }) = Command::decode(&req.cmd)
        {
            return self.read_index(n, req, key);
        }
        if self.plan.batching {
            let host = &mut self.hosts[n];
            host.inbox.push(req);
            if !host.flush_scheduled {
                host.flush_scheduled = true;
                let at = self.now + self.client_rng.range(0, TICK_US / 2);
                self.schedule(at, Ev::Flush(n));
            }
            return Ok(None);
        }
        self.propose(n, vec![req])?;
        Ok(Some(n))
    }

    /// Proposes the requests batched at host `n` since the flush was
    /// scheduled.
    pub(crate) fn flush(&mut self, n: usize) -> Result<Option<usize>, Fail> {
        self.hosts[n].flush_scheduled = false;
        let reqs = std::mem::take(&mut self.hosts[n].inbox);
        if reqs.is_empty() || !self.hosts[n].is_up() {
            return Ok(None);
        }
        self.propose(n, reqs)?;
        Ok(Some(n))
    }

    /// A linearizable read through `Input::ReadIndex` instead of the log.
    fn read_index(&mut self, n: usize, req: Request, key: u64) -> Result<Option<usize>, Fail> {
        self.next_read_ctx += 1;
        let ctx = self.next_read_ctx;
        let Some(node) = self.hosts[n].node.as_mut() else {
            return Ok(None);
        };
        match node.step(Input::ReadIndex(ctx)) {
            Ok(ready) => {
                self.hosts[n]
                    .reads
                    .insert(ctx, (req.client, req.seq, req.attempt, key));
                self.trace_attempt(&req, n, "read index asked");
                self.reply(req.client, req.seq, req.attempt, Reply::Accepted);
                self.process(n, ready)?;
                Ok(Some(n))
            }
            Err(e) => {
                let hint = match e {
                    Error::NotLeader { leader } => leader,
                    _ => None,
                };
                self.trace_attempt(&req, n, "read index refused");
                self.reply(req.client, req.seq, req.attempt, Reply::Refused(hint));
                Ok(None)
            }
        }
    }

    fn trace_attempt(&mut self, req: &Request, n: usize, answer: &'static str) {
        self.trace.push(
            self.now,
            Rec::Attempt {
                client: req.client as u64 + 1,
                seq: req.seq,
                node: n as u64 + 1,
                answer,
            },
        );
    }

    /// Proposes client requests, one `Propose` or one `ProposeBatch`.
    fn propose(&mut self, n: usize, reqs: Vec<Request>) -> Result<(), Fail> {
        let Some(node) = self.hosts[n].node.as_mut() else {
            return Ok(());
        };
        let input = if reqs.len() == 1 {
            Input::Propose(reqs[0].cmd.clone())
        } else {
            Input::ProposeBatch(reqs.iter().map(|r| r.cmd.clone()).collect())
        };
        match node.step(input) {
            Ok(ready) => {
                let ids: Vec<Option<LogId>> = match ready.proposed() {
                    Some(p) => {
                        let ids: Vec<_> = p.ids().map(Some).collect();
                        if ids.len() != reqs.len() {
                            return fail(
                                Check::ReadyContract,
                                format!(
                                    "n{}: {} proposals got {} ids",
                                    n + 1,
                                    reqs.len(),
                                    ids.len()
                                ),
                            );
                        }
                        ids
                    }
                    // Forwarded to the leader: no id here.
                    None => vec![None; reqs.len()],
                };
                for (req, id) in reqs.iter().zip(ids) {
                    let host = &mut self.hosts[n];
                    if let Some(id) = id {
                        host.proposals
                            .insert((id.index, id.term), (req.client, req.seq, req.attempt));
                    }
                    host.waiting.insert((req.client, req.seq), req.attempt);
                    self.trace_attempt(
                        req,
                        n,
                        if id.is_some() {
                            "accepted"
                        } else {
                            "forwarded"
                        },
                    );
                    self.reply(req.client, req.seq, req.attempt, Reply::Accepted);
                }
                self.process(n, ready)
            }
            Err(e) => {
                let (hint, answer) = match e {
                    Error::NotLeader { leader } => (leader, "refused: not leader"),
                    _ => (None, "refused: busy"),
                };
                for req in &reqs {
                    self.trace_attempt(req, n, answer);
                    self.reply(req.client, req.seq, req.attempt, Reply::Refused(hint));
                }
                Ok(())
            }
        }
    }
}
