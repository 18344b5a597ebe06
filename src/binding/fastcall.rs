//! The hot operations (acquire, release, handoff, adopt, send, receive) as hand-written Node-API
//! callbacks: integers in, one integer out, through this thread's argument block (see below)
//! rather than JS arguments. Such a callback costs a few tens of nanoseconds, while the generic
//! `#[napi]` argument conversion costs several times that, which would dominate a ~100 ns
//! acquire + release. One of the binding's two modules allowed `unsafe` code (the other is
//! `memory`).
//!
//! A call's result is a non-negative value, or a status: [`STATUS_NONE`] / [`STATUS_CLOSED`]
//! (not errors), or a negative error status that the JS wrapper turns into an error through the
//! table `protocol().statuses` exports.

use std::cell::{Cell, RefCell};
use std::ffi::c_char;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use napi::bindgen_prelude::{Env, JsValue, Object, Status, Unknown};
use napi::sys;
use napi_derive::napi;

use sabpool_core::layout::{C_RECV_EPOCH, C_SEND_EPOCH, P_FREE_EPOCH};
use sabpool_core::mem::Memory;
use sabpool_core::{Error, Lease, Received, Sent};

use super::errors;
use super::memory::{self, ViewRef};
use super::registry::{self, Lookup};

/// Fast-call results that are not errors.
pub const STATUS_NONE: i32 = -1;
pub const STATUS_CLOSED: i32 = -2;
/// A fast call ran in a thread with no argument block (only reachable by bypassing the JS wrapper).
pub const STATUS_NO_BLOCK: i32 = -17;
/// A fast call named a pool or channel this thread does not have (detached or never attached).
pub const STATUS_UNKNOWN_ID: i32 = -18;
/// The attachment table was busy (a re-entrant call): an invariant of sabpool broke.
pub const STATUS_INTERNAL: i32 = -19;

fn status(result: Result<Result<i32, Error>, Lookup>) -> i32 {
  match result {
    Ok(Ok(value)) => value,
    Ok(Err(e)) => e.status(),
    Err(Lookup::Unknown) => STATUS_UNKNOWN_ID,
    Err(Lookup::Busy) => STATUS_INTERNAL,
  }
}

// ---- the operations: integers in, one integer out -------------------------------------------

/// `[pool]` → slot index, or `STATUS_NONE` when every slot is in use.
fn pool_acquire_op([id]: [u32; 1]) -> i32 {
  status(registry::with_pool(id, |p| {
    Ok(match p.pool.try_acquire(p.me)? {
      Some(lease) => lease.slot as i32,
      None => STATUS_NONE,
    })
  }))
}

/// `[pool, slot, generation]` → 1 if parked acquirers must be woken, else 0.
fn pool_release_op([id, slot, generation]: [u32; 3]) -> i32 {
  status(registry::with_pool(id, |p| {
    let wake = p.pool.release(p.me, Lease { slot, generation })?;
    Ok(p.memory().deliver(wake, P_FREE_EPOCH))
  }))
}

/// `[pool, slot, generation, length]` → 0.
fn pool_handoff_op([id, slot, generation, length]: [u32; 4]) -> i32 {
  status(registry::with_pool(id, |p| {
    p.pool.handoff(p.me, Lease { slot, generation }, length)?;
    Ok(0)
  }))
}

/// `[pool, slot, generation]` → the length the sender recorded.
fn pool_adopt_op([id, slot, generation]: [u32; 3]) -> i32 {
  status(registry::with_pool(id, |p| {
    p.pool
      .adopt(p.me, Lease { slot, generation })
      .map(|length| length as i32)
  }))
}

/// `[channel, pool, slot, generation, length]` → 1 sent and receivers must be woken, 0 sent,
/// `STATUS_NONE` full. `pool` is the attachment that owns the lease.
fn channel_send_op([id, pool_id, slot, generation, length]: [u32; 5]) -> i32 {
  status(registry::with_channel_and_pool(id, pool_id, |c, p| {
    Ok(
      match c
        .channel
        .try_send(&p.pool, p.me, Lease { slot, generation }, length)?
      {
        Sent::Sent(wake) => c.memory().deliver(wake, C_RECV_EPOCH),
        Sent::Full => STATUS_NONE,
      },
    )
  }))
}

