//! RESP, the Redis protocol: enough of it for redis-cli and redis-benchmark.
//!
//! The server reads commands (arrays of bulk strings, or inline lines as typed
//! into telnet) and writes replies. Everything is bounded: a command line, the
//! number of arguments and each bulk string have a limit, and breaking one is a
//! protocol error answered with `-ERR` before the connection is closed, never
//! an allocation of whatever size the peer claimed.

use std::fmt;
use std::io::{self, BufRead, Write};

/// The longest line (a `*`/`$` header or an inline command).
pub const MAX_LINE_BYTES: usize = 64 << 10;
/// The most arguments in one command.
pub const MAX_ARGS: usize = 1024;
/// The largest bulk string (so the largest key or value).
pub const MAX_BULK_BYTES: usize = 1 << 20;
/// The most bytes of arguments in one command.
pub const MAX_COMMAND_BYTES: usize = 4 << 20;

#[derive(Debug)]
pub enum RespError {
    Io(io::Error),
    /// The peer broke the protocol; answer `-ERR Protocol error` and close.
    Protocol(String),
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::Io(e) => write!(f, "{e}"),
            RespError::Protocol(s) => write!(f, "Protocol error: {s}"),
        }
    }
}

impl From<io::Error> for RespError {
    fn from(e: io::Error) -> Self {
        RespError::Io(e)
    }
}

fn protocol(s: impl Into<String>) -> RespError {
    RespError::Protocol(s.into())
}

/// Reads one line without its `\r\n` (or `\n`), at most `MAX_LINE_BYTES`.
/// `None` at a clean end of stream.
fn read_line(r: &mut impl BufRead, line: &mut Vec<u8>) -> Result<Option<()>, RespError> {
    line.clear();
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(RespError::Io(io::ErrorKind::UnexpectedEof.into()))
            };
        }
        if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&buf[..nl]);
            r.consume(nl + 1);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > MAX_LINE_BYTES {
                return Err(protocol("line too long"));
            }
            return Ok(Some(()));
        }
        let n = buf.len();
        line.extend_from_slice(buf);
        r.consume(n);
        if line.len() > MAX_LINE_BYTES {
            return Err(protocol("line too long"));
        }
    }
}

fn parse_len(digits: &[u8], max: usize, what: &str) -> Result<Option<usize>, RespError> {
    let s = std::str::from_utf8(digits).map_err(|_| protocol(format!("invalid {what}")))?;
    let n: i64 = s.parse().map_err(|_| protocol(format!("invalid {what}")))?;
    if n < 0 {
        return Ok(None);
    }
    if n as u64 > max as u64 {
        return Err(protocol(format!("{what} {n} exceeds the limit of {max}")));
    }
    Ok(Some(n as usize))
}

