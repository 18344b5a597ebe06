'use strict'

// Preloaded by scripts/runtime-matrix.js (`bun test --preload`, `deno test --preload`) so that
// named tests of an unchanged node:test file are skipped, with their reason, under Bun or Deno.
// SABPOOL_RUNTIME_SKIP is a JSON list of [part of the full test name, reason]; the full name is
// the describe() names and the test's, joined by ' > '. A matching describe() is skipped whole.
// Neither runtime can leave out a nested test by name from the command line (`bun test -t` only
// selects, `deno test --filter` sees top-level names only and has no look-ahead).

const nodeTest = require('node:test')

const skips = JSON.parse(process.env.SABPOOL_RUNTIME_SKIP || '[]')
const suites = []

function skipReason(name) {
  const full = [...suites, String(name)].join(' > ')
  const hit = skips.find(([part]) => full.includes(part))
  return hit === undefined ? undefined : `${hit[1]} (runtime-matrix)`
}

/** `fn` with calls for a skipped name replaced by a skipped test of that name. */
function wrap(fn, isSuite) {
  const wrapped = function (name, ...rest) {
    if (typeof name !== 'string') return fn.call(this, name, ...rest)
    const reason = skipReason(name)
    if (reason !== undefined) return fn.call(this, name, { skip: reason }, () => {})
    if (!isSuite) return fn.call(this, name, ...rest)
    // describe() runs its body at once: names of what it declares are known then.
    const body = rest[rest.length - 1]
    if (typeof body !== 'function') return fn.call(this, name, ...rest)
    rest[rest.length - 1] = function (...args) {
      suites.push(name)
      try {
        return body.apply(this, args)
      } finally {
        suites.pop()
      }
    }
    return fn.call(this, name, ...rest)
  }
  return Object.assign(wrapped, fn)
}

if (skips.length > 0) {
  for (const key of ['describe', 'suite']) if (typeof nodeTest[key] === 'function') nodeTest[key] = wrap(nodeTest[key], true)
  for (const key of ['it', 'test']) if (typeof nodeTest[key] === 'function') nodeTest[key] = wrap(nodeTest[key], false)
}
