//! Raw Node-API glue: the binding's only `unsafe` code.
//!
//! Three things need it. (1) Adopting the memory of a SharedArrayBuffer: Node-API on Node 20 cannot
//! take a SharedArrayBuffer itself, only a typed-array view of it, and we must hold a reference so
//! the memory outlives every pointer we keep. (2) The hot operations (acquire, release, handoff,
//! adopt, send, receive) as hand-written Node-API callbacks: an integer-in, integer-out callback
//! costs a few tens of nanoseconds, while the generic `#[napi]` argument conversion costs several
//! times that, which would dominate a ~100 ns acquire + release. (3) Exposing a mapped region
//! file to JS as an external (Shared)ArrayBuffer.

use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::Arc;

use napi::sys;

use sabpool_core::mem::SharedMemory;
use sabpool_core::shm::RegionFile;
use sabpool_core::Error;

use super::registry;

/// A strong reference to a JS value, deleted explicitly (it keeps a SharedArrayBuffer alive).
pub struct ViewRef {
  env: sys::napi_env,
  raw: sys::napi_ref,
}

impl ViewRef {
  /// Deletes the reference. Must run on the thread of the env that created it (registry entries
  /// are thread-local, so it does).
  pub fn delete(self) {
    // SAFETY: `raw` was created by `napi_create_reference` in `env`, is deleted exactly once (this
    // consumes `self`), and `env` is alive: references are deleted from finalizers or the env's
    // cleanup hook, both of which run before the env is torn down.
    unsafe {
      sys::napi_delete_reference(self.env, self.raw);
    }
  }
}

/// The memory of a `Uint8Array` over a SharedArrayBuffer, and a reference keeping it alive.
pub fn adopt_view(
  env: sys::napi_env,
  view: sys::napi_value,
) -> Result<(SharedMemory, ViewRef), Error> {
  let mut is_typed = false;
  let mut kind: sys::napi_typedarray_type = 0;
  let mut length = 0usize;
  let mut data: *mut c_void = ptr::null_mut();
  let mut buffer: sys::napi_value = ptr::null_mut();
  let mut offset = 0usize;
  let mut is_plain_arraybuffer = true;
  let mut raw: sys::napi_ref = ptr::null_mut();
  // SAFETY: plain Node-API calls on values of this callback's scope, with out-pointers to locals.
  unsafe {
    if sys::napi_is_typedarray(env, view, &mut is_typed) != sys::Status::napi_ok || !is_typed {
      return Err(Error::BadHandle(
        "expected a Uint8Array over a SharedArrayBuffer",
      ));
    }
    if sys::napi_get_typedarray_info(
      env,
      view,
      &mut kind,
      &mut length,
      &mut data,
      &mut buffer,
      &mut offset,
    ) != sys::Status::napi_ok
      || kind != sys::TypedarrayType::uint8_array
    {
      return Err(Error::BadHandle(
        "expected a Uint8Array over a SharedArrayBuffer",
      ));
    }
    // A typed array's buffer is an ArrayBuffer or a SharedArrayBuffer, and Node-API reports only
    // the former as an arraybuffer. A plain ArrayBuffer could be detached or transferred while we
    // hold its pointer, so only shared memory is accepted.
    if sys::napi_is_arraybuffer(env, buffer, &mut is_plain_arraybuffer) != sys::Status::napi_ok
      || is_plain_arraybuffer
    {
      return Err(Error::BadHandle(
        "the view's buffer is not a SharedArrayBuffer",
      ));
    }
    if sys::napi_create_reference(env, view, 1, &mut raw) != sys::Status::napi_ok {
      return Err(Error::BadHandle("could not reference the view"));
    }
  }
  let view_ref = ViewRef { env, raw };
  // SAFETY: `data` points at `length` bytes of a SharedArrayBuffer (checked above), whose backing
  // store cannot be detached or resized and stays alive while `view_ref` references the view;
  // every owner of a `SharedMemory` built here also owns the `ViewRef` and deletes it only after
  // dropping the memory view. All access to it is atomic (or JS typed arrays).
  match unsafe { SharedMemory::new(data as *mut u8, length) } {
    Ok(memory) => Ok((memory, view_ref)),
    Err(e) => {
      view_ref.delete();
      Err(e)
    }
  }
}

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

/// Defines an integer-in, integer-out callback over a registry function.
macro_rules! fast_fn {
  ($name:ident, $n:literal, $body:path) => {
    unsafe extern "C" fn $name(
      env: sys::napi_env,
      info: sys::napi_callback_info,
    ) -> sys::napi_value {
      // SAFETY: Node-API calls this with the env and callback info of the current call.
      let status = match unsafe { u32_args::<$n>(env, info) } {
        Some(args) => $body(args),
        None => registry::STATUS_BAD_ARGUMENTS,
      };
      // SAFETY: as above.
      unsafe { int32(env, status) }
    }
  };
}

