//! The body of the `region` fuzz target, kept free of libFuzzer so that a stable `cargo test`
//! (tests/fuzz_region.rs) can replay the corpus and run it on pseudo-random inputs too.
//!
//! The input is read as:
//! 1. geometry: slot size, slot count, participant count, channel capacity, slack bytes after
//!    each region (so a scribbled header may claim a slightly larger region than was created);
//! 2. a short warm-up that leaves live state behind (leased, handed-off and queued slots);
//! 3. **region bytes**: up to 4 patches, each copying fuzz bytes over one area of the pool or
//!    channel region (header, free-list line, participant table, slot metadata, ring cells);
//! 4. attach: a fresh `Pool::attach` / `Channel::attach` of the scribbled regions, checked to
//!    describe geometry inside the region when it succeeds;
//! 5. **an operation sequence**: every public call of the core on either view (the creator's,
//!    which cached the original geometry, and the attached one), with held leases, tickets or
//!    forged (slot, generation) pairs, and more scribbles in between.
//!
//! Errors are fine. What must never happen: a panic (including arithmetic overflow: fuzz builds
//! keep debug assertions), an access outside the regions (every access goes through the bounds-
//! checked `Memory` of `OwnedMemory`; AddressSanitizer watches the rest), a hang (libFuzzer's
//! `-timeout`), an out-of-range answer (a slot index past the pool, a length past the slot
//! size, counts past their bounds), or `Error::Contended`: with one thread nothing contends, so a
//! retry loop that runs out means corruption was spun on instead of detected.

use sabpool_core::layout::*;
use sabpool_core::mem::Memory;
use sabpool_core::pool::NIL;
use sabpool_core::sync::Ordering;
use sabpool_core::{
  Channel, ChannelStats, Error, Lease, OwnedMemory, Participant, Pool, Received, Result, Sent,
  SlotState, SlotWord,
};

const POOL_UID: u32 = 0x5eed_0001;
const CHANNEL_UID: u32 = 0xc4a7_0001;

/// Reads the fuzz input front to back; past the end every read is 0 and `done()` is true.
struct Input<'a> {
  data: &'a [u8],
  pos: usize,
}

impl<'a> Input<'a> {
  fn byte(&mut self) -> u8 {
    let b = self.data.get(self.pos).copied().unwrap_or(0);
    self.pos += 1;
    b
  }
  fn u16(&mut self) -> u16 {
    u16::from_le_bytes([self.byte(), self.byte()])
  }
  fn u32(&mut self) -> u32 {
    u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
  }
  fn u64(&mut self) -> u64 {
    (self.u32() as u64) | (self.u32() as u64) << 32
  }
  fn bytes(&mut self, n: usize) -> &'a [u8] {
    let start = self.pos.min(self.data.len());
    let end = (start + n).min(self.data.len());
    self.pos += n;
    &self.data[start..end]
  }
  fn done(&self) -> bool {
    self.pos >= self.data.len()
  }
}

/// Copies `bytes` over the region at `offset` (clipped to the region), a word at a time through
/// the atomics, as a JS thread writing through a typed array would.
fn patch(mem: &OwnedMemory, offset: usize, bytes: &[u8]) {
  for (i, &b) in bytes.iter().enumerate() {
    let at = offset + i;
    if at >= mem.len() {
      break;
    }
    let Ok(word) = mem.u32_at(at & !3) else {
      break; // the last, partial word of an odd-length region
    };
    let shift = (at & 3) * 8;
    let old = word.load(Ordering::Relaxed);
    word.store(
      (old & !(0xff << shift)) | ((b as u32) << shift),
      Ordering::Relaxed,
    );
  }
}

