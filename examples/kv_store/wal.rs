//! The write-ahead log and the hard-state file: everything the node must find
//! again after a crash, and how recovery tells a crash from damage.
//!
//! Layout of a data directory (`datadir.rs` owns the `node` file):
//!
//! ```text
//! wal/00000000000000000001.seg   segment files, named by their first index
//! wal/00000000000000052113.seg
//! hardstate                      term, vote, commit; replaced atomically
//! node                           which node this is, and whether it is recovering
//! ```
//!
//! # Segments
//!
//! A segment starts with a 4 KiB preamble: a 20-byte header (magic, first
//! index, CRC) written once, and two *sync-mark* slots at bytes 512 and 1024.
//! Records follow from byte 4096:
//! `len: u32 | crc32c: u32 | index: u64 | term: u64 | kind: u8 | data`, the
//! CRC covering the length and everything after it (`kind`: 0 a client
//! command, 1 a new leader's no-op, 2 a membership change). Appends are buffered and
//! reach the disk in [`Wal::sync`], the one `fdatasync` a whole group of
//! Readies shares.
//!
//! # Torn writes and lost data
//!
//! A torn tail is a partial last record written after the last completed
//! fsync. It was never acknowledged, so recovery may cut it off. Anything
//! else that shortens the log (a segment cut short, a zeroed region, a
//! deleted segment) may remove records this node acknowledged, and a node
//! that forgets what it acknowledged can help elect a leader that lacks a
//! committed entry. Telling the two apart needs a durable record of how far
//! the log was fsynced, and these provide it:
//!
//! - **The sync mark** of the last segment says "every record up to index
//!   D is on disk". [`Wal::sync`] writes it in place, before its one
//!   `fdatasync`, with the index the *previous* completed sync made durable:
//!   a crash during the fsync may keep or lose the new mark and may tear the
//!   new records, but either mark it leaves was already true. It costs no
//!   extra fsync. The two slots are written in turn, each with a sequence
//!   number and a CRC, so a torn slot write leaves the other one readable.
//!   The mark lags by one sync: the records of the last fsync before a stop
//!   are not covered, and damage confined to them (its last record cut
//!   short, say) cannot be told from a torn write and is treated as one.
//! - **Sealing.** Rolling to a new segment syncs the old one, creates and
//!   syncs the new one (its mark at its first index - 1), and only then
//!   *seals* the old one (its mark says a successor exists). A sealed last
//!   segment means the next one was deleted.
//! - **The preamble is synced before any record is written after it,** so a
//!   damaged preamble in a file longer than the preamble is damage, not a
//!   crash while the segment was being created.
//! - **The hard state's commit index** is saved only after the WAL sync that
//!   covers it, so a log that ends below it lost data too.
//!
//! A legitimate shortening (a new leader overwriting this node's uncommitted
//! tail) lowers the mark, and unseals, durably *before* it removes a segment
//! or cuts a byte, segment by segment from the end: every crash point leaves
//! marks that are true.
//!
//! # Recovery
//!
//! [`Wal::scan`] reads everything and changes nothing. It checks every
//! record's CRC, index continuity and term order, and compares where the
//! readable log ends with what was durable. A bad record at the very end of
//! the last segment (cut short, or failing its CRC with nothing but zeros or
//! nothing after it) that lies beyond everything known durable is a torn
//! tail: [`Scan::open`] cuts it off and reports it. Anything else is
//! [`Damage`]: which file, which byte, why, and how many durable records are
//! missing (at least so many, or unknown). The node then refuses to start,
//! unless the operator accepts the loss: [`Scan::open`] keeps the records
//! before the damage, moves the damaged files aside as `*.damaged`, and
//! reports the loss so the node restarts as one that lost data.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use zaft::{Entry, EntryKind, HardState, Index, NodeId, Term};

use crate::crc32c::{Crc32c, crc32c};

const SEGMENT_MAGIC: &[u8; 8] = b"ZKVSEG02";
const SEGMENT_HEADER_BYTES: usize = 20;
/// The sync-mark slots, each in a sector of its own so that a torn slot
/// write damages neither the header nor the other slot.
const MARK_SLOTS: [u64; 2] = [512, 1024];
/// `seq: u64 | durable: u64 | flags: u32 | crc32c: u32`.
const MARK_BYTES: usize = 24;
const MARK_SEALED: u32 = 1;
/// Records start here; the preamble before it is header, slots and zeros.
const RECORDS_START: u64 = 4096;
const RECORD_HEADER_BYTES: usize = 8;
/// index + term + kind.
const RECORD_FIXED_BYTES: usize = 17;
/// The largest record payload accepted; a larger length field is damage.
pub const MAX_RECORD_BYTES: usize = 64 << 20;
const HARD_STATE_MAGIC: &[u8; 8] = b"ZKVHS001";
const HARD_STATE_BYTES: usize = 8 + 24 + 4;
/// Buffered record bytes above which `append` writes them out early.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// Why the data directory could not be opened.
#[derive(Debug)]
pub enum WalError {
    Io {
        path: PathBuf,
        err: io::Error,
    },
    /// The hard-state file is damaged: the term and vote in it are lost.
    HardState {
        path: PathBuf,
        reason: String,
    },
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Io { path, err } => write!(f, "{}: {err}", path.display()),
            WalError::HardState { path, reason } => {
                write!(f, "corrupt hard state: {}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for WalError {}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |err| WalError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// What recovery cut off the end of the log: a write that never completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    pub offset: u64,
    pub bytes_dropped: u64,
}

/// Damage a crash cannot explain: records that were durable are missing or
/// unreadable.
#[derive(Debug, Clone)]
pub struct Damage {
    pub path: PathBuf,
    pub offset: u64,
    pub reason: String,
    /// The log is intact from index 1 up to here.
    pub intact_to: u64,
    /// The highest index known to have been durable, if above `intact_to`.
    pub durable: Option<u64>,
    /// What accepting the loss removes.
    cut: Cut,
}

impl Damage {
    /// How many durable records are missing, as far as anyone can tell.
    pub fn lost(&self) -> String {
        match self.durable {
            Some(d) => format!(
                "at least {} records that were durable are lost (indexes {}..={d})",
                d - self.intact_to,
                self.intact_to + 1
            ),
            None => format!(
                "records from index {} on are lost; how many of them were durable is unknown",
                self.intact_to + 1
            ),
        }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "corrupt WAL: {} at byte {}: {}. The log is intact up to index {}; {}. A crash \
             only tears records written after the last fsync, so this is damage, not a torn \
             write",
            self.path.display(),
            self.offset,
            self.reason,
            self.intact_to,
            self.lost()
        )
    }
}

/// Where the usable log ends: segments before `seg` are kept whole; of
/// `seg`, the bytes before `at`, or nothing if `at` is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    seg: usize,
    at: Option<u64>,
}

