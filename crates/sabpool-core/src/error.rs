//! Errors of the core. Each maps to one stable JS error code in the binding.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
  /// The memory is not a sabpool region of the expected kind (magic, version, sizes, bounds).
  BadHandle(&'static str),
  /// The lease or ticket names a slot that is not in the state the operation needs: released
  /// twice, handed off already, adopted twice, or reused since (generation moved on).
  StaleLease,
  /// A ticket that cannot name a slot of this pool (out of range, wrong pool).
  BadTicket(&'static str),
  /// The channel is closed: nothing more can be sent.
  Closed,
  /// Every participant entry of the region is taken.
  TooManyParticipants,
  /// Shared memory holds a value no correct participant writes (something scribbled on it).
  Corrupt(&'static str),
  /// A bounded retry loop gave up: the shared words kept changing under us.
  Contended,
}

impl Error {
  /// The stable code JS sees (`err.code`).
  pub fn code(&self) -> &'static str {
    match self {
      Error::BadHandle(_) => "ERR_SABPOOL_BAD_HANDLE",
      Error::StaleLease => "ERR_SABPOOL_STALE_LEASE",
      Error::BadTicket(_) => "ERR_SABPOOL_BAD_TICKET",
      Error::Closed => "ERR_SABPOOL_CLOSED",
      Error::TooManyParticipants => "ERR_SABPOOL_TOO_MANY_PARTICIPANTS",
      Error::Corrupt(_) => "ERR_SABPOOL_CORRUPT",
      Error::Contended => "ERR_SABPOOL_CONTENDED",
    }
  }

  /// Small negative number used as the status of the allocation-free fast calls; the JS wrapper
  /// turns it back into a typed error with [`Error::code`].
  pub fn status(&self) -> i32 {
    match self {
      Error::BadHandle(_) => -10,
      Error::StaleLease => -11,
      Error::BadTicket(_) => -12,
      Error::Closed => -13,
      Error::TooManyParticipants => -14,
      Error::Corrupt(_) => -15,
      Error::Contended => -16,
    }
  }

  /// Every error, for exporting the status → code table to JS.
  pub const ALL: [Error; 7] = [
    Error::BadHandle(""),
    Error::StaleLease,
    Error::BadTicket(""),
    Error::Closed,
    Error::TooManyParticipants,
    Error::Corrupt(""),
    Error::Contended,
  ];
}

impl fmt::Display for Error {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      Error::BadHandle(why) => write!(f, "not a valid sabpool region: {why}"),
      Error::StaleLease => write!(
        f,
        "this lease is no longer owned here (released, handed off or adopted already)"
      ),
      Error::BadTicket(why) => write!(f, "invalid ticket: {why}"),
      Error::Closed => write!(f, "the channel is closed"),
      Error::TooManyParticipants => write!(
        f,
        "too many threads attached to this pool at once; let some detach or create the pool with a larger maxParticipants"
      ),
      Error::Corrupt(why) => write!(f, "shared memory is corrupted: {why}"),
      Error::Contended => write!(f, "gave up after too many retries on contended shared memory"),
    }
  }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
