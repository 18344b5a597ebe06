//! Waiting on a 32-bit word of shared memory across processes.
//!
//! V8's `Atomics.wait` keeps its own in-process wait list, so a thread of another process can never
//! wake it. Regions backed by a mapped file therefore park on the kernel: a Linux futex keyed by
//! the word's physical page (not the `FUTEX_PRIVATE_FLAG` variant, which only matches waiters of
//! one process). Elsewhere the wait falls back to short sleeps, which is correct (every caller
//! re-checks the word) but slower to react.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Blocks while `*word == expected`, for at most `timeout` (`None`: no limit). Returns early on a
/// wake, a signal or a spurious wake-up; callers always re-check their condition.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
  imp::wait(word, expected, timeout)
}

/// Wakes every thread of every process blocked in [`wait`] on `word`; returns how many woke.
pub fn wake_all(word: &AtomicU32) -> usize {
  imp::wake_all(word)
}

#[cfg(target_os = "linux")]
mod imp {
  use super::*;

  pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let spec = timeout.map(|t| libc::timespec {
      tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
      tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let spec_ptr = spec
      .as_ref()
      .map_or(std::ptr::null(), |s| s as *const libc::timespec);
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind `word` (a live reference, so valid for the
    // call) and compares it with `expected` atomically in the kernel; `spec_ptr` is null or points
    // at a timespec that outlives the call. The result (woken, EAGAIN, ETIMEDOUT, EINTR) needs no
    // handling: every caller re-checks the word.
    unsafe {
      libc::syscall(
        libc::SYS_futex,
        word.as_ptr(),
        libc::FUTEX_WAIT,
        expected,
        spec_ptr,
        std::ptr::null::<u32>(),
        0u32,
      );
    }
  }

  pub fn wake_all(word: &AtomicU32) -> usize {
    // SAFETY: FUTEX_WAKE only uses the address as a key (the word is live and aligned); the other
    // arguments are ignored for this operation.
    let woken = unsafe {
      libc::syscall(
        libc::SYS_futex,
        word.as_ptr(),
        libc::FUTEX_WAKE,
        i32::MAX,
        std::ptr::null::<libc::timespec>(),
        std::ptr::null::<u32>(),
        0u32,
      )
    };
    woken.max(0) as usize
  }
}

#[cfg(not(target_os = "linux"))]
mod imp {
  use super::*;
  use std::sync::atomic::Ordering;

  /// Longest sleep between checks of the word.
  const POLL: Duration = Duration::from_millis(1);

  pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    if word.load(Ordering::SeqCst) == expected {
      std::thread::sleep(timeout.map_or(POLL, |t| t.min(POLL)));
    }
  }

  pub fn wake_all(_word: &AtomicU32) -> usize {
    0
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::sync::atomic::Ordering::SeqCst;
  use std::sync::Arc;
  use std::time::Instant;

  #[test]
  fn returns_at_once_when_the_word_already_differs() {
    let word = AtomicU32::new(5);
    let start = Instant::now();
    wait(&word, 4, Some(Duration::from_secs(5)));
    assert!(start.elapsed() < Duration::from_secs(1));
  }

  #[test]
  fn times_out_when_nobody_wakes() {
    let word = AtomicU32::new(0);
    let start = Instant::now();
    wait(&word, 0, Some(Duration::from_millis(30)));
    assert!(start.elapsed() >= Duration::from_millis(25));
  }

  #[test]
  fn a_wake_after_a_change_releases_a_waiter() {
    let word = Arc::new(AtomicU32::new(0));
    let waiter = {
      let word = word.clone();
      std::thread::spawn(move || {
        while word.load(SeqCst) == 0 {
          wait(&word, 0, Some(Duration::from_secs(10)));
        }
      })
    };
    std::thread::sleep(Duration::from_millis(20));
    let start = Instant::now();
    word.store(1, SeqCst);
    wake_all(&word);
    waiter.join().unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
  }
}
