//! The wire codec: every message kind survives a round trip; untrusted bytes
//! (random, truncated, bit-flipped, lying about lengths, oversized) never
//! panic the decoder and come back as a typed `DecodeError`; and whatever a
//! decoder lets through never panics the node that steps it.

mod common;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use zaft::codec::{DEFAULT_MAX_MESSAGE_BYTES, WIRE_VERSION};
use zaft::{
    AppendResponse, Body, Codec, Config, DecodeError, EncodeError, Entries, Entry, EntryKind,
    HardState, Index, Input, LogId, Message, Node, NodeId, Restored, Term,
};

fn entry(term: u64, index: u64, kind: EntryKind, data: &'static [u8]) -> Entry {
    Entry {
        term: Term(term),
        index: Index(index),
        kind,
        data: Bytes::from_static(data),
    }
}

/// One message of every kind, with values that need multi-byte varints.
fn every_kind() -> Vec<Message> {
    let big = u64::MAX - 7;
    let bodies = vec![
        Body::RequestVote {
            last_log: lid(big, 1 << 40),
            transfer: false,
        },
        Body::RequestVote {
            last_log: LogId::ZERO,
            transfer: true,
        },
        Body::RequestVoteResponse { granted: true },
        Body::RequestVoteResponse { granted: false },
        Body::PreVote {
            last_log: lid(3, 300),
        },
        Body::PreVoteResponse { granted: true },
        Body::AppendEntries {
            prev: lid(2, 9),
            entries: vec![
                entry(2, 10, EntryKind::Noop, b""),
                entry(3, 11, EntryKind::Normal, b"set x = 1"),
                entry(big, big, EntryKind::Normal, &[0, 255, 128, 7]),
            ]
            .into(),
            commit: Index(10),
        },
        Body::AppendEntries {
            prev: LogId::ZERO,
            entries: Entries::new(),
            commit: Index(0),
        },
        Body::AppendEntriesResponse(AppendResponse::Success {
            match_index: Index(big),
        }),
        Body::AppendEntriesResponse(AppendResponse::Reject {
            rejected: Index(77),
            hint: lid(4, 70),
        }),
        Body::AppendEntriesResponse(AppendResponse::Behind { last: lid(4, 3) }),
        Body::Heartbeat {
            commit: Index(5),
            round: big,
        },
        Body::HeartbeatResponse { round: 12 },
        Body::TimeoutNow,
        Body::Commit { commit: Index(big) },
        Body::Propose {
            data: vec![Bytes::from_static(b"a"), Bytes::new(), vec![9; 300].into()],
        },
        Body::Propose { data: Vec::new() },
        Body::ReadIndex { ctx: big },
        Body::ReadIndexResponse {
            ctx: 1,
            index: Some(Index(42)),
        },
        Body::ReadIndexResponse {
            ctx: 2,
            index: None,
        },
        Body::AppendEntries {
            prev: lid(1, 1),
            entries: vec![entry(
                1,
                2,
                EntryKind::Membership,
                // A MembershipEntry: no change, voters [1].
                &[1, 0, 1, 1, 0, 0, 0, 0],
            )]
            .into(),
            commit: Index(1),
        },
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Message {
            from: NodeId(1 + i as u64),
            to: NodeId(u64::MAX),
            term: Term(i as u64 * 1000),
            body,
        })
        .collect()
}

