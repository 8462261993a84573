//! The operator's say over a running mapping (`eddy mapping pause | resume |
//! rewind`): stored beside its checkpoints, so that it outlives the host and,
//! in cluster mode, reaches every host through the lease table.
//!
//! A pause stops the mapping's shards (each finishes and checkpoints the
//! invocation in flight) until a resume. A rewind is recorded once for the
//! mapping with an id; the host that runs a shard carries it out on that shard
//! (after stopping the shard's loop, so that no late checkpoint undoes it) and
//! writes the id beside the checkpoint, so each shard is rewound exactly once.

use crate::store::Checkpoint;

/// Where `eddy mapping rewind --to` moves a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewindTarget {
    /// Every shard from the oldest record it holds.
    TrimHorizon,
    /// Every shard from its newest end as it was when the rewind was asked for
    /// (so that hosts carrying it out later agree): what is there is skipped.
    Latest { at_ms: u64 },
    /// Every shard from the first record that arrived at or after this time.
    AtTimestamp(u64),
    /// One shard from one of its records (inclusive); the others stay.
    Sequence { shard: String, sequence: String },
}

/// A rewind as recorded: ids increase, so a shard knows whether it has had it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewind {
    pub id: u64,
    pub to: RewindTarget,
}

/// What the operator has said about a mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingControl {
    pub paused: bool,
    /// The last rewind asked for.
    pub rewind: Option<Rewind>,
}

impl MappingControl {
    /// The id of the last rewind asked for (0: none).
    pub fn rewind_id(&self) -> u64 {
        self.rewind.as_ref().map_or(0, |r| r.id)
    }
}

/// Why a `--to` cannot be taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadRewindTarget {
    #[error(
        "cannot read {0:?} as a place to rewind to: give TRIM_HORIZON, LATEST, a time (2026-12-07T10:00:00Z, or seconds \
         since the epoch) or SHARD:SEQUENCE_NUMBER"
    )]
    Unreadable(String),
    #[error("{0} is in the future: nothing has arrived there yet")]
    Future(String),
    #[error(
        "DynamoDB Streams has no iterator by time: rewind to TRIM_HORIZON, LATEST or SHARD:SEQUENCE_NUMBER"
    )]
    NoTimestamps,
}

impl RewindTarget {
    /// Reads `--to` as the operator wrote it; `now_ms` is when (LATEST is
    /// pinned to it).
    pub fn parse(text: &str, now_ms: u64) -> Result<RewindTarget, BadRewindTarget> {
        let text = text.trim();
        let unreadable = || BadRewindTarget::Unreadable(text.to_owned());
        match text.to_ascii_uppercase().as_str() {
            "TRIM_HORIZON" => return Ok(RewindTarget::TrimHorizon),
            "LATEST" => return Ok(RewindTarget::Latest { at_ms: now_ms }),
            _ => {}
        }
        let at_ms = if let Ok(time) = humantime::parse_rfc3339_weak(text) {
            let since = time
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| unreadable())?;
            Some(since.as_millis() as u64)
        } else if let Ok(seconds) = text.parse::<f64>() {
            (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0) as u64)
        } else {
            None
        };
        if let Some(at_ms) = at_ms {
            if at_ms > now_ms {
                return Err(BadRewindTarget::Future(text.to_owned()));
            }
            return Ok(RewindTarget::AtTimestamp(at_ms));
        }
        // Shard ids may hold colons; sequence numbers are digits.
        match text.rsplit_once(':') {
            Some((shard, sequence))
                if !shard.is_empty()
                    && !sequence.is_empty()
                    && sequence.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Ok(RewindTarget::Sequence {
                    shard: shard.to_owned(),
                    sequence: sequence.to_owned(),
                })
            }
            _ => Err(unreadable()),
        }
    }

    /// Refuses what the source cannot do.
    pub fn check_source(&self, supports_timestamps: bool) -> Result<(), BadRewindTarget> {
        match self {
            RewindTarget::AtTimestamp(_) if !supports_timestamps => {
                Err(BadRewindTarget::NoTimestamps)
            }
            _ => Ok(()),
        }
    }

    /// The shard's checkpoint after the rewind: `None` when the rewind leaves
    /// this shard where it is.
    pub fn checkpoint_for(&self, shard: &str, supports_timestamps: bool) -> Option<Checkpoint> {
        match self {
            RewindTarget::TrimHorizon => Some(Checkpoint::TrimHorizon),
            RewindTarget::Latest { at_ms } if supports_timestamps => {
                Some(Checkpoint::AtTimestamp(*at_ms))
            }
            RewindTarget::Latest { .. } => Some(Checkpoint::Latest),
            RewindTarget::AtTimestamp(ms) => Some(Checkpoint::AtTimestamp(*ms)),
            RewindTarget::Sequence {
                shard: target,
                sequence,
            } if target == shard => Some(Checkpoint::AtSequence(sequence.clone())),
            RewindTarget::Sequence { .. } => None,
        }
    }

    /// How the stores write it down (read back by [`RewindTarget::decode`]).
    pub fn encode(&self) -> String {
        match self {
            RewindTarget::TrimHorizon => "TRIM_HORIZON".to_owned(),
            RewindTarget::Latest { at_ms } => format!("LATEST@{at_ms}"),
            RewindTarget::AtTimestamp(ms) => format!("AT_TIMESTAMP@{ms}"),
            RewindTarget::Sequence { shard, sequence } => format!("{shard}:{sequence}"),
        }
    }

    pub fn decode(text: &str) -> Option<RewindTarget> {
        if text == "TRIM_HORIZON" {
            return Some(RewindTarget::TrimHorizon);
        }
        if let Some(ms) = text.strip_prefix("LATEST@") {
            return ms.parse().ok().map(|at_ms| RewindTarget::Latest { at_ms });
        }
        if let Some(ms) = text.strip_prefix("AT_TIMESTAMP@") {
            return ms.parse().ok().map(RewindTarget::AtTimestamp);
        }
        let (shard, sequence) = text.rsplit_once(':')?;
        Some(RewindTarget::Sequence {
            shard: shard.to_owned(),
            sequence: sequence.to_owned(),
        })
    }
}

