//! The packed 64-bit words of a region, named: how a slot's state word, the tagged free-list head
//! and a ring cell's value are laid out in bits. Every pack and unpack of these words is here, so
//! the bit layout (part of layout version [`VERSION`](super::layout::VERSION)) is written once.
//!
//! Unpacking never fails: any bits read from shared memory (which anything may have scribbled on)
//! give a value, and the code using it decides whether that value is acceptable.

/// The state byte of a slot word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
  /// On the free list (or about to be pushed there); owner 0.
  Free,
  /// Owned by the participant in the owner field.
  Leased,
  /// Handed off as a ticket; owner 0 until a participant adopts it.
  InFlight,
  /// In a channel's ring; owner 0 until a participant receives it.
  Queued,
  /// Being returned to the free list by the participant in the owner field: no longer leased,
  /// and pushed or about to be. Whoever finds it at the head of the list makes it `Free`; a
  /// participant reclaiming a dead owner pushes it if it is not (see `Pool::finish_release`).
  Releasing,
  /// A byte no correct participant writes (the word was scribbled on).
  Invalid(u8),
}

impl SlotState {
  /// The valid states, in the order of their byte values (1 to 5).
  pub const VALID: [SlotState; 5] = [
    SlotState::Free,
    SlotState::Leased,
    SlotState::InFlight,
    SlotState::Queued,
    SlotState::Releasing,
  ];

  /// The byte stored in the slot word.
  pub const fn bits(self) -> u8 {
    match self {
      SlotState::Free => 1,
      SlotState::Leased => 2,
      SlotState::InFlight => 3,
      SlotState::Queued => 4,
      SlotState::Releasing => 5,
      SlotState::Invalid(bits) => bits,
    }
  }

  pub const fn from_bits(bits: u8) -> SlotState {
    match bits {
      1 => SlotState::Free,
      2 => SlotState::Leased,
      3 => SlotState::InFlight,
      4 => SlotState::Queued,
      5 => SlotState::Releasing,
      other => SlotState::Invalid(other),
    }
  }
}

/// A slot's state word: `generation << 32 | owner << 8 | state`. `owner` is a participant index
/// plus one (0: nobody) and has 24 bits; the generation moves on with every acquire and handoff so
/// older leases and tickets for the slot no longer match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotWord {
  pub generation: u32,
  pub owner: u32,
  pub state: SlotState,
}

impl SlotWord {
  /// Largest owner value the word can hold.
  pub const MAX_OWNER: u32 = 0xff_ffff;

  pub const fn new(generation: u32, owner: u32, state: SlotState) -> SlotWord {
    SlotWord {
      generation,
      owner,
      state,
    }
  }

  /// The word's bits. Owner bits beyond [`SlotWord::MAX_OWNER`] are dropped.
  #[inline]
  pub const fn pack(self) -> u64 {
    ((self.generation as u64) << 32)
      | ((self.owner as u64 & Self::MAX_OWNER as u64) << 8)
      | self.state.bits() as u64
  }

  #[inline]
  pub const fn unpack(word: u64) -> SlotWord {
    SlotWord {
      generation: (word >> 32) as u32,
      owner: ((word >> 8) & Self::MAX_OWNER as u64) as u32,
      state: SlotState::from_bits(word as u8),
    }
  }
}

/// Free-list terminator: the link of the last free slot, and the index of an empty list's head.
pub const NIL: u32 = u32::MAX;

/// The free list's head: `tag << 38 | claimer << 25 | index`.
///
/// - `index` (25 bits): the first free slot, or [`NIL`] (all ones) when the list
///   is empty. The low 32 bits of an empty list's head are [`FreeHead::EMPTY_LOW`] (an empty list
///   is never claimed), which is what the JS side polls.
/// - `claimer` (13 bits): 0, or the owner value (participant index + 1) of the participant that
///   has claimed the first slot: the pop is decided, and whoever sees the claim completes it (the
///   slot becomes leased by the claimer, then the head moves past it). A participant that dies
///   right after claiming therefore still ends up owning the slot, and reclaiming it returns it.
/// - `tag` (26 bits): changes on every successful compare-and-swap of the head, so a stale one
///   fails instead of corrupting the list (ABA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeHead {
  /// First free slot, or [`NIL`] when the list is empty.
  pub index: u32,
  /// Owner value of the participant whose pop of `index` is under way (0: none).
  pub claimer: u32,
  pub tag: u32,
}

