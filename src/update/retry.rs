//! When to try an origin again after a transient failure, how long to wait first, and the
//! one loop that tries the places of an origin in turn.
//!
//! Exponential backoff with jitter (about 1, 2, 4 s by default), so that a fleet whose
//! origin hiccuped does not come back in lockstep; a server's `Retry-After` is honoured,
//! up to [`MAX_WAIT`], as it knows best when it will be back.
//!
//! [`over_places`] asks each place (mirror) once per round, goes on to the next after any
//! failure, and asks again, after a backoff, only the places that failed transiently. The
//! manifest choice (`select`) and the image download (`image`) both go through it; what a
//! failure means is theirs to say ([`Next`]). The wait is a function the caller passes
//! ([`Tries::sleep`]), so that tests run the loop without sleeping.

use std::fmt::Display;
use std::time::{Duration, Instant};

use rand::TryRng;

/// The longest wait between two tries, whatever a server asks for: a run is a short job,
/// and the next timer comes anyway.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries after the first (`--retries`).
    pub retries: u32,
    /// The wait before the first retry; each later one doubles it.
    pub base: Duration,
    /// When the run's `--max-time` is up: a wait that would end after it is not waited
    /// (a `Retry-After: 60` must not hold a run with five seconds left for a minute).
    pub deadline: Option<Instant>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            base: Duration::from_secs(1),
            deadline: None,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first): what the server asked for,
    /// or `base * 2^retry`, give or take a quarter at random; never more than [`MAX_WAIT`].
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(MAX_WAIT);
        }
        let backoff = self
            .base
            .saturating_mul(1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX));
        // Without randomness (the source failed), waiting exactly the backoff is fine.
        let fraction = rand::rngs::SysRng
            .try_next_u32()
            .map_or(0.5, |r| f64::from(r) / f64::from(u32::MAX));
        backoff.mul_f64(0.75 + fraction / 2.0).min(MAX_WAIT)
    }
}

/// A wait as it reads in a message: "1.3 s".
pub fn describe_wait(wait: Duration) -> String {
    format!("{:.1} s", wait.as_secs_f64())
}

/// What a failed try at one place means for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A transient failure: go on, and ask this place again next round, after a wait of
    /// at least what it asked for (if it did).
    Again(Option<Duration>),
    /// This place has answered for good (not found, refused, bad bytes): go on without it.
    Skip,
    /// A failure of this host, which no other place can help with: stop at once.
    Stop,
}

/// How often to go round, how to tell, and how to wait.
pub struct Tries<'a> {
    pub policy: RetryPolicy,
    /// Says something worth a line in the log: a skipped place, a retry.
    pub warn: &'a dyn Fn(&str),
    /// Waits between rounds: `std::thread::sleep`, or a test's stand-in.
    pub sleep: &'a dyn Fn(Duration),
}

/// How the tries over every place failed.
#[derive(Debug)]
pub enum Failed<E> {
    /// There was no place to ask.
    NoPlace,
    /// A failure that ended the tries at once ([`Next::Stop`]).
    Stopped(E),
    /// Every place failed, the transient ones on every round; `last` is the last failure.
    Exhausted { places: usize, last: E },
}

