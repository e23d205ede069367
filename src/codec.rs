//! The wire codec: postcard encoding of [`Message`] with a size limit.
//!
//! A frame is one byte of format version ([`WIRE_VERSION`]) and the message.
//! Within it every message body, append response and entry kind has an
//! explicit, stable tag (see the tags in `wire.rs`); a decoder refuses a
//! version or a tag it does not know instead of guessing.
//!
//! Decoding untrusted bytes never panics and never allocates more than the
//! input's size allows: the input is refused outright above the limit, and
//! postcard cannot claim more elements than there are bytes left.

use alloc::vec::Vec;
use core::fmt;

use crate::message::Message;

/// The default limit on an encoded message: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The version of the wire format this build writes and reads, the first
/// byte of every frame. It changes only when the encoding of an existing
/// message changes; adding a message kind or an entry kind does not change
/// it (an older node refuses the new tag as malformed).
pub const WIRE_VERSION: u8 = 1;

/// Why bytes could not be decoded into a message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is larger than the configured limit.
    TooLarge {
        /// The input's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The input ended before the message did.
    Truncated,
    /// The input is not a valid encoding of a message.
    Malformed,
    /// A valid message was followed by extra bytes.
    TrailingBytes {
        /// How many bytes were left over.
        extra: usize,
    },
    /// The frame is of a wire format version this build does not speak: the
    /// peer runs an incompatible version of zaft.
    Version {
        /// The version the frame carries.
        found: u8,
        /// The version this build speaks ([`WIRE_VERSION`]).
        supported: u8,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { size, limit } => {
                write!(f, "message of {size} bytes exceeds the limit of {limit}")
            }
            DecodeError::Truncated => write!(f, "message truncated"),
            DecodeError::Malformed => write!(f, "malformed message"),
            DecodeError::TrailingBytes { extra } => {
                write!(f, "{extra} unexpected bytes after the message")
            }
            DecodeError::Version { found, supported } => write!(
                f,
                "wire format version {found}, but this build speaks version {supported}: \
                 run compatible versions of zaft on every node"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}

/// Why a message could not be encoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoding is larger than the configured limit.
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLarge { size, limit } => write!(
                f,
                "encoded message of {size} bytes exceeds the limit of {limit}: lower max_entries_bytes_per_msg"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}

/// Encodes and decodes messages with a maximum size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Codec {
    max_message_bytes: usize,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new(DEFAULT_MAX_MESSAGE_BYTES)
    }
}

impl Codec {
    /// A codec that refuses messages larger than `max_message_bytes`.
    pub const fn new(max_message_bytes: usize) -> Codec {
        Codec { max_message_bytes }
    }

    /// The size limit.
    pub const fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Appends the encoding of `msg` to `out`.
    pub fn encode_into(&self, msg: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        let mut buf = core::mem::take(out);
        buf.push(WIRE_VERSION);
        // Serializing into a Vec cannot fail for these types.
        let mut buf = postcard::to_extend(msg, buf).unwrap_or_else(|_| unreachable_encode());
        let size = buf.len() - start;
        if size > self.max_message_bytes {
            buf.truncate(start);
            *out = buf;
            return Err(EncodeError::TooLarge {
                size,
                limit: self.max_message_bytes,
            });
        }
        *out = buf;
        Ok(())
    }

    /// Encodes `msg` into a new buffer.
    pub fn encode(&self, msg: &Message) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(msg, &mut out)?;
        Ok(out)
    }

    /// Decodes one message that fills `bytes` exactly.
    pub fn decode(&self, bytes: &[u8]) -> Result<Message, DecodeError> {
        if bytes.len() > self.max_message_bytes {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                limit: self.max_message_bytes,
            });
        }
        let Some((&version, bytes)) = bytes.split_first() else {
            return Err(DecodeError::Truncated);
        };
        if version != WIRE_VERSION {
            return Err(DecodeError::Version {
                found: version,
                supported: WIRE_VERSION,
            });
        }
        match postcard::take_from_bytes::<Message>(bytes) {
            Ok((m, [])) => Ok(m),
            Ok((_, rest)) => Err(DecodeError::TrailingBytes { extra: rest.len() }),
            Err(postcard::Error::DeserializeUnexpectedEnd) => Err(DecodeError::Truncated),
            Err(_) => Err(DecodeError::Malformed),
        }
    }
}

#[cold]
fn unreachable_encode() -> Vec<u8> {
    // postcard's Vec flavor only fails on allocation failure, which aborts.
    Vec::new()
}