/// What [`Scan::open`] found and did.
pub struct Recovered {
    pub entries: Vec<Entry>,
    pub hard_state: HardState,
    pub torn_tail: Option<TornTail>,
    /// Damage the caller accepted: the entries end before it.
    pub accepted_loss: Option<Damage>,
}

/// A sync mark: every record up to `durable` is on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Mark {
    /// Slot `seq % 2` holds it; the valid slot with the higher `seq` wins.
    seq: u64,
    durable: u64,
    /// A segment starting at `durable + 1` was created after this one.
    sealed: bool,
}

struct Segment {
    first_index: u64,
    path: PathBuf,
    mark: Mark,
    /// File length. For the last segment of an open [`Wal`], see `tail_len`.
    len: u64,
}

/// Everything [`Wal::scan`] read, and what it makes of it. Nothing on disk
/// has changed yet.
pub struct Scan {
    data_dir: PathBuf,
    dir: PathBuf,
    segments: Vec<Segment>,
    entries: Vec<Entry>,
    offsets: Vec<u64>,
    hard_state: HardState,
    hard_state_found: bool,
    torn: Option<(Cut, TornTail)>,
    damage: Option<Damage>,
}

impl Scan {
    /// Damage that stops the node unless the operator accepts the loss.
    pub fn damage(&self) -> Option<&Damage> {
        self.damage.as_ref()
    }

    /// Nothing was ever written here: no hard state and no records.
    pub fn is_blank(&self) -> bool {
        !self.hard_state_found && self.segments.iter().all(|s| s.len <= RECORDS_START)
    }

    /// Opens the log for appending. A torn tail is cut off. [`Damage`], if
    /// any, is accepted: the records before it are kept, the damaged files
    /// are moved aside as `*.damaged`, and the hard state's commit index is
    /// lowered to what survived (it is only a hint). The caller must have
    /// recorded durably that the node lost data before it calls this.
    pub fn open(mut self, segment_max_bytes: u64) -> Result<(Wal, Recovered), WalError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let intact_to = self.entries.len() as u64;
        let mut torn_tail = None;
        let accepted_loss = self.damage.take();
        if let Some(d) = &accepted_loss {
            if self.hard_state.commit.get() > intact_to {
                self.hard_state.commit = Index(intact_to);
                save_hard_state(&self.data_dir, &self.hard_state)?;
            }
            self.cut(d.cut, intact_to, true)?;
        } else if let Some((cut, t)) = self.torn.take() {
            self.cut(cut, intact_to, false)?;
            torn_tail = Some(t);
        }
        if self.segments.is_empty() {
            self.segments.push(create_segment(&self.dir, 1)?);
        }
        let last = self.segments.last().expect("at least one segment");
        let file = open_rw(&last.path)?;
        // What a killed process left in the page cache is readable but not
        // yet durable: make it so, and the sync mark may then claim it.
        file.sync_data().map_err(io_err(&last.path))?;
        let tail_len = last.len;
        let wal = Wal {
            dir: self.dir,
            segments: self.segments,
            file,
            tail_len,
            offsets: self.offsets,
            buf: Vec::new(),
            dirty: false,
            synced_to: intact_to,
            segment_max_bytes,
            syncs: 0,
        };
        Ok((
            wal,
            Recovered {
                entries: self.entries,
                hard_state: self.hard_state,
                torn_tail,
                accepted_loss,
            },
        ))
    }

    /// Removes what lies past `cut`: deleted if it is a torn write, moved
    /// aside as `*.damaged` if it is accepted damage. The segment that then
    /// ends the log is unsealed and its mark lowered to `intact_to` first.
    fn cut(&mut self, cut: Cut, intact_to: u64, aside: bool) -> Result<(), WalError> {
        let mut dir_changed = false;
        let first_dropped = cut.seg + usize::from(cut.at.is_some());
        while self.segments.len() > first_dropped {
            let s = self.segments.pop().expect("checked");
            discard(&s.path, aside)?;
            dir_changed = true;
        }
        if let Some(at) = cut.at {
            let s = &mut self.segments[cut.seg];
            if at < s.len && aside {
                fs::copy(&s.path, damaged_name(&s.path)).map_err(io_err(&s.path))?;
                dir_changed = true;
            }
            let f = open_rw(&s.path)?;
            lower_mark(&f, s, intact_to)?;
            if at < s.len {
                f.set_len(at).map_err(io_err(&s.path))?;
                f.sync_all().map_err(io_err(&s.path))?;
                s.len = at;
            }
        } else if let Some(s) = self.segments.last_mut() {
            let f = open_rw(&s.path)?;
            lower_mark(&f, s, intact_to)?;
        }
        if dir_changed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Removes a segment file, or renames it to `*.damaged` for the operator.
fn discard(path: &Path, aside: bool) -> Result<(), WalError> {
    if aside {
        fs::rename(path, damaged_name(path)).map_err(io_err(path))
    } else {
        fs::remove_file(path).map_err(io_err(path))
    }
}

/// `<segment>.damaged`, or `.damaged.2`, ... if that exists already.
fn damaged_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".damaged");
    let mut p = PathBuf::from(&name);
    let mut n = 2;
    while p.exists() {
        p = PathBuf::from(format!("{}.{n}", name.to_string_lossy()));
        n += 1;
    }
    p
}

