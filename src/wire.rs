//! The wire tags of every message body, append response and entry kind, and
//! the serde impls that write them.
//!
//! A derived serde impl numbers enum variants by their position in the
//! source, so reordering two variants would silently change the bytes a
//! node sends, and a cluster running two builds would misread each other.
//! Here each variant has an explicit number that never changes: a new
//! variant takes a new number, and a retired number is never reused. The
//! encoding is what postcard makes of a variant (its number as a varint)
//! followed by the fields in order; `tests/codec.rs` pins the bytes of one
//! message of every kind. [`crate::Codec`] adds a format version in front.
//!
//! A tag this build does not know is refused when decoding (the codec
//! reports it as [`crate::DecodeError::Malformed`]), never skipped.

use core::fmt;

use alloc::vec::Vec;
use bytes::Bytes;
use serde::de::{self, EnumAccess, VariantAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::entries::Entries;
use crate::message::{AppendResponse, Body, EntryKind};
use crate::types::{Index, LogId};

/// The tags of [`Body`]. Never renumber; append only.
mod body {
    pub const REQUEST_VOTE: u32 = 0;
    pub const REQUEST_VOTE_RESPONSE: u32 = 1;
    pub const PRE_VOTE: u32 = 2;
    pub const PRE_VOTE_RESPONSE: u32 = 3;
    pub const APPEND_ENTRIES: u32 = 4;
    pub const APPEND_ENTRIES_RESPONSE: u32 = 5;
    pub const HEARTBEAT: u32 = 6;
    pub const HEARTBEAT_RESPONSE: u32 = 7;
    pub const TIMEOUT_NOW: u32 = 8;
    pub const COMMIT: u32 = 9;
    pub const PROPOSE: u32 = 10;
    pub const READ_INDEX: u32 = 11;
    pub const READ_INDEX_RESPONSE: u32 = 12;
}

/// The tags of [`AppendResponse`]. Never renumber; append only.
mod append {
    pub const SUCCESS: u32 = 0;
    pub const REJECT: u32 = 1;
    pub const BEHIND: u32 = 2;
}

/// The tags of [`EntryKind`]. Never renumber; append only.
mod kind {
    pub const NORMAL: u32 = 0;
    pub const NOOP: u32 = 1;
    pub const MEMBERSHIP: u32 = 2;
}

const BODY_NAMES: &[&str] = &[
    "RequestVote",
    "RequestVoteResponse",
    "PreVote",
    "PreVoteResponse",
    "AppendEntries",
    "AppendEntriesResponse",
    "Heartbeat",
    "HeartbeatResponse",
    "TimeoutNow",
    "Commit",
    "Propose",
    "ReadIndex",
    "ReadIndexResponse",
];
const APPEND_NAMES: &[&str] = &["Success", "Reject", "Behind"];
const KIND_NAMES: &[&str] = &["Normal", "Noop", "Membership"];

/// Writes variant `tag` of `Body` with `fields`.
fn nv<S: Serializer, T: Serialize>(s: S, tag: u32, fields: &T) -> Result<S::Ok, S::Error> {
    s.serialize_newtype_variant("Body", tag, BODY_NAMES[tag as usize], fields)
}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use body::*;
        match self {
            Body::RequestVote { last_log, transfer } => nv(s, REQUEST_VOTE, &(last_log, transfer)),
            Body::RequestVoteResponse { granted } => nv(s, REQUEST_VOTE_RESPONSE, &(granted,)),
            Body::PreVote { last_log } => nv(s, PRE_VOTE, &(last_log,)),
            Body::PreVoteResponse { granted } => nv(s, PRE_VOTE_RESPONSE, &(granted,)),
            Body::AppendEntries {
                prev,
                entries,
                commit,
            } => nv(s, APPEND_ENTRIES, &(prev, entries, commit)),
            Body::AppendEntriesResponse(r) => nv(s, APPEND_ENTRIES_RESPONSE, r),
            Body::Heartbeat { commit, round } => nv(s, HEARTBEAT, &(commit, round)),
            Body::HeartbeatResponse { round } => nv(s, HEARTBEAT_RESPONSE, &(round,)),
            Body::TimeoutNow => {
                s.serialize_unit_variant("Body", TIMEOUT_NOW, BODY_NAMES[TIMEOUT_NOW as usize])
            }
            Body::Commit { commit } => nv(s, COMMIT, &(commit,)),
            Body::Propose { data } => nv(s, PROPOSE, &(data,)),
            Body::ReadIndex { ctx } => nv(s, READ_INDEX, &(ctx,)),
            Body::ReadIndexResponse { ctx, index } => nv(s, READ_INDEX_RESPONSE, &(ctx, index)),
        }
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Body, D::Error> {
        d.deserialize_enum("Body", BODY_NAMES, BodyVisitor)
    }
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Body;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message body")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, a: A) -> Result<Body, A::Error> {
        let (Tag(tag), v) = a.variant_seed(TagSeed(BODY_NAMES))?;
        use body::*;
        Ok(match tag {
            REQUEST_VOTE => {
                let (last_log, transfer) = v.newtype_variant::<(LogId, bool)>()?;
                Body::RequestVote { last_log, transfer }
            }
            REQUEST_VOTE_RESPONSE => {
                let (granted,) = v.newtype_variant::<(bool,)>()?;
                Body::RequestVoteResponse { granted }
            }
            PRE_VOTE => {
                let (last_log,) = v.newtype_variant::<(LogId,)>()?;
                Body::PreVote { last_log }
            }
            PRE_VOTE_RESPONSE => {
                let (granted,) = v.newtype_variant::<(bool,)>()?;
                Body::PreVoteResponse { granted }
            }
            APPEND_ENTRIES => {
                let (prev, entries, commit) = v.newtype_variant::<(LogId, Entries, Index)>()?;
                Body::AppendEntries {
                    prev,
                    entries,
                    commit,
                }
            }
            APPEND_ENTRIES_RESPONSE => Body::AppendEntriesResponse(v.newtype_variant()?),
            HEARTBEAT => {
                let (commit, round) = v.newtype_variant::<(Index, u64)>()?;
                Body::Heartbeat { commit, round }
            }
            HEARTBEAT_RESPONSE => {
                let (round,) = v.newtype_variant::<(u64,)>()?;
                Body::HeartbeatResponse { round }
            }
            TIMEOUT_NOW => {
                v.unit_variant()?;
                Body::TimeoutNow
            }
            COMMIT => {
                let (commit,) = v.newtype_variant::<(Index,)>()?;
                Body::Commit { commit }
            }
            PROPOSE => {
                let (data,) = v.newtype_variant::<(Vec<Bytes>,)>()?;
                Body::Propose { data }
            }
            READ_INDEX => {
                let (ctx,) = v.newtype_variant::<(u64,)>()?;
                Body::ReadIndex { ctx }
            }
            READ_INDEX_RESPONSE => {
                let (ctx, index) = v.newtype_variant::<(u64, Option<Index>)>()?;
                Body::ReadIndexResponse { ctx, index }
            }
            t => return Err(unknown::<A::Error>("message body", t)),
        })
    }
}

