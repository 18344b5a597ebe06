'use strict'

// Loading: the native addon, and the other files of lib/. This is what a worker pays to start
// with sabpool, so it does as little as it can:
//
// - The addon is loaded straight from where it is (`<package>/sabpool.<platform>.node`, then
//   the package `sabpool-<platform>`), not through the loader napi generates (binding.js), which
//   is 37 KB of JavaScript for every platform napi knows: compiling it cost a worker's start ten
//   times what loading the addon itself does. binding.js remains the fallback, and the only path,
//   for whatever this does not handle (platforms without a target here, the NAPI_RS_* overrides),
//   so a load that fails here fails with binding.js's error, as before.
// - The other lib/ files are CommonJS modules, loaded as `require` would, but read by the addon
//   and compiled from V8 code caches it keeps for the whole process (binding.codeCacheLoad and
//   codeCacheStore): the first thread to load sabpool compiles the text and stores the caches;
//   a later thread (a new worker) gets the same text, unless the file changed since, and
//   deserializes its bytecode instead of reading and parsing ~80 KB of source again. The modules
//   are real `Module`s in `require.cache` under their file names, so a `require` of a lib file
//   elsewhere gets the same instance. A lib file's `require('./x.js')` comes back here, anything
//   else goes to Node's require (a lib file cannot use `import()`: vm.Script has no loader for
//   it). Outside Node (Bun, Deno), or when a step of this fails before the module runs, the file
//   is loaded by plain `require`.

const fs = require('node:fs')
const { sep } = require('node:path')
const vm = require('node:vm')
// The Module class without require('node:module'), whose load pulls in the ES module loader.
const Module = module.constructor

// ---- the addon ------------------------------------------------------------------------------

/** Where the binding came from: 'file' (next to the package), 'package' (sabpool-<platform>) or
 * 'loader' (the generated binding.js). */
let bindingSource = 'loader'

/** The `<platform>` of `sabpool.<platform>.node` as binding.js would pick it, for the platforms
 * sabpool is built for (package.json napi.targets, and musl Linux, where a source build names
 * its binary so); null for anything else, which is left to binding.js. */
function platformTriple() {
  const { platform, arch } = process
  if (platform === 'linux' && (arch === 'x64' || arch === 'arm64')) {
    const musl = isMusl()
    return musl === null ? null : `linux-${arch}-${musl ? 'musl' : 'gnu'}`
  }
  if (platform === 'darwin' && (arch === 'x64' || arch === 'arm64')) return `darwin-${arch}`
  if (platform === 'win32' && arch === 'x64') {
    // A Node built as a shared library or with MinGW takes the -gnu binary in binding.js.
    const v = (process.config && process.config.variables) || {}
    return v.shlib_suffix === 'dll.a' || v.node_target_type === 'shared_library' ? null : 'win32-x64-msvc'
  }
  return null
}

/** musl or glibc, by binding.js's first test (/usr/bin/ldd names musl); null when that cannot
 * tell, and binding.js asks the process report or `ldd --version` instead. */
function isMusl() {
  try {
    return fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    return null
  }
}

/** The addon, or null when binding.js has to find it. */
function loadAddon() {
  const env = process.env
  if (env.NAPI_RS_NATIVE_LIBRARY_PATH || env.NAPI_RS_FORCE_WASI || env.NAPI_RS_WASI_FLAVOR) return null
  const triple = platformTriple()
  if (triple === null) return null
  try {
    const addon = require(`${__dirname}${sep}..${sep}sabpool.${triple}.node`)
    bindingSource = 'file'
    return addon
  } catch {
    // not built here (an installed package): the platform package next
  }
  // binding.js checks the package's version when this is set: leave that to it.
  if (env.NAPI_RS_ENFORCE_VERSION_CHECK && env.NAPI_RS_ENFORCE_VERSION_CHECK !== '0') return null
  try {
    const addon = require(`sabpool-${triple}`)
    bindingSource = 'package'
    return addon
  } catch {
    return null
  }
}

const binding = loadAddon() ?? require('../binding.js')

// ---- lib/ from code caches ------------------------------------------------------------------

