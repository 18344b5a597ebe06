'use strict'

// Every error sabpool throws has a stable `code`; its class follows from the code alone, through
// ERROR_CLASSES, whether JS or the native side raised it.

const { STATUS } = require('./native.js')

/**
 * Class of each error code, as Node does it: a bad argument (wrong type, or a value that cannot
 * name what is asked for) is a TypeError, a number out of its range is a RangeError. Every other
 * code (state, timing, the OS, shared memory) is an Error; ABORT_ERR is an AbortError.
 */
const ERROR_CLASSES = {
  __proto__: null,
  ERR_INVALID_ARG_TYPE: TypeError,
  ERR_INVALID_THIS: TypeError,
  ERR_SABPOOL_BAD_NAME: TypeError,
  ERR_SABPOOL_BAD_TICKET: TypeError,
  ERR_SABPOOL_BAD_HANDLE: TypeError,
  ERR_SABPOOL_NOT_FILE: TypeError,
  ERR_OUT_OF_RANGE: RangeError,
  ERR_SABPOOL_TOO_LARGE: RangeError,
  ERR_SABPOOL_BAD_LENGTH: RangeError,
  ERR_SABPOOL_DOES_NOT_FIT: RangeError,
  ERR_SABPOOL_MISALIGNED: RangeError,
}

function errorClass(code) {
  return ERROR_CLASSES[code] ?? Error
}

/** An error of the class its `code` has. */
function makeError(code, message, cause) {
  const Ctor = errorClass(code)
  const err = cause === undefined ? new Ctor(message) : new Ctor(message, { cause })
  err.code = code
  return err
}

/**
 * An error thrown by the native side arrives as an Error with `code` set: this gives it the class
 * its code has (same code, same message), and passes any other error through.
 */
function reclass(error) {
  if (error === null || typeof error !== 'object' || typeof error.code !== 'string') return error
  const Ctor = errorClass(error.code)
  return error instanceof Ctor && error.constructor === Ctor ? error : makeError(error.code, error.message)
}

/** Error for a negative status returned by a native fast call. */
function statusError(status, what) {
  const info = STATUS.get(status)
  if (info === undefined) return makeError('ERR_SABPOOL_INTERNAL', `${what}: unexpected status ${status}`)
  return makeError(info.code, `${what}: ${info.message}`)
}

class AbortError extends Error {
  constructor(message = 'The operation was aborted', options) {
    super(message, options)
    this.name = 'AbortError'
    this.code = 'ABORT_ERR'
  }
}

function abortError(signal) {
  return new AbortError(undefined, { cause: signal.reason })
}

function timeoutError(what, timeout) {
  return makeError('ERR_SABPOOL_TIMEOUT', `${what} timed out after ${timeout} ms`)
}

/**
 * A method or accessor of `className` called on something that is not one (unbound, as in
 * `const { tryAcquire } = pool; tryAcquire()`, `.call(other)`, or an object made with
 * `Object.create(Class.prototype)`): ERR_INVALID_THIS, a TypeError, as Node's own classes do.
 */
function invalidThis(className, member, self) {
  return makeError('ERR_INVALID_THIS', `Value of "this" must be a ${className}: ${className}.prototype.${member} was called on ${describe(self)}`)
}

/** A short description of a bad value, for error messages. */
function describe(value) {
  if (value === null) return 'null'
  if (typeof value === 'object') return 'an object'
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 20))}`
  return `${typeof value} ${String(value)}`
}

module.exports = { makeError, reclass, statusError, AbortError, abortError, timeoutError, invalidThis, describe }
