//! What a delivery does after an invocation, by Lambda's rules: the pure half
//! of [`super::delivery`], which carries the decision out (checkpoints, waits,
//! splits, discards). See `host/docs/semantics.md`, "Retries, bisection and discards".
//!
//! - success: every record is done;
//! - partial failure: the records before the lowest failure are done. With
//!   `BisectBatchOnFunctionError` the rest is delivered again at once (Lambda
//!   splits the batch there, and a split is not a retry); without, it is a retry;
//! - failure: with `BisectBatchOnFunctionError` a batch of more than one record
//!   is split in halves (not a retry); otherwise it is retried;
//! - a throttle (no free instance) never reached the function: retried without
//!   counting, and never split;
//! - a retry past `MaximumRetryAttempts` gives the records up.

use super::outcome::Outcome;

/// The manifest's settings that the decision depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryRules {
    pub bisect: bool,
    /// `None`: retry until the records expire (`MaximumRetryAttempts = -1`).
    pub maximum_retry_attempts: Option<u32>,
}

impl RetryRules {
    pub fn of(config: &crate::manifest::EventSourceConfig) -> RetryRules {
        RetryRules { bisect: config.bisect_batch_on_function_error, maximum_retry_attempts: config.maximum_retry_attempts }
    }
}

/// The decision: checkpoint the first `done` records, then do `then` with the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub done: usize,
    pub then: Then,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Every record is done.
    Finished,
    /// Deliver the records before `at`, then those from `at` on.
    Split { at: usize },
    /// Deliver the rest again at once.
    Continue,
    /// Back off, then deliver the rest again: attempt `retries + 1`.
    Retry { retries: u32 },
    /// The retries are spent: discard the rest.
    GiveUp { retries: u32 },
}

/// Decides what follows an invocation with `count` records whose result was
/// `outcome`, after `retries` retries so far.
pub fn decide(outcome: &Outcome, count: usize, throttled: bool, retries: u32, rules: &RetryRules) -> Decision {
    let retry = |done: usize| {
        let retries = if throttled { retries } else { retries + 1 };
        let spent = rules.maximum_retry_attempts.is_some_and(|max| retries > max);
        Decision { done, then: if spent { Then::GiveUp { retries } } else { Then::Retry { retries } } }
    };
    match *outcome {
        Outcome::Success => Decision { done: count, then: Then::Finished },
        Outcome::PartialFailure { first_failed } if rules.bisect && first_failed > 0 => {
            Decision { done: first_failed, then: Then::Continue }
        }
        Outcome::PartialFailure { first_failed } => retry(first_failed),
        Outcome::Failure(_) if rules.bisect && count > 1 && !throttled => Decision { done: 0, then: Then::Split { at: count / 2 } },
        Outcome::Failure(_) => retry(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: RetryRules = RetryRules { bisect: false, maximum_retry_attempts: Some(2) };
    const BISECT: RetryRules = RetryRules { bisect: true, maximum_retry_attempts: Some(2) };
    const FOREVER: RetryRules = RetryRules { bisect: false, maximum_retry_attempts: None };

    fn failure() -> Outcome {
        Outcome::Failure("boom".into())
    }

    #[test]
    fn success_finishes_the_batch() {
        assert_eq!(decide(&Outcome::Success, 5, false, 2, &PLAIN), Decision { done: 5, then: Then::Finished });
    }

    #[test]
    fn a_failure_is_retried_until_the_attempts_are_spent() {
        assert_eq!(decide(&failure(), 5, false, 0, &PLAIN), Decision { done: 0, then: Then::Retry { retries: 1 } });
        assert_eq!(decide(&failure(), 5, false, 1, &PLAIN), Decision { done: 0, then: Then::Retry { retries: 2 } });
        assert_eq!(decide(&failure(), 5, false, 2, &PLAIN), Decision { done: 0, then: Then::GiveUp { retries: 3 } });
        assert_eq!(decide(&failure(), 5, false, 1000, &FOREVER), Decision { done: 0, then: Then::Retry { retries: 1001 } });
    }

    #[test]
    fn a_throttle_is_retried_without_counting_and_never_split() {
        assert_eq!(decide(&failure(), 5, true, 2, &PLAIN), Decision { done: 0, then: Then::Retry { retries: 2 } });
        assert_eq!(decide(&failure(), 5, true, 0, &BISECT), Decision { done: 0, then: Then::Retry { retries: 0 } });
    }

    #[test]
    fn bisection_splits_a_failed_batch_in_halves_without_a_retry() {
        assert_eq!(decide(&failure(), 5, false, 1, &BISECT), Decision { done: 0, then: Then::Split { at: 2 } });
        // One record cannot be split: it is retried.
        assert_eq!(decide(&failure(), 1, false, 1, &BISECT), Decision { done: 0, then: Then::Retry { retries: 2 } });
    }

    #[test]
    fn a_partial_failure_checkpoints_before_the_lowest_failure() {
        let partial = Outcome::PartialFailure { first_failed: 3 };
        // Without bisection it is a retry of the rest.
        assert_eq!(decide(&partial, 5, false, 0, &PLAIN), Decision { done: 3, then: Then::Retry { retries: 1 } });
        assert_eq!(decide(&partial, 5, false, 2, &PLAIN), Decision { done: 3, then: Then::GiveUp { retries: 3 } });
        // With it, the batch is split at the returned sequence number: not a retry.
        assert_eq!(decide(&partial, 5, false, 2, &BISECT), Decision { done: 3, then: Then::Continue });
        // A failure at the first record advances nothing: a retry.
        let first = Outcome::PartialFailure { first_failed: 0 };
        assert_eq!(decide(&first, 5, false, 0, &BISECT), Decision { done: 0, then: Then::Retry { retries: 1 } });
    }
}
