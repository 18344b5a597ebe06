//! JS memory and Rust memory, both ways, with raw Node-API calls (one of the binding's two modules
//! allowed `unsafe` code; the other is `fastcall`).
//!
//! (1) Adopting the memory of a SharedArrayBuffer: Node-API on Node 20 cannot take a
//! SharedArrayBuffer itself, only a typed-array view of it, and we must hold a reference so the
//! memory outlives every pointer we keep. (2) Exposing a mapped region file to JS as an external
//! (Shared)ArrayBuffer.

use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;

use napi::sys;

use sabpool_core::mem::SharedMemory;
use sabpool_core::shm::RegionFile;
use sabpool_core::Error;

/// A strong reference to a JS value, deleted explicitly (it keeps a SharedArrayBuffer alive).
pub struct ViewRef {
  env: sys::napi_env,
  raw: sys::napi_ref,
}

impl ViewRef {
  /// The referenced JS value, as a value of the running callback (`None` if Node-API refuses).
  /// Must be called from a callback of the env that created the reference.
  pub fn value(&self) -> Option<sys::napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: `raw` is a live reference of `env` (deleted only by `delete`, which consumes self),
    // and the caller runs in that env; the out-pointer is a local.
    let status = unsafe { sys::napi_get_reference_value(self.env, self.raw, &mut value) };
    (status == sys::Status::napi_ok && !value.is_null()).then_some(value)
  }

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

// ---- who owns a mapping lent to JS -----------------------------------------------------------
//
// A finalizer's hint must never be freed twice nor leak, whatever Node does when creating the
// buffer fails: Node 20's `napi_create_external_arraybuffer` goes through `node::Buffer::New`,
// which, for a length above Buffer's limit (2^32 bytes there), throws ERR_BUFFER_TOO_LARGE *and
// calls the finalizer at once* before failing; later Nodes defer a finalizer through SetImmediate
// on some paths; Bun's and others' implementations never call it on failure; and the
// `node_api_create_external_sharedarraybuffer` of newer Nodes documents nothing either way. So
// the hint is not an owning pointer but a number naming an entry of a process-wide table, and the
// entry is taken out exactly once: by the finalizer, or by the failed creation, whichever comes
// first. Numbers are never reused (a u64 counter), so a late finalizer of a failed creation finds
// nothing and does nothing.

/// Mappings lent to JS buffers, by the number passed as the buffer's finalizer hint.
static LENT: std::sync::Mutex<Option<std::collections::HashMap<usize, Arc<RegionFile>>>> =
  std::sync::Mutex::new(None);
static NEXT_LOAN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

fn lend(file: &Arc<RegionFile>) -> usize {
  let loan = NEXT_LOAN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
  let mut lent = LENT.lock().unwrap_or_else(|e| e.into_inner());
  lent
    .get_or_insert_with(Default::default)
    .insert(loan, file.clone());
  loan
}

/// Ends loan `loan` if it is still on: drops that reference to the mapping. Idempotent.
fn end_loan(loan: usize) {
  let taken = {
    let mut lent = LENT.lock().unwrap_or_else(|e| e.into_inner());
    lent.as_mut().and_then(|lent| lent.remove(&loan))
  };
  // Dropped outside the lock: unmapping may take a while.
  drop(taken);
}

unsafe extern "C" fn drop_region_noenv(_data: *mut c_void, hint: *mut c_void) {
  // The hint is a loan number, not a pointer: nothing is dereferenced.
  end_loan(hint as usize);
}

unsafe extern "C" fn drop_region(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
  end_loan(hint as usize);
}

/// Clears the JS exception a failed Node-API call left pending (Node 20 throws
/// ERR_BUFFER_TOO_LARGE from inside `napi_create_external_arraybuffer`), so the binding's own
/// typed error is what JS sees.
fn clear_pending_exception(env: sys::napi_env) {
  let mut pending = false;
  let mut exception = ptr::null_mut();
  // SAFETY: plain Node-API calls in the current env with out-pointers to locals.
  unsafe {
    if sys::napi_is_exception_pending(env, &mut pending) == sys::Status::napi_ok && pending {
      sys::napi_get_and_clear_last_exception(env, &mut exception);
    }
  }
}

/// A JS buffer over the whole mapping of `file`: a SharedArrayBuffer where Node can make one from
/// external memory, else an ArrayBuffer. Either keeps the mapping alive until it is collected.
pub fn region_buffer(
  env: &napi::Env,
  file: &Arc<RegionFile>,
) -> Result<napi::Unknown<'static>, BufferError> {
  let env = env.raw();
  let (value, _shared) = external_buffer(env, file)?;
  // SAFETY: `value` was just created in `env` by Node-API and is returned to JS from this call.
  Ok(unsafe { napi::Unknown::from_raw_unchecked(env, value) })
}

/// Why a region could not be exposed to JS.
pub enum BufferError {
  /// Node refused a buffer of this length (above Buffer's limit, 2^32 bytes on Node 20).
  TooLarge(usize),
  /// This runtime does not allow buffers over external memory at all.
  NotAllowed,
}

/// Creates the external (Shared)ArrayBuffer; returns it and whether it is a SharedArrayBuffer.
fn external_buffer(
  env: sys::napi_env,
  file: &Arc<RegionFile>,
) -> Result<(sys::napi_value, bool), BufferError> {
  let data = file.as_ptr() as *mut c_void;
  let len = file.len();
  let mut result = ptr::null_mut();
  if let Some(create) = create_external_sab() {
    let loan = lend(file);
    // SAFETY: `data` is valid for `len` bytes until the mapping is dropped, which happens no
    // earlier than the end of the loan (the finalizer ends it). The hint is a number, never
    // dereferenced.
    let status = unsafe {
      create(
        env,
        data,
        len,
        Some(drop_region_noenv),
        loan as *mut c_void,
        &mut result,
      )
    };
    if status == sys::Status::napi_ok {
      return Ok((result, true));
    }
    // Whether or not Node ran (or will run) the finalizer, the loan ends exactly once.
    end_loan(loan);
    clear_pending_exception(env);
  }
  let loan = lend(file);
  // SAFETY: as above. The buffer may be detached by JS (transfer); that only invalidates JS views,
  // never memory Rust uses (the registry holds its own reference to the mapping).
  let status = unsafe {
    sys::napi_create_external_arraybuffer(
      env,
      data,
      len,
      Some(drop_region),
      loan as *mut c_void,
      &mut result,
    )
  };
  if status != sys::Status::napi_ok {
    end_loan(loan);
    clear_pending_exception(env);
    return Err(if status == sys::Status::napi_no_external_buffers_allowed {
      BufferError::NotAllowed
    } else {
      // Node 20 fails this way for lengths above Buffer's limit (2^32 bytes); anything else
      // refused here is also a length this Node will not expose.
      BufferError::TooLarge(len)
    });
  }
  Ok((result, false))
}