const WRAP_HEAD = '(function (exports, require, module, __filename, __dirname) { '
const WRAP_TAIL = '\n})'

const CACHING = process.versions.bun === undefined && process.versions.deno === undefined &&
  typeof Module === 'function' && typeof Module._nodeModulePaths === 'function' &&
  typeof binding.codeCacheLoad === 'function'

/** The lib files this thread compiled from their text (no usable cache yet), until their caches
 * are stored: { filename, generation, script }. */
let compiled = []
/** The lib files this thread compiled from a code cache (for tests and diagnostics). */
const cachedFiles = []

/**
 * `exports` of lib/<name>, loaded as described above; `fallback` requires it the plain way (it
 * also names the file statically, for bundlers).
 */
function loadLib(name, fallback) {
  if (!CACHING) return fallback()
  const filename = `${__dirname}${sep}${name}`
  const known = Module._cache[filename]
  if (known !== undefined) return known.exports
  let unit
  try {
    unit = compile(filename, undefined)
  } catch {
    return fallback()
  }
  return execute(filename, unit)
}

/** The module object and wrapper function of `filename`, not yet run. */
function compile(filename, parent) {
  const { text, cache, generation } = binding.codeCacheLoad(filename)
  const cachedData = cache ?? undefined
  const script = new vm.Script(WRAP_HEAD + text + WRAP_TAIL, { filename, cachedData })
  if (cachedData === undefined || script.cachedDataRejected) compiled.push({ filename, generation, script })
  else cachedFiles.push(filename)
  const run = script.runInThisContext()
  const mod = new Module(filename, parent)
  mod.filename = filename
  mod.paths = lookupPaths(filename)
  return { mod, run }
}

/** Runs a compiled module as Node does: in require.cache first (so a cycle sees its partial
 * exports), and out of it again if it throws. */
function execute(filename, { mod, run }) {
  Module._cache[filename] = mod
  let ok = false
  try {
    run.call(mod.exports, mod.exports, requireFrom(mod), mod, filename, dirnameOf(filename))
    ok = true
  } finally {
    if (!ok) delete Module._cache[filename]
  }
  mod.loaded = true
  return mod.exports
}

/** The `require` a lib module gets: './x.js' beside it loads here, everything else through Node. */
function requireFrom(mod) {
  const dir = dirnameOf(mod.filename)
  const req = (id) => {
    if (typeof id === 'string' && id.startsWith('./') && id.endsWith('.js') && !id.includes('/', 2)) {
      const filename = `${dir}${sep}${id.slice(2)}`
      const known = Module._cache[filename]
      if (known !== undefined) return known.exports
      let unit
      try {
        unit = compile(filename, mod)
      } catch {
        return mod.require(id)
      }
      return execute(filename, unit)
    }
    return mod.require(id)
  }
  req.resolve = (request, options) => Module._resolveFilename(request, mod, false, options)
  req.cache = Module._cache
  return req
}

/** node_modules lookup paths of a lib module, one array for all of lib/ (one directory). */
let libPaths = null

function lookupPaths(filename) {
  const dir = dirnameOf(filename)
  if (dir !== __dirname) return Module._nodeModulePaths(dir)
  libPaths ??= Module._nodeModulePaths(__dirname)
  return libPaths
}

function dirnameOf(filename) {
  return filename.slice(0, filename.lastIndexOf(sep))
}

/**
 * Called once lib/ is loaded: stores the caches of the files this thread compiled from source.
 * They hold the bytecode of what ran while loading; a function first called later is compiled
 * by each thread when it is first called, as it would be anyway. (Storing them again later, with
 * what a worker calls first, was measured: the larger caches cost loading what attach saved.)
 */
function storeCodeCaches() {
  const files = compiled
  compiled = []
  for (const { filename, generation, script } of files) binding.codeCacheStore(filename, generation, script.createCachedData())
}

module.exports = {
  binding,
  /** 'file', 'package' or 'loader': see bindingSource. */
  BINDING_SOURCE: bindingSource,
  cachedFiles,
  loadLib,
  storeCodeCaches,
}
