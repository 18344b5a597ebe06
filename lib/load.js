'use strict'

// Loading the native addon: straight from where it is (`<package>/sabpool.<platform>.node`, then
// the package `sabpool-<platform>`), not through the loader napi generates (binding.js), which is
// 37 KB of JavaScript for every platform napi knows: compiling it cost a worker's start ten times
// what loading the addon itself does. binding.js remains the fallback, and the only path,
// for whatever this does not handle (platforms without a target here, the NAPI_RS_* overrides),
// so a load that fails here fails with binding.js's error, as before.

const fs = require('node:fs')
const { sep } = require('node:path')

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

module.exports = {
  binding,
  /** 'file', 'package' or 'loader': see bindingSource. */
  BINDING_SOURCE: bindingSource,
}