/// Unseals `seg` and lowers its mark to at most `durable`, durably.
fn lower_mark(f: &File, seg: &mut Segment, durable: u64) -> Result<(), WalError> {
    if seg.mark.sealed || seg.mark.durable > durable {
        write_mark(f, seg, seg.mark.durable.min(durable), false)?;
        f.sync_data().map_err(io_err(&seg.path))?;
    }
    Ok(())
}

/// The log on disk.
pub struct Wal {
    dir: PathBuf,
    segments: Vec<Segment>,
    /// The last segment, open for appending.
    file: File,
    /// Bytes of the last segment, written or buffered.
    tail_len: u64,
    /// `offsets[i - 1]` is where entry `i` starts in its segment.
    offsets: Vec<u64>,
    /// Encoded records not yet written to `file`; they end at `tail_len`.
    buf: Vec<u8>,
    /// Whether there are writes that `sync` must make durable.
    dirty: bool,
    /// Every record up to here was on disk when the last fsync returned.
    /// Invariant: `synced_to <= last_index()`.
    synced_to: u64,
    segment_max_bytes: u64,
    /// fsyncs done, for INFO.
    pub syncs: u64,
}

impl Wal {
    /// Reads the log and the hard state under `data_dir` without changing
    /// anything. `initialised`: the data directory is known to have been set
    /// up, so a missing log is damage rather than a fresh start.
    pub fn scan(data_dir: &Path, initialised: bool) -> Result<Scan, WalError> {
        let dir = data_dir.join("wal");
        let loaded = load_hard_state(data_dir)?;
        let mut s = Scan {
            data_dir: data_dir.to_path_buf(),
            segments: list_segments(&dir)?,
            dir,
            entries: Vec::new(),
            offsets: Vec::new(),
            hard_state: loaded.unwrap_or_default(),
            hard_state_found: loaded.is_some(),
            torn: None,
            damage: None,
        };
        // The highest index a sync mark says is durable, and which mark.
        let mut durable = (0, String::new());
        let mut stop = None;
        for k in 0..s.segments.len() {
            match s.read_segment(k, &mut durable)? {
                None => {}
                Some(Stopped::Torn(cut, t)) => {
                    s.torn = Some((cut, t));
                    break;
                }
                Some(Stopped::Damaged(offset, cut, reason)) => {
                    stop = Some((k, offset, cut, reason));
                    break;
                }
            }
        }
        let intact_to = s.entries.len() as u64;
        // Segments past the damage were not read; their marks still count.
        let unread = stop.as_ref().map_or(s.segments.len(), |(k, ..)| k + 1);
        for seg in &s.segments[unread..] {
            if let Some(m) = read_preamble_mark(&seg.path)
                && m.durable > durable.0
            {
                durable = (
                    m.durable,
                    format!("the sync mark of {}", seg.path.display()),
                );
            }
        }
        if stop.is_none() {
            stop = s.missing_tail(initialised, intact_to, &durable);
        }
        if let Some((k, offset, cut, reason)) = stop {
            let path = s
                .segments
                .get(k)
                .map_or_else(|| s.dir.clone(), |seg| seg.path.clone());
            s.torn = None;
            // The commit index, saved only after the sync that covered it,
            // tells how much was lost, though not by itself that anything
            // was (see `missing_tail`).
            let known = durable.0.max(s.hard_state.commit.get());
            s.damage = Some(Damage {
                path,
                offset,
                reason,
                intact_to,
                durable: (known > intact_to).then_some(known),
                cut,
            });
        }
        Ok(s)
    }
}

/// Why [`Scan::read_segment`] stopped before the end of the log.
enum Stopped {
    Torn(Cut, TornTail),
    /// At this byte of the segment; what accepting the loss removes; why.
    Damaged(u64, Cut, String),
}

impl Scan {
    /// Reads segment `k`'s records after the ones before it.
    fn read_segment(
        &mut self,
        k: usize,
        durable: &mut (u64, String),
    ) -> Result<Option<Stopped>, WalError> {
        let is_last = k + 1 == self.segments.len();
        let prev_sealed = k > 0 && self.segments[k - 1].mark.sealed;
        let seg = &mut self.segments[k];
        let mut bytes = Vec::new();
        File::open(&seg.path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_err(&seg.path))?;
        seg.len = bytes.len() as u64;
        // A crash while this segment was being created: nothing was ever
        // written after its preamble, and no sealed predecessor says it
        // was complete.
        let creation_torn = is_last && !prev_sealed && seg.len <= RECORDS_START;
        let whole = Cut { seg: k, at: None };
        let torn_creation = || {
            Stopped::Torn(
                whole,
                TornTail {
                    path: seg.path.clone(),
                    offset: 0,
                    bytes_dropped: bytes.len() as u64,
                },
            )
        };
        if let Err(reason) = check_segment_header(&bytes, seg.first_index) {
            return Ok(Some(if creation_torn {
                torn_creation()
            } else {
                Stopped::Damaged(0, whole, reason)
            }));
        }
        let Some(mark) = read_mark(&bytes) else {
            return Ok(Some(if creation_torn {
                torn_creation()
            } else {
                Stopped::Damaged(
                    MARK_SLOTS[0],
                    whole,
                    "both sync-mark slots are damaged".into(),
                )
            }));
        };
        seg.mark = mark;
        if mark.durable > durable.0 {
            *durable = (
                mark.durable,
                format!("the sync mark of {}", seg.path.display()),
            );
        }
        let expected_first = self.entries.len() as u64 + 1;
        if seg.first_index != expected_first {
            return Ok(Some(Stopped::Damaged(
                0,
                whole,
                format!(
                    "the segment starts at index {} but the log before it ends at {}: a segment \
                     is missing",
                    seg.first_index,
                    expected_first - 1
                ),
            )));
        }
        if seg.len < RECORDS_START {
            return Ok(Some(if creation_torn {
                torn_creation()
            } else {
                Stopped::Damaged(
                    seg.len,
                    whole,
                    "the segment is cut short inside its 4 KiB preamble".into(),
                )
            }));
        }
        let mut pos = RECORDS_START as usize;
        while pos < bytes.len() {
            let here = Cut {
                seg: k,
                at: Some(pos as u64),
            };
            let want = self.entries.len() as u64 + 1;
            match parse_record(&bytes[pos..]) {
                Ok((entry, size)) => {
                    if entry.index.get() != want {
                        return Ok(Some(Stopped::Damaged(
                            pos as u64,
                            here,
                            format!(
                                "the record holds index {} where index {want} belongs",
                                entry.index
                            ),
                        )));
                    }
                    if self.entries.last().is_some_and(|p| p.term > entry.term) {
                        return Ok(Some(Stopped::Damaged(
                            pos as u64,
                            here,
                            format!(
                                "the record for index {want} goes back to term {}",
                                entry.term
                            ),
                        )));
                    }
                    self.offsets.push(pos as u64);
                    self.entries.push(entry);
                    pos += size;
                }
                Err(bad) if is_last && tail_is_torn(&bytes, pos, bad.claimed_end) => {
                    return Ok(Some(Stopped::Torn(
                        here,
                        TornTail {
                            path: seg.path.clone(),
                            offset: pos as u64,
                            bytes_dropped: (bytes.len() - pos) as u64,
                        },
                    )));
                }
                Err(bad) => {
                    return Ok(Some(Stopped::Damaged(
                        pos as u64,
                        here,
                        format!("the record for index {want} {}", bad.reason),
                    )));
                }
            }
        }
        Ok(None)
    }

