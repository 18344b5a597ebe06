//! Fuzz target: a pool and a channel in owned memory, part of their regions overwritten with fuzz
//! bytes, attached, then driven by a fuzz-chosen operation sequence. See `sabpool_fuzz::run`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
  sabpool_fuzz::run(data);
});
