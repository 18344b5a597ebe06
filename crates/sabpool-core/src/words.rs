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

impl Lease {
  /// The lease as a ring cell's value: `generation << 32 | slot`.
  #[inline]
  pub const fn to_cell(self) -> u64 {
    ((self.generation as u64) << 32) | self.slot as u64
  }

  #[inline]
  pub const fn from_cell(value: u64) -> Lease {
    Lease {
      slot: value as u32,
      generation: (value >> 32) as u32,
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
  fn leases_round_trip_through_ring_cells() {
    let lease = Lease {
      slot: 5,
      generation: 11,
    };
    assert_eq!(lease.to_cell(), (11 << 32) | 5);
    assert_eq!(Lease::from_cell(lease.to_cell()), lease);
  }
}