/// The bytes of one message of every kind, as this format version writes
/// them (after the version byte). A change here breaks every cluster that
/// mixes builds: give new kinds new tags, and change `WIRE_VERSION` only
/// if an existing encoding must change.
const GOLDEN: &[&str] = &[
    "01ffffffffffffffffff010000f8ffffffffffffffff0180808080802000",
    "02ffffffffffffffffff01e80700000001",
    "03ffffffffffffffffff01d00f0101",
    "04ffffffffffffffffff01b8170100",
    "05ffffffffffffffffff01a01f0203ac02",
    "06ffffffffffffffffff0188270301",
    "07ffffffffffffffffff01f02e04020903020a0100030b00097365742078203d2031f8ffffffffffffffff01f8ffffffffffffffff01000400ff80070a",
    "08ffffffffffffffffff01d8360400000000",
    "09ffffffffffffffffff01c03e0500f8ffffffffffffffff01",
    "0affffffffffffffffff01a84605014d0446",
    "0bffffffffffffffffff01904e05020403",
    "0cffffffffffffffffff01f8550605f8ffffffffffffffff01",
    "0dffffffffffffffffff01e05d070c",
    "0effffffffffffffffff01c86508",
    "0fffffffffffffffffff01b06d09f8ffffffffffffffff01",
    "10ffffffffffffffffff0198750a03016100ac02090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909",
    "11ffffffffffffffffff01807d0a00",
    "12ffffffffffffffffff01e884010bf8ffffffffffffffff01",
    "13ffffffffffffffffff01d08c010c01012a",
    "14ffffffffffffffffff01b894010c0200",
    "15ffffffffffffffffff01a09c010401010101020208010001010000000001",
];

#[test]
fn the_membership_entry_in_the_golden_messages_decodes() {
    let e = zaft::MembershipEntry::decode(&[1, 0, 1, 1, 0, 0, 0, 0]).unwrap();
    assert_eq!(e.conf, zaft::ConfState::new([NodeId(1)]));
    assert_eq!(e.change, None);
}

#[test]
fn the_encoding_of_every_message_kind_is_pinned() {
    let codec = Codec::default();
    let kinds = every_kind();
    assert_eq!(kinds.len(), GOLDEN.len());
    for (m, golden) in kinds.iter().zip(GOLDEN) {
        let bytes = codec.encode(m).unwrap();
        assert_eq!(bytes[0], WIRE_VERSION);
        let hex: String = bytes[1..].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(&hex, golden, "{:?}", m.body);
    }
}

#[test]
fn a_frame_of_another_format_version_is_refused_by_name() {
    let codec = Codec::default();
    let mut bytes = codec.encode(&every_kind()[0]).unwrap();
    bytes[0] = WIRE_VERSION + 1;
    assert_eq!(
        codec.decode(&bytes),
        Err(DecodeError::Version {
            found: WIRE_VERSION + 1,
            supported: WIRE_VERSION
        })
    );
}

#[test]
fn every_message_kind_survives_a_round_trip() {
    let codec = Codec::default();
    for m in every_kind() {
        let bytes = codec.encode(&m).unwrap();
        assert_eq!(codec.decode(&bytes), Ok(m));
    }
}

#[test]
fn every_strict_prefix_of_an_encoding_is_truncated() {
    let codec = Codec::default();
    for m in every_kind() {
        let bytes = codec.encode(&m).unwrap();
        for len in 0..bytes.len() {
            assert_eq!(
                codec.decode(&bytes[..len]),
                Err(DecodeError::Truncated),
                "{m:?} cut at {len} of {}",
                bytes.len()
            );
        }
    }
}

#[test]
fn bytes_after_a_message_are_refused() {
    let codec = Codec::default();
    let mut bytes = codec.encode(&every_kind()[0]).unwrap();
    bytes.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        codec.decode(&bytes),
        Err(DecodeError::TrailingBytes { extra: 3 })
    );
}

#[test]
fn encode_into_appends_after_what_the_buffer_holds() {
    let codec = Codec::default();
    let (a, b) = (&every_kind()[0], &every_kind()[6]);
    let mut out = Vec::new();
    codec.encode_into(a, &mut out).unwrap();
    let first = out.len();
    codec.encode_into(b, &mut out).unwrap();
    assert_eq!(codec.decode(&out[..first]).as_ref(), Ok(a));
    assert_eq!(codec.decode(&out[first..]).as_ref(), Ok(b));
}