    /// Damage at the end of a log that reads cleanly (or ends in what looks
    /// like a torn write): it ends below what a sync mark says was durable,
    /// or a sealed segment's successor is gone.
    ///
    /// The hard state's commit index is no trigger here: it may cover the
    /// last sync's records, which the marks leave uncovered because a crash
    /// can tear them, so damage to those looks like a torn write either way.
    /// A log that ends below the commit index makes zaft restart the node as
    /// one that lost data by itself (`Restored` docs), which is safe.
    fn missing_tail(
        &self,
        initialised: bool,
        intact_to: u64,
        durable: &(u64, String),
    ) -> Option<(usize, u64, Cut, String)> {
        let Some(k) = self.segments.len().checked_sub(1) else {
            return initialised.then(|| {
                (
                    0,
                    0,
                    Cut { seg: 0, at: None },
                    "the WAL has no segments, though the data directory was initialised (that \
                     creates the first one)"
                        .to_string(),
                )
            });
        };
        // Where the readable log ends: before a torn write, or at the end.
        let (cut, offset) = match &self.torn {
            Some((cut, t)) => (*cut, t.offset),
            None => (
                Cut {
                    seg: k,
                    at: Some(self.segments[k].len),
                },
                self.segments[k].len,
            ),
        };
        let end = &self.segments[cut.seg.min(k)];
        if cut.at.is_some() && end.mark.sealed {
            return Some((
                cut.seg,
                offset,
                cut,
                format!(
                    "the segment is sealed, so a segment starting at index {} followed it, and \
                     there is none",
                    end.mark.durable + 1
                ),
            ));
        }
        if intact_to < durable.0 {
            let how = match &self.torn {
                Some(_) => "a record cut short",
                None => "the end of the file",
            };
            return Some((
                cut.seg,
                offset,
                cut,
                format!(
                    "the log ends at index {intact_to} ({how}), but index {} was durable \
                     ({})",
                    durable.0, durable.1
                ),
            ));
        }
        None
    }
}

impl Wal {
    pub fn last_index(&self) -> u64 {
        self.offsets.len() as u64
    }

    /// Writes `entries` after truncating the log at the first one's index.
    /// Nothing is durable until [`Wal::sync`].
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let first = first.index.get();
        if first == 0 || first > self.last_index() + 1 {
            return Err(WalError::Io {
                path: self.dir.clone(),
                err: io::Error::other(format!(
                    "append at index {first} leaves a gap after {}",
                    self.last_index()
                )),
            });
        }
        if first <= self.last_index() {
            self.truncate_from(first)?;
        }
        for e in entries {
            if self.tail_len >= self.segment_max_bytes && self.tail_len > RECORDS_START {
                self.roll(e.index.get())?;
            }
            let start = self.tail_len;
            let n = encode_record(e, &mut self.buf).map_err(|err| WalError::Io {
                path: self.dir.clone(),
                err,
            })?;
            self.offsets.push(start);
            self.tail_len += n as u64;
            self.dirty = true;
            if self.buf.len() >= WRITE_BUFFER_BYTES {
                self.write_out()?;
            }
        }
        Ok(())
    }

    /// Makes every append so far durable: one `fdatasync` for all of them.
    /// The sync mark written with it covers what the previous sync made
    /// durable (see the module docs).
    pub fn sync(&mut self) -> Result<(), WalError> {
        if !self.dirty {
            return Ok(());
        }
        self.write_out()?;
        let last = self.segments.last_mut().expect("at least one segment");
        if self.synced_to > last.mark.durable {
            write_mark(&self.file, last, self.synced_to, false)?;
        }
        self.file.sync_data().map_err(io_err(&last.path))?;
        self.synced_to = self.last_index();
        self.syncs += 1;
        self.dirty = false;
        Ok(())
    }

    fn tail_path(&self) -> &Path {
        &self.segments.last().expect("at least one segment").path
    }

    fn write_out(&mut self) -> Result<(), WalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let at = self.tail_len - self.buf.len() as u64;
        self.file
            .write_all_at(&self.buf, at)
            .map_err(io_err(&self.segments.last().expect("a segment").path))?;
        self.buf.clear();
        Ok(())
    }

    /// Starts a new segment at `first_index`. The old one is synced first, so
    /// after a crash only the last segment can have a torn tail, and sealed
    /// once the new one exists.
    fn roll(&mut self, first_index: u64) -> Result<(), WalError> {
        self.write_out()?;
        self.file.sync_data().map_err(io_err(self.tail_path()))?;
        self.synced_to = self.last_index();
        let new = create_segment(&self.dir, first_index)?;
        let old = self.segments.last_mut().expect("at least one segment");
        old.len = self.tail_len;
        write_mark(&self.file, old, first_index - 1, true)?;
        self.file.sync_data().map_err(io_err(&old.path))?;
        self.file = open_rw(&new.path)?;
        self.segments.push(new);
        self.tail_len = RECORDS_START;
        Ok(())
    }

    /// Removes entries `from..`. Synced at once: a crash must not leave a log
    /// that mixes the old tail with the new one. Each segment that is about
    /// to end the log has its mark lowered (and is unsealed) durably before
    /// anything after it goes.
    fn truncate_from(&mut self, from: u64) -> Result<(), WalError> {
        self.write_out()?;
        let keep = from - 1;
        let mut last_kept = self.last_index();
        if let Some(s) = self.segments.last_mut() {
            s.len = self.tail_len;
        }
        while self.segments.len() > 1 && self.segments.last().is_some_and(|s| s.first_index >= from)
        {
            let n = self.segments.len();
            let prev = &mut self.segments[n - 2];
            lower_mark(&open_rw(&prev.path)?, prev, keep)?;
            let gone = self.segments.pop().expect("checked");
            fs::remove_file(&gone.path).map_err(io_err(&gone.path))?;
            sync_dir(&self.dir)?;
            last_kept = gone.first_index - 1;
        }
        let seg = self.segments.last_mut().expect("at least one segment");
        let file = open_rw(&seg.path)?;
        lower_mark(&file, seg, keep)?;
        let cut = if from <= last_kept && from >= seg.first_index {
            self.offsets[(from - 1) as usize]
        } else {
            seg.len
        };
        file.set_len(cut).map_err(io_err(&seg.path))?;
        file.sync_all().map_err(io_err(&seg.path))?;
        seg.len = cut;
        self.file = file;
        self.tail_len = cut;
        self.offsets.truncate(keep as usize);
        self.synced_to = self.synced_to.min(keep);
        Ok(())
    }
}