fast_fn!(pool_acquire, 1, registry::pool_acquire);
fast_fn!(pool_release, 3, registry::pool_release);
fast_fn!(pool_handoff, 4, registry::pool_handoff);
fast_fn!(pool_adopt, 3, registry::pool_adopt);
fast_fn!(channel_send, 5, registry::channel_send);
fast_fn!(channel_recv, 2, registry::channel_recv);

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
      return Err(napi::Error::from_reason(
        "could not register sabpool's native functions",
      ));
    }
  }
  Ok(())
}

// ---- file-backed regions as JS buffers ---------------------------------------------------------

/// `node_api_create_external_sharedarraybuffer` (experimental; exported by Node 26.1+ and by
/// recent 22.x and 24.x, not by 20.x). napi-rs does not bind it, so it is looked up at run time.
type CreateExternalSab = unsafe extern "C" fn(
  env: sys::napi_env,
  data: *mut c_void,
  byte_length: usize,
  finalize_cb: Option<unsafe extern "C" fn(data: *mut c_void, hint: *mut c_void)>,
  finalize_hint: *mut c_void,
  result: *mut sys::napi_value,
) -> sys::napi_status;

fn create_external_sab() -> Option<CreateExternalSab> {
  static SYMBOL: std::sync::OnceLock<Option<CreateExternalSab>> = std::sync::OnceLock::new();
  *SYMBOL.get_or_init(|| {
    if std::env::var_os("SABPOOL_NO_EXTERNAL_SAB").is_some() {
      return None;
    }
    lookup_external_sab()
  })
}

#[cfg(unix)]
fn lookup_external_sab() -> Option<CreateExternalSab> {
  // SAFETY: dlsym with a NUL-terminated name; RTLD_DEFAULT searches the Node binary itself.
  let address = unsafe {
    libc::dlsym(
      libc::RTLD_DEFAULT,
      c"node_api_create_external_sharedarraybuffer".as_ptr(),
    )
  };
  if address.is_null() {
    None
  } else {
    // SAFETY: the symbol, where Node exports it, has exactly this C signature (js_native_api.h).
    Some(unsafe { std::mem::transmute::<*mut c_void, CreateExternalSab>(address) })
  }
}

/// File-backed regions exist only on Unix, so nothing here ever needs the symbol.
#[cfg(not(unix))]
fn lookup_external_sab() -> Option<CreateExternalSab> {
  None
}

unsafe extern "C" fn drop_region_noenv(_data: *mut c_void, hint: *mut c_void) {
  // SAFETY: `hint` is the `Box<Arc<RegionFile>>` leaked in `region_buffer`, finalized once.
  drop(unsafe { Box::from_raw(hint as *mut Arc<RegionFile>) });
}

unsafe extern "C" fn drop_region(_env: sys::napi_env, data: *mut c_void, hint: *mut c_void) {
  // SAFETY: as in `drop_region_noenv`.
  unsafe { drop_region_noenv(data, hint) }
}

/// A JS buffer over the whole mapping of `file`: a SharedArrayBuffer where Node can make one from
/// external memory, else an ArrayBuffer. Either keeps the mapping alive until it is collected.
pub fn region_buffer(
  env: &napi::Env,
  file: &Arc<RegionFile>,
) -> Result<napi::Unknown<'static>, Error> {
  let env = env.raw();
  let (value, _shared) = external_buffer(env, file)?;
  // SAFETY: `value` was just created in `env` by Node-API and is returned to JS from this call.
  Ok(unsafe { napi::Unknown::from_raw_unchecked(env, value) })
}

/// Creates the external (Shared)ArrayBuffer; returns it and whether it is a SharedArrayBuffer.
fn external_buffer(
  env: sys::napi_env,
  file: &Arc<RegionFile>,
) -> Result<(sys::napi_value, bool), Error> {
  let data = file.as_ptr() as *mut c_void;
  let len = file.len();
  let mut result = ptr::null_mut();
  if let Some(create) = create_external_sab() {
    let hint = Box::into_raw(Box::new(file.clone()));
    // SAFETY: `data` is valid for `len` bytes until the mapping is dropped, which happens no
    // earlier than the finalizer (it owns one reference through `hint`).
    let status = unsafe {
      create(
        env,
        data,
        len,
        Some(drop_region_noenv),
        hint as *mut c_void,
        &mut result,
      )
    };
    if status == sys::Status::napi_ok {
      return Ok((result, true));
    }
    // SAFETY: creation failed, so the finalizer will never run; reclaim the box.
    drop(unsafe { Box::from_raw(hint) });
  }
  let hint = Box::into_raw(Box::new(file.clone()));
  // SAFETY: as above. The buffer may be detached by JS (transfer); that only invalidates JS views,
  // never memory Rust uses (the registry holds its own reference to the mapping).
  let status = unsafe {
    sys::napi_create_external_arraybuffer(
      env,
      data,
      len,
      Some(drop_region),
      hint as *mut c_void,
      &mut result,
    )
  };
  if status != sys::Status::napi_ok {
    // SAFETY: creation failed, so the finalizer will never run.
    drop(unsafe { Box::from_raw(hint) });
    return Err(Error::BadHandle(
      "this Node cannot expose external memory to JS (external buffers are not allowed)",
    ));
  }
  Ok((result, false))
}
