//! Loom models of the reply handshake of services (lib/service.js).
//!
//! A server answers a call in three shared steps: it writes the reply slot's record, sends the
//! reply into the caller's port, and then (when the reply is another slot) releases the request
//! slot. A caller that finds its request slot no longer holding the request drains its port, and
//! only if no reply for the call is there rejects it with ERR_SABPOOL_NO_REPLY. The claim: a
//! server that finishes is never reported as lost, whatever the interleaving; a server that dies
//! after any step leaves the caller with exactly one outcome (the reply, or "no reply"), and every
//! slot is either the caller's or back in the pool.
//!
//! JS `Atomics` and the channel's compare-and-swaps are sequentially consistent; the model uses
//! `SeqCst` for the same steps. Dying is modelled by the server stopping after `stop_after`
//! steps; the pool's reclaim of a dead server's leases is the `reclaim` step, which runs after
//! the server stopped (the thread's teardown, or a participant reclaiming a dead process).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release -p sabpool-core --test loom_service`
//! (part of `npm run test:loom`).
#![cfg(loom)]

use loom::sync::atomic::{AtomicU32, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

/// Slot states, as far as the caller's check reads them.
const HELD: u32 = 1; // queued, or leased by the server: the request is still alive
const FREE: u32 = 0;
const REPLY_SLOT_EMPTY: u32 = u32::MAX;

struct World {
  /// The request slot's state word (generation folded in: FREE once released or reclaimed).
  request: AtomicU32,
  /// The reply slot's state: HELD while the server owns it, FREE once reclaimed or released.
  reply: AtomicU32,
  /// The reply slot's record: the call number it answers (0: none).
  record: AtomicU32,
  /// The caller's port: the slot queued there, or REPLY_SLOT_EMPTY.
  port: AtomicU32,
}

const CALL: u32 = 7;
const REPLY_SLOT: u32 = 1;

/// What the caller ends with.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
  Reply,
  NoReply,
}

/// The caller's side: poll the port; when the request slot no longer holds the request, drain
/// the port once more and decide.
fn caller(w: &World) -> Outcome {
  loop {
    if take_reply(w) {
      return Outcome::Reply;
    }
    if w.request.load(SeqCst) != HELD {
      // The reply is sent before the request is released: if one came, it is in the port now.
      return if take_reply(w) {
        Outcome::Reply
      } else {
        Outcome::NoReply
      };
    }
    thread::yield_now();
  }
}

/// Takes the reply out of the port. The caller's thread is the port's only receiver here, so a
/// load and a store stand for the receive's compare-and-swap.
fn take_reply(w: &World) -> bool {
  let slot = w.port.load(SeqCst);
  if slot == REPLY_SLOT_EMPTY {
    return false;
  }
  w.port.store(REPLY_SLOT_EMPTY, SeqCst);
  // Delivered only if the record names this call (a record is written before the send).
  assert_eq!(
    w.record.load(SeqCst),
    CALL,
    "a reply arrived before its record"
  );
  true
}

/// The server's steps for a reply in another slot; returns how many it made before stopping.
fn server(w: &World, stop_after: u32) -> u32 {
  let steps: [&dyn Fn(); 3] = [
    &|| w.record.store(CALL, SeqCst),
    &|| w.port.store(REPLY_SLOT, SeqCst),
    &|| w.request.store(FREE, SeqCst),
  ];
  for (made, step) in steps.iter().enumerate() {
    if made as u32 == stop_after {
      return made as u32;
    }
    step();
  }
  steps.len() as u32
}

/// The pool's reclaim of a dead server: every slot it still leased goes back.
fn reclaim(w: &World, made: u32) {
  if made < 3 {
    w.request.store(FREE, SeqCst);
  }
  if made < 2 {
    w.reply.store(FREE, SeqCst); // never sent: it was still the server's
  }
}

fn run(stop_after: u32) {
  loom::model(move || {
    let w = Arc::new(World {
      request: AtomicU32::new(HELD),
      reply: AtomicU32::new(HELD),
      record: AtomicU32::new(0),
      port: AtomicU32::new(REPLY_SLOT_EMPTY),
    });
    let s = {
      let w = w.clone();
      thread::spawn(move || {
        let made = server(&w, stop_after);
        reclaim(&w, made);
        made
      })
    };
    let outcome = caller(&w);
    let made = s.join().unwrap();
    match outcome {
      Outcome::NoReply => {
        assert!(
          made < 2,
          "a server that sent its reply was reported lost (it made {made} steps)"
        );
        assert_eq!(
          w.reply.load(SeqCst),
          FREE,
          "the unsent reply slot was not reclaimed"
        );
      }
      Outcome::Reply => {
        assert!(made >= 2, "a reply was delivered that was never sent");
      }
    }
    // Exactly one outcome, and no slot left anywhere but with the caller or the pool.
    assert_eq!(
      w.port.load(SeqCst),
      REPLY_SLOT_EMPTY,
      "a reply left in the port"
    );
    assert_eq!(
      w.request.load(SeqCst),
      FREE,
      "the request slot never came back"
    );
  });
}

#[test]
fn a_server_that_finishes_is_never_reported_lost() {
  run(3);
}

#[test]
fn a_server_that_dies_before_replying_makes_the_call_fail_and_returns_both_slots() {
  run(0);
  run(1);
}

#[test]
fn a_server_that_dies_after_sending_still_delivers_its_reply() {
  run(2);
}