fn open_rw(path: &Path) -> Result<File, WalError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))
}

/// The `*.seg` files under `dir`, by first index; none if `dir` is missing.
fn list_segments(dir: &Path) -> Result<Vec<Segment>, WalError> {
    let mut segments = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(segments),
        Err(err) => {
            return Err(WalError::Io {
                path: dir.into(),
                err,
            });
        }
    };
    for de in rd {
        let de = de.map_err(io_err(dir))?;
        let name = de.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
            continue;
        };
        let Ok(first_index) = stem.parse::<u64>() else {
            continue;
        };
        segments.push(Segment {
            first_index,
            path: de.path(),
            mark: Mark::default(),
            len: 0,
        });
    }
    segments.sort_by_key(|s| s.first_index);
    Ok(segments)
}

/// Creates a segment: its preamble is durable (file and directory synced)
/// before any record is written after it.
fn create_segment(dir: &Path, first_index: u64) -> Result<Segment, WalError> {
    let path = dir.join(format!("{first_index:020}.seg"));
    let mut pre = vec![0u8; RECORDS_START as usize];
    pre[..8].copy_from_slice(SEGMENT_MAGIC);
    pre[8..16].copy_from_slice(&first_index.to_le_bytes());
    let crc = crc32c(&pre[..16]);
    pre[16..20].copy_from_slice(&crc.to_le_bytes());
    let mut mark = Mark {
        seq: 0,
        durable: first_index - 1,
        sealed: false,
    };
    for slot in 0..2 {
        mark.seq = slot;
        let at = MARK_SLOTS[slot as usize] as usize;
        pre[at..at + MARK_BYTES].copy_from_slice(&encode_mark(mark));
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(io_err(&path))?;
    f.write_all(&pre).map_err(io_err(&path))?;
    f.sync_all().map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok(Segment {
        first_index,
        path,
        mark,
        len: RECORDS_START,
    })
}

fn check_segment_header(bytes: &[u8], first_index: u64) -> Result<(), String> {
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return Err(format!("segment header cut short ({} bytes)", bytes.len()));
    }
    if &bytes[..8] != SEGMENT_MAGIC {
        return Err(if bytes[..8].iter().all(|&b| b == 0) {
            "the segment header is zeros".into()
        } else {
            "not a segment file of this version (bad magic)".into()
        });
    }
    let crc = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    if crc != crc32c(&bytes[..16]) {
        return Err("segment header checksum mismatch".into());
    }
    let first = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if first != first_index {
        return Err(format!(
            "segment header says index {first} but the file name says {first_index}"
        ));
    }
    Ok(())
}

