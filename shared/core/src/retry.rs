//! The one retry policy for optimistic writes. A write conditioned on what its writer read
//! loses when another write changed that meanwhile; the writer reads again and retries. Each
//! round has one winner, so a bound on the rounds bounds the work of a writer among many
//! concurrent ones, and a random pause before each retry (growing with the rounds, capped)
//! spreads racing writers out instead of letting them collide in lockstep. The DynamoDB store
//! uses it for its conditional writes, and the commands for their read-modify-write edits over
//! either store (a command's read and write are two store calls, so on SQLite too another
//! writer can come between them); the SQLite store itself never loses a race inside one of its
//! methods, since its one connection runs one transaction at a time.

use std::future::Future;
use std::time::Duration;

/// Rounds before a writer gives up (the caller then answers 409 or 503, as fits), for writes
/// whose round costs a few store requests; a writer whose round costs more gives up sooner.
pub const ROUNDS: u32 = 60;

/// The longest pause before a retry.
const MAX_PAUSE_MS: u64 = 200;

/// What one round of an optimistic write came to.
pub enum Round<T> {
    Won(T),
    /// Another writer changed what this one read: read again and retry.
    Lost,
}

/// Runs `round` until it wins, at most `rounds` times, pausing before each retry. Returns None
/// when every round lost; an error ends the rounds at once.
pub async fn until_won<T, E, F, Fut>(rounds: u32, mut round: F) -> Result<Option<T>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Round<T>, E>>,
{
    for n in 0..rounds {
        match round().await? {
            Round::Won(v) => return Ok(Some(v)),
            Round::Lost if n + 1 < rounds => backoff(n).await,
            Round::Lost => {}
        }
    }
    Ok(None)
}

/// The pause before retry `round` (0-based), for writers that loop themselves (a batch that
/// left items unprocessed) rather than through [`until_won`].
pub async fn backoff(round: u32) {
    tokio::time::sleep(pause(round)).await;
}

/// Exponential with full jitter: a random time up to 5 ms doubled each round, capped.
fn pause(round: u32) -> Duration {
    let cap_ms = MAX_PAUSE_MS.min(5u64 << round.min(6));
    let (_, random) = uuid::Uuid::new_v4().as_u64_pair();
    let jitter = random % (cap_ms + 1);
    Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_and_stay_capped() {
        for round in 0..ROUNDS {
            let cap = MAX_PAUSE_MS.min(5 << round.min(6));
            for _ in 0..50 {
                assert!(pause(round) <= Duration::from_millis(cap));
            }
        }
        assert!((0..200).any(|_| pause(10) > Duration::from_millis(5)));
    }

    // Four rounds pause at most 5 + 10 + 20 ms in all.
    #[tokio::test]
    async fn retries_until_won_and_gives_up_after_the_bound() {
        let mut calls = 0;
        let won: Result<Option<u32>, ()> = until_won(4, || {
            calls += 1;
            let n = calls;
            async move { Ok(if n < 3 { Round::Lost } else { Round::Won(n) }) }
        })
        .await;
        assert_eq!(won, Ok(Some(3)));
        let mut calls = 0;
        let lost: Result<Option<()>, ()> = until_won(4, || {
            calls += 1;
            async { Ok(Round::Lost) }
        })
        .await;
        assert_eq!(lost, Ok(None));
        assert_eq!(calls, 4);
        let failed: Result<Option<()>, &str> = until_won(ROUNDS, || async { Err("down") }).await;
        assert_eq!(failed, Err("down"));
    }
}
