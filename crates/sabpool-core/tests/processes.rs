//! Processes sharing a file-backed pool and channel: producer and consumer processes (this test
//! binary re-run in a child role) move a million slots with checksums, parking on futexes in the
//! mapped file whenever the pool is empty or the channel full or empty.
#![cfg(all(target_os = "linux", not(loom)))]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use sabpool_core::futex;
use sabpool_core::layout::{
  ChannelLayout, PoolLayout, C_RECV_EPOCH, C_RECV_WAITERS, C_SEND_EPOCH, C_SEND_WAITERS,
  P_FREE_EPOCH,
};
use sabpool_core::mem::Memory;
use sabpool_core::shm::{self, MappedMemory, RegionFile};
use sabpool_core::{Channel, Lease, Pool, Received, Sent, Wake};

const SLOT_SIZE: u32 = 64;
const SLOTS: u32 = 32;
const CAPACITY: u32 = 16;
const PRODUCERS: u64 = 2;
const CONSUMERS: u64 = 2;
const PER_PRODUCER: u64 = 500_000;
const ROLE: &str = "SABPOOL_TEST_ROLE";
const DIR: &str = "SABPOOL_TEST_DIR";

fn map(path: &Path) -> MappedMemory {
  MappedMemory::new(RegionFile::open(path).unwrap()).unwrap()
}

/// Wakes every futex waiter on `epoch` if the core asked for it.
fn deliver<M: Memory>(mem: &M, wake: Wake, epoch: usize) {
  if wake.0 {
    futex::wake_all(mem.u32_at(epoch).unwrap());
  }
}

/// Registers as a waiter on `waiters`, retries `attempt`, and parks on `epoch` until it succeeds.
fn wait_for<M: Memory, T>(
  mem: &M,
  waiters: usize,
  epoch: usize,
  attempt: impl FnMut() -> Option<T>,
) -> T {
  wait_for_sliced(mem, waiters, epoch, Duration::from_millis(50), attempt).0
}

/// As `wait_for`, parking at most `slice` at a time; also returns how many times it parked.
fn wait_for_sliced<M: Memory, T>(
  mem: &M,
  waiters: usize,
  epoch: usize,
  slice: Duration,
  mut attempt: impl FnMut() -> Option<T>,
) -> (T, u32) {
  let mut parks = 0;
  loop {
    if let Some(t) = attempt() {
      return (t, parks);
    }
    let count = mem.u32_at(waiters).unwrap();
    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let word = mem.u32_at(epoch).unwrap();
    let seen = word.load(std::sync::atomic::Ordering::SeqCst);
    let got = attempt();
    if got.is_none() {
      parks += 1;
      futex::wait(word, seen, Some(slice));
    }
    count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    if let Some(t) = got {
      return (t, parks);
    }
  }
}

/// The payload of item `seq` of producer `p`: slot words 0..8, word 7 a checksum of the rest.
fn payload(p: u64, seq: u64) -> [u64; 8] {
  let mut w = [0u64; 8];
  w[0] = p;
  w[1] = seq;
  for (i, word) in w.iter_mut().enumerate().take(7).skip(2) {
    *word = (p << 40 ^ seq)
      .wrapping_mul(0x9e37_79b9_7f4a_7c15)
      .rotate_left(i as u32 * 7);
  }
  w[7] = w[..7].iter().fold(0xcbf2_9ce4_8422_2325, |h, x| {
    (h ^ x).wrapping_mul(0x100_0000_01b3)
  });
  w
}

