//! Native errors as JS sees them. Every error the binding throws is a `napi::Error` whose status
//! string is the stable code (`err.code` in JS); the JS wrapper picks the error class from it.

use sabpool_core::shm::ShmError;
use sabpool_core::Error as CoreError;

use super::registry::{self, ChannelEntry, Lookup, PoolEntry};

pub const DETACHED: &str = "ERR_SABPOOL_DETACHED";
pub const DETACHED_MESSAGE: &str = "this pool, channel or table has been detached in this thread";
/// An invariant of sabpool itself broke (a re-entrant call into the attachment table, a wrapper
/// call out of order, Node-API refusing a call that cannot fail): please report it.
pub const INTERNAL: &str = "ERR_SABPOOL_INTERNAL";
pub const INTERNAL_MESSAGE: &str = "an invariant of sabpool itself broke; please report";
/// A file-only operation on a pool or channel that lives in this process's memory.
pub const NOT_FILE: &str = "ERR_SABPOOL_NOT_FILE";
pub const INVALID_ARG_TYPE: &str = "ERR_INVALID_ARG_TYPE";
/// A number outside the values an argument may take.
pub const OUT_OF_RANGE: &str = "ERR_OUT_OF_RANGE";
/// The operating system refused something (here: starting a thread).
pub const IO: &str = "ERR_SABPOOL_IO";
/// A region larger than this Node can expose to JS as one buffer.
pub const TOO_LARGE: &str = "ERR_SABPOOL_TOO_LARGE";
/// Something this platform or runtime cannot do.
pub const UNSUPPORTED: &str = "ERR_SABPOOL_UNSUPPORTED";

pub fn error(code: &str, message: impl Into<String>) -> napi::Error<String> {
  napi::Error::new(code.to_string(), message.into())
}

pub fn core(e: CoreError) -> napi::Error<String> {
  error(e.code(), e.to_string())
}

pub fn shm(e: ShmError) -> napi::Error<String> {
  error(e.code(), e.to_string())
}

/// A region that could not be exposed to JS as a buffer.
pub fn buffer(e: super::memory::BufferError) -> napi::Error<String> {
  match e {
    super::memory::BufferError::TooLarge(len) => error(
      TOO_LARGE,
      format!(
        "this region is {len} bytes, more than this Node can expose to JavaScript as one buffer \
         (Node 20 allows at most 2^32 bytes: buffer.constants.MAX_LENGTH)"
      ),
    ),
    super::memory::BufferError::NotAllowed => error(
      UNSUPPORTED,
      "this runtime does not allow buffers over external memory, which file-backed regions need",
    ),
  }
}

pub fn internal(what: &str) -> napi::Error<String> {
  error(INTERNAL, format!("{INTERNAL_MESSAGE}: {what}"))
}

pub fn not_file(message: &str) -> napi::Error<String> {
  error(NOT_FILE, message)
}

/// Why an attachment of this thread could not be reached.
pub fn lookup(e: Lookup) -> napi::Error<String> {
  match e {
    Lookup::Unknown => error(DETACHED, DETACHED_MESSAGE),
    Lookup::Busy => internal("re-entrant call into this thread's attachment table"),
  }
}

/// Runs `f` on a pool attachment of this thread; maps lookup and core errors to JS errors.
pub fn on_pool<T>(
  id: u32,
  f: impl FnOnce(&PoolEntry) -> sabpool_core::Result<T>,
) -> napi::Result<T, String> {
  registry::with_pool(id, f).map_err(lookup)?.map_err(core)
}

/// Runs `f` on a channel attachment of this thread; maps lookup and core errors to JS errors.
pub fn on_channel<T>(
  id: u32,
  f: impl FnOnce(&ChannelEntry) -> sabpool_core::Result<T>,
) -> napi::Result<T, String> {
  registry::with_channel(id, f).map_err(lookup)?.map_err(core)
}