impl Serialize for AppendResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use append::*;
        let name = |tag: u32| APPEND_NAMES[tag as usize];
        match self {
            AppendResponse::Success { match_index } => s.serialize_newtype_variant(
                "AppendResponse",
                SUCCESS,
                name(SUCCESS),
                &(match_index,),
            ),
            AppendResponse::Reject { rejected, hint } => s.serialize_newtype_variant(
                "AppendResponse",
                REJECT,
                name(REJECT),
                &(rejected, hint),
            ),
            AppendResponse::Behind { last } => {
                s.serialize_newtype_variant("AppendResponse", BEHIND, name(BEHIND), &(last,))
            }
        }
    }
}

impl<'de> Deserialize<'de> for AppendResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AppendResponse, D::Error> {
        d.deserialize_enum("AppendResponse", APPEND_NAMES, AppendVisitor)
    }
}

struct AppendVisitor;

impl<'de> Visitor<'de> for AppendVisitor {
    type Value = AppendResponse;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an append response")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, a: A) -> Result<AppendResponse, A::Error> {
        let (Tag(tag), v) = a.variant_seed(TagSeed(APPEND_NAMES))?;
        use append::*;
        Ok(match tag {
            SUCCESS => {
                let (match_index,) = v.newtype_variant::<(Index,)>()?;
                AppendResponse::Success { match_index }
            }
            REJECT => {
                let (rejected, hint) = v.newtype_variant::<(Index, LogId)>()?;
                AppendResponse::Reject { rejected, hint }
            }
            BEHIND => {
                let (last,) = v.newtype_variant::<(LogId,)>()?;
                AppendResponse::Behind { last }
            }
            t => return Err(unknown::<A::Error>("append response", t)),
        })
    }
}

impl Serialize for EntryKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let tag = match self {
            EntryKind::Normal => kind::NORMAL,
            EntryKind::Noop => kind::NOOP,
            EntryKind::Membership => kind::MEMBERSHIP,
        };
        s.serialize_unit_variant("EntryKind", tag, KIND_NAMES[tag as usize])
    }
}

impl<'de> Deserialize<'de> for EntryKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EntryKind, D::Error> {
        d.deserialize_enum("EntryKind", KIND_NAMES, KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = EntryKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an entry kind")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, a: A) -> Result<EntryKind, A::Error> {
        let (Tag(tag), v) = a.variant_seed(TagSeed(KIND_NAMES))?;
        let k = match tag {
            kind::NORMAL => EntryKind::Normal,
            kind::NOOP => EntryKind::Noop,
            kind::MEMBERSHIP => EntryKind::Membership,
            t => return Err(unknown::<A::Error>("entry kind", t)),
        };
        v.unit_variant()?;
        Ok(k)
    }
}

fn unknown<E: de::Error>(what: &str, tag: u32) -> E {
    E::custom(format_args!(
        "unknown {what} tag {tag}: written by a newer version"
    ))
}

/// A variant's tag: its number in compact formats (postcard), or its name
/// in self-describing ones.
struct Tag(u32);

struct TagSeed(&'static [&'static str]);

impl<'de> de::DeserializeSeed<'de> for TagSeed {
    type Value = Tag;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Tag, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for TagSeed {
    type Value = Tag;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a variant tag")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tag, E> {
        // Out-of-range numbers are unknown tags, reported by the caller.
        Ok(Tag(u32::try_from(v).unwrap_or(u32::MAX)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Tag, E> {
        match self.0.iter().position(|n| *n == v) {
            Some(i) => Ok(Tag(i as u32)),
            None => Err(E::unknown_variant(v, self.0)),
        }
    }
}
