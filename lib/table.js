'use strict'

// What the services and topics built on a pool share: their table of 32-bit words (a
// SharedArrayBuffer in-process, a mapped table file next to a file-backed pool) with 64-bit
// counters in it, and the pool facts they check participants against.

const { binding, OFFSETS } = require('./native.js')
const { nativeCall } = require('./region.js')
const { newUid } = require('./pool.js')

/** Views of a table: `i32` its words; counters are word pairs from word `statsWord`. */
class Table {
  constructor(buffer, byteOffset, words, statsWord) {
    this.i32 = new Int32Array(buffer, byteOffset, words)
    this.statsWord = statsWord
  }

  /** Adds `n` (default 1) to a counter: the low word, and the high one when the low word wraps
   * (a 32-bit add allocates nothing, where a BigInt64 add makes a BigInt per call). */
  count(stat, n = 1) {
    const at = this.statsWord + 2 * stat
    const before = Atomics.add(this.i32, at, n) >>> 0
    if (before + n > 0xffffffff) Atomics.add(this.i32, at + 1, 1)
  }

  /** A counter's value (its two words read one after the other: a statistic, not a snapshot). */
  read(stat) {
    return readPair(this.i32, this.statsWord + 2 * stat)
  }
}

/** The 64-bit count held as two 32-bit words at `at` (low first). */
function readPair(i32, at) {
  const high = Atomics.load(i32, at + 1) >>> 0
  return high * 2 ** 32 + (Atomics.load(i32, at) >>> 0)
}

/** Adds `n` to the word pair at `at`. */
function addPair(i32, at, n) {
  const before = Atomics.add(i32, at, n) >>> 0
  if (before + n > 0xffffffff) Atomics.add(i32, at + 1, 1)
}

/** The pool facts a table user needs: geometry, and this attachment's participant entry. */
function describePool(pool) {
  return nativeCall(() => binding.poolDescribe(pool._state.ref))
}

/**
 * Reads participant entries of a pool: `token(index)` is the [low, high] halves of the token of
 * entry `index` (which changes when its participant leaves or its dead process is reclaimed).
 */
class Participants {
  constructor(pool, info) {
    this.i32 = new Int32Array(pool._state.buffer)
    this.offset = info.participantsOffset
    this.size = info.participantSize
    this.count = info.maxParticipants
  }

  #at(index) {
    return (this.offset + index * this.size + OFFSETS.participantToken) >>> 2
  }

  token(index) {
    const at = this.#at(index)
    return [Atomics.load(this.i32, at), Atomics.load(this.i32, at + 1)]
  }

  tokenLow(index) {
    return Atomics.load(this.i32, this.#at(index))
  }

  /** Whether entry `index` holds the token [`low`, `high`] (never true for an empty entry). */
  holds(index, low, high) {
    if (index < 0 || index >= this.count || (low === 0 && high === 0)) return false
    const at = this.#at(index)
    return Atomics.load(this.i32, at) === low && Atomics.load(this.i32, at + 1) === high
  }
}

/** `{ buffer, dataOffset, words }` of a table file's attachment. */
function fileTableMemory(attachment) {
  const buffer = nativeCall(() => binding.regionBuffer(attachment.id))
  const { dataOffset, words } = nativeCall(() => binding.tableInfo(attachment.id))
  return { buffer, dataOffset, words }
}

/**
 * Creates the table file `fileName` of `words` words next to `pool`'s file and returns
 * `build(attachment, memory)`. If `build` throws, the file is unlinked and the attachment
 * detached: a failed create leaves nothing behind for another process to open.
 */
function createTableFile(pool, dir, fileName, words, mode, build) {
  const attachment = nativeCall(() => binding.tableCreateFile(dir, fileName, pool._state.ref, words, newUid(), mode))
  try {
    return build(attachment, fileTableMemory(attachment))
  } catch (error) {
    try {
      binding.regionUnlink(attachment.id)
    } catch {
      // already gone
    }
    attachment.detach()
    throw error
  }
}

/**
 * Opens the table file `fileName` made for `pool` and returns `build(attachment, memory)`; if
 * `build` throws (a table that fails its checks), the attachment is detached.
 */
function openTableFile(pool, dir, fileName, allowForeignOwner, build) {
  const attachment = nativeCall(() => binding.tableOpenFile(dir, fileName, pool._state.ref, allowForeignOwner))
  try {
    return build(attachment, fileTableMemory(attachment))
  } catch (error) {
    attachment.detach()
    throw error
  }
}

module.exports = { Table, readPair, addPair, describePool, Participants, fileTableMemory, createTableFile, openTableFile }