fn child(role: &str, dir: &Path) {
  let pool = Pool::attach(map(&dir.join("pool"))).unwrap();
  let channel = Channel::attach(map(&dir.join("channel"))).unwrap();
  let pid = std::process::id();
  let me = pool.join_process(pid as u64, shm::this_process()).unwrap();
  let data = |slot: u32, i: usize| pool.layout().data(slot) + i * 8;
  if role == "sleeper" {
    // Parks with a 20 s slice: only a futex wake from another process ends it early.
    let cmem = channel.memory();
    let (lease, parks) = wait_for_sliced(
      cmem,
      C_RECV_WAITERS,
      C_RECV_EPOCH,
      Duration::from_secs(20),
      || match channel.try_recv(&pool, me).unwrap() {
        Received::Lease(lease, _, wake) => {
          deliver(cmem, wake, C_SEND_EPOCH);
          Some(lease)
        }
        _ => None,
      },
    );
    let _ = pool.release(me, lease).unwrap();
    println!("woken after {parks} parks");
  } else if let Some(p) = role.strip_prefix("producer-") {
    let p: u64 = p.parse().unwrap();
    for seq in 0..PER_PRODUCER {
      let pmem = pool.memory();
      let lease = wait_for(
        pmem,
        sabpool_core::layout::P_FREE_WAITERS,
        P_FREE_EPOCH,
        || pool.try_acquire(me).unwrap(),
      );
      for (i, w) in payload(p, seq).iter().enumerate() {
        pmem
          .u64_at(data(lease.slot, i))
          .unwrap()
          .store(*w, std::sync::atomic::Ordering::Relaxed);
      }
      let cmem = channel.memory();
      wait_for(cmem, C_SEND_WAITERS, C_SEND_EPOCH, || {
        match channel.try_send(&pool, me, lease, 64).unwrap() {
          Sent::Sent(wake) => {
            deliver(cmem, wake, C_RECV_EPOCH);
            Some(())
          }
          Sent::Full => None,
        }
      });
    }
    println!("produced {PER_PRODUCER}");
  } else {
    // Consumers stop at the end-of-stream items (seq u64::MAX) sent once the producers finish.
    let mut last = vec![None::<u64>; PRODUCERS as usize];
    let mut count = 0u64;
    let mut sum = 0u64;
    loop {
      let cmem = channel.memory();
      let lease: Lease = wait_for(cmem, C_RECV_WAITERS, C_RECV_EPOCH, || {
        match channel.try_recv(&pool, me).unwrap() {
          Received::Lease(lease, _, wake) => {
            deliver(cmem, wake, C_SEND_EPOCH);
            Some(lease)
          }
          Received::Empty => None,
          Received::Closed => panic!("closed"),
        }
      });
      let pmem = pool.memory();
      let words: Vec<u64> = (0..8)
        .map(|i| {
          pmem
            .u64_at(data(lease.slot, i))
            .unwrap()
            .load(std::sync::atomic::Ordering::Relaxed)
        })
        .collect();
      let wake = pool.release(me, lease).unwrap();
      deliver(pmem, wake, P_FREE_EPOCH);
      if words[1] == u64::MAX {
        break;
      }
      let (p, seq) = (words[0], words[1]);
      assert_eq!(words[..], payload(p, seq), "corrupted payload");
      // Per-producer order holds for each consumer's subsequence.
      let prev = &mut last[p as usize];
      assert!(
        prev.is_none_or(|prev| prev < seq),
        "out of order: {prev:?} then {seq}"
      );
      *prev = Some(seq);
      count += 1;
      sum = sum.wrapping_add(words[7]);
    }
    println!("consumed {count} {sum}");
  }
  let _ = pool.leave(me, pid as u64).unwrap();
}

#[test]
fn child_role() {
  // Only does something when this binary runs as a child of the test below.
  if let (Ok(role), Ok(dir)) = (std::env::var(ROLE), std::env::var(DIR)) {
    child(&role, Path::new(&dir));
  }
}

fn spawn(role: &str, dir: &Path) -> std::process::Child {
  Command::new(std::env::current_exe().unwrap())
    .args([
      "--exact",
      "child_role",
      "--nocapture",
      "--test-threads",
      "1",
    ])
    .env(ROLE, role)
    .env(DIR, dir)
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap()
}

fn output(child: std::process::Child) -> String {
  let out = child.wait_with_output().unwrap();
  assert!(out.status.success(), "child failed: {out:?}");
  String::from_utf8(out.stdout).unwrap()
}

/// A pool and a channel in files of a fresh directory, removed on drop.
struct Regions {
  dir: PathBuf,
  pool: Arc<RegionFile>,
  _channel: Arc<RegionFile>,
}

