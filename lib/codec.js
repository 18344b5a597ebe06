'use strict'

// Payload codecs on a slot's memory: UTF-8 strings, JSON, V8-serialized values and typed views,
// written straight into the slot and read straight from it. Shared by Lease (read and write) and
// a topic's Sample (read only).
//
// A write that does not fit changes nothing: its size is known (or computed) before the first
// byte is written, so the slot's content and the lease's length stay as they were.

const { makeError, describe } = require('./errors.js')

/** Node's serializer is loaded on the first writeValue/readValue (most threads never need it). */
let v8 = null

const encoder = new TextEncoder()

/** The constructors `view` accepts, with their element sizes. */
const VIEW_TYPES = new Map([
  [Int8Array, 1], [Uint8Array, 1], [Uint8ClampedArray, 1],
  [Int16Array, 2], [Uint16Array, 2],
  [Int32Array, 4], [Uint32Array, 4], [Float32Array, 4],
  [Float64Array, 8], [BigInt64Array, 8], [BigUint64Array, 8],
  [DataView, 1],
])
if (typeof Float16Array === 'function') VIEW_TYPES.set(Float16Array, 2) // eslint-disable-line no-undef

function doesNotFit(what, needed, available) {
  const error = makeError('ERR_SABPOOL_DOES_NOT_FIT',
    `${what}: needs ${needed} bytes, and the slot has ${available} from that offset (nothing was written)`)
  error.needed = needed
  error.available = available
  return error
}

function checkOffset(what, offset, max) {
  if (offset === undefined) return 0
  if (typeof offset !== 'number') throw makeError('ERR_INVALID_ARG_TYPE', `${what}: offset must be a number, got ${describe(offset)}`)
  if (!Number.isInteger(offset) || offset < 0 || offset > max) {
    throw makeError('ERR_OUT_OF_RANGE', `${what}: offset must be an integer from 0 to ${max}, got ${offset}`)
  }
  return offset
}

/**
 * Writes `text` as UTF-8 at `offset` of `bytes` (the whole slot). Returns the bytes written. Lone
 * surrogates are written as U+FFFD, as every UTF-8 encoder of JS strings does.
 */
function writeString(bytes, text, offset, what = 'writeString') {
  if (typeof text !== 'string') throw makeError('ERR_INVALID_ARG_TYPE', `${what}: expected a string, got ${describe(text)}`)
  const at = checkOffset(what, offset, bytes.length)
  const room = bytes.length - at
  // A string of n UTF-16 units needs at most 3n bytes: only a longer one can fail to fit, and
  // only that one pays for counting them first.
  if (text.length * 3 > room) {
    const needed = Buffer.byteLength(text, 'utf8')
    if (needed > room) throw doesNotFit(what, needed, room)
  }
  return encoder.encodeInto(text, at === 0 ? bytes : bytes.subarray(at)).written
}

/** Decodes `length` bytes of UTF-8 at `offset` (invalid sequences read as U+FFFD). */
function readString(buffer, size, recorded, offset, length, what = 'readString') {
  const at = checkOffset(what, offset, size)
  let n
  if (length === undefined) {
    n = recorded - at
    if (n < 0) throw makeError('ERR_OUT_OF_RANGE', `${what}: offset ${at} is past the payload's length ${recorded}`)
  } else {
    if (typeof length !== 'number') throw makeError('ERR_INVALID_ARG_TYPE', `${what}: length must be a number, got ${describe(length)}`)
    if (!Number.isInteger(length) || length < 0 || at + length > size) {
      throw makeError('ERR_OUT_OF_RANGE', `${what}: length must be an integer from 0 to ${size - at} at offset ${at}, got ${length}`)
    }
    n = length
  }
  return buffer.toString('utf8', at, at + n)
}

/** JSON text of `value`, or a coded error for what JSON cannot hold. */
function jsonText(value, what) {
  let text
  try {
    text = JSON.stringify(value)
  } catch (error) {
    throw makeError('ERR_INVALID_ARG_TYPE', `${what}: ${error.message}`, error)
  }
  if (text === undefined) throw makeError('ERR_INVALID_ARG_TYPE', `${what}: ${describe(value)} has no JSON form`)
  return text
}

function parseJSON(text, what) {
  try {
    return JSON.parse(text)
  } catch (error) {
    throw makeError('ERR_SABPOOL_BAD_PAYLOAD', `${what}: the payload is not JSON (${error.message})`, error)
  }
}

/**
 * The V8 serialization of `value` (what structured clone uses), in a buffer of its own: Node
 * offers no way to serialize into memory the caller provides, so the slot gets one copy of it.
 */
function serialize(value, what) {
  v8 ??= require('node:v8')
  try {
    return v8.serialize(value)
  } catch (error) {
    throw makeError('ERR_INVALID_ARG_TYPE', `${what}: ${error.message}`, error)
  }
}

/** Deserializes `length` bytes of the slot in place (no copy of the payload first). */
function deserialize(bytes, length, what) {
  v8 ??= require('node:v8')
  try {
    return v8.deserialize(bytes.subarray(0, length))
  } catch (error) {
    throw makeError('ERR_SABPOOL_BAD_PAYLOAD', `${what}: the payload is not a serialized value (${error.message})`, error)
  }
}

/**
 * A typed array (or DataView) of `Ctor` over the slot: `byteOffset` into the slot, `length` elements
 * (bytes for a DataView; default: as many as fit). `slotByteOffset` is where the slot starts in its
 * buffer: a multiple of 64, so an offset that is a multiple of the element size is aligned.
 */
function view(buffer, slotByteOffset, size, Ctor, byteOffset, length, what = 'view') {
  const element = VIEW_TYPES.get(Ctor)
  if (element === undefined) {
    throw makeError('ERR_INVALID_ARG_TYPE', `${what}: Ctor must be a typed array constructor or DataView, got ${describe(Ctor)}`)
  }
  const at = checkOffset(what, byteOffset, size)
  if (at % element !== 0) {
    throw makeError('ERR_SABPOOL_MISALIGNED', `${what}: byteOffset ${at} is not a multiple of ${Ctor.name}'s ${element}-byte elements`)
  }
  let n
  if (length === undefined) {
    n = Math.floor((size - at) / element)
  } else {
    if (typeof length !== 'number') throw makeError('ERR_INVALID_ARG_TYPE', `${what}: length must be a number, got ${describe(length)}`)
    if (!Number.isInteger(length) || length < 0 || at + length * element > size) {
      throw makeError('ERR_OUT_OF_RANGE', `${what}: ${length} elements of ${element} bytes at offset ${at} do not fit in the ${size}-byte slot`)
    }
    n = length
  }
  return new Ctor(buffer, slotByteOffset + at, n)
}

module.exports = { writeString, readString, jsonText, parseJSON, serialize, deserialize, view, doesNotFit }
