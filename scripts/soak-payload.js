'use strict'
// Payload format of the soak run (scripts/soak.js, scripts/soak-worker.js), little endian:
//   u32[0] sequence number (main thread), u32[1] stage (0 sent by main, 1 transformed by a
//   worker), u32[2] checksum (FNV-1a over bytes [0..8) and the body), body [12..length) from a
//   PRNG seeded by the sequence number; a worker inverts every body byte.

const HEADER = 12

function body(seq, i) {
  let x = Math.imul(seq + 1, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)
  x ^= x >>> 15
  return Math.imul(x, 0x2c1b3c6d) >>> 24
}

function checksum(bytes, length) {
  let h = 0x811c9dc5
  for (let i = 0; i < 8; i++) h = Math.imul(h ^ bytes[i], 0x01000193)
  for (let i = HEADER; i < length; i++) h = Math.imul(h ^ bytes[i], 0x01000193)
  return h >>> 0
}

/** Header words per slot view (the pool hands out one view per slot, reused): no garbage per call. */
const wordsOf = new WeakMap()

function header(lease) {
  const bytes = lease.bytes
  let words = wordsOf.get(bytes)
  if (words === undefined) {
    words = new Uint32Array(bytes.buffer, bytes.byteOffset, 3)
    wordsOf.set(bytes, words)
  }
  return { bytes, words }
}

/** Fills a lease with payload `seq` of `length` bytes. */
function stamp(lease, seq, length) {
  const { bytes, words } = header(lease)
  words[0] = seq
  words[1] = 0
  for (let i = HEADER; i < length; i++) bytes[i] = body(seq, i)
  words[2] = checksum(bytes, length)
  lease.length = length
}

/** null if the lease holds an intact payload (any stage), else what is wrong. */
function check(lease) {
  const { bytes, words } = header(lease)
  if (lease.length < HEADER) return `length ${lease.length}`
  if (words[2] !== checksum(bytes, lease.length)) return `checksum (seq ${words[0]})`
  return null
}

/** A worker's in-place change: invert the body, mark stage 1. */
function transform(lease) {
  const { bytes, words } = header(lease)
  for (let i = HEADER; i < lease.length; i++) bytes[i] ^= 0xff
  words[1] = 1
  words[2] = checksum(bytes, lease.length)
}

/** Checks a payload that came back: intact, transformed once, and the body of `seq`. */
function checkReturned(lease) {
  const problem = check(lease)
  if (problem !== null) return problem
  const { bytes, words } = header(lease)
  if (words[1] !== 1) return `stage ${words[1]} (seq ${words[0]})`
  const seq = words[0]
  for (let i = HEADER; i < lease.length; i++) {
    if (bytes[i] !== (body(seq, i) ^ 0xff)) return `body byte ${i} (seq ${seq})`
  }
  return null
}

module.exports = { HEADER, stamp, check, transform, checkReturned, seqOf: (lease) => header(lease).words[0] }