/// A message whose encoding is `limit + 1` bytes or more is refused both
/// ways, and a refused `encode_into` leaves the buffer as it was.
#[test]
fn messages_over_the_size_limit_are_refused_both_ways() {
    let big = msg(
        1,
        2,
        3,
        Body::Propose {
            data: vec![vec![7u8; 1000].into()],
        },
    );
    let size = Codec::default().encode(&big).unwrap().len();
    assert!(size > 1000);

    let fits = Codec::new(size);
    assert!(fits.encode(&big).is_ok());
    assert_eq!(fits.max_message_bytes(), size);

    let small = Codec::new(size - 1);
    assert_eq!(
        small.encode(&big),
        Err(EncodeError::TooLarge {
            size,
            limit: size - 1
        })
    );
    let mut out = vec![1, 2, 3];
    assert!(small.encode_into(&big, &mut out).is_err());
    assert_eq!(out, [1, 2, 3], "a refused encode left bytes behind");

    let bytes = fits.encode(&big).unwrap();
    assert_eq!(
        small.decode(&bytes),
        Err(DecodeError::TooLarge {
            size,
            limit: size - 1
        })
    );
    // The limit is checked before parsing: even garbage is refused by size.
    assert!(matches!(
        Codec::new(4).decode(&[0xff; 5]),
        Err(DecodeError::TooLarge { size: 5, limit: 4 })
    ));
    assert_eq!(
        Codec::default().max_message_bytes(),
        DEFAULT_MAX_MESSAGE_BYTES
    );
}

/// A varint of `v`, as postcard writes lengths.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Length prefixes that promise more elements or bytes than the input holds
/// are refused at once: no allocation of the promised size, no panic.
#[test]
fn a_length_prefix_larger_than_the_input_is_refused_without_allocating() {
    let codec = Codec::default();
    // Each of these ends in an empty sequence whose length is its last byte.
    let empty_seqs = [
        msg(1, 2, 3, Body::Propose { data: Vec::new() }),
        msg(
            1,
            2,
            3,
            Body::AppendEntries {
                prev: lid(4, 5),
                entries: Entries::new(),
                commit: Index(0),
            },
        ),
    ];
    for m in &empty_seqs {
        let mut bytes = codec.encode(m).unwrap();
        if matches!(m.body, Body::AppendEntries { .. }) {
            bytes.pop(); // the commit index follows the entries
        }
        assert_eq!(bytes.pop(), Some(0), "the length of the empty sequence");
        for claim in [1u64, 1 << 20, 1 << 40, u64::MAX] {
            let mut lying = bytes.clone();
            lying.extend(varint(claim));
            let got = codec.decode(&lying);
            assert!(
                matches!(got, Err(DecodeError::Truncated | DecodeError::Malformed)),
                "{claim}: {got:?}"
            );
        }
    }
    // A payload whose byte length lies.
    let mut bytes = codec
        .encode(&msg(
            1,
            2,
            3,
            Body::Propose {
                data: vec![Bytes::new()],
            },
        ))
        .unwrap();
    assert_eq!(bytes.pop(), Some(0));
    bytes.extend(varint(u64::MAX));
    assert_eq!(codec.decode(&bytes), Err(DecodeError::Truncated));
}