/// Areas of the two regions a patch or scribble may target.
fn area(
  which: u8,
  pool: &PoolLayout,
  pool_len: usize,
  chan: &ChannelLayout,
  chan_len: usize,
) -> (bool, usize, usize) {
  // (is_pool, start, end)
  match which % 8 {
    0 => (true, 0, P_PARTICIPANTS), // header, free-list line, wait line, totals
    1 => (true, P_FREE_HEAD, P_FREE_HEAD + 16),
    2 => (true, P_PARTICIPANTS, pool.meta_offset), // participant table
    3 | 4 => (true, pool.meta_offset, pool.data_offset), // slot metadata
    5 => (true, 0, pool_len),
    6 => (false, 0, C_CELLS), // channel header and positions
    _ => (false, C_CELLS, chan_len.max(chan.total_len)), // ring cells (and any slack)
  }
}

fn check_pool_layout(layout: &PoolLayout, len: usize) {
  let again = PoolLayout::new(layout.slot_size, layout.slot_count, layout.max_participants)
    .expect("an attached layout is a valid geometry");
  assert_eq!(*layout, again, "attached layout is not self-consistent");
  assert!(
    layout.total_len <= len,
    "{layout:?} exceeds the {len}-byte region"
  );
  assert!(layout.data(layout.slot_count - 1) + layout.stride as usize <= layout.total_len);
}

fn check_channel_layout(layout: &ChannelLayout, len: usize) {
  assert_eq!(*layout, ChannelLayout::new(layout.capacity).unwrap());
  assert!(layout.total_len <= len);
  assert!(layout.cell(u64::MAX) + CELL_SIZE <= layout.total_len);
}

struct Member {
  view: usize,
  who: Participant,
  token: u64,
}

struct World<'a> {
  pools: Vec<Pool<&'a OwnedMemory>>,
  channels: Vec<Channel<&'a OwnedMemory>>,
  members: Vec<Member>,
  next_token: u64,
  held: Vec<Lease>,
  tickets: Vec<Lease>,
}

impl World<'_> {
  fn join(&mut self, view: usize) -> Result<()> {
    let token = self.next_token;
    self.next_token += 1;
    let who = self.pools[view].join(token, 7)?;
    assert!(who.0 < self.pools[view].layout().max_participants);
    self.members.push(Member { view, who, token });
    Ok(())
  }

  /// A lease to operate on: a held one (taken out), a ticket, or a forged pair.
  fn lease(&mut self, input: &mut Input) -> Lease {
    let pick = input.byte();
    match pick % 4 {
      0 | 1 if !self.held.is_empty() => {
        let i = input.byte() as usize % self.held.len();
        self.held.swap_remove(i)
      }
      2 if !self.tickets.is_empty() => {
        let i = input.byte() as usize % self.tickets.len();
        self.tickets.swap_remove(i)
      }
      _ => Lease {
        slot: if pick & 0x80 != 0 {
          input.u32()
        } else {
          input.byte() as u32 % 20
        },
        generation: if pick & 0x40 != 0 {
          input.u32()
        } else {
          input.byte() as u32 % 4
        },
      },
    }
  }
}

fn check_stats(pool: &Pool<&OwnedMemory>, channel_stats: Option<ChannelStats>, capacity: u32) {
  let layout = *pool.layout();
  if let Ok(s) = pool.stats() {
    assert_eq!(s.slots, layout.slot_count);
    assert!(s.in_use <= s.slots, "{s:?}");
    assert!(s.participants <= layout.max_participants, "{s:?}");
  }
  if let Ok(census) = pool.census() {
    assert_eq!(census.iter().sum::<u32>(), layout.slot_count);
  }
  if let Ok(n) = pool.free_list_len() {
    assert!(n <= layout.slot_count);
  }
  if let Some(s) = channel_stats {
    assert!(s.queued <= capacity as u64, "{s:?}");
  }
}