impl FreeHead {
  const INDEX_BITS: u32 = 25;
  const CLAIMER_BITS: u32 = 13;
  const INDEX_MASK: u64 = (1 << Self::INDEX_BITS) - 1;
  const CLAIMER_MASK: u64 = (1 << Self::CLAIMER_BITS) - 1;
  /// Tags have 26 bits.
  pub const TAG_MASK: u32 = (1 << (64 - Self::INDEX_BITS - Self::CLAIMER_BITS)) - 1;
  /// The low 32 bits of the head of an empty list.
  pub const EMPTY_LOW: u32 = Self::INDEX_MASK as u32;

  #[inline]
  pub const fn pack(self) -> u64 {
    let index = if self.index == NIL {
      Self::INDEX_MASK
    } else {
      self.index as u64 & Self::INDEX_MASK
    };
    ((self.tag & Self::TAG_MASK) as u64) << (Self::INDEX_BITS + Self::CLAIMER_BITS)
      | (self.claimer as u64 & Self::CLAIMER_MASK) << Self::INDEX_BITS
      | index
  }

  #[inline]
  pub const fn unpack(word: u64) -> FreeHead {
    let index = word & Self::INDEX_MASK;
    FreeHead {
      index: if index == Self::INDEX_MASK {
        NIL
      } else {
        index as u32
      },
      claimer: ((word >> Self::INDEX_BITS) & Self::CLAIMER_MASK) as u32,
      tag: (word >> (Self::INDEX_BITS + Self::CLAIMER_BITS)) as u32,
    }
  }

  /// The head that replaces this one with `index` first, unclaimed: next tag.
  #[inline]
  pub const fn with_next(self, index: u32) -> FreeHead {
    FreeHead {
      index,
      claimer: 0,
      tag: self.tag.wrapping_add(1) & Self::TAG_MASK,
    }
  }

  /// This head with its first slot claimed by `claimer`: next tag.
  #[inline]
  pub const fn claimed_by(self, claimer: u32) -> FreeHead {
    FreeHead {
      index: self.index,
      claimer,
      tag: self.tag.wrapping_add(1) & Self::TAG_MASK,
    }
  }
}

/// A borrowed slot as the core sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
  pub slot: u32,
  pub generation: u32,
}

/// A ring cell: one 64-bit word whose compare-and-swap is the only step that matters, so a
/// participant that dies between two steps leaves a cell every other participant can read and
/// finish or skip. `kind << 62 | lap tag << 56 | slot << 32 | generation`:
/// - `Empty { tag }`: free for the producer whose position is in the lap with that tag (all other
///   bits 0, so a zeroed ring is empty for lap 0);
/// - `Full { tag, lease }`: the lease a producer put at a position of that lap; whether it is
///   really sent is said by the slot's own state word (see the channel);
/// - `Skip { tag, lease }`: a cell its producer took back (it turned out to be laps ahead of the
///   enqueue position); receivers step over it.
///
/// The lap tag is the position's lap (`position / capacity`) modulo [`RingCell::TAGS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingCell {
  Empty {
    tag: u32,
  },
  Full {
    tag: u32,
    lease: Lease,
  },
  Skip {
    tag: u32,
    lease: Lease,
  },
  /// Bits no correct participant writes.
  Invalid(u64),
}

impl RingCell {
  /// Number of distinct lap tags.
  pub const TAGS: u32 = 64;
  const KIND_SHIFT: u32 = 62;
  /// Bit position of the lap tag in the cell word.
  pub const TAG_SHIFT: u32 = 56;
  const SLOT_MASK: u64 = 0xff_ffff;

  /// The tag of lap `lap`.
  #[inline]
  pub const fn tag_of(lap: u64) -> u32 {
    (lap % Self::TAGS as u64) as u32
  }

  #[inline]
  pub const fn pack(self) -> u64 {
    let (kind, tag, lease) = match self {
      RingCell::Empty { tag } => (0u64, tag, None),
      RingCell::Skip { tag, lease } => (1, tag, Some(lease)),
      RingCell::Full { tag, lease } => (2, tag, Some(lease)),
      RingCell::Invalid(bits) => return bits,
    };
    let low = match lease {
      Some(lease) => ((lease.slot as u64 & Self::SLOT_MASK) << 32) | lease.generation as u64,
      None => 0,
    };
    (kind << Self::KIND_SHIFT) | (((tag % Self::TAGS) as u64) << Self::TAG_SHIFT) | low
  }