/// Bytes that cannot be any message are `Malformed`: an unknown message
/// kind, a bad bool, a bad option tag, a varint longer than any `u64`.
#[test]
fn invalid_encodings_are_malformed() {
    let codec = Codec::default();
    // version, from, to, term, then the body's kind: far past the last kind.
    assert_eq!(
        codec.decode(&[WIRE_VERSION, 1, 2, 3, 120]),
        Err(DecodeError::Malformed)
    );
    // An entry kind this build does not know is refused, not skipped.
    let mut unknown_kind = codec
        .encode(&msg(
            1,
            2,
            3,
            Body::AppendEntries {
                prev: LogId::ZERO,
                entries: vec![entry(1, 1, EntryKind::Normal, b"")].into(),
                commit: Index(0),
            },
        ))
        .unwrap();
    // ... term 1, index 1, kind, data length 0, commit 0.
    let kind_at = unknown_kind.len() - 3;
    assert_eq!(unknown_kind[kind_at], 0, "Normal");
    unknown_kind[kind_at] = 9;
    assert_eq!(codec.decode(&unknown_kind), Err(DecodeError::Malformed));
    let vote_answer = codec
        .encode(&msg(1, 2, 3, Body::RequestVoteResponse { granted: true }))
        .unwrap();
    let mut bad_bool = vote_answer.clone();
    *bad_bool.last_mut().unwrap() = 2;
    assert_eq!(codec.decode(&bad_bool), Err(DecodeError::Malformed));

    let read = codec
        .encode(&msg(
            1,
            2,
            3,
            Body::ReadIndexResponse {
                ctx: 1,
                index: None,
            },
        ))
        .unwrap();
    let mut bad_option = read.clone();
    *bad_option.last_mut().unwrap() = 7;
    assert_eq!(codec.decode(&bad_option), Err(DecodeError::Malformed));

    // The sender's id as a varint longer than any u64.
    let mut overlong = vec![WIRE_VERSION];
    overlong.extend_from_slice(&[0xff; 10]);
    overlong.push(0x7f);
    overlong.extend_from_slice(&vote_answer[2..]);
    assert_eq!(codec.decode(&overlong), Err(DecodeError::Malformed));
}

#[test]
fn decode_errors_say_what_is_wrong() {
    let errors = [
        DecodeError::TooLarge { size: 9, limit: 8 },
        DecodeError::Truncated,
        DecodeError::Malformed,
        DecodeError::TrailingBytes { extra: 2 },
    ];
    for e in errors {
        let text = e.to_string();
        assert!(!text.is_empty());
        let _: &dyn std::error::Error = &e;
    }
    assert!(
        EncodeError::TooLarge { size: 9, limit: 8 }
            .to_string()
            .contains("max_entries_bytes_per_msg")
    );
}

// ---- hostile messages ------------------------------------------------------------

/// A peer that claims the last term there is must not make the node's next
/// election overflow (a panic in debug builds, a wrap to term 0 in release).
#[test]
fn the_last_term_from_a_peer_does_not_overflow_the_next_election() {
    let mut n = node_in_role(0, |_| {});
    let r = n
        .step(Input::Message(request_vote(2, 1, u64::MAX, LogId::ZERO)))
        .unwrap();
    let _ = n.advance(r.id()).unwrap();
    assert_eq!(n.term(), Term(u64::MAX));
    for input in [Input::Campaign, Input::Tick, Input::Tick] {
        let r = n.step(input).unwrap();
        let _ = n.advance(r.id()).unwrap();
    }
    for _ in 0..30 {
        let r = n.step(Input::Tick).unwrap();
        let _ = n.advance(r.id()).unwrap();
    }
    assert_eq!(n.term(), Term(u64::MAX), "the term went backwards");
}

/// An append whose entries would run past the last index is malformed, not
/// an overflow.
#[test]
fn an_append_past_the_last_index_is_dropped_as_malformed() {
    let mut n = node_in_role(0, |_| {});
    let m = append(2, 1, 3, lid(2, u64::MAX), vec![ent(3, 0)], 0);
    let r = n.step(Input::Message(m)).unwrap();
    assert!(r.messages().is_empty());
    assert_eq!(n.status().dropped.get(zaft::DropReason::Malformed), 1);
}

// ---- properties --------------------------------------------------------------------

fn arb_entry(num: BoxedStrategy<u64>) -> impl Strategy<Value = Entry> {
    (
        num.clone(),
        num,
        0u8..3,
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(term, index, kind, data)| Entry {
            term: Term(term),
            index: Index(index),
            kind: match kind {
                0 => EntryKind::Normal,
                1 => EntryKind::Noop,
                _ => EntryKind::Membership,
            },
            data: data.into(),
        })
}

