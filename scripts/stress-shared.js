'use strict'
// Pieces shared by scripts/stress.js (main thread) and scripts/stress-worker.js: the payload
// format helpers and the layout of the shared control words.

/** Bytes of the stamped header at the start of every payload (see stress-worker.js). */
const HEADER = 24
/** Route byte of a payload handed over with a ticket posted to one thread's MessagePort
 * (channels use their index). */
const TICKET_ROUTE = 255
/** Route byte of a payload whose ticket was put on the shared ticket board (any thread adopts). */
const BOARD_ROUTE = 254

// The ticket board: a small lock-protected FIFO of tickets in a SharedArrayBuffer, so that a
// ticket can go to whichever thread is free to adopt it (a MessagePort ties it to one thread).
// Int32 words: [0] lock, [1] head (next to take), [2] tail (next to fill), then BOARD_SIZE
// entries of 4 words: slot, generation, length, producer.
const BOARD_SIZE = 64
const BOARD_WORDS = 4 + BOARD_SIZE * 4

function boardLock(board) {
  for (let i = 0; Atomics.compareExchange(board, 0, 0, 1) !== 0; i++) {
    if (i > 64) Atomics.wait(board, 0, 1, 1) // the holder may be descheduled: do not burn the core
  }
}

function boardUnlock(board) {
  Atomics.store(board, 0, 0)
  Atomics.notify(board, 0, 1)
}

/** Puts a ticket on the board; false when the board is full. */
function boardPut(board, ticket, producer) {
  boardLock(board)
  try {
    const head = board[1]
    const tail = board[2]
    if (tail - head >= BOARD_SIZE) return false
    const at = 4 + (tail % BOARD_SIZE) * 4
    board[at] = ticket.slot
    board[at + 1] = ticket.generation
    board[at + 2] = ticket.length
    board[at + 3] = producer
    board[2] = tail + 1
    return true
  } finally {
    boardUnlock(board)
  }
}

/** Takes the oldest ticket: { slot, generation, length, producer } or null. */
function boardTake(board) {
  boardLock(board)
  try {
    const head = board[1]
    if (head === board[2]) return null
    const at = 4 + (head % BOARD_SIZE) * 4
    board[1] = head + 1
    return { slot: board[at], generation: board[at + 1] >>> 0, length: board[at + 2], producer: board[at + 3] }
  } finally {
    boardUnlock(board)
  }
}

/** Every library call the stress makes, by name (the "operations" it counts). */
const KINDS = [
  'tryAcquire', 'acquireSync', 'release', 'handoff', 'adopt',
  'trySend', 'sendSync', 'sendMany', 'tryRecv', 'recvSync', 'recvMany',
]

// Int32 control words shared by the main thread and the workers.
const CTL_READY = 0 // workers attached and waiting for the start
const CTL_GO = 1 // set by the main thread: start
const CTL_DONE = 2 // workers that stopped producing
const CTL_STOP = 3 // stop producing: time is up, or some thread hit an unexpected error
const CTL_VIOLATIONS = 4 // violations seen so far (all threads)
const CTL_BLOCKED = 5 // threads inside a blocking call now
const CTL_CLAIMED = 6 // chunks of CHUNK operations claimed from the budget so far
/** Operations a worker claims from the shared budget at a time. */
const CHUNK = 256
const CTL_PROGRESS = 8 // + thread index: operations done so far (updated every 256)
const CTL_FLAGS = 8 + 64 // + thread index: 1 while that thread is inside a blocking call

function ctlWords(threads) {
  return CTL_FLAGS + threads
}

/** A 32-bit mix of a sequence number (for the order-independent stamp fingerprints). */
function mix(seq) {
  let h = Math.imul(seq ^ 0x5bd1e995, 0x9e3779b1)
  h ^= h >>> 15
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  return h | 0
}

/** Body bytes [HEADER..length) from a PRNG seeded by (producer, seq). */
function fillBody(bytes, length, producer, seq) {
  let x = (Math.imul(seq + 1, 0x9e3779b1) ^ Math.imul(producer + 1, 0x85ebca6b)) | 1
  for (let i = HEADER; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    bytes[i] = x
  }
}

/** FNV-1a over the header's first 20 bytes and the body (the checksum word itself excluded). */
function checksum(bytes, length) {
  let h = 0x811c9dc5
  for (let i = 0; i < 20; i++) h = Math.imul(h ^ bytes[i], 0x01000193)
  for (let i = HEADER; i < length; i++) h = Math.imul(h ^ bytes[i], 0x01000193)
  return h >>> 0
}

module.exports = {
  HEADER, TICKET_ROUTE, BOARD_ROUTE, BOARD_WORDS, boardPut, boardTake, KINDS,
  CTL_READY, CTL_GO, CTL_DONE, CTL_STOP, CTL_VIOLATIONS, CTL_BLOCKED, CTL_CLAIMED, CHUNK, CTL_PROGRESS, CTL_FLAGS, ctlWords,
  mix, fillBody, checksum,
}
