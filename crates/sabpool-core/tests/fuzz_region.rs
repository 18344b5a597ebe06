//! Stable-toolchain companion of the cargo-fuzz target (fuzz/, run by scripts/fuzz.sh): the same
//! target body (fuzz/src/lib.rs) run on
//! - every input saved under fuzz/corpus/region, fuzz/artifacts/region and fuzz/regressions/region
//!   (a crash the fuzzer found becomes a regression test by dropping its file into
//!   fuzz/regressions/region), and
//! - pseudo-random inputs from a fixed seed (SABPOOL_FUZZ_INPUTS=n for more than the default).
//!
//! A violated guarantee panics inside the target; the failing input is then written to
//! target/fuzz-region-failure.bin and printed in hex, ready to be replayed with cargo-fuzz.
#![cfg(not(loom))]

#[path = "../../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod region_fuzz;

mod common;
use common::Rng;

use std::path::{Path, PathBuf};

fn run_reporting(input: &[u8], what: &str) {
  let outcome = std::panic::catch_unwind(|| region_fuzz::run(input));
  if let Err(panic) = outcome {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-region-failure.bin");
    let _ = std::fs::write(&path, input);
    let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
    eprintln!(
      "{what} failed; input saved to {} ({} bytes): {hex}",
      path.display(),
      input.len()
    );
    std::panic::resume_unwind(panic);
  }
}

fn saved_inputs() -> Vec<PathBuf> {
  let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
  let mut files = Vec::new();
  for dir in ["corpus/region", "artifacts/region", "regressions/region"] {
    if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
      for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
          files.push(entry.path());
        }
      }
    }
  }
  files.sort();
  files
}

#[test]
fn replays_saved_fuzz_inputs() {
  let files = saved_inputs();
  for file in &files {
    let input = std::fs::read(file).unwrap();
    run_reporting(&input, &file.display().to_string());
  }
  println!("replayed {} saved fuzz inputs", files.len());
}

#[test]
fn random_inputs_never_break_a_guarantee() {
  let count: u64 = std::env::var("SABPOOL_FUZZ_INPUTS")
    .ok()
    .and_then(|s| s.parse().ok())
    .unwrap_or(100_000);
  // Deterministic, so a failure reproduces from the printed index.
  let mut rng = Rng::new(0x5eed_f022);
  let mut input = Vec::new();
  for i in 0..count {
    input.clear();
    let len = (rng.next_u64() % 1024) as usize;
    // Mostly small bytes (they select operations and small indices), sometimes anything.
    let wild = rng.next_u64().is_multiple_of(4);
    for _ in 0..len {
      let r = rng.next_u64();
      input.push(if wild || r.is_multiple_of(3) {
        (r >> 8) as u8
      } else {
        (r >> 8) as u8 % 24
      });
    }
    run_reporting(&input, &format!("random input {i}"));
  }
}