/// `[channel, pool]` → `slot * 2 + wake` (wake: senders must be woken), `STATUS_NONE` when empty,
/// `STATUS_CLOSED` when closed and drained. `pool` is the attachment that will own the lease. The
/// wrapper reads generation and length from the slot's metadata, which the receiver now owns.
fn channel_recv_op([id, pool_id]: [u32; 2]) -> i32 {
  status(registry::with_channel_and_pool(id, pool_id, |c, p| {
    Ok(match c.channel.try_recv(&p.pool, p.me)? {
      // Slot counts are capped at 2^24, so this fits an i32.
      Received::Lease(lease, _, wake) => {
        (lease.slot as i32) * 2 + c.memory().deliver(wake, C_SEND_EPOCH)
      }
      Received::Empty => STATUS_NONE,
      Received::Closed => STATUS_CLOSED,
    })
  }))
}

// ---- the argument block and the raw callbacks --------------------------------------------------
//
// Node-API charges per argument: reading one `u32` costs about as much as the operation it feeds
// (`napi_get_cb_info`, then `napi_get_value_uint32` for each), and returning one costs a
// `napi_create_int32`. So the fast calls take no JS arguments at all: the wrapper writes them into
// this thread's argument block, a few words of a SharedArrayBuffer whose memory the binding
// adopted once (`fastCallBlock`), makes the call, and reads the result back from word 0. The
// words are untrusted input exactly as arguments would be: each is read once, as a `u32`, and the
// operation checks it as before.

/// Words in the argument block: the most arguments a fast call takes (`channelSend`'s five),
/// rounded up. Word 0 also carries the result out.
pub const ARG_WORDS: usize = 8;

type ArgWords = [AtomicU32; ARG_WORDS];

thread_local! {
  /// This thread's argument block (null until one is registered). Points into the memory that
  /// `BLOCK_VIEW` keeps alive, and is cleared before that reference is deleted.
  static BLOCK: Cell<*const ArgWords> = const { Cell::new(ptr::null()) };
  /// The reference to the block's Uint8Array that keeps its SharedArrayBuffer alive.
  static BLOCK_VIEW: RefCell<Option<ViewRef>> = const { RefCell::new(None) };
}

/// The env is going away: forget the block (no fast call can run any more), then drop the
/// reference that kept its memory alive.
fn forget_block() {
  BLOCK.with(|b| b.set(ptr::null()));
  if let Some(view) = BLOCK_VIEW.with(|v| v.borrow_mut().take()) {
    view.delete();
  }
}

/// `fastCallBlock(view)`: makes `view` (a Uint8Array of at least `ARG_WORDS` words over a
/// SharedArrayBuffer, which can be neither detached nor resized) this thread's argument block, and
/// returns it. If the thread has one already (sabpool's JS loaded twice in one thread), returns
/// that one instead: every copy of the wrapper in a thread then shares it, which is safe because
/// fast calls never run JS, so no call can interleave with another's use of the block.
#[napi]
pub fn fast_call_block(env: Env, view: Unknown) -> napi::Result<Unknown<'static>, String> {
  let registered = BLOCK_VIEW.with(|v| v.borrow().as_ref().map(ViewRef::value));
  let value = match registered {
    Some(value) => value,
    None => {
      let (memory, view_ref) = memory::adopt_view(env.raw(), view.raw()).map_err(errors::core)?;
      if memory.len() < ARG_WORDS * 4 {
        view_ref.delete();
        return Err(errors::error(
          errors::INVALID_ARG_TYPE,
          format!("the fast-call block needs at least {} bytes", ARG_WORDS * 4),
        ));
      }
      env
        .add_env_cleanup_hook((), |_| forget_block())
        .map_err(|e| errors::internal(&format!("cannot hook the env cleanup: {}", e.reason)))?;
      let value = view_ref.value();
      // `SharedMemory` checked the base is non-null and 8-aligned; the length is checked above.
      BLOCK.with(|b| b.set(memory.base() as *const ArgWords));
      BLOCK_VIEW.with(|v| *v.borrow_mut() = Some(view_ref));
      value
    }
  };
  let value = value.ok_or_else(|| errors::internal("cannot read the fast-call block"))?;
  // SAFETY: `value` is a value of the running callback's env, returned to JS from this call.
  Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
}