impl Regions {
  fn new(tag: &str) -> Regions {
    let dir = std::env::temp_dir().join(format!("sabpool-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pool_len = PoolLayout::new(SLOT_SIZE, SLOTS, 16).unwrap().total_len;
    let pool = RegionFile::create_exclusive(&dir, "pool", pool_len, 0o600, |m| {
      Pool::create(m, SLOT_SIZE, SLOTS, 16, 7).map(|_| ())
    })
    .unwrap()
    .0;
    let channel_len = ChannelLayout::new(CAPACITY).unwrap().total_len;
    let channel = RegionFile::create_exclusive(&dir, "channel", channel_len, 0o600, |m| {
      Channel::create(m, CAPACITY, 8, 7).map(|_| ())
    })
    .unwrap()
    .0;
    Regions {
      dir,
      pool,
      _channel: channel,
    }
  }
}

impl Drop for Regions {
  fn drop(&mut self) {
    let _ = std::fs::remove_dir_all(&self.dir);
  }
}

#[test]
fn a_process_parked_on_a_futex_is_woken_by_another_process() {
  if std::env::var(ROLE).is_ok() {
    return;
  }
  let regions = Regions::new("wake");
  let sleeper = spawn("sleeper", &regions.dir);
  let pool = Pool::attach(MappedMemory::new(regions.pool.clone()).unwrap()).unwrap();
  let channel = Channel::attach(map(&regions.dir.join("channel"))).unwrap();
  let me = pool.join(1, std::process::id()).unwrap();
  // Send only once the sleeper is registered as a waiting receiver.
  let waiters = channel.memory().u32_at(C_RECV_WAITERS).unwrap();
  let deadline = std::time::Instant::now() + Duration::from_secs(20);
  while waiters.load(std::sync::atomic::Ordering::SeqCst) == 0 {
    assert!(
      std::time::Instant::now() < deadline,
      "the sleeper never parked"
    );
    std::thread::sleep(Duration::from_millis(1));
  }
  std::thread::sleep(Duration::from_millis(20));
  let started = std::time::Instant::now();
  let lease = pool.try_acquire(me).unwrap().unwrap();
  match channel.try_send(&pool, me, lease, 0).unwrap() {
    Sent::Sent(wake) => {
      assert!(wake.0, "a registered receiver asks for a wake-up");
      deliver(channel.memory(), wake, C_RECV_EPOCH);
    }
    Sent::Full => panic!("full"),
  }
  let out = output(sleeper);
  // Without the cross-process wake the sleeper would sleep out its 20 s slice.
  assert!(
    started.elapsed() < Duration::from_secs(10),
    "{:?}",
    started.elapsed()
  );
  assert!(out.contains("woken after 1 parks"), "{out}");
}

#[test]
fn processes_move_a_million_slots_through_futex_waits() {
  if std::env::var(ROLE).is_ok() {
    return;
  }
  let regions = Regions::new("procs");
  let dir = regions.dir.clone();
  let pool_file = regions.pool.clone();

  let consumers: Vec<_> = (0..CONSUMERS)
    .map(|c| spawn(&format!("consumer-{c}"), &dir))
    .collect();
  let producers: Vec<_> = (0..PRODUCERS)
    .map(|p| spawn(&format!("producer-{p}"), &dir))
    .collect();
  for p in producers {
    assert!(output(p).contains(&format!("produced {PER_PRODUCER}")));
  }
  // One end-of-stream item per consumer.
  let pool = Pool::attach(MappedMemory::new(pool_file.clone()).unwrap()).unwrap();
  let channel = Channel::attach(map(&dir.join("channel"))).unwrap();
  let me = pool.join((1 << 62) - 7, std::process::id()).unwrap();
  for _ in 0..CONSUMERS {
    let lease = wait_for(
      pool.memory(),
      sabpool_core::layout::P_FREE_WAITERS,
      P_FREE_EPOCH,
      || pool.try_acquire(me).unwrap(),
    );
    let slot = pool.layout().data(lease.slot);
    pool
      .memory()
      .u64_at(slot + 8)
      .unwrap()
      .store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
    wait_for(
      channel.memory(),
      C_SEND_WAITERS,
      C_SEND_EPOCH,
      || match channel.try_send(&pool, me, lease, 64).unwrap() {
        Sent::Sent(wake) => {
          deliver(channel.memory(), wake, C_RECV_EPOCH);
          Some(())
        }
        Sent::Full => None,
      },
    );
  }
  let mut total = 0;
  let mut sum = 0u64;
  for c in consumers {
    let out = output(c);
    // The harness prints "test child_role ... " on the same line before the child's output.
    let line = &out[out.find("consumed ").expect("a consumer reports") + "consumed ".len()..];
    let mut parts = line.split_whitespace();
    total += parts.next().unwrap().parse::<u64>().unwrap();
    sum = sum.wrapping_add(parts.next().unwrap().parse::<u64>().unwrap());
  }
  let expected = (0..PRODUCERS)
    .flat_map(|p| (0..PER_PRODUCER).map(move |s| payload(p, s)[7]))
    .fold(0u64, |a, x| a.wrapping_add(x));
  assert_eq!(total, PRODUCERS * PER_PRODUCER);
  assert_eq!(sum, expected, "checksum over every item");
  let stats = pool.stats().unwrap();
  assert_eq!(stats.in_use, 0);
  assert_eq!(stats.acquired, stats.released + stats.reclaimed);
  assert_eq!(pool.free_list_len().unwrap(), SLOTS);
}