/// Any message, with numbers drawn from `num` and node ids from `ids`.
fn arb_message(
    num: BoxedStrategy<u64>,
    ids: (BoxedStrategy<u64>, BoxedStrategy<u64>),
) -> impl Strategy<Value = Message> {
    let n = || num.clone();
    let id = || (n(), n()).prop_map(|(t, i)| LogId::new(Term(t), Index(i)));
    let body = prop_oneof![
        (id(), any::<bool>())
            .prop_map(|(last_log, transfer)| Body::RequestVote { last_log, transfer }),
        any::<bool>().prop_map(|granted| Body::RequestVoteResponse { granted }),
        id().prop_map(|last_log| Body::PreVote { last_log }),
        any::<bool>().prop_map(|granted| Body::PreVoteResponse { granted }),
        (id(), proptest::collection::vec(arb_entry(n()), 0..4), n()).prop_map(
            |(prev, entries, commit)| Body::AppendEntries {
                prev,
                entries: entries.into(),
                commit: Index(commit),
            }
        ),
        n().prop_map(|m| Body::AppendEntriesResponse(AppendResponse::Success {
            match_index: Index(m)
        })),
        (n(), id()).prop_map(
            |(r, hint)| Body::AppendEntriesResponse(AppendResponse::Reject {
                rejected: Index(r),
                hint,
            })
        ),
        id().prop_map(|last| Body::AppendEntriesResponse(AppendResponse::Behind { last })),
        (n(), any::<u64>()).prop_map(|(commit, round)| Body::Heartbeat {
            commit: Index(commit),
            round,
        }),
        any::<u64>().prop_map(|round| Body::HeartbeatResponse { round }),
        Just(Body::TimeoutNow),
        n().prop_map(|commit| Body::Commit {
            commit: Index(commit)
        }),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..3).prop_map(
            |data| Body::Propose {
                data: data.into_iter().map(Bytes::from).collect(),
            }
        ),
        any::<u64>().prop_map(|ctx| Body::ReadIndex { ctx }),
        (any::<u64>(), proptest::option::of(n())).prop_map(|(ctx, index)| {
            Body::ReadIndexResponse {
                ctx,
                index: index.map(Index),
            }
        }),
    ];
    (ids.0, ids.1, n(), body).prop_map(|(from, to, term, body)| Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body,
    })
}

/// 512 cases, or `PROPTEST_CASES` for a deeper run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

