//! Long stretches of background work that never wait, cut into short turns on the CPU.
//!
//! A thread that keeps a core for a whole time slice of the kernel's scheduler (milliseconds)
//! makes the HTTP workers sharing that core wait as long: a request's latency then takes the
//! length of the stretch, whatever its share of the CPU. The bus publisher decodes, builds and
//! hands over up to 500 messages at a time (several milliseconds of CPU): with a [`Lull`] it
//! offers the core to the other threads every [`Lull::TURN`] (one step of its work may take
//! longer). In a scheduler trace of a purge, its longest run fell from 1.65 ms to 0.44 ms
//! (docs/benchmarks.md, "Issue 20: session 18").

use std::time::{Duration, Instant};

/// The time (wall clock) a stretch of work has run since its last pause.
#[derive(Debug)]
pub struct Lull {
    turn: Duration,
    since: Instant,
}

impl Lull {
    /// The longest turn between two pauses.
    pub const TURN: Duration = Duration::from_micros(100);

    pub fn new() -> Lull {
        Lull::with_turn(Lull::TURN)
    }

    fn with_turn(turn: Duration) -> Lull {
        Lull {
            turn,
            since: Instant::now(),
        }
    }

    /// Called between two small steps of the work: once a turn has passed, lets the kernel run
    /// the other threads waiting for this core (`sched_yield`; at once back when none waits).
    pub fn breathe(&mut self) {
        if self.since.elapsed() >= self.turn {
            std::thread::yield_now();
            self.since = Instant::now();
        }
    }
}

impl Default for Lull {
    fn default() -> Lull {
        Lull::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_only_once_a_turn_has_passed() {
        let mut lull = Lull::with_turn(Duration::from_secs(3600));
        let start = lull.since;
        lull.breathe();
        // Less than a turn: no pause, the turn goes on.
        assert_eq!(lull.since, start);
        let mut lull = Lull::with_turn(Duration::ZERO);
        let start = lull.since;
        std::thread::sleep(Duration::from_millis(1));
        lull.breathe();
        // A turn has passed: paused, a new turn starts.
        assert!(lull.since > start);
    }
}
