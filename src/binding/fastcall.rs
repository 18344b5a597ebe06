//! The hot operations (acquire, release, handoff, adopt, send, receive) as hand-written Node-API
//! callbacks: integers in, one integer out. Such a callback costs a few tens of nanoseconds, while
//! the generic `#[napi]` argument conversion costs several times that, which would dominate a
//! ~100 ns acquire + release. One of the binding's two modules allowed `unsafe` code (the other is
//! `memory`).
//!
//! A call's result is a non-negative value, or a status: [`STATUS_NONE`] / [`STATUS_CLOSED`]
//! (not errors), or a negative error status that the JS wrapper turns into an error through the
//! table `protocol().statuses` exports.

use std::ffi::c_char;
use std::ptr;

use napi::bindgen_prelude::{Env, JsValue, Object, Status};
use napi::sys;
use napi_derive::napi;

use sabpool_core::layout::{C_RECV_EPOCH, C_SEND_EPOCH, P_FREE_EPOCH};
use sabpool_core::{Error, Lease, Received, Sent};

use super::registry::{self, Lookup};

/// Fast-call results that are not errors.
pub const STATUS_NONE: i32 = -1;
pub const STATUS_CLOSED: i32 = -2;
/// A fast call got arguments that are not numbers (only reachable by bypassing the JS wrapper).
pub const STATUS_BAD_ARGUMENTS: i32 = -17;
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

// ---- the raw callbacks ------------------------------------------------------------------------

/// Reads up to N unsigned 32-bit arguments; `None` when one is missing or not a number.
///
/// # Safety
/// `env` and `info` must be the ones Node-API passed to the running callback.
unsafe fn u32_args<const N: usize>(
  env: sys::napi_env,
  info: sys::napi_callback_info,
) -> Option<[u32; N]> {
  let mut argc = N;
  let mut argv: [sys::napi_value; N] = [ptr::null_mut(); N];
  // SAFETY: `argv` has room for `argc` values; the other out-pointers may be null.
  let status = unsafe {
    sys::napi_get_cb_info(
      env,
      info,
      &mut argc,
      argv.as_mut_ptr(),
      ptr::null_mut(),
      ptr::null_mut(),
    )
  };
  if status != sys::Status::napi_ok || argc < N {
    return None;
  }
  let mut out = [0u32; N];
  for (value, slot) in argv.iter().zip(out.iter_mut()) {
    // SAFETY: each `value` was filled in by `napi_get_cb_info` above.
    if unsafe { sys::napi_get_value_uint32(env, *value, slot) } != sys::Status::napi_ok {
      return None;
    }
  }
  Some(out)
}

/// # Safety
/// `env` must be the env of the running callback.
unsafe fn int32(env: sys::napi_env, value: i32) -> sys::napi_value {
  let mut out = ptr::null_mut();
  // SAFETY: creating a number in the current env; on failure we return null, which Node-API
  // turns into `undefined` (the wrapper treats that as a bad-argument error).
  unsafe { sys::napi_create_int32(env, value, &mut out) };
  out
}

/// Defines an integer-in, integer-out callback over one of the operations above.
macro_rules! fast_fn {
  ($name:ident, $n:literal, $body:path) => {
    unsafe extern "C" fn $name(
      env: sys::napi_env,
      info: sys::napi_callback_info,
    ) -> sys::napi_value {
      // SAFETY: Node-API calls this with the env and callback info of the current call.
      let status = match unsafe { u32_args::<$n>(env, info) } {
        Some(args) => $body(args),
        None => STATUS_BAD_ARGUMENTS,
      };
      // SAFETY: as above.
      unsafe { int32(env, status) }
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
          super::errors::INTERNAL_MESSAGE
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
