//! Who may talk to a node: the cluster secret that authenticates peer
//! links, and the password clients give with `AUTH`.
//!
//! # Peer links
//!
//! Without a secret a peer link starts with a plain hello (which node
//! dials, which it wants), as before: fine on a trusted network only. With
//! `--cluster-secret FILE` (or `--cluster-secret-env VAR`) every node holds
//! the same secret K and a link starts with a mutual challenge-response, so
//! that K never crosses the wire:
//!
//! ```text
//! dialer D -> acceptor A:  "ZKVPEER2" | D's id | A's id | nonce_D (32 random bytes)
//! A -> D:                  nonce_A | HMAC-SHA256(K, "A->D" | nonce_D | D's id | A's id)
//! D -> A:                  HMAC-SHA256(K, "D->A" | nonce_A | D's id | A's id)
//! ```
//!
//! Each side answers the other's fresh nonce, so a recorded handshake is
//! worth nothing; the direction label keeps one side's answer from being
//! reflected back as the other's; the ids bind the answer to this pair of
//! nodes. D checks A's answer before it sends a frame, and A hands the
//! connection to its writer (where it replaces an older link to D) only once
//! D's answer checks out: a peer without K can neither read the cluster's
//! traffic nor displace a real link. A failed handshake is counted
//! (`peer_auth_failures` in `INFO`) and logged.
//!
//! The nonces come from `/dev/urandom` (the example is Unix-only already).
//! MACs are compared in constant time (`hmac`'s `verify_slice`).
//!
//! # Clients
//!
//! With `--requirepass PASSWORD` (or `--requirepass-env VAR`, which keeps it
//! out of `ps`), a connection must send `AUTH PASSWORD` (or
//! `AUTH default PASSWORD`, or `HELLO 2 AUTH default PASSWORD`) before
//! anything but `AUTH`, `HELLO ... AUTH` and `QUIT`; other commands get
//! `-NOAUTH Authentication required.`.

use std::fs;
use std::io::{self, Read};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zaft::NodeId;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a nonce and of a MAC.
pub const NONCE_BYTES: usize = 32;
pub const MAC_BYTES: usize = 32;
/// A shorter secret is refused: it could be guessed offline from one
/// recorded handshake.
pub const MIN_SECRET_BYTES: usize = 16;

/// Which side of the handshake a MAC is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The acceptor's answer to the dialer's nonce.
    AcceptorToDialer,
    /// The dialer's answer to the acceptor's nonce.
    DialerToAcceptor,
}

impl Direction {
    fn label(self) -> &'static [u8] {
        match self {
            Direction::AcceptorToDialer => b"A->D",
            Direction::DialerToAcceptor => b"D->A",
        }
    }
}

/// The cluster secret. Its bytes never leave this process.
#[derive(Clone)]
pub struct ClusterSecret(Vec<u8>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    /// The secret from `bytes`, without a trailing newline.
    pub fn new(mut bytes: Vec<u8>, source: &str) -> Result<ClusterSecret, String> {
        while bytes.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            bytes.pop();
        }
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the cluster secret in {source} has {} bytes; it needs at least \
                 {MIN_SECRET_BYTES} (for example 32 random bytes, hex-encoded)",
                bytes.len()
            ));
        }
        Ok(ClusterSecret(bytes))
    }

    pub fn from_file(path: &str) -> Result<ClusterSecret, String> {
        let bytes = fs::read(path).map_err(|e| format!("--cluster-secret {path}: {e}"))?;
        ClusterSecret::new(bytes, path)
    }

    pub fn from_env(var: &str) -> Result<ClusterSecret, String> {
        let v = std::env::var_os(var)
            .ok_or_else(|| format!("--cluster-secret-env: ${var} is not set"))?;
        ClusterSecret::new(
            std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec(),
            &format!("${var}"),
        )
    }

    fn mac(&self, dir: Direction, nonce: &[u8], dialer: NodeId, acceptor: NodeId) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        m.update(dir.label());
        m.update(nonce);
        m.update(&dialer.get().to_le_bytes());
        m.update(&acceptor.get().to_le_bytes());
        m
    }

    /// The answer to `nonce` from the side `dir` names, on the link from
    /// `dialer` to `acceptor`.
    pub fn answer(
        &self,
        dir: Direction,
        nonce: &[u8],
        dialer: NodeId,
        acceptor: NodeId,
    ) -> [u8; MAC_BYTES] {
        self.mac(dir, nonce, dialer, acceptor)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `answer` is the right one, compared in constant time.
    pub fn check(
        &self,
        dir: Direction,
        nonce: &[u8],
        dialer: NodeId,
        acceptor: NodeId,
        answer: &[u8],
    ) -> bool {
        self.mac(dir, nonce, dialer, acceptor)
            .verify_slice(answer)
            .is_ok()
    }
}

/// A fresh random nonce.
pub fn nonce() -> io::Result<[u8; NONCE_BYTES]> {
    let mut n = [0u8; NONCE_BYTES];
    fs::File::open("/dev/urandom")?.read_exact(&mut n)?;
    Ok(n)
}

/// The password clients must give, if any.
#[derive(Clone, Default)]
pub struct Password(Option<Vec<u8>>);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Password(..)"
        } else {
            "Password(none)"
        })
    }
}

impl Password {
    pub fn new(p: Option<Vec<u8>>) -> Password {
        Password(p)
    }

    pub fn required(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `given` is the password, compared in constant time (for a
    /// given length).
    pub fn matches(&self, given: &[u8]) -> bool {
        let Some(p) = &self.0 else { return false };
        p.len() == given.len() && p.iter().zip(given).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> ClusterSecret {
        ClusterSecret::new(s.as_bytes().to_vec(), "test").unwrap()
    }

    #[test]
    fn answers_check_only_with_the_same_secret_nonce_ids_and_direction() {
        let k = secret("0123456789abcdef0123456789abcdef\n");
        let (d, a) = (NodeId(1), NodeId(3));
        let n = [7u8; NONCE_BYTES];
        let ans = k.answer(Direction::AcceptorToDialer, &n, d, a);
        assert!(k.check(Direction::AcceptorToDialer, &n, d, a, &ans));
        assert!(
            !k.check(Direction::DialerToAcceptor, &n, d, a, &ans),
            "reflected"
        );
        assert!(!k.check(Direction::AcceptorToDialer, &[8; NONCE_BYTES], d, a, &ans));
        assert!(!k.check(Direction::AcceptorToDialer, &n, NodeId(2), a, &ans));
        assert!(!k.check(Direction::AcceptorToDialer, &n, d, a, &ans[..31]));
        let other = secret("0123456789abcdef0123456789abcdeX");
        assert!(!other.check(Direction::AcceptorToDialer, &n, d, a, &ans));
        // The trailing newline of a secret file is not part of the secret.
        assert_eq!(
            ans,
            secret("0123456789abcdef0123456789abcdef").answer(
                Direction::AcceptorToDialer,
                &n,
                d,
                a
            )
        );
    }

    #[test]
    fn short_secrets_are_refused_and_nonces_differ() {
        let err = ClusterSecret::new(b"short\n".to_vec(), "f").unwrap_err();
        assert!(err.contains("at least 16"), "{err}");
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }

    #[test]
    fn passwords_match_exactly() {
        let p = Password::new(Some(b"s3cret".to_vec()));
        assert!(p.matches(b"s3cret"));
        assert!(!p.matches(b"s3cre"));
        assert!(!p.matches(b"s3creT"));
        assert!(!Password::default().matches(b""));
    }
}
