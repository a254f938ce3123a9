/**
 * Byte-array helpers shared by every layer.
 *
 * @module
 */

/**
 * The index of the first `needle` within `haystack[from, end)`, or -1.
 * `needle` must not be empty.
 */
export function indexOfBytes(
  haystack: Uint8Array,
  needle: Uint8Array,
  from: number,
  end: number,
): number {
  const first = needle[0];
  const last = end - needle.length;
  // indexOf would look past `end`, to the end of a buffer that may be mostly unused.
  const searched = end < haystack.length ? haystack.subarray(0, end) : haystack;
  for (
    let i = searched.indexOf(first, from);
    i !== -1 && i <= last;
    i = searched.indexOf(first, i + 1)
  ) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}
