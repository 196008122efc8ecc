// Crockford's base32, the alphabet of ULIDs such as 003's "01BX5ZZKBKACTAV9WEVGEMMVRY".
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * A generator of 26-character ULID-like ids: 10 characters of millisecond time, then 16 of a counter
 * mixed from a seed, so ids are unique within a run, sort by creation and are reproducible for a seed.
 */
export function createIdGenerator(seed = 1, now: () => number = Date.now): () => string {
  let counter = 0;
  return () => {
    let time = now();
    let head = '';
    for (let i = 0; i < 10; i++) {
      head = ALPHABET[time % 32] + head;
      time = Math.floor(time / 32);
    }
    counter++;
    // 80 bits: a 32-bit mix of (seed, counter) followed by the counter itself, so ids never repeat.
    let mix = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(counter, 0xc2b2ae35);
    mix = (mix ^ (mix >>> 16)) >>> 0;
    let tail = '';
    for (let i = 0; i < 7; i++) {
      tail += ALPHABET[mix % 32];
      mix = Math.floor(mix / 32);
    }
    let c = counter;
    let low = '';
    for (let i = 0; i < 9; i++) {
      low = ALPHABET[c % 32] + low;
      c = Math.floor(c / 32);
    }
    return head + tail + low;
  };
}
