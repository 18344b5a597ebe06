//! Worker threads of this process that their parent has let go of (`worker.terminate()`, or the
//! worker ended) while they may still be running JavaScript.
//!
//! Node and Bun stop a terminated worker's JavaScript at once, even in the middle of a blocking
//! `Atomics.wait`, and then run its env cleanup hooks, which reclaim its leases. Deno (2.9) does
//! not: its `worker.terminate()` emits 'exit' on the parent and lets the worker go on until its
//! JavaScript returns to the event loop, so a worker parked in `acquireSync()` or `recvSync()`
//! without a timeout would re-park every slice forever, holding its leases. To end such a wait,
//! each thread that parks registers its `threadId` here; the parent, on the worker's 'exit' event,
//! marks that id; the parked thread checks its mark between slices and leaves the wait with
//! ERR_SABPOOL_TERMINATED, which unwinds to the event loop, where the runtime tears the worker
//! down and its cleanup hooks reclaim its leases as usual.
//!
//! The table is per process (this library's statics); thread ids are unique per process in Node,
//! Bun and Deno alike. Entries leave with their thread's env cleanup, so ids of workers that
//! ended long ago are not kept: a mark for an id that is not (or no longer) registered is a no-op,
//! which is what happens on Node, where 'exit' comes after the worker's cleanup.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::errors;

/// Registered threads: JS thread id → its mark.
static WATCHED: Mutex<Option<HashMap<u64, Arc<AtomicBool>>>> = Mutex::new(None);

thread_local! {
  /// This thread's id and mark, once it registered.
  static MINE: RefCell<Option<(u64, Arc<AtomicBool>)>> = const { RefCell::new(None) };
}

/// The table, also if a thread panicked while holding the lock (the map is never left half
/// updated: every critical section is a single insert, remove or lookup).
fn watched() -> MutexGuard<'static, Option<HashMap<u64, Arc<AtomicBool>>>> {
  WATCHED
    .lock()
    .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A JS thread id: an integer from 1 to 2^53 (the main thread, 0, is never terminated).
fn thread_id(value: f64) -> Result<u64, String> {
  if value.fract() == 0.0 && (1.0..=9_007_199_254_740_992.0).contains(&value) {
    Ok(value as u64)
  } else {
    Err(errors::error(
      errors::OUT_OF_RANGE,
      format!("a worker's threadId must be an integer from 1 to 2^53; got {value}"),
    ))
  }
}

/// Registers this thread (a worker, `threadId` as `node:worker_threads` gives it) so that its
/// parent can mark it; idempotent. Its env cleanup removes the entry.
#[napi]
pub fn thread_watch(env: Env, thread_id_value: f64) -> Result<(), String> {
  let id = thread_id(thread_id_value)?;
  if MINE.with(|m| m.borrow().is_some()) {
    return Ok(());
  }
  let mark = Arc::new(AtomicBool::new(false));
  env
    .add_env_cleanup_hook((), |_| unwatch())
    .map_err(|e| errors::internal(&format!("cannot hook the env cleanup: {}", e.reason)))?;
  watched()
    .get_or_insert_with(HashMap::new)
    .insert(id, Arc::clone(&mark));
  MINE.with(|m| *m.borrow_mut() = Some((id, mark)));
  Ok(())
}

/// This thread's env is going away: it leaves the table.
fn unwatch() {
  if let Some((id, mark)) = MINE.with(|m| m.borrow_mut().take()) {
    let mut table = watched();
    if let Some(map) = table.as_mut() {
      // Only this thread's own entry (a later registration under the same id cannot exist, ids
      // are not reused, but the check costs nothing).
      if map.get(&id).is_some_and(|m| Arc::ptr_eq(m, &mark)) {
        map.remove(&id);
      }
    }
  }
}

/// Whether this thread's parent has let it go (see the module comment).
#[napi]
pub fn thread_stopping() -> bool {
  MINE.with(|m| {
    m.borrow()
      .as_ref()
      .is_some_and(|(_, mark)| mark.load(Ordering::Acquire))
  })
}

/// Marks the worker `threadId` as let go (its parent saw it exit). Returns whether a registered
/// thread had that id (false when it had ended already, or never parked).
#[napi]
pub fn thread_stopped(thread_id_value: f64) -> Result<bool, String> {
  let id = thread_id(thread_id_value)?;
  let table = watched();
  Ok(match table.as_ref().and_then(|map| map.get(&id)) {
    Some(mark) => {
      mark.store(true, Ordering::Release);
      true
    }
    None => false,
  })
}
