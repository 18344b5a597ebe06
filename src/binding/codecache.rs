//! The JS wrapper's own files (lib/*.js) and their V8 code caches, kept once per process, so that
//! a worker thread loads lib/ from the bytecode the first thread compiled instead of reading and
//! parsing ~80 KB of source again (that was most of what sabpool added to a worker's start).
//!
//! [`code_cache_load`] reads a file (or hands out the text it read before, if the file has not
//! changed since: same length, modification time and, on Unix, inode) together with the code
//! cache stored for that text; [`code_cache_store`] stores the cache a thread made by compiling it.
//! A cache is only ever paired with the text it was made from: each text read gets a new
//! generation, and a store for an older generation is refused. V8 checks a cache itself when it
//! consumes one (its version and flags, the source length); the bytes here are what V8 produced.
//! JS can ask for any path and store any bytes, so the store is bounded in entries and bytes.

use std::fs::{File, Metadata};
use std::io::Read;
use std::sync::Mutex;
use std::time::SystemTime;

use napi::bindgen_prelude::{Buffer, BufferSlice};
use napi_derive::napi;

use super::errors;

/// At most this many files (sabpool's lib/ has about ten).
const MAX_ENTRIES: usize = 64;
/// At most this many bytes of text and cache together, over all entries.
const MAX_BYTES: usize = 32 << 20;

/// What identifies one version of a file: if any of it changed, the file is read again.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
  len: u64,
  modified: Option<SystemTime>,
  inode: u64,
}

impl Stamp {
  fn of(meta: &Metadata) -> Stamp {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0;
    Stamp {
      len: meta.len(),
      modified: meta.modified().ok(),
      inode,
    }
  }
}

struct Entry {
  path: String,
  stamp: Stamp,
  generation: u32,
  text: String,
  cache: Option<Vec<u8>>,
}

impl Entry {
  fn bytes(&self) -> usize {
    self.path.len() + self.text.len() + self.cache.as_ref().map_or(0, Vec::len)
  }
}

struct Store {
  entries: Vec<Entry>,
  next_generation: u32,
}

static STORE: Mutex<Store> = Mutex::new(Store {
  entries: Vec::new(),
  next_generation: 1,
});

fn store() -> std::sync::MutexGuard<'static, Store> {
  // Entries are replaced whole under the lock, so a panic elsewhere cannot leave one half-written.
  STORE
    .lock()
    .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A lib file's text, the code cache stored for exactly that text (null if none yet), and the
/// generation to pass to `codeCacheStore` with the cache made from this text.
#[napi(object)]
pub struct CachedSource {
  pub text: String,
  pub cache: Option<Buffer>,
  pub generation: u32,
}

fn read_error(path: &str, e: std::io::Error) -> napi::Error<String> {
  errors::error(errors::IO, format!("cannot read {path}: {e}"))
}

/// Reads `path` as UTF-8 (without a leading byte-order mark), or returns the text read before if
/// the file is unchanged, with its code cache. Throws ERR_SABPOOL_IO if the file cannot be read or
/// is not UTF-8 (the caller then loads it by `require`, which reports it its own way).
#[napi]
pub fn code_cache_load(path: String) -> napi::Result<CachedSource, String> {
  let stamp = Stamp::of(&std::fs::metadata(&path).map_err(|e| read_error(&path, e))?);
  {
    let store = store();
    if let Some(e) = store
      .entries
      .iter()
      .find(|e| e.path == path && e.stamp == stamp)
    {
      return Ok(CachedSource {
        text: e.text.clone(),
        cache: e.cache.as_ref().map(|c| Buffer::from(c.clone())),
        generation: e.generation,
      });
    }
  }
  let mut file = File::open(&path).map_err(|e| read_error(&path, e))?;
  let stamp = Stamp::of(&file.metadata().map_err(|e| read_error(&path, e))?);
  let mut bytes = Vec::new();
  file
    .read_to_end(&mut bytes)
    .map_err(|e| read_error(&path, e))?;
  let mut text = String::from_utf8(bytes)
    .map_err(|_| errors::error(errors::IO, format!("cannot read {path}: it is not UTF-8")))?;
  if text.starts_with('\u{feff}') {
    text.drain(..'\u{feff}'.len_utf8());
  }
  let mut store = store();
  let generation = store.next_generation;
  store.next_generation = store.next_generation.wrapping_add(1).max(1);
  let entry = Entry {
    path,
    stamp,
    generation,
    text: text.clone(),
    cache: None,
  };
  let index = store.entries.iter().position(|e| e.path == entry.path);
  let others: usize = store
    .entries
    .iter()
    .enumerate()
    .filter(|(i, _)| Some(*i) != index)
    .map(|(_, e)| e.bytes())
    .sum();
  // What does not fit is not kept: this thread still gets the text, later ones read it again.
  if others + entry.bytes() <= MAX_BYTES {
    match index {
      Some(i) => store.entries[i] = entry,
      None if store.entries.len() < MAX_ENTRIES => store.entries.push(entry),
      None => {}
    }
  }
  Ok(CachedSource {
    text,
    cache: None,
    generation,
  })
}

/// Stores `cache`, which V8 made by compiling the text `codeCacheLoad` returned for `path` with
/// `generation`. Returns false (and stores nothing) if that text is no longer the one kept for
/// `path`, or if the cache does not fit the store's bounds.
#[napi]
pub fn code_cache_store(path: String, generation: u32, cache: BufferSlice) -> bool {
  let mut store = store();
  let others: usize = store
    .entries
    .iter()
    .filter(|e| e.path != path)
    .map(Entry::bytes)
    .sum();
  let Some(entry) = store
    .entries
    .iter_mut()
    .find(|e| e.path == path && e.generation == generation)
  else {
    return false;
  };
  if others + entry.path.len() + entry.text.len() + cache.len() > MAX_BYTES {
    return false;
  }
  entry.cache = Some(cache.to_vec());
  true
}
