/**
 * CRC32C (Castagnoli, RFC 4960 appendix B), as the PROXY protocol's
 * `PP2_TYPE_CRC32C` TLV carries it.
 *
 * @module
 */

const TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * The CRC32C of `bytes` with the four bytes at `zeroAt` (if given) read as
 * zeros, without changing `bytes`.
 */
export function crc32c(bytes: Uint8Array, zeroAt = -1): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) {
    const byte = zeroAt >= 0 && i >= zeroAt && i < zeroAt + 4 ? 0 : bytes[i];
    crc = TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}
