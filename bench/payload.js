'use strict'
// Payloads and the "touch": the sender stamps a tag into the first and last element, the receiver
// reads both. Reading both ends proves the payload really arrived (and keeps the work from being
// optimised away); comparing the tag with the expected sequence number catches a broken
// mechanism (lost, duplicated, reordered or torn messages) instead of timing it.

/** Kinds of cloned payloads, all sized from a byte count. */
const KINDS = {
  /** A Uint8Array of `bytes` bytes. */
  bytes: {
    make: (bytes) => new Uint8Array(bytes),
    stamp(p, tag) {
      p[0] = tag
      p[p.length - 1] = tag
      return p
    },
    read: (p) => (p[0] === p[p.length - 1] ? p[0] : -1),
  },
  /** `{ matrix: new Array(n).fill(Math.random()) }` with n = bytes / 8 (doubles). */
  matrix: {
    make: (bytes) => ({ matrix: new Array(Math.max(1, bytes >>> 3)).fill(Math.random()) }),
    stamp(p, tag) {
      const m = p.matrix
      m[0] = tag
      m[m.length - 1] = tag
      return p
    },
    read(p) {
      const m = p.matrix
      return m[0] === m[m.length - 1] ? m[0] : -1
    },
  },
  /** An array of bytes / 32 `{ id, name, value }` objects. */
  objects: {
    make(bytes) {
      const n = Math.max(1, bytes >>> 5)
      const out = new Array(n)
      for (let i = 0; i < n; i++) out[i] = { id: i, name: `item-${i}`, value: Math.random() }
      return out
    },
    stamp(p, tag) {
      p[0].value = tag
      p[p.length - 1].value = tag
      return p
    },
    read: (p) => (p[0].value === p[p.length - 1].value ? p[0].value : -1),
  },
  /** A number: the smallest possible message (the tag itself). */
  tiny: {
    make: () => 0,
    stamp: (_p, tag) => tag,
    read: (p) => p,
  },
}

/** Stamps a byte view (a slot, a transferred buffer) used over `length` bytes. */
function stampBytes(view, length, tag) {
  view[0] = tag
  view[length - 1] = tag
}

/** Reads the tag back from a byte view, -1 when the two ends differ. */
function readBytes(view, length) {
  const a = view[0]
  return a === view[length - 1] ? a : -1
}

/**
 * Receiver-side sequence check: each stream starts at tag 0 and counts up modulo 256.
 * `state` has { expect, mismatches }.
 */
function check(state, tag) {
  if (tag !== state.expect) state.mismatches++
  state.expect = (state.expect + 1) & 255
}

// ---- request/response (eventloop/rpc.js) --------------------------------------------------------
// A call stamps its tag at both ends and its caller's number in byte 1; the server reads both
// ends and writes tag + 1 there (tag + 2 at the end when the ends differed, so the caller notices
// too); the caller checks all three bytes of the reply, so a reply routed to the wrong call, a
// request that skipped the server or a torn payload counts as a mismatch.

/** Stamps a request of `length` bytes (≥ 2) for caller `caller` (0–255). */
function stampCall(view, length, caller, tag) {
  view[0] = tag
  view[1] = caller
  view[length - 1] = tag
}

/** The server's touch of a request: true when both ends carried the same tag. */
function touchCall(view, length) {
  const tag = view[0]
  const ok = view[length - 1] === tag
  view[0] = (tag + 1) & 255
  view[length - 1] = (tag + (ok ? 1 : 2)) & 255
  return ok
}

/** Whether a reply of `length` bytes answers caller `caller`'s request `tag`. */
function replyOk(view, length, caller, tag) {
  const t = (tag + 1) & 255
  return view.length >= length && view[0] === t && view[length - 1] === t && view[1] === caller
}

module.exports = { KINDS, stampBytes, readBytes, check, stampCall, touchCall, replyOk }