fn wide() -> BoxedStrategy<u64> {
    prop_oneof![0..300u64, any::<u64>()].boxed()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn any_message_survives_a_round_trip(m in arb_message(wide(), (wide(), wide()))) {
        let codec = Codec::default();
        let bytes = codec.encode(&m).unwrap();
        prop_assert_eq!(codec.decode(&bytes), Ok(m));
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let codec = Codec::default();
        if let Ok(m) = codec.decode(&bytes) {
            // Whatever it accepts is a message it can encode and read back.
            let again = codec.encode(&m).unwrap();
            prop_assert_eq!(codec.decode(&again), Ok(m));
        }
    }

    #[test]
    fn truncated_encodings_are_refused_as_truncated(
        m in arb_message(wide(), (wide(), wide())),
        cut in any::<prop::sample::Index>(),
    ) {
        let codec = Codec::default();
        let bytes = codec.encode(&m).unwrap();
        let len = cut.index(bytes.len());
        prop_assert_eq!(codec.decode(&bytes[..len]), Err(DecodeError::Truncated));
    }

    #[test]
    fn bit_flips_never_panic_the_decoder(
        m in arb_message(wide(), (wide(), wide())),
        at in any::<prop::sample::Index>(),
        bit in 0..8u8,
        more_flips in proptest::collection::vec((any::<prop::sample::Index>(), 0..8u8), 0..3),
    ) {
        let codec = Codec::default();
        let mut bytes = codec.encode(&m).unwrap();
        let len = bytes.len();
        bytes[at.index(len)] ^= 1 << bit;
        for (at, bit) in more_flips {
            bytes[at.index(len)] ^= 1 << bit;
        }
        match codec.decode(&bytes) {
            Ok(m) => {
                let again = codec.encode(&m).unwrap();
                prop_assert_eq!(codec.decode(&again), Ok(m));
            }
            Err(
                DecodeError::Truncated
                | DecodeError::Malformed
                | DecodeError::TrailingBytes { .. }
                | DecodeError::Version { .. },
            ) => {}
            Err(e) => prop_assert!(false, "unexpected {:?}", e),
        }
    }

    /// DESIGN.md: "No byte sequence and no message may panic the node." A
    /// message the codec lets through — any terms, indexes and entries,
    /// from anyone — is stepped into a follower, a candidate and a leader,
    /// each checking its invariants after every input in debug builds.
    #[test]
    fn any_decodable_message_never_panics_a_node(
        msgs in proptest::collection::vec(
            arb_message(
                prop_oneof![
                    8 => 0..12u64,
                    1 => Just(u64::MAX),
                    1 => Just(u64::MAX - 1),
                    2 => any::<u64>(),
                ]
                .boxed(),
                // Mostly from a peer to node 1; sometimes from anyone to anyone.
                (
                    prop_oneof![6 => 2..4u64, 1 => 0..6u64].boxed(),
                    prop_oneof![6 => Just(1u64), 1 => 0..6u64].boxed(),
                ),
            ),
            1..12,
        ),
        advance_each in any::<bool>(),
        pre_vote in any::<bool>(),
        check_quorum in any::<bool>(),
    ) {
        let codec = Codec::default();
        for role in 0..3 {
            let mut n = node_in_role(role, |c| {
                c.pre_vote = pre_vote;
                c.check_quorum = check_quorum;
            });
            for m in &msgs {
                let m = codec.decode(&codec.encode(m).unwrap()).unwrap();
                let r = n.step(Input::Message(m)).unwrap();
                if advance_each {
                    let _ = n.advance(r.id()).unwrap();
                }
                let r = n.step(Input::Tick).unwrap();
                let _ = n.advance(r.id()).unwrap();
            }
            // Long enough for an election timeout, whatever term it reached.
            for _ in 0..25 {
                let r = n.step(Input::Tick).unwrap();
                let _ = n.advance(r.id()).unwrap();
            }
        }
    }
}

/// Node 1 of 3 holding 1,1,2 at term 2, as a follower (0), a candidate (1)
/// or the leader of term 3 (2).
fn node_in_role(role: u8, tweak: impl Fn(&mut Config)) -> Node {
    let mut cfg = Config::new(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)]);
    cfg.max_entries_bytes_per_msg = 64;
    tweak(&mut cfg);
    let min = cfg.election_timeout_ticks_min;
    let restored = Restored {
        hard_state: HardState {
            term: Term(2),
            vote: None,
            commit: Index(1),
        },
        entries: log_of(&[1, 1, 2]),
        applied: Index(0),
        lost_data: false,
        conf_state: None,
    };
    let mut n = Node::new(cfg, restored).unwrap();
    if role >= 1 {
        // A restarted node with CheckQuorum campaigns only once an election
        // timeout has passed since its start (and may have timed out by
        // itself by then).
        let r = n.step(Input::Ticks(min)).unwrap();
        let _ = n.advance(r.id()).unwrap();
        if n.role() == zaft::Role::Follower {
            let r = n.step(Input::Campaign).unwrap();
            let _ = n.advance(r.id()).unwrap();
        }
        if n.role() == zaft::Role::PreCandidate {
            let yes = msg(2, 1, 3, Body::PreVoteResponse { granted: true });
            let r = n.step(Input::Message(yes)).unwrap();
            let _ = n.advance(r.id()).unwrap();
        }
        assert_eq!(n.role(), zaft::Role::Candidate);
    }
    if role == 2 {
        let yes = msg(2, 1, 3, Body::RequestVoteResponse { granted: true });
        let r = n.step(Input::Message(yes)).unwrap();
        let _ = n.advance(r.id()).unwrap();
        assert!(n.is_leader());
    }
    n
}