  #[inline]
  pub const fn unpack(word: u64) -> RingCell {
    let tag = ((word >> Self::TAG_SHIFT) as u32) % Self::TAGS;
    let lease = Lease {
      slot: ((word >> 32) & Self::SLOT_MASK) as u32,
      generation: word as u32,
    };
    match word >> Self::KIND_SHIFT {
      0 if word & !(((Self::TAGS - 1) as u64) << Self::TAG_SHIFT) == 0 => RingCell::Empty { tag },
      1 => RingCell::Skip { tag, lease },
      2 => RingCell::Full { tag, lease },
      _ => RingCell::Invalid(word),
    }
  }

  /// The lap tag, for every valid cell.
  #[inline]
  pub const fn tag(self) -> Option<u32> {
    match self {
      RingCell::Empty { tag } | RingCell::Full { tag, .. } | RingCell::Skip { tag, .. } => {
        Some(tag)
      }
      RingCell::Invalid(_) => None,
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn slot_words_round_trip_and_keep_the_bit_layout() {
    let word = SlotWord::new(7, 3, SlotState::Leased);
    assert_eq!(word.pack(), (7 << 32) | (3 << 8) | 2);
    assert_eq!(SlotWord::unpack(word.pack()), word);
    for bits in 0..=255u8 {
      assert_eq!(SlotState::from_bits(bits).bits(), bits);
    }
    for (state, bits) in SlotState::VALID.iter().zip(1u8..) {
      assert_eq!(state.bits(), bits);
    }
    let any = 0xdead_beef_0123_4567u64;
    assert_eq!(SlotWord::unpack(any).pack(), any);
  }

  #[test]
  fn free_heads_round_trip_and_move_the_tag() {
    let head = FreeHead::unpack((9 << 38) | (3 << 25) | 4);
    assert_eq!(
      head,
      FreeHead {
        index: 4,
        claimer: 3,
        tag: 9
      }
    );
    assert_eq!(head.with_next(2).pack(), (10 << 38) | 2);
    assert_eq!(head.claimed_by(5).pack(), (10 << 38) | (5 << 25) | 4);
    let wraps = FreeHead {
      index: 0,
      claimer: 0,
      tag: FreeHead::TAG_MASK,
    };
    assert_eq!(wraps.with_next(1).tag, 0);
    // The empty list: NIL round-trips, and its low half is what JS polls for.
    let empty = FreeHead {
      index: NIL,
      claimer: 0,
      tag: 77,
    };
    assert_eq!(FreeHead::unpack(empty.pack()), empty);
    assert_eq!(empty.pack() as u32, FreeHead::EMPTY_LOW);
    let any = 0xdead_beef_0123_4567u64;
    assert_eq!(FreeHead::unpack(any).pack(), any);
  }

  #[test]
  fn ring_cells_round_trip_and_keep_the_bit_layout() {
    let lease = Lease {
      slot: 0xff_ffff,
      generation: u32::MAX,
    };
    assert_eq!(
      RingCell::Empty { tag: 0 }.pack(),
      0,
      "a zeroed ring is empty for lap 0"
    );
    assert_eq!(RingCell::Empty { tag: 5 }.pack(), 5 << 56);
    assert_eq!(
      RingCell::Full { tag: 63, lease }.pack(),
      (2 << 62) | (63 << 56) | (0xff_ffff << 32) | 0xffff_ffff
    );
    assert_eq!(RingCell::Skip { tag: 1, lease }.pack() >> 62, 1);
    for cell in [
      RingCell::Empty { tag: 9 },
      RingCell::Full { tag: 0, lease },
      RingCell::Skip { tag: 63, lease },
    ] {
      assert_eq!(RingCell::unpack(cell.pack()), cell);
    }
    // Anything else is invalid: an empty kind with other bits, the fourth kind.
    for bits in [1u64, 1 << 40, 3 << 62, u64::MAX] {
      assert_eq!(RingCell::unpack(bits), RingCell::Invalid(bits));
    }
    assert_eq!(RingCell::tag_of(64 + 3), 3);
  }
}