/// # Safety
/// `env` must be the env of the running callback.
unsafe fn int32(env: sys::napi_env, value: i32) -> sys::napi_value {
  let mut out = ptr::null_mut();
  // SAFETY: creating a number in the current env; on failure we return null, which Node-API
  // turns into `undefined`.
  unsafe { sys::napi_create_int32(env, value, &mut out) };
  out
}

/// Defines a fast callback over one of the operations above: its `$n` arguments are words
/// `0..$n` of the block, its result goes to word 0, and it returns `undefined`. Called in a thread
/// with no block, it returns `STATUS_NO_BLOCK` as a number instead (the wrapper registers the
/// block when it loads, so it never does that).
macro_rules! fast_fn {
  ($name:ident, $n:literal, $body:path) => {
    unsafe extern "C" fn $name(
      env: sys::napi_env,
      _info: sys::napi_callback_info,
    ) -> sys::napi_value {
      let block = BLOCK.with(Cell::get);
      if block.is_null() {
        // SAFETY: Node-API calls this with the env of the current call.
        return unsafe { int32(env, STATUS_NO_BLOCK) };
      }
      // SAFETY: a non-null `BLOCK` points at `ARG_WORDS` aligned words of a SharedArrayBuffer
      // kept alive by `BLOCK_VIEW` (see `fast_call_block`), and is nulled before that reference
      // goes. Every access is atomic: the words may be written by JS at any time.
      let words = unsafe { &*block };
      let mut args = [0u32; $n];
      for (arg, word) in args.iter_mut().zip(words.iter()) {
        *arg = word.load(Relaxed);
      }
      words[0].store($body(args) as u32, Relaxed);
      ptr::null_mut()
    }
  };
}

fast_fn!(pool_acquire, 1, pool_acquire_op);
fast_fn!(pool_release, 3, pool_release_op);
fast_fn!(pool_handoff, 4, pool_handoff_op);
fast_fn!(pool_adopt, 3, pool_adopt_op);
fast_fn!(channel_send, 5, channel_send_op);
fast_fn!(channel_recv, 2, channel_recv_op);

/// Adds the fast callbacks to the module's exports.
pub fn register_fast_functions(env: sys::napi_env, exports: sys::napi_value) -> napi::Result<()> {
  let functions: [(&[u8], sys::napi_callback); 6] = [
    (b"poolAcquire\0", Some(pool_acquire)),
    (b"poolRelease\0", Some(pool_release)),
    (b"poolHandoff\0", Some(pool_handoff)),
    (b"poolAdopt\0", Some(pool_adopt)),
    (b"channelSend\0", Some(channel_send)),
    (b"channelRecv\0", Some(channel_recv)),
  ];
  for (name, callback) in functions {
    let mut function = ptr::null_mut();
    // SAFETY: `name` is NUL-terminated (length -1 means "up to the NUL"); `exports` is the module's
    // exports object passed to the module initialiser that calls us.
    let ok = unsafe {
      sys::napi_create_function(
        env,
        name.as_ptr() as *const c_char,
        -1,
        callback,
        ptr::null_mut(),
        &mut function,
      ) == sys::Status::napi_ok
        && sys::napi_set_named_property(env, exports, name.as_ptr() as *const c_char, function)
          == sys::Status::napi_ok
    };
    if !ok {
      return Err(napi::Error::new(
        Status::GenericFailure,
        format!(
          "{}: could not register sabpool's native functions",
          errors::INTERNAL_MESSAGE
        ),
      ));
    }
  }
  Ok(())
}

#[napi(module_exports)]
pub fn init(exports: Object, env: Env) -> napi::Result<()> {
  register_fast_functions(env.raw(), exports.raw())
}