/// Runs one fuzz input. Panics only on a violated guarantee (see the module docs).
pub fn run(data: &[u8]) {
  let mut input = Input { data, pos: 0 };
  // ---- 1. geometry ----------------------------------------------------------------------------
  let slot_size = [1u32, 8, 63, 64, 65, 100, 256, 4096][input.byte() as usize % 8];
  let slots = 1 + input.byte() as u32 % 12;
  let parts = 1 + input.byte() as u32 % 4;
  let capacity = 2u32 << (input.byte() % 4);
  let slack = input.byte();
  let pool_layout = PoolLayout::new(slot_size, slots, parts).unwrap();
  let pool_len = pool_layout.total_len + (slack as usize % 4) * 64 + (slack as usize >> 4);
  let chan_layout = ChannelLayout::new(capacity).unwrap();
  let chan_len = chan_layout.total_len + (slack as usize >> 2 & 3) * 16;
  let pool_mem = OwnedMemory::new(pool_len);
  let chan_mem = OwnedMemory::new(chan_len);
  let creator = Pool::create(&pool_mem, slot_size, slots, parts, POOL_UID).unwrap();
  let chan_creator = Channel::create(&chan_mem, capacity, CHANNEL_UID, POOL_UID).unwrap();
  let mut world = World {
    pools: vec![creator],
    channels: vec![chan_creator],
    members: Vec::new(),
    next_token: 1,
    held: Vec::new(),
    tickets: Vec::new(),
  };
  for _ in 0..parts.min(2) {
    world.join(0).unwrap();
  }

  // ---- 2. warm-up: live state -------------------------------------------------------------------
  let warm = input.byte();
  for i in 0..(warm % 8) {
    let who = world.members[i as usize % world.members.len()].who;
    let pool = &world.pools[0];
    if let Some(lease) = pool.try_acquire(who).unwrap() {
      match (warm >> 3).wrapping_add(i) % 3 {
        0 => world.held.push(lease),
        1 => {
          let ticket = pool
            .handoff(who, lease, i as u32 % (slot_size + 1))
            .unwrap();
          world.tickets.push(ticket);
        }
        _ => match world.channels[0].try_send(pool, who, lease, 0).unwrap() {
          Sent::Sent(_) => {}
          Sent::Full => world.held.push(lease),
        },
      }
    }
  }

  // ---- 3. region bytes ---------------------------------------------------------------------------
  for _ in 0..(input.byte() % 5) {
    let (is_pool, start, end) = area(input.byte(), &pool_layout, pool_len, &chan_layout, chan_len);
    let offset = start + input.u16() as usize % (end - start).max(1);
    let len = input.byte() as usize;
    let bytes = input.bytes(len);
    patch(if is_pool { &pool_mem } else { &chan_mem }, offset, bytes);
  }

  // ---- 4. attach ----------------------------------------------------------------------------------
  if let Ok(pool) = Pool::attach(&pool_mem) {
    check_pool_layout(pool.layout(), pool_len);
    world.pools.push(pool);
    let _ = world.join(1);
  }
  if let Ok(channel) = Channel::attach(&chan_mem) {
    check_channel_layout(channel.layout(), chan_len);
    world.channels.push(channel);
  }

  // ---- 5. operations ---------------------------------------------------------------------------------
  let mut steps = 0;
  while !input.done() && steps < 2000 {
    steps += 1;
    let op = input.byte();
    let sel = input.byte();
    let view = sel as usize % world.pools.len();
    let chan_index = (sel as usize >> 4) % world.channels.len();
    let members: Vec<usize> = (0..world.members.len())
      .filter(|&m| world.members[m].view == view)
      .collect();
    if members.is_empty() {
      if world.join(view).is_err() {
        continue;
      }
      continue;
    }
    let m = members[(sel as usize >> 1) % members.len()];
    let who = world.members[m].who;
    let pool_slots = world.pools[view].layout().slot_count;
    let pool_slot_size = world.pools[view].layout().slot_size;
    let result: Result<()> = match op % 18 {
      0..=2 => world.pools[view].try_acquire(who).map(|lease| {
        if let Some(lease) = lease {
          assert!(
            lease.slot < pool_slots,
            "acquired {lease:?} of {pool_slots} slots"
          );
          world.held.push(lease);
        }
      }),
      3 | 4 => {
        let lease = world.lease(&mut input);
        world.pools[view].release(who, lease).map(|_| ())
      }
      5 => {
        let lease = world.lease(&mut input);
        let length = input.u16() as u32 % (pool_slot_size + 4);
        world.pools[view]
          .handoff(who, lease, length)
          .map(|ticket| world.tickets.push(ticket))
      }
      6 => {
        let lease = world.lease(&mut input);
        world.pools[view].adopt(who, lease).map(|length| {
          assert!(length <= pool_slot_size, "adopted length {length}");
          world.held.push(lease);
        })
      }
      7 | 8 => {
        let lease = world.lease(&mut input);
        let length = input.u16() as u32 % (pool_slot_size + 4);
        let pool = &world.pools[view];
        match world.channels[chan_index].try_send(pool, who, lease, length) {
          Ok(Sent::Sent(_)) => Ok(()),
          Ok(Sent::Full) => {
            world.held.push(lease);
            Ok(())
          }
          Err(e) => Err(e),
        }
      }
      9 | 10 => {
        let pool = &world.pools[view];
        world.channels[chan_index].try_recv(pool, who).map(|r| {
          if let Received::Lease(lease, length, _) = r {
            assert!(lease.slot < pool_slots, "received {lease:?}");
            assert!(length <= pool_slot_size, "received length {length}");
            world.held.push(lease);
          }
        })
      }
      11 => world.pools[view]
        .reclaim(who)
        .map(|(n, _)| assert!(n <= pool_slots)),
      12 => {
        let token = world.members[m].token;
        let left = world.pools[view].leave(who, token);
        world.members.swap_remove(m);
        left.map(|(n, _)| assert!(n <= pool_slots))
      }
      13 => world.join(view),
      14 => {
        let channel = &world.channels[chan_index];
        match sel % 4 {
          0 => channel.close().map(|_| ()),
          1 => channel.add_waiters(sel & 16 != 0, if sel & 32 != 0 { 1 } else { -1 }),
          2 => channel.note_wait(sel & 16 != 0),
          _ => channel.is_closed().map(|_| ()),
        }
      }
      15 => {
        let pool = &world.pools[view];
        let capacity = world.channels[chan_index].layout().capacity;
        check_stats(pool, world.channels[chan_index].stats().ok(), capacity);
        let slot = input.byte() as u32 % (pool_slots + 2);
        let index = input.byte() as u32 % 6;
        pool
          .length(slot)
          .map(|n| assert!(n <= pool_slot_size))
          .and_then(|_| pool.slot_state(slot).map(|_| ()))
          .and_then(|_| pool.participant_info(index).map(|_| ()))
      }
      16 => {
        let pool = &world.pools[view];
        match sel % 3 {
          0 => pool.add_waiters(if sel & 8 != 0 { 1 } else { -1 }),
          1 => pool.note_wait(who),
          _ => pool.stats().map(|_| ()),
        }
      }
      _ => {
        // A scribble while running: one word of either region.
        let (is_pool, start, end) =
          area(input.byte(), &pool_layout, pool_len, &chan_layout, chan_len);
        let mem = if is_pool { &pool_mem } else { &chan_mem };
        let offset = start + input.u16() as usize % (end - start).max(1);
        match sel % 4 {
          0 => patch(mem, offset & !7, &input.u64().to_le_bytes()),
          1 => {
            // A plausible slot word or free-list head.
            let word = SlotWord::new(
              input.byte() as u32 % 4,
              input.byte() as u32 % 6,
              SlotState::from_bits(input.byte() % 6),
            )
            .pack();
            patch(mem, offset & !7, &word.to_le_bytes())
          }
          2 => patch(mem, offset & !3, &NIL.to_le_bytes()),
          _ => patch(mem, offset & !3, &input.u32().to_le_bytes()),
        }
        Ok(())
      }
    };
    if let Err(e) = result {
      assert_ne!(
        e,
        Error::Contended,
        "op {} on one thread gave up contended: corruption was spun on, not detected",
        op % 18
      );
    }
    world.held.truncate(64);
    world.tickets.truncate(64);
  }
  // Whatever happened, the views still answer within bounds.
  for pool in &world.pools {
    let capacity = world.channels[0].layout().capacity;
    check_stats(pool, world.channels[0].stats().ok(), capacity);
  }
}