fn encode_mark(m: Mark) -> [u8; MARK_BYTES] {
    let mut b = [0u8; MARK_BYTES];
    b[..8].copy_from_slice(&m.seq.to_le_bytes());
    b[8..16].copy_from_slice(&m.durable.to_le_bytes());
    let flags = if m.sealed { MARK_SEALED } else { 0 };
    b[16..20].copy_from_slice(&flags.to_le_bytes());
    let crc = crc32c(&b[..20]);
    b[20..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// The newer of the two slots that pass their checksum.
fn read_mark(bytes: &[u8]) -> Option<Mark> {
    MARK_SLOTS
        .iter()
        .filter_map(|&at| {
            let b = bytes.get(at as usize..at as usize + MARK_BYTES)?;
            let crc = u32::from_le_bytes(b[20..].try_into().expect("4 bytes"));
            if crc != crc32c(&b[..20]) {
                return None;
            }
            let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
            let flags = u32::from_le_bytes(b[16..20].try_into().expect("4 bytes"));
            Some(Mark {
                seq: word(0),
                durable: word(8),
                sealed: flags & MARK_SEALED != 0,
            })
        })
        .max_by_key(|m| m.seq)
}

fn read_preamble_mark(path: &Path) -> Option<Mark> {
    let mut pre = vec![0u8; RECORDS_START as usize];
    let n = File::open(path).and_then(|f| f.read_at(&mut pre, 0)).ok()?;
    read_mark(&pre[..n])
}

/// Writes the next mark into the slot after the current one's. Not synced.
fn write_mark(f: &File, seg: &mut Segment, durable: u64, sealed: bool) -> Result<(), WalError> {
    let m = Mark {
        seq: seg.mark.seq + 1,
        durable,
        sealed,
    };
    f.write_all_at(&encode_mark(m), MARK_SLOTS[(m.seq % 2) as usize])
        .map_err(io_err(&seg.path))?;
    seg.mark = m;
    Ok(())
}

/// Appends one record for `e` to `out`; returns its size.
fn encode_record(e: &Entry, out: &mut Vec<u8>) -> io::Result<usize> {
    let kind = match e.kind {
        EntryKind::Normal => 0u8,
        EntryKind::Noop => 1u8,
        EntryKind::Membership => 2u8,
        other => {
            return Err(io::Error::other(format!(
                "entry kind {other:?} has no WAL encoding yet"
            )));
        }
    };
    let len = RECORD_FIXED_BYTES + e.data.len();
    if len > MAX_RECORD_BYTES {
        return Err(io::Error::other(format!(
            "entry of {len} bytes exceeds the record limit"
        )));
    }
    let start = out.len();
    let len = len as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&e.index.get().to_le_bytes());
    out.extend_from_slice(&e.term.get().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&e.data);
    let crc = Crc32c::new()
        .update(&out[start..start + 4])
        .update(&out[start + 8..])
        .finish();
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(out.len() - start)
}

struct BadRecord {
    /// Where the record would end by its length field, if that is sane.
    claimed_end: Option<usize>,
    reason: String,
}

fn parse_record(bytes: &[u8]) -> Result<(Entry, usize), BadRecord> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err(BadRecord {
            claimed_end: None,
            reason: "has a header cut short".into(),
        });
    }
    let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    if !(RECORD_FIXED_BYTES..=MAX_RECORD_BYTES).contains(&len) {
        return Err(BadRecord {
            claimed_end: None,
            reason: format!("has an impossible length {len}"),
        });
    }
    let end = RECORD_HEADER_BYTES + len;
    if bytes.len() < end {
        return Err(BadRecord {
            claimed_end: Some(end),
            reason: format!("runs past the end of the file ({len} bytes claimed)"),
        });
    }
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let actual = Crc32c::new()
        .update(&bytes[..4])
        .update(&bytes[8..end])
        .finish();
    if crc != actual {
        return Err(BadRecord {
            claimed_end: Some(end),
            reason: format!("fails its checksum (stored {crc:08x}, computed {actual:08x})"),
        });
    }
    let p = &bytes[RECORD_HEADER_BYTES..end];
    let index = u64::from_le_bytes(p[0..8].try_into().expect("8 bytes"));
    let term = u64::from_le_bytes(p[8..16].try_into().expect("8 bytes"));
    let kind = match p[16] {
        0 => EntryKind::Normal,
        1 => EntryKind::Noop,
        2 => EntryKind::Membership,
        k => {
            return Err(BadRecord {
                claimed_end: Some(end),
                reason: format!("has unknown entry kind {k}"),
            });
        }
    };
    let entry = Entry {
        term: Term(term),
        index: Index(index),
        kind,
        data: bytes::Bytes::copy_from_slice(&p[RECORD_FIXED_BYTES..]),
    };
    Ok((entry, end))
}

