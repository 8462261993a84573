//! One compile at a time, smallest first. A compile already spreads over every
//! core (wasmtime compiles functions in parallel), so running two at once only
//! makes each slower; and when the host starts with a folder of functions, a
//! 100 KB Rust handler should run within a second rather than wait behind a
//! 20 MB JavaScript one. Loads from the compile cache never queue here.

use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex};

#[derive(Default)]
pub struct CompileGate {
    state: Mutex<GateState>,
    turn: Condvar,
}

#[derive(Default)]
struct GateState {
    compiling: bool,
    /// Waiting compiles as (size in bytes, arrival): the first is served next.
    waiting: BTreeSet<(usize, u64)>,
    arrivals: u64,
}

/// A compile's turn; the next one starts when it is dropped.
pub struct Turn<'a>(&'a CompileGate);

impl CompileGate {
    /// Blocks until it is the turn of a compile of `size` bytes.
    pub fn wait_turn(&self, size: usize) -> Turn<'_> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let me = (size, state.arrivals);
        state.arrivals += 1;
        state.waiting.insert(me);
        while state.compiling || state.waiting.first() != Some(&me) {
            state = self.turn.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.waiting.remove(&me);
        state.compiling = true;
        Turn(self)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.compiling = false;
        drop(state);
        self.0.turn.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn waiting_compiles_go_smallest_first_one_at_a_time() {
        let gate = Arc::new(CompileGate::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = gate.wait_turn(1000);
        let waiters: Vec<_> = [30_000_000usize, 100_000, 5_000_000]
            .into_iter()
            .map(|size| {
                let (waiting_gate, order) = (Arc::clone(&gate), Arc::clone(&order));
                let waiter = std::thread::spawn(move || {
                    let _turn = waiting_gate.wait_turn(size);
                    order.lock().expect("order").push(size);
                });
                // Each is queued before the next arrives.
                while gate.state.lock().expect("state").waiting.iter().all(|(s, _)| *s != size) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                waiter
            })
            .collect();
        assert!(order.lock().expect("order").is_empty(), "nobody starts while a compile runs");
        drop(first);
        for waiter in waiters {
            waiter.join().expect("joined");
        }
        assert_eq!(*order.lock().expect("order"), [100_000, 5_000_000, 30_000_000]);
    }
}
