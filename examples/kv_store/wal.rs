//! The write-ahead log and the hard-state file: everything the node must find
//! again after a crash.
//!
//! Layout of a data directory:
//!
//! ```text
//! wal/00000000000000000001.seg   segment files, named by their first index
//! wal/00000000000000052113.seg
//! hardstate                      term, vote, commit; replaced atomically
//! ```
//!
//! A segment starts with a 20-byte header (magic, first index, CRC) and holds
//! records `len: u32 | crc32c: u32 | index: u64 | term: u64 | kind: u8 | data`,
//! where the CRC covers the length and everything after it. Writes are
//! buffered and reach the disk in [`Wal::sync`], which is the one `fdatasync`
//! a whole group of Readies shares.
//!
//! Recovery reads every segment. A record that fails its check at the very end
//! of the last segment is the torn tail of a write that never finished: it
//! cannot have been acknowledged, so it is cut off (and reported). A bad record
//! anywhere else means acknowledged data is damaged; the WAL refuses to open
//! and says where, rather than drop it silently.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use zaft::{Entry, EntryKind, HardState, Index, NodeId, Term};

use crate::crc32c::{Crc32c, crc32c};

const SEGMENT_MAGIC: &[u8; 8] = b"ZKVSEG01";
const SEGMENT_HEADER_BYTES: u64 = 20;
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
    /// Damage that a crash cannot cause: refuse to start.
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Io { path, err } => write!(f, "{}: {err}", path.display()),
            WalError::Corrupt {
                path,
                offset,
                reason,
            } => write!(
                f,
                "corrupt WAL: {} at byte {offset}: {reason}. This is not a torn tail (valid data \
                 follows it), so acknowledged writes may be damaged; refusing to start. Restore \
                 this node's data directory from a replica or wipe it so the node catches up \
                 from the leader",
                path.display()
            ),
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

/// What recovery had to cut off the end of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    pub offset: u64,
    pub bytes_dropped: u64,
}

/// What [`Wal::open`] found.
pub struct Recovered {
    pub entries: Vec<Entry>,
    pub hard_state: HardState,
    pub torn_tail: Option<TornTail>,
}

struct Segment {
    first_index: u64,
    path: PathBuf,
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
    /// Encoded records not yet written to `file`.
    buf: Vec<u8>,
    /// Whether there are writes that `sync` must make durable.
    dirty: bool,
    segment_max_bytes: u64,
    /// fsyncs done, for INFO.
    pub syncs: u64,
}

impl Wal {
    /// Opens (or creates) the log under `data_dir`, recovering what is there.
    pub fn open(data_dir: &Path, segment_max_bytes: u64) -> Result<(Wal, Recovered), WalError> {
        let dir = data_dir.join("wal");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let hard_state = load_hard_state(data_dir)?;

        let mut segments = Vec::new();
        for de in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let de = de.map_err(io_err(&dir))?;
            let name = de.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(stem) = name.strip_suffix(".seg") else {
                continue;
            };
            let Ok(first_index) = stem.parse::<u64>() else {
                continue;
            };
            segments.push(Segment {
                first_index,
                path: de.path(),
            });
        }
        segments.sort_by_key(|s| s.first_index);

