'use strict'
// In-place byte transforms ("image filters" over one chunk of pixels). Used by the workers, and
// by the main thread to compute what each chunk should look like afterwards.

/** 255 - x for every byte. */
function invert(bytes) {
  for (let i = 0; i < bytes.length; i++) bytes[i] = 255 - bytes[i]
}

/** 3-tap box blur along the chunk, edges clamped; in place, keeping the previous original byte. */
function blur(bytes) {
  const n = bytes.length
  if (n === 0) return
  let prev = bytes[0]
  for (let i = 0; i < n; i++) {
    const cur = bytes[i]
    const next = i + 1 < n ? bytes[i + 1] : cur
    bytes[i] = ((prev + cur + next) / 3) | 0
    prev = cur
  }
}

module.exports = { invert, blur }