/// Whether a bad record at `pos` is the torn end of an unfinished write
/// rather than damage to data that was once durable: nothing but zeros from
/// `pos` on (space the file system extended but never filled), a record that
/// runs past the end of the file, or a bad record with nothing after it.
fn tail_is_torn(bytes: &[u8], pos: usize, claimed_end: Option<usize>) -> bool {
    let rest = &bytes[pos..];
    if rest.iter().all(|&b| b == 0) {
        return true;
    }
    match claimed_end {
        Some(end) => pos + end >= bytes.len(),
        None => rest.len() < RECORD_HEADER_BYTES,
    }
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Replaces `data_dir/name` atomically: write a temporary file, fsync it,
/// rename it over the old one, fsync the directory.
pub fn replace_file(data_dir: &Path, name: &str, bytes: &[u8]) -> Result<(), WalError> {
    let tmp = data_dir.join(format!("{name}.tmp"));
    let path = data_dir.join(name);
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(data_dir)
}

/// Saves the hard state atomically.
pub fn save_hard_state(data_dir: &Path, hs: &HardState) -> Result<(), WalError> {
    let mut b = Vec::with_capacity(HARD_STATE_BYTES);
    b.extend_from_slice(HARD_STATE_MAGIC);
    b.extend_from_slice(&hs.term.get().to_le_bytes());
    b.extend_from_slice(&hs.vote.map_or(0, NodeId::get).to_le_bytes());
    b.extend_from_slice(&hs.commit.get().to_le_bytes());
    let crc = crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    replace_file(data_dir, "hardstate", &b)
}

/// The saved hard state, or `None` if none was ever saved. A leftover
/// temporary file is a save that never completed and is ignored.
fn load_hard_state(data_dir: &Path) -> Result<Option<HardState>, WalError> {
    let path = data_dir.join("hardstate");
    let b = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(WalError::Io { path, err }),
    };
    let corrupt = |reason: &str| WalError::HardState {
        path: path.clone(),
        reason: reason.into(),
    };
    if b.len() != HARD_STATE_BYTES || &b[..8] != HARD_STATE_MAGIC {
        return Err(corrupt("the file has the wrong size or magic"));
    }
    let crc = u32::from_le_bytes(b[32..36].try_into().expect("4 bytes"));
    if crc != crc32c(&b[..32]) {
        return Err(corrupt("the file fails its checksum"));
    }
    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let vote = word(16);
    Ok(Some(HardState {
        term: Term(word(8)),
        vote: (vote != 0).then_some(NodeId(vote)),
        commit: Index(word(24)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segments this size hold a few small records each.
    const SMALL: u64 = RECORDS_START + 100;
    const BIG: u64 = 1 << 20;

    fn entry(term: u64, index: u64, data: &str) -> Entry {
        Entry {
            term: Term(term),
            index: Index(index),
            kind: EntryKind::Normal,
            data: bytes::Bytes::copy_from_slice(data.as_bytes()),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kvwal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// Opens as a node does without `--accept-data-loss`.
    fn open(dir: &Path, seg_bytes: u64) -> Result<(Wal, Recovered), String> {
        let scan = Wal::scan(dir, false).map_err(|e| e.to_string())?;
        if let Some(d) = scan.damage() {
            return Err(d.to_string());
        }
        scan.open(seg_bytes).map_err(|e| e.to_string())
    }

    /// What scanning `dir` reports as damage; panics if it finds none.
    fn damage(dir: &Path) -> Damage {
        let scan = Wal::scan(dir, false).unwrap();
        scan.damage().expect("damage went unnoticed").clone()
    }

    /// Entries 1..=n, one sync each, as a follower gets them one round at a
    /// time.
    fn write(dir: &Path, n: u64, seg_bytes: u64) {
        let (mut wal, _) = open(dir, seg_bytes).unwrap();
        for i in 1..=n {
            wal.append(&[entry(1, i, &format!("v{i}"))]).unwrap();
            wal.sync().unwrap();
        }
    }

    fn segments(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<_> = fs::read_dir(dir.join("wal"))
            .unwrap()
            .map(|d| d.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v
    }

    fn set_len(path: &Path, len: u64) {
        OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len)
            .unwrap();
    }

    /// Every file under `dir` and its bytes.
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    out.push((p.clone(), fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn entries_survive_reopen_across_segments_and_truncation() {
        let dir = tmp("reopen");
        write(&dir, 50, SMALL);
        assert!(segments(&dir).len() > 10);
        let (mut wal, rec) = open(&dir, SMALL).unwrap();
        assert_eq!(rec.entries.len(), 50);
        assert!(rec.torn_tail.is_none());
        // A new leader overwrites 20.. with a shorter tail of term 2.
        wal.append(&[entry(2, 20, "x"), entry(2, 21, "y")]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, rec) = open(&dir, SMALL).unwrap();
        assert_eq!(rec.entries.len(), 21);
        assert_eq!(rec.entries[19], entry(2, 20, "x"));
        assert_eq!(rec.entries[18], entry(1, 19, "v19"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_entry_kind_survives_reopen() {
        let dir = tmp("kinds");
        let (mut wal, _) = open(&dir, BIG).unwrap();
        let kinds = [EntryKind::Normal, EntryKind::Noop, EntryKind::Membership];
        let entries: Vec<Entry> = kinds
            .iter()
            .zip(1..)
            .map(|(&kind, i)| Entry {
                kind,
                ..entry(1, i, "payload")
            })
            .collect();
        wal.append(&entries).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, rec) = open(&dir, BIG).unwrap();
        assert_eq!(rec.entries, entries);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn truncation_at_a_segment_boundary_keeps_the_segment_before_it() {
        let dir = tmp("boundary");
        write(&dir, 30, SMALL);
        let second_last = segments(&dir).iter().rev().nth(1).unwrap().clone();
        let at: u64 = second_last
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let (mut wal, _) = open(&dir, SMALL).unwrap();
        wal.append(&[entry(2, at, "new")]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, rec) = open(&dir, SMALL).unwrap();
        assert_eq!(rec.entries.len() as u64, at);
        assert_eq!(
            rec.entries[at as usize - 2],
            entry(1, at - 1, &format!("v{}", at - 1))
        );
        assert_eq!(rec.entries[at as usize - 1], entry(2, at, "new"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_tail_is_cut_off() {
        let dir = tmp("torn");
        write(&dir, 10, BIG);
        let seg = segments(&dir).pop().unwrap();
        let len = fs::metadata(&seg).unwrap().len();
        // Tear the last record in half, as a crash during its fsync can.
        set_len(&seg, len - 5);
        let (wal, rec) = open(&dir, BIG).unwrap();
        assert_eq!(rec.entries.len(), 9);
        assert!(rec.torn_tail.is_some());
        assert_eq!(wal.last_index(), 9);
        drop(wal);
        // Zeros after the last good record are a torn tail too.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[0u8; 100]).unwrap();
        let (_, rec) = open(&dir, BIG).unwrap();
        assert_eq!(rec.entries.len(), 9);
        assert_eq!(rec.torn_tail.unwrap().bytes_dropped, 100);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_record_in_the_middle_is_refused_and_nothing_changes() {
        let dir = tmp("mid");
        write(&dir, 10, BIG);
        let seg = segments(&dir).pop().unwrap();
        let mut b = fs::read(&seg).unwrap();
        // A byte inside the second record's index field.
        b[RECORDS_START as usize + 27 + 10] ^= 0x40;
        fs::write(&seg, &b).unwrap();
        let before = snapshot(&dir);
        let d = damage(&dir);
        let msg = d.to_string();
        assert!(msg.contains("corrupt WAL"), "{msg}");
        assert!(
            msg.contains("record for index 2 fails its checksum"),
            "{msg}"
        );
        assert_eq!(d.offset, RECORDS_START + 27);
        assert_eq!(d.intact_to, 1);
        assert_eq!(snapshot(&dir), before, "refusing changed the directory");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_segment_cut_to_half_is_lost_data_not_a_torn_tail() {
        let dir = tmp("half");
        write(&dir, 100, BIG);
        let seg = segments(&dir).pop().unwrap();
        let len = fs::metadata(&seg).unwrap().len();
        set_len(&seg, (RECORDS_START + len) / 2);
        let before = snapshot(&dir);
        let d = damage(&dir);
        assert_eq!(snapshot(&dir), before, "refusing changed the directory");
        assert!(d.intact_to < 60, "{d}");
        // The mark lags one sync: 99 of the 100 records are known durable.
        assert_eq!(d.durable, Some(99), "{d}");
        assert!(
            d.to_string()
                .contains(&format!("at least {}", 99 - d.intact_to)),
            "{d}"
        );

        // Accepting the loss keeps what is intact and sets the rest aside.
        let (mut wal, rec) = Wal::scan(&dir, true).unwrap().open(BIG).unwrap();
        assert_eq!(rec.entries.len() as u64, d.intact_to);
        assert!(rec.accepted_loss.is_some());
        let aside = PathBuf::from(format!("{}.damaged", seg.display()));
        assert_eq!(fs::read(&aside).unwrap(), before[0].1, "damaged copy");
        // The log goes on from there, and reopens clean.
        let next = d.intact_to + 1;
        wal.append(&[entry(2, next, "again")]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, rec) = open(&dir, BIG).unwrap();
        assert_eq!(rec.entries.len() as u64, next);
        assert!(rec.torn_tail.is_none());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_zeroed_segment_is_damage_not_a_torn_tail() {
        let dir = tmp("zeroed");
        write(&dir, 50, BIG);
        let seg = segments(&dir).pop().unwrap();
        let len = fs::metadata(&seg).unwrap().len() as usize;
        fs::write(&seg, vec![0u8; len]).unwrap();
        let d = damage(&dir);
        assert_eq!(d.path, seg);
        assert_eq!(d.intact_to, 0);
        assert!(d.to_string().contains("header is zeros"), "{d}");
        let (_, rec) = Wal::scan(&dir, true).unwrap().open(BIG).unwrap();
        assert!(rec.entries.is_empty());
        let (_, rec) = open(&dir, BIG).unwrap();
        assert!(rec.entries.is_empty() && rec.torn_tail.is_none());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn zeros_followed_by_valid_records_are_damage() {
        let dir = tmp("zerohole");
        write(&dir, 10, BIG);
        let seg = segments(&dir).pop().unwrap();
        let mut b = fs::read(&seg).unwrap();
        let start = RECORDS_START as usize + 3 * 27;
        b[start..start + 27].fill(0);
        fs::write(&seg, &b).unwrap();
        let d = damage(&dir);
        assert_eq!(d.intact_to, 3);
        assert!(d.to_string().contains("record for index 4"), "{d}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_deleted_last_segment_is_found_by_the_seal() {
        let dir = tmp("sealed");
        write(&dir, 20, SMALL);
        let last = segments(&dir).pop().unwrap();
        fs::remove_file(&last).unwrap();
        let d = damage(&dir);
        assert!(d.to_string().contains("sealed"), "{d}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_middle_segment_is_damage() {
        let dir = tmp("middle");
        write(&dir, 20, SMALL);
        fs::remove_file(&segments(&dir)[2]).unwrap();
        let d = damage(&dir);
        assert!(d.to_string().contains("a segment is missing"), "{d}");
        // Later segments still count towards what was durable.
        assert_eq!(d.durable, Some(19), "{d}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_commit_index_counts_lost_records_and_accepting_lowers_it() {
        let dir = tmp("commit");
        write(&dir, 40, BIG);
        let hs = HardState {
            term: Term(1),
            vote: None,
            commit: Index(40),
        };
        save_hard_state(&dir, &hs).unwrap();
        let seg = segments(&dir).pop().unwrap();
        let len = fs::metadata(&seg).unwrap().len();
        // Only the last record cut short: the marks cannot tell it from a
        // torn write, so the WAL starts (and zaft, seeing the commit index
        // beyond the log, restarts the node as one that lost data).
        set_len(&seg, len - 3);
        if let Some(d) = Wal::scan(&dir, true).unwrap().damage() {
            panic!("{d}");
        }
        // Cut to half: the commit index says how much is lost.
        set_len(&seg, RECORDS_START + 10 * 27 + 5);
        let d = damage(&dir);
        assert_eq!((d.intact_to, d.durable), (10, Some(40)), "{d}");
        // Accepting lowers the commit hint to what survived.
        let (_, rec) = Wal::scan(&dir, true).unwrap().open(BIG).unwrap();
        assert_eq!(rec.hard_state.commit, Index(10));
        assert_eq!(load_hard_state(&dir).unwrap().unwrap().commit, Index(10));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_crash_while_creating_a_segment_is_a_torn_write() {
        let dir = tmp("creating");
        write(&dir, 5, BIG);
        // The next segment's file exists, its preamble never written.
        let next = dir.join("wal").join(format!("{:020}.seg", 6));
        fs::write(&next, [0u8; 7]).unwrap();
        let (_, rec) = open(&dir, BIG).unwrap();
        assert_eq!(rec.entries.len(), 5);
        assert_eq!(rec.torn_tail.unwrap().path, next);
        assert!(!next.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_sync_mark_slot_leaves_the_other() {
        let dir = tmp("slot");
        write(&dir, 10, BIG);
        let seg = segments(&dir).pop().unwrap();
        let mut b = fs::read(&seg).unwrap();
        let newest = read_mark(&b).unwrap();
        let at = MARK_SLOTS[(newest.seq % 2) as usize] as usize;
        b[at + 3] ^= 0xff;
        fs::write(&seg, &b).unwrap();
        assert_eq!(read_mark(&b).unwrap().seq, newest.seq - 1);
        let (_, rec) = open(&dir, BIG).unwrap();
        assert_eq!(rec.entries.len(), 10);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_uninitialised_directory_is_blank() {
        let dir = tmp("blank");
        let scan = Wal::scan(&dir, false).unwrap();
        assert!(scan.is_blank() && scan.damage().is_none());
        // Once initialised, a missing log is damage.
        assert!(Wal::scan(&dir, true).unwrap().damage().is_some());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hard_state_round_trips() {
        let dir = tmp("hs");
        let hs = HardState {
            term: Term(7),
            vote: Some(NodeId(3)),
            commit: Index(42),
        };
        save_hard_state(&dir, &hs).unwrap();
        assert_eq!(load_hard_state(&dir).unwrap(), Some(hs));
        fs::remove_dir_all(&dir).unwrap();
    }
}