        let mut entries: Vec<Entry> = Vec::new();
        let mut offsets = Vec::new();
        let mut torn_tail = None;
        let mut k = 0;
        while k < segments.len() {
            let is_last = k + 1 == segments.len();
            let seg = &segments[k];
            let mut bytes = Vec::new();
            File::open(&seg.path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(io_err(&seg.path))?;
            let corrupt = |offset: u64, reason: String| WalError::Corrupt {
                path: seg.path.clone(),
                offset,
                reason,
            };
            if let Err(reason) = check_segment_header(&bytes, seg.first_index) {
                if is_last && tail_is_torn(&bytes, 0, None) {
                    // The crash came while the segment was being created.
                    fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
                    sync_dir(&dir)?;
                    torn_tail = Some(TornTail {
                        path: seg.path.clone(),
                        offset: 0,
                        bytes_dropped: bytes.len() as u64,
                    });
                    segments.pop();
                    break;
                }
                return Err(corrupt(0, reason));
            }
            let expected_first = entries.len() as u64 + 1;
            if seg.first_index != expected_first {
                return Err(corrupt(
                    0,
                    format!(
                        "segment starts at index {} but the log so far ends at {}: a segment is missing",
                        seg.first_index,
                        expected_first - 1
                    ),
                ));
            }
            let mut pos = SEGMENT_HEADER_BYTES as usize;
            while pos < bytes.len() {
                match parse_record(&bytes[pos..]) {
                    Ok((entry, size)) => {
                        let want = entries.len() as u64 + 1;
                        if entry.index.get() != want {
                            return Err(corrupt(
                                pos as u64,
                                format!(
                                    "record holds index {} where index {want} belongs",
                                    entry.index
                                ),
                            ));
                        }
                        if entries.last().is_some_and(|p| p.term > entry.term) {
                            return Err(corrupt(
                                pos as u64,
                                format!("record at index {want} goes back to term {}", entry.term),
                            ));
                        }
                        offsets.push(pos as u64);
                        entries.push(entry);
                        pos += size;
                    }
                    Err(bad) => {
                        if is_last && tail_is_torn(&bytes, pos, bad.claimed_end) {
                            let f = OpenOptions::new()
                                .write(true)
                                .open(&seg.path)
                                .map_err(io_err(&seg.path))?;
                            f.set_len(pos as u64).map_err(io_err(&seg.path))?;
                            f.sync_all().map_err(io_err(&seg.path))?;
                            torn_tail = Some(TornTail {
                                path: seg.path.clone(),
                                offset: pos as u64,
                                bytes_dropped: (bytes.len() - pos) as u64,
                            });
                            break;
                        }
                        return Err(corrupt(
                            pos as u64,
                            format!("record for index {} {}", entries.len() + 1, bad.reason),
                        ));
                    }
                }
            }
            k += 1;
        }

        if segments.is_empty() {
            let seg = create_segment(&dir, 1)?;
            segments.push(seg);
        }
        let last = segments.last().expect("at least one segment");
        let file = OpenOptions::new()
            .append(true)
            .open(&last.path)
            .map_err(io_err(&last.path))?;
        let tail_len = file.metadata().map_err(io_err(&last.path))?.len();
        let wal = Wal {
            dir,
            segments,
            file,
            tail_len,
            offsets,
            buf: Vec::new(),
            dirty: false,
            segment_max_bytes,
            syncs: 0,
        };
        Ok((
            wal,
            Recovered {
                entries,
                hard_state,
                torn_tail,
            },
        ))
    }

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
            if self.tail_len >= self.segment_max_bytes {
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
    pub fn sync(&mut self) -> Result<(), WalError> {
        if !self.dirty {
            return Ok(());
        }
        self.write_out()?;
        self.file.sync_data().map_err(io_err(self.tail_path()))?;
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
        let path = self.tail_path().to_path_buf();
        self.file.write_all(&self.buf).map_err(io_err(&path))?;
        self.buf.clear();
        Ok(())
    }

    /// Starts a new segment at `first_index`. The old one is synced first, so
    /// after a crash only the last segment can have a torn tail.
    fn roll(&mut self, first_index: u64) -> Result<(), WalError> {
        self.write_out()?;
        self.file.sync_data().map_err(io_err(self.tail_path()))?;
        let seg = create_segment(&self.dir, first_index)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&seg.path)
            .map_err(io_err(&seg.path))?;
        self.segments.push(seg);
        self.tail_len = SEGMENT_HEADER_BYTES;
        Ok(())
    }

    /// Removes entries `from..`. Synced at once: a crash must not leave a log
    /// that mixes the old tail with the new one.
    fn truncate_from(&mut self, from: u64) -> Result<(), WalError> {
        self.write_out()?;
        let mut removed = false;
        while self.segments.len() > 1 && self.segments.last().is_some_and(|s| s.first_index >= from)
        {
            let seg = self.segments.pop().expect("checked");
            fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
            removed = true;
        }
        let seg = self.segments.last().expect("at least one segment");
        let cut = if from >= seg.first_index {
            self.offsets[(from - 1) as usize]
        } else {
            SEGMENT_HEADER_BYTES
        };
        let path = seg.path.clone();
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.set_len(cut).map_err(io_err(&path))?;
        file.sync_all().map_err(io_err(&path))?;
        if removed {
            sync_dir(&self.dir)?;
        }
        self.file = file;
        self.tail_len = cut;
        self.offsets.truncate((from - 1) as usize);
        Ok(())
    }
}

