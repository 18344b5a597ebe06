//! Loom models of the wake-up handshake of in-process waits (lib/wait.js): a freed resource wakes
//! one waiter (`Atomics.notify(word, index, 1)`), and a waiter that took a wake-up it will not
//! use — its async park was abandoned (aborted, its slice ended) before the wake-up reached it, or
//! it was aborted as it was woken — passes it on to the next waiter.
//!
//! V8 keeps the waiters of `Atomics.wait`/`waitAsync` in a FIFO list under a mutex, and a notify
//! removes the first `count` of them and wakes them. The model keeps that list, the resource
//! count, the epoch word and the waiter count under one loom `Mutex` (each JS step is one
//! critical section, so loom interleaves the steps, not their halves); the Dekker ordering of the
//! shared words themselves is the core's part and its own models cover it. A waiter that would
//! sleep forever shows as a loom deadlock: the model then fails.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release -p sabpool-core --test loom_wake`
//! (part of `npm run test:loom`).
#![cfg(loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use std::collections::VecDeque;

/// One park in the wait list: whether a notify removed it from the list, and whether its waiter
/// had already left it (an async park abandoned by an abort or the end of its slice).
#[derive(Default)]
struct Park {
  notified: bool,
  abandoned: bool,
}

#[derive(Default)]
struct Shared {
  /// Resources available (queued items, free slots).
  items: u32,
  /// The epoch word: bumped by every free while waiters are registered.
  epoch: u32,
  /// The shared waiter count.
  registered: u32,
  /// V8's wait list for the epoch word, oldest first (indices into `parks`).
  list: VecDeque<usize>,
  parks: Vec<Park>,
  /// Wake-ups already passed on by abandoned parks.
  forwarded: usize,
  /// Waiters told to leave (an AbortSignal fired).
  aborted: [bool; 2],
  /// Set once the model's waiters returned: lets the abandoned-park handler stop.
  done: bool,
}

struct World {
  state: Mutex<Shared>,
  changed: Condvar,
}

impl World {
  fn new() -> Arc<World> {
    Arc::new(World {
      state: Mutex::new(Shared::default()),
      changed: Condvar::new(),
    })
  }

  /// `Atomics.notify(word, index, 1)`: removes the oldest parked entry and wakes it.
  fn notify_one(&self, s: &mut Shared) {
    if let Some(park) = s.list.pop_front() {
      s.parks[park].notified = true;
      self.changed.notify_all();
    }
  }

  /// Frees one resource: push, bump the epoch, and wake one waiter if any is registered.
  fn free_one(&self) {
    let mut s = self.state.lock().unwrap();
    s.items += 1;
    if s.registered > 0 {
      s.epoch = s.epoch.wrapping_add(1);
      self.notify_one(&mut s);
    }
  }

  /// The wait loop of parkSyncLoop/parkAsyncLoop for waiter `me` (`may_leave`: it has an
  /// AbortSignal): register, read the epoch, retry, park on that epoch if the retry failed; a
  /// waiter that leaves after taking a wake-up passes it on. Returns whether it got a resource.
  fn wait(&self, me: usize, may_leave: bool) -> bool {
    loop {
      if may_leave && self.state.lock().unwrap().aborted[me] {
        return false;
      }
      self.state.lock().unwrap().registered += 1; // register(1)
      let epoch = self.state.lock().unwrap().epoch;
      {
        let mut s = self.state.lock().unwrap();
        if s.items > 0 {
          s.items -= 1;
          s.registered -= 1;
          return true;
        }
      }
      // Atomics.wait/waitAsync: compare and enqueue under the list's lock.
      let park = {
        let mut s = self.state.lock().unwrap();
        (s.epoch == epoch).then(|| {
          let park = s.parks.len();
          s.parks.push(Park::default());
          s.list.push_back(park);
          park
        })
      };
      let (woken, left) = match park {
        None => (false, false),
        Some(park) => {
          let mut s = self.state.lock().unwrap();
          while !s.parks[park].notified && !(may_leave && s.aborted[me]) {
            s = self.changed.wait(s).unwrap();
          }
          let woken = s.parks[park].notified;
          let left = may_leave && s.aborted[me];
          if left && !woken {
            // Stays in the list: a later wake-up of it goes to the abandoned-park handler.
            s.parks[park].abandoned = true;
            self.changed.notify_all();
          }
          (woken, left)
        }
      };
      self.state.lock().unwrap().registered -= 1; // register(-1)
      if left {
        if woken {
          let mut s = self.state.lock().unwrap();
          self.notify_one(&mut s); // forward()
        }
        return false;
      }
    }
  }

  /// The `.then` handler of abandoned async parks (it runs later on their thread): when a notify
  /// reaches one, the wake-up is passed on. Runs until the model is done.
  fn forward_late_wake_ups(&self) {
    let mut s = self.state.lock().unwrap();
    loop {
      let late = s.parks.iter().filter(|p| p.abandoned && p.notified).count();
      while s.forwarded < late {
        s.forwarded += 1;
        self.notify_one(&mut s);
      }
      if s.done {
        return;
      }
      s = self.changed.wait(s).unwrap();
    }
  }

  fn abort(&self, me: usize) {
    let mut s = self.state.lock().unwrap();
    s.aborted[me] = true;
    self.changed.notify_all();
  }

  fn finish(&self) {
    let mut s = self.state.lock().unwrap();
    s.done = true;
    self.changed.notify_all();
  }
}

/// Waiter 0 has an AbortSignal, waiter 1 none; one resource is freed, and waiter 0 is aborted
/// before (`abort_first`) or after the free, at every interleaving with both waiters. A waiter 0
/// that gets the resource gives it back (a release). Waiter 1 must always get it: were a
/// wake-up swallowed, it would sleep forever and loom would report the deadlock.
fn staying_waiter_gets_the_resource(abort_first: bool) {
  let mut builder = loom::model::Builder::new();
  // Every step is a critical section of one mutex, so a small bound already reaches every order
  // of the steps that matter (free, abort, park, notify); LOOM_MAX_PREEMPTIONS overrides it.
  if builder.preemption_bound.is_none() {
    builder.preemption_bound = Some(2);
  }
  builder.check(move || {
    let world = World::new();
    let w = world.clone();
    let leaving = thread::spawn(move || {
      if w.wait(0, true) {
        w.free_one();
      }
    });
    let w = world.clone();
    let handler = thread::spawn(move || w.forward_late_wake_ups());
    let w = world.clone();
    let freer = thread::spawn(move || {
      if abort_first {
        w.abort(0);
        w.free_one();
      } else {
        w.free_one();
        w.abort(0);
      }
    });
    assert!(
      world.wait(1, false),
      "the staying waiter returns only with a resource"
    );
    leaving.join().unwrap();
    freer.join().unwrap();
    world.finish();
    handler.join().unwrap();
    let s = world.state.lock().unwrap();
    assert_eq!(
      s.items, 0,
      "the one resource was taken by the staying waiter"
    );
    assert_eq!(s.registered, 0, "every registration was withdrawn");
  });
}

#[test]
fn a_wake_up_reaches_the_staying_waiter_past_a_waiter_aborted_before_the_free() {
  staying_waiter_gets_the_resource(true);
}

#[test]
fn a_wake_up_reaches_the_staying_waiter_past_a_waiter_aborted_as_it_is_woken() {
  staying_waiter_gets_the_resource(false);
}
