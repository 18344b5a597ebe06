'use strict'

// Checks of options and arguments: each returns the value to use (the default when absent) or
// throws ERR_INVALID_ARG_TYPE (TypeError) / ERR_OUT_OF_RANGE (RangeError) naming the option.
//
// Options objects, tickets and handles are untrusted: a getter may answer differently each time it
// is read (or count its reads). Callers read every field exactly once into a local and check and
// use that local; the checks here take values, not the objects they came from (checkFileOptions
// reads each of its three fields once).

const fs = require('node:fs')
const { OFFSETS, DEFAULT_MODE } = require('./native.js')
const { makeError, describe } = require('./errors.js')

/** Default number of non-blocking retries before parking in the blocking (worker) waits. */
const DEFAULT_SPIN = 4000

function checkInteger(name, value, min, max) {
  if (typeof value !== 'number') {
    throw makeError('ERR_INVALID_ARG_TYPE', `${name} must be a number, got ${describe(value)}`)
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw makeError('ERR_OUT_OF_RANGE', `${name} must be an integer from ${min} to ${max}, got ${value}`)
  }
  return value
}

/** Stands in for an absent options object, so calls without options allocate nothing. */
const NO_OPTIONS = Object.freeze({})

function checkOptionsObject(name, options) {
  if (options === undefined) return NO_OPTIONS
  if (options === null || typeof options !== 'object') {
    throw makeError('ERR_INVALID_ARG_TYPE', `${name} must be an object, got ${describe(options)}`)
  }
  return options
}

/** `timeout` in ms: undefined or Infinity means no limit. */
function checkTimeout(timeout) {
  if (timeout === undefined) return Infinity
  if (typeof timeout !== 'number') {
    throw makeError('ERR_INVALID_ARG_TYPE', `timeout must be a number of milliseconds, got ${describe(timeout)}`)
  }
  if (Number.isNaN(timeout) || timeout < 0) {
    throw makeError('ERR_OUT_OF_RANGE', `timeout must be a non-negative number of milliseconds, got ${timeout}`)
  }
  return timeout
}

/**
 * An optional `signal`, checked for the whole shape a wait uses up front, each member read once:
 * `aborted` a boolean, `addEventListener` and `removeEventListener` functions (the reason is read
 * when it aborts). Returns undefined or `{ target, aborted, add, remove }`, the methods to be
 * called on `target`. Not `instanceof AbortSignal`: look-alikes (polyfills, EventTarget
 * subclasses, another copy of Node's classes) work as they do with Node's own APIs, and a
 * half-shaped object fails here rather than halfway through a wait.
 */
function checkSignal(signal) {
  if (signal === undefined) return undefined
  if (signal === null || typeof signal !== 'object') {
    throw makeError('ERR_INVALID_ARG_TYPE', `signal must be an AbortSignal, got ${describe(signal)}`)
  }
  const aborted = signal.aborted
  const add = signal.addEventListener
  const remove = signal.removeEventListener
  if (typeof aborted !== 'boolean' || typeof add !== 'function' || typeof remove !== 'function') {
    throw makeError('ERR_INVALID_ARG_TYPE',
      'signal must be an AbortSignal (a boolean aborted, addEventListener and removeEventListener methods), got an object without them')
  }
  return { target: signal, aborted, add, remove }
}

function checkSpin(spin) {
  if (spin === undefined) return DEFAULT_SPIN
  return checkInteger('spin', spin, 0, 1e9)
}

function checkLength(value, slotSize) {
  if (typeof value !== 'number') {
    throw makeError('ERR_INVALID_ARG_TYPE', `length must be a number, got ${describe(value)}`)
  }
  if (!Number.isInteger(value) || value < 0 || value > slotSize) {
    throw makeError('ERR_SABPOOL_BAD_LENGTH', `length must be an integer from 0 to the slot size ${slotSize}, got ${value}`)
  }
  return value
}

/** Leak tracking is on for a pool when asked for, or for every pool with SABPOOL_TRACK_LEAKS=1. */
function checkTrackLeaks(value) {
  if (value === undefined) return process.env.SABPOOL_TRACK_LEAKS === '1'
  if (typeof value !== 'boolean') {
    throw makeError('ERR_INVALID_ARG_TYPE', `trackLeaks must be a boolean, got ${describe(value)}`)
  }
  return value
}

/** A pool's `slotSize`, `slots` and `maxParticipants` options (values already read from the
 * options object, once), checked. */
function checkGeometry(slotSize, slots, maxParticipants) {
  return {
    slotSize: checkInteger('slotSize', slotSize, 1, OFFSETS.maxSlotSize),
    slots: checkInteger('slots', slots, 1, OFFSETS.maxSlots),
    maxParticipants: maxParticipants === undefined
      ? OFFSETS.defaultParticipants
      : checkInteger('maxParticipants', maxParticipants, 1, OFFSETS.maxParticipants),
  }
}

function checkCapacity(capacity) {
  checkInteger('capacity', capacity, 2, OFFSETS.maxCapacity)
  if ((capacity & (capacity - 1)) !== 0) {
    throw makeError('ERR_OUT_OF_RANGE', `capacity must be a power of two, got ${capacity}`)
  }
  return capacity
}

// ---- file-backed regions ------------------------------------------------------------------------

/** Where region files go unless `dir` says otherwise: the RAM-backed /dev/shm where there is one.
 * Found on first use, not at load: most threads never name a file (and node:os costs a start). */
let defaultDir = null

function defaultDirectory() {
  if (defaultDir === null) {
    try {
      if (fs.statSync('/dev/shm').isDirectory()) defaultDir = '/dev/shm'
    } catch {
      // no /dev/shm here: use the temporary directory
    }
    defaultDir ??= require('node:os').tmpdir()
  }
  return defaultDir
}

function checkName(name) {
  if (typeof name !== 'string') {
    throw makeError('ERR_INVALID_ARG_TYPE', `name must be a string, got ${describe(name)}`)
  }
  return name
}

function checkDir(dir) {
  if (dir === undefined) return defaultDirectory()
  if (typeof dir !== 'string' || dir.length === 0) {
    throw makeError('ERR_INVALID_ARG_TYPE', `dir must be a non-empty string, got ${describe(dir)}`)
  }
  return dir
}

function checkMode(mode) {
  if (mode === undefined) return DEFAULT_MODE
  checkInteger('mode', mode, 0, 0o777)
  if ((mode & 0o600) !== 0o600) {
    throw makeError('ERR_OUT_OF_RANGE', `mode must let the owner read and write (0o600 set), got 0o${mode.toString(8)}`)
  }
  return mode
}

/** The `allowForeignOwner` option of `open`: whether a region file another user owns may be
 * opened (its owner can read every payload and truncate the file under the mapping). */
function checkAllowForeignOwner(value) {
  if (value === undefined) return false
  if (typeof value !== 'boolean') {
    throw makeError('ERR_INVALID_ARG_TYPE', `allowForeignOwner must be a boolean, got ${describe(value)}`)
  }
  return value
}

/** A region file's `name`, `dir` and `mode` options, checked. */
function checkFileOptions(options) {
  return { name: checkName(options.name), dir: checkDir(options.dir), mode: checkMode(options.mode) }
}

module.exports = {
  checkInteger,
  checkOptionsObject,
  checkTimeout,
  checkSignal,
  checkSpin,
  checkLength,
  checkTrackLeaks,
  checkGeometry,
  checkCapacity,
  checkName,
  checkDir,
  checkFileOptions,
  checkAllowForeignOwner,
}