fn create_segment(dir: &Path, first_index: u64) -> Result<Segment, WalError> {
    let path = dir.join(format!("{first_index:020}.seg"));
    let mut header = Vec::with_capacity(SEGMENT_HEADER_BYTES as usize);
    header.extend_from_slice(SEGMENT_MAGIC);
    header.extend_from_slice(&first_index.to_le_bytes());
    let crc = crc32c(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(io_err(&path))?;
    f.write_all(&header).map_err(io_err(&path))?;
    f.sync_all().map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok(Segment { first_index, path })
}

fn check_segment_header(bytes: &[u8], first_index: u64) -> Result<(), String> {
    let h = SEGMENT_HEADER_BYTES as usize;
    if bytes.len() < h {
        return Err(format!("segment header cut short ({} bytes)", bytes.len()));
    }
    if &bytes[..8] != SEGMENT_MAGIC {
        return Err("not a segment file (bad magic)".into());
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

/// Appends one record for `e` to `out`; returns its size.
fn encode_record(e: &Entry, out: &mut Vec<u8>) -> io::Result<usize> {
    let kind = match e.kind {
        EntryKind::Normal => 0u8,
        EntryKind::Noop => 1u8,
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

/// Saves the hard state atomically: write a temporary file, fsync it, rename
/// it over the old one, fsync the directory.
pub fn save_hard_state(data_dir: &Path, hs: &HardState) -> Result<(), WalError> {
    let tmp = data_dir.join("hardstate.tmp");
    let path = data_dir.join("hardstate");
    let mut b = Vec::with_capacity(HARD_STATE_BYTES);
    b.extend_from_slice(HARD_STATE_MAGIC);
    b.extend_from_slice(&hs.term.get().to_le_bytes());
    b.extend_from_slice(&hs.vote.map_or(0, NodeId::get).to_le_bytes());
    b.extend_from_slice(&hs.commit.get().to_le_bytes());
    let crc = crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&b).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(data_dir)
}

fn load_hard_state(data_dir: &Path) -> Result<HardState, WalError> {
    let path = data_dir.join("hardstate");
    // A leftover temporary file is a save that never completed.
    let _ = fs::remove_file(data_dir.join("hardstate.tmp"));
    let b = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HardState::default()),
        Err(err) => return Err(WalError::Io { path, err }),
    };
    let corrupt = |reason: &str| WalError::Corrupt {
        path: path.clone(),
        offset: 0,
        reason: reason.into(),
    };
    if b.len() != HARD_STATE_BYTES || &b[..8] != HARD_STATE_MAGIC {
        return Err(corrupt("hard-state file has the wrong size or magic"));
    }
    let crc = u32::from_le_bytes(b[32..36].try_into().expect("4 bytes"));
    if crc != crc32c(&b[..32]) {
        return Err(corrupt("hard-state file fails its checksum"));
    }
    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let vote = word(16);
    Ok(HardState {
        term: Term(word(8)),
        vote: (vote != 0).then_some(NodeId(vote)),
        commit: Index(word(24)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        d
    }

    fn write(dir: &Path, n: u64, seg_bytes: u64) {
        let (mut wal, _) = Wal::open(dir, seg_bytes).unwrap();
        let es: Vec<_> = (1..=n).map(|i| entry(1, i, &format!("v{i}"))).collect();
        wal.append(&es).unwrap();
        wal.sync().unwrap();
    }

    fn last_segment(dir: &Path) -> PathBuf {
        let mut v: Vec<_> = fs::read_dir(dir.join("wal"))
            .unwrap()
            .map(|d| d.unwrap().path())
            .collect();
        v.sort();
        v.pop().unwrap()
    }

    #[test]
    fn entries_survive_reopen_across_segments_and_truncation() {
        let dir = tmp("reopen");
        write(&dir, 50, 200);
        let (mut wal, rec) = Wal::open(&dir, 200).unwrap();
        assert_eq!(rec.entries.len(), 50);
        assert!(rec.torn_tail.is_none());
        // A new leader overwrites 20.. with a shorter tail of term 2.
        wal.append(&[entry(2, 20, "x"), entry(2, 21, "y")]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, rec) = Wal::open(&dir, 200).unwrap();
        assert_eq!(rec.entries.len(), 21);
        assert_eq!(rec.entries[19], entry(2, 20, "x"));
        assert_eq!(rec.entries[18], entry(1, 19, "v19"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_tail_is_cut_off() {
        let dir = tmp("torn");
        write(&dir, 10, 1 << 20);
        let seg = last_segment(&dir);
        let len = fs::metadata(&seg).unwrap().len();
        // Tear the last record in half.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        let (wal, rec) = Wal::open(&dir, 1 << 20).unwrap();
        assert_eq!(rec.entries.len(), 9);
        assert!(rec.torn_tail.is_some());
        assert_eq!(wal.last_index(), 9);
        drop(wal);
        // Zeros after the last good record are a torn tail too.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[0u8; 100]).unwrap();
        let (_, rec) = Wal::open(&dir, 1 << 20).unwrap();
        assert_eq!(rec.entries.len(), 9);
        assert_eq!(rec.torn_tail.unwrap().bytes_dropped, 100);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_record_in_the_middle_is_refused() {
        let dir = tmp("mid");
        write(&dir, 10, 1 << 20);
        let seg = last_segment(&dir);
        let mut b = fs::read(&seg).unwrap();
        // A byte inside the second record's index field.
        b[SEGMENT_HEADER_BYTES as usize + 27 + 10] ^= 0x40;
        fs::write(&seg, &b).unwrap();
        let err = Wal::open(&dir, 1 << 20).err().expect("must refuse");
        let msg = err.to_string();
        assert!(msg.contains("corrupt WAL"), "{msg}");
        assert!(msg.contains("checksum"), "{msg}");
        // Refusing changed nothing.
        assert_eq!(fs::read(&seg).unwrap(), b);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hard_state_round_trips() {
        let dir = tmp("hs");
        fs::create_dir_all(&dir).unwrap();
        let hs = HardState {
            term: Term(7),
            vote: Some(NodeId(3)),
            commit: Index(42),
        };
        save_hard_state(&dir, &hs).unwrap();
        assert_eq!(load_hard_state(&dir).unwrap(), hs);
        fs::remove_dir_all(&dir).unwrap();
    }
}