impl std::fmt::Display for RewindTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RewindTarget::TrimHorizon => f.write_str("TRIM_HORIZON"),
            RewindTarget::Latest { at_ms } => write!(f, "LATEST (as of {})", rfc3339(*at_ms)),
            RewindTarget::AtTimestamp(ms) => write!(f, "{}", rfc3339(*ms)),
            RewindTarget::Sequence { shard, sequence } => {
                write!(f, "{shard} at sequence number {sequence}")
            }
        }
    }
}

/// A time in milliseconds as RFC 3339, for messages.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

/// The id of a new rewind: the time it was asked for, unless that is not past
/// the last one's (a clock set back, two in one millisecond).
pub fn next_rewind_id(last: u64, now_ms: u64) -> u64 {
    now_ms.max(last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn targets_are_read_as_the_operator_writes_them() {
        assert_eq!(
            RewindTarget::parse("TRIM_HORIZON", NOW),
            Ok(RewindTarget::TrimHorizon)
        );
        assert_eq!(
            RewindTarget::parse("latest", NOW),
            Ok(RewindTarget::Latest { at_ms: NOW })
        );
        assert_eq!(
            RewindTarget::parse("2026-12-07T10:00:00Z", NOW),
            Ok(RewindTarget::AtTimestamp(1_796_637_600_000))
        );
        assert_eq!(
            RewindTarget::parse("1700000000.5", NOW),
            Ok(RewindTarget::AtTimestamp(1_700_000_000_500))
        );
        assert_eq!(
            RewindTarget::parse(
                "shardId-000000000001:49590338271490256608559692538361571095921575989136588898",
                NOW
            ),
            Ok(RewindTarget::Sequence {
                shard: "shardId-000000000001".into(),
                sequence: "49590338271490256608559692538361571095921575989136588898".into()
            })
        );
        // DynamoDB's shard ids hold colons of their own.
        assert_eq!(
            RewindTarget::parse("shardId-00000001:abc:42", NOW),
            Ok(RewindTarget::Sequence {
                shard: "shardId-00000001:abc".into(),
                sequence: "42".into()
            })
        );
        assert!(matches!(
            RewindTarget::parse("yesterday", NOW),
            Err(BadRewindTarget::Unreadable(_))
        ));
        assert!(matches!(
            RewindTarget::parse("shard:12x", NOW),
            Err(BadRewindTarget::Unreadable(_))
        ));
        assert!(matches!(
            RewindTarget::parse("2100-01-01T00:00:00Z", NOW),
            Err(BadRewindTarget::Future(_))
        ));
    }

    #[test]
    fn each_shard_gets_the_checkpoint_its_source_can_start_from() {
        let latest = RewindTarget::Latest { at_ms: NOW };
        assert_eq!(
            latest.checkpoint_for("s0", true),
            Some(Checkpoint::AtTimestamp(NOW))
        );
        assert_eq!(latest.checkpoint_for("s0", false), Some(Checkpoint::Latest));
        assert_eq!(
            RewindTarget::TrimHorizon.checkpoint_for("s0", false),
            Some(Checkpoint::TrimHorizon)
        );
        let one = RewindTarget::Sequence {
            shard: "s1".into(),
            sequence: "7".into(),
        };
        assert_eq!(
            one.checkpoint_for("s1", true),
            Some(Checkpoint::AtSequence("7".into()))
        );
        assert_eq!(one.checkpoint_for("s0", true), None);
        assert_eq!(
            RewindTarget::AtTimestamp(5).check_source(false),
            Err(BadRewindTarget::NoTimestamps)
        );
        assert_eq!(RewindTarget::TrimHorizon.check_source(false), Ok(()));
    }

    #[test]
    fn targets_and_checkpoints_are_stored_and_read_back_unchanged() {
        for target in [
            RewindTarget::TrimHorizon,
            RewindTarget::Latest { at_ms: NOW },
            RewindTarget::AtTimestamp(NOW - 5),
            RewindTarget::Sequence {
                shard: "shardId-00000001:abc".into(),
                sequence: "42".into(),
            },
        ] {
            assert_eq!(
                RewindTarget::decode(&target.encode()),
                Some(target.clone()),
                "{target:?}"
            );
        }
        for checkpoint in [
            Checkpoint::Sequence("49590338271490256608559692538361571095921575989136588898".into()),
            Checkpoint::ShardEnd,
            Checkpoint::TrimHorizon,
            Checkpoint::Latest,
            Checkpoint::AtTimestamp(NOW),
            Checkpoint::AtSequence("12".into()),
            Checkpoint::SubSequence("49590338271490256608559692538361571095921575989136588898".into(), 7),
        ] {
            assert_eq!(Checkpoint::decode(&checkpoint.encode()), checkpoint);
        }
    }

    #[test]
    fn rewind_ids_always_increase() {
        assert_eq!(next_rewind_id(0, NOW), NOW);
        assert_eq!(next_rewind_id(NOW, NOW), NOW + 1);
        assert_eq!(next_rewind_id(NOW + 10, NOW), NOW + 11);
    }
}
