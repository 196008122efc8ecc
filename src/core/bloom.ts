/**
 * A Bloom filter of 32-bit string hashes (issue 11, the scan's duplicate check; the scan gives it the
 * FNV-1a of each id it already computes for the id's block and mutation bucket): `addHash` answers
 * whether the hash may have been added before. "No" is certain; "maybe" is wrong for about 1 in 1,000
 * strings at the expected count (16 bits a string), and more often past it; two strings of the same
 * hash are always a "maybe". The scan asks Redis only about the "maybe"s. Blocked: a hash's 8 bits all
 * lie in one 64-byte block (one cache line: a filter of a million ids is 2 MiB, and 8 bits spread
 * over it were 8 cache misses an id).
 */
export class Bloom {
  readonly #words: Uint32Array;
  /** Blocks - 1 (a power of two). */
  readonly #blockMask: number;
  static readonly PROBES = 8;

  /** `expected`: how many hashes will be added (sized for it; at most 2^28 bits, 32 MiB). */
  constructor(expected: number) {
    const want = Math.max(1, expected) * 16;
    let bits = 1 << 16;
    while (bits < want && bits < 2 ** 28) bits *= 2;
    this.#words = new Uint32Array(bits / 32);
    this.#blockMask = bits / 512 - 1;
  }

  /** Adds a 32-bit hash; true when every one of its bits was already set (it may have been added before). */
  addHash(hash: number): boolean {
    // MurmurHash3's finalizer spreads every input bit over the word: its low bits pick the block, its
    // high bits the start and the step of the 8 bits in it (start + i * step, Kirsch and Mitzenmacher).
    let h = hash;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
    const words = this.#words;
    const base = (h & this.#blockMask) << 4; // 16 words a block
    const start = h >>> 23;
    const step = ((h >>> 14) & 511) | 1;
    let present = true;
    for (let i = 0; i < Bloom.PROBES; i++) {
      const at = (start + Math.imul(i, step)) & 511;
      const word = base + (at >>> 5);
      const bit = 1 << (at & 31);
      if ((words[word]! & bit) === 0) {
        present = false;
        words[word] = words[word]! | bit;
      }
    }
    return present;
  }
}
