//! Async waits on file-backed regions.
//!
//! A thread parked in JS (`Atomics.waitAsync`) cannot be woken from another process, and parking
//! a libuv pool thread per pending wait would starve fs, dns and crypto. Instead each attachment
//! that has async waiters gets one watcher thread of its own per wait site: armed with the epoch
//! value JS last saw, it blocks on the epoch word's futex (in slices, so it notices being stopped)
//! and, once the word moves on, calls back into JS through a thread-safe function, which settles
//! every pending wait of that site; they re-check and re-arm if they still have to wait. A
//! table's wait words are watched the same way (the "epoch word" is then that wait word).

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use parking_lot::{Condvar, Mutex};

use sabpool_core::futex;
use sabpool_core::mem::Memory;
use sabpool_core::shm::MappedMemory;

/// Longest futex sleep of a watcher before it re-checks whether it was stopped or re-armed.
const SLICE: Duration = Duration::from_millis(50);

/// Callback into JS: no arguments; unref'd so it never keeps the event loop alive by itself (the
/// JS side holds a timer while a wait is pending).
pub type ChangeCallback = ThreadsafeFunction<(), Unknown<'static>, (), Status, false, true>;

#[derive(Default)]
struct State {
  /// The epoch value JS saw before deciding to wait, while a wait is pending.
  armed: Option<u32>,
  stopped: bool,
}

struct Shared {
  state: Mutex<State>,
  changed: Condvar,
}

/// Owner's handle on a watcher thread; dropping it stops the thread (without joining: it exits
/// within one slice and holds its own reference to the mapping).
pub struct Watcher {
  shared: Arc<Shared>,
}

impl Watcher {
  /// Starts a thread watching the epoch word at `epoch` of `memory`.
  pub fn start(
    memory: MappedMemory,
    epoch: usize,
    callback: ChangeCallback,
  ) -> std::io::Result<Watcher> {
    let shared = Arc::new(Shared {
      state: Mutex::new(State::default()),
      changed: Condvar::new(),
    });
    let theirs = shared.clone();
    std::thread::Builder::new()
      .name("sabpool-watch".into())
      .stack_size(64 * 1024)
      .spawn(move || run(&theirs, &memory, epoch, &callback))?;
    Ok(Watcher { shared })
  }

  /// Asks for one callback once the epoch word differs from `seen`.
  pub fn arm(&self, seen: u32) {
    self.shared.state.lock().armed = Some(seen);
    self.shared.changed.notify_one();
  }
}

impl Drop for Watcher {
  fn drop(&mut self) {
    self.shared.state.lock().stopped = true;
    self.shared.changed.notify_one();
  }
}

fn run(shared: &Shared, memory: &MappedMemory, epoch: usize, callback: &ChangeCallback) {
  let Ok(word) = memory.u32_at(epoch) else {
    return; // a validated region always has its epoch words; nothing to watch otherwise
  };
  loop {
    let seen = {
      let mut state = shared.state.lock();
      loop {
        if state.stopped {
          return;
        }
        if let Some(seen) = state.armed {
          break seen;
        }
        shared.changed.wait(&mut state);
      }
    };
    // SeqCst pairs with the SeqCst epoch bump of whoever frees the resource.
    if word.load(std::sync::atomic::Ordering::SeqCst) == seen {
      futex::wait(word, seen, Some(SLICE));
    }
    if word.load(std::sync::atomic::Ordering::SeqCst) != seen {
      let mut state = shared.state.lock();
      if state.armed == Some(seen) {
        state.armed = None;
        drop(state);
        // Closing (the JS environment is going away) needs no handling: the owner stops us.
        callback.call((), ThreadsafeFunctionCallMode::NonBlocking);
      }
    }
  }
}