/// Tries `attempt` at each of `places` in order until one succeeds: after a failure the
/// next place is asked; places that failed transiently are asked again, in a new round
/// after a backoff, at most `policy.retries` times. With several places, each failure is
/// told with `skipping`'s line (usually "skipping origin X: why"); before each new round,
/// one line says what failed and how long the wait is.
pub fn over_places<P: Copy, T, E: Display>(
    places: &[P],
    tries: &Tries<'_>,
    mut attempt: impl FnMut(P) -> Result<T, E>,
    judge: impl Fn(&E) -> Next,
    skipping: impl Fn(P, &E) -> String,
) -> Result<T, Failed<E>> {
    let several = places.len() > 1;
    let mut pending: Vec<P> = places.to_vec();
    let mut last = None;
    for round in 0..=tries.policy.retries {
        let mut again = Vec::new();
        let mut asked: Option<Duration> = None;
        for &place in &pending {
            let e = match attempt(place) {
                Ok(done) => return Ok(done),
                Err(e) => e,
            };
            match judge(&e) {
                Next::Stop => return Err(Failed::Stopped(e)),
                Next::Again(wait) => {
                    again.push(place);
                    asked = asked.max(wait);
                }
                Next::Skip => {}
            }
            if several {
                (tries.warn)(&skipping(place, &e));
            }
            last = Some(e);
        }
        if again.is_empty() || round == tries.policy.retries {
            break;
        }
        let wait = tries.policy.delay(round, asked);
        let what = match (&last, several) {
            (Some(e), false) => e.to_string(),
            _ => format!("{} of the origins failed for now", again.len()),
        };
        if tries
            .policy
            .deadline
            .is_some_and(|deadline| Instant::now() + wait > deadline)
        {
            (tries.warn)(&format!(
                "{what}; not retrying: the wait of {} would pass --max-time",
                describe_wait(wait)
            ));
            break;
        }
        (tries.warn)(&format!(
            "{what}; retrying in {} (retry {} of {})",
            describe_wait(wait),
            round + 1,
            tries.policy.retries
        ));
        (tries.sleep)(wait);
        pending = again;
    }
    match last {
        Some(last) => Err(Failed::Exhausted {
            places: places.len(),
            last,
        }),
        None => Err(Failed::NoPlace),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_a_jitter_of_a_quarter() {
        let policy = RetryPolicy::default();
        for (retry, nominal) in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0)] {
            for _ in 0..20 {
                let wait = policy.delay(retry, None).as_secs_f64();
                assert!(
                    wait >= nominal * 0.75 && wait <= nominal * 1.25,
                    "{retry}: {wait}"
                );
            }
        }
    }

    #[test]
    fn retry_after_wins_but_is_capped_at_a_minute() {
        let policy = RetryPolicy::default();
        let asked = Duration::from_secs(7);
        assert_eq!(policy.delay(0, Some(asked)), asked);
        assert_eq!(policy.delay(2, Some(Duration::ZERO)), Duration::ZERO);
        assert_eq!(policy.delay(0, Some(Duration::from_secs(3600))), MAX_WAIT);
        assert!(policy.delay(40, None) <= MAX_WAIT);
    }

    use std::cell::RefCell;

    /// A failed try: which place, which of its tries (from 0), and what it means.
    #[derive(Debug)]
    struct Failure {
        place: &'static str,
        turn: usize,
        next: Next,
    }

    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{} failed (try {})", self.place, self.turn)
        }
    }

    /// A run of [`over_places`] over places named by letters, each answering from a script
    /// of results, one per try: `Ok` a success, `Err(next)` a failure judged `next`.
    struct Run {
        lines: RefCell<Vec<String>>,
        waits: RefCell<Vec<Duration>>,
        asked: RefCell<Vec<&'static str>>,
    }

    type Script = Vec<(&'static str, Vec<Result<u32, Next>>)>;

    impl Run {
        fn new() -> Run {
            Run {
                lines: RefCell::new(Vec::new()),
                waits: RefCell::new(Vec::new()),
                asked: RefCell::new(Vec::new()),
            }
        }

        fn go(&self, retries: u32, script: Script) -> Result<u32, Failed<Failure>> {
            let tries = Tries {
                policy: RetryPolicy {
                    retries,
                    base: Duration::from_secs(1),
                    deadline: None,
                },
                warn: &|line| self.lines.borrow_mut().push(line.to_owned()),
                sleep: &|wait| self.waits.borrow_mut().push(wait),
            };
            let places: Vec<&'static str> = script.iter().map(|(p, _)| *p).collect();
            let mut turns = std::collections::HashMap::new();
            let answer = |place: &'static str| {
                self.asked.borrow_mut().push(place);
                let turn = turns.entry(place).or_insert(0usize);
                let answers = &script.iter().find(|(p, _)| *p == place).unwrap().1;
                let result = answers[*turn].map_err(|next| Failure {
                    place,
                    turn: *turn,
                    next,
                });
                *turn += 1;
                result
            };
            over_places(
                &places,
                &tries,
                answer,
                |e: &Failure| e.next,
                |place, e| format!("skipping {place}: {e}"),
            )
        }
    }

    #[test]
    fn a_place_that_fails_for_good_is_skipped_and_never_asked_again() {
        let run = Run::new();
        let got = run.go(
            3,
            vec![
                ("a", vec![Err(Next::Skip)]),
                ("b", vec![Err(Next::Again(None)), Ok(2)]),
            ],
        );
        assert_eq!(got.unwrap(), 2);
        assert_eq!(*run.asked.borrow(), ["a", "b", "b"]);
        assert_eq!(run.waits.borrow().len(), 1);
        let lines = run.lines.borrow();
        assert_eq!(lines[0], "skipping a: a failed (try 0)");
        assert_eq!(lines[1], "skipping b: b failed (try 0)");
        assert!(
            lines[2].starts_with("1 of the origins failed for now; retrying in "),
            "{lines:?}"
        );
        assert!(lines[2].ends_with(" (retry 1 of 3)"), "{lines:?}");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn a_wait_asked_for_is_the_wait_taken_and_the_rounds_stop_at_the_retries() {
        let run = Run::new();
        let seven = Next::Again(Some(Duration::from_secs(7)));
        let got = run.go(2, vec![("a", vec![Err(seven), Err(seven), Err(seven)])]);
        match got {
            Err(Failed::Exhausted { places: 1, last }) => assert_eq!(last.turn, 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(*run.waits.borrow(), [Duration::from_secs(7); 2]);
        // One place: no "skipping" lines, and the retry line gives its own failure.
        assert_eq!(
            *run.lines.borrow(),
            [
                "a failed (try 0); retrying in 7.0 s (retry 1 of 2)",
                "a failed (try 1); retrying in 7.0 s (retry 2 of 2)"
            ]
        );
    }

    #[test]
    fn a_failure_of_this_host_stops_at_once_whatever_the_other_places() {
        let run = Run::new();
        let got = run.go(3, vec![("a", vec![Err(Next::Stop)]), ("b", vec![Ok(1)])]);
        assert!(
            matches!(got, Err(Failed::Stopped(Failure { place: "a", .. }))),
            "{got:?}"
        );
        assert_eq!(*run.asked.borrow(), ["a"]);
        assert!(run.lines.borrow().is_empty());
    }

    #[test]
    fn without_retries_or_places_nobody_waits() {
        let run = Run::new();
        let got = run.go(0, vec![("a", vec![Err(Next::Again(None))])]);
        assert!(matches!(got, Err(Failed::Exhausted { places: 1, .. })));
        assert!(run.waits.borrow().is_empty());
        assert!(matches!(run.go(3, Vec::new()), Err(Failed::NoPlace)));
    }
}