/// Reads one command: its arguments, never empty. `None` at a clean end of
/// stream.
pub fn read_command(r: &mut impl BufRead) -> Result<Option<Vec<Vec<u8>>>, RespError> {
    let mut line = Vec::new();
    loop {
        if read_line(r, &mut line)?.is_none() {
            return Ok(None);
        }
        if line.first() != Some(&b'*') {
            // An inline command; empty lines are skipped as redis does.
            let args: Vec<Vec<u8>> = line
                .split(|b| b.is_ascii_whitespace())
                .filter(|a| !a.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            if args.len() > MAX_ARGS {
                return Err(protocol("too many arguments"));
            }
            if !args.is_empty() {
                return Ok(Some(args));
            }
            continue;
        }
        // `*0` and `*-1` are empty commands: skipped, as redis does.
        let n = parse_len(&line[1..], MAX_ARGS, "multibulk length")?.unwrap_or(0);
        let mut args = Vec::with_capacity(n.min(16));
        let mut total = 0;
        for _ in 0..n {
            if read_line(r, &mut line)?.is_none() {
                return Err(RespError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            if line.first() != Some(&b'$') {
                return Err(protocol("expected '$'"));
            }
            let len = parse_len(&line[1..], MAX_BULK_BYTES, "bulk length")?
                .ok_or_else(|| protocol("invalid bulk length"))?;
            total += len;
            if total > MAX_COMMAND_BYTES {
                return Err(protocol("command too large"));
            }
            let mut arg = vec![0u8; len + 2];
            r.read_exact(&mut arg)?;
            if &arg[len..] != b"\r\n" {
                return Err(protocol("bulk string not followed by CRLF"));
            }
            arg.truncate(len);
            args.push(arg);
        }
        if !args.is_empty() {
            return Ok(Some(args));
        }
    }
}

/// A reply, to write (server) or as read back (client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    pub fn err(s: impl Into<String>) -> Reply {
        Reply::Error(s.into())
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(s) => {
                out.push(b'+');
                out.extend(s.bytes().filter(|&b| b != b'\r' && b != b'\n'));
                out.extend_from_slice(b"\r\n");
            }
            Reply::Error(s) => {
                out.push(b'-');
                out.extend(s.bytes().filter(|&b| b != b'\r' && b != b'\n'));
                out.extend_from_slice(b"\r\n");
            }
            Reply::Int(i) => {
                let _ = write!(out, ":{i}\r\n");
            }
            Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
            Reply::Bulk(Some(b)) => {
                let _ = write!(out, "${}\r\n", b.len());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Array(items) => {
                let _ = write!(out, "*{}\r\n", items.len());
                for i in items {
                    i.write_to(out);
                }
            }
        }
    }
}

/// Encodes a command as an array of bulk strings (the client side).
pub fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    let _ = write!(out, "*{}\r\n", args.len());
    for a in args {
        let _ = write!(out, "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads one reply (the client side), with the same limits.
pub fn read_reply(r: &mut impl BufRead) -> Result<Reply, RespError> {
    let mut line = Vec::new();
    if read_line(r, &mut line)?.is_none() {
        return Err(RespError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match line.first() {
        Some(b'+') => Ok(Reply::Simple(text(&line[1..]))),
        Some(b'-') => Ok(Reply::Error(text(&line[1..]))),
        Some(b':') => text(&line[1..])
            .parse()
            .map(Reply::Int)
            .map_err(|_| protocol("bad integer")),
        Some(b'$') => match parse_len(&line[1..], MAX_BULK_BYTES, "bulk length")? {
            None => Ok(Reply::Bulk(None)),
            Some(len) => {
                let mut b = vec![0u8; len + 2];
                r.read_exact(&mut b)?;
                b.truncate(len);
                Ok(Reply::Bulk(Some(b)))
            }
        },
        Some(b'*') => {
            let n = parse_len(&line[1..], MAX_ARGS, "array length")?.unwrap_or(0);
            let mut items = Vec::with_capacity(n.min(16));
            for _ in 0..n {
                items.push(read_reply(r)?);
            }
            Ok(Reply::Array(items))
        }
        _ => Err(protocol("unknown reply type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn parse(input: &[u8]) -> Result<Option<Vec<Vec<u8>>>, RespError> {
        read_command(&mut BufReader::new(input))
    }

    #[test]
    fn arrays_and_inline_commands_parse() {
        let got = parse(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n").unwrap();
        assert_eq!(
            got,
            Some(vec![b"SET".to_vec(), b"k".to_vec(), b"vv".to_vec()])
        );
        let got = parse(b"\r\nget  k\r\n").unwrap();
        assert_eq!(got, Some(vec![b"get".to_vec(), b"k".to_vec()]));
        assert_eq!(parse(b"").unwrap(), None);
        let got = parse(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(got, Some(vec![b"PING".to_vec()]));
    }

    #[test]
    fn oversized_or_malformed_input_is_a_protocol_error() {
        let huge = format!("*1\r\n${}\r\n", MAX_BULK_BYTES + 1);
        assert!(matches!(
            parse(huge.as_bytes()),
            Err(RespError::Protocol(_))
        ));
        assert!(matches!(
            parse(b"*99999999\r\n"),
            Err(RespError::Protocol(_))
        ));
        assert!(matches!(
            parse(b"*1\r\n:3\r\n"),
            Err(RespError::Protocol(_))
        ));
        assert!(matches!(
            parse(b"*1\r\n$x\r\n"),
            Err(RespError::Protocol(_))
        ));
        assert!(matches!(
            parse(b"*1\r\n$1\r\nabc"),
            Err(RespError::Protocol(_))
        ));
        let long = vec![b'a'; MAX_LINE_BYTES + 10];
        assert!(matches!(parse(&long), Err(RespError::Protocol(_))));
        assert!(matches!(parse(b"*2\r\n$1\r\na\r\n"), Err(RespError::Io(_))));
    }

    #[test]
    fn replies_round_trip() {
        let r = Reply::Array(vec![
            Reply::ok(),
            Reply::err("MOVED 0 127.0.0.1:1"),
            Reply::Int(-3),
            Reply::Bulk(None),
            Reply::Bulk(Some(b"x\r\ny".to_vec())),
        ]);
        let mut out = Vec::new();
        r.write_to(&mut out);
        assert_eq!(read_reply(&mut BufReader::new(&out[..])).unwrap(), r);
    }
}
