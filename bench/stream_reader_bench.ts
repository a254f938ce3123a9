/**
 * Micro-benchmarks of the stream API's read path: what one chunk costs from
 * the transport handing over a read (`feedData`, or a receive into
 * `getBuffer`) to the handler holding it.
 * Run with `deno bench bench/`.
 *
 * @module
 */

import { StreamReader } from "../mod.ts";

for (const size of [1_000, 100_000]) {
  const data = new Uint8Array(size).fill(7);
  // One read of the socket into the shared buffer, then one handed to the handler.
  const pending = new StreamReader();
  Deno.bench(`reader: feedData, then an awaited read() waiting first (${size} bytes)`, {
    group: `reader ${size}`,
    baseline: true,
  }, async () => {
    const chunk = pending.read(size);
    pending.feedData(data);
    await chunk;
  });
  const iterating = new StreamReader();
  const chunks = iterating[Symbol.asyncIterator]();
  Deno.bench(`reader: feedData, then the async iterator's next() (${size} bytes)`, {
    group: `reader ${size}`,
  }, async () => {
    iterating.feedData(data);
    await chunks.next();
  });
  // The echo handler's path: the transport receives into the reader, a borrowed read waits.
  const borrowing = new StreamReader();
  Deno.bench(`reader: received into getBuffer(), then a waiting readBorrowed() (${size} bytes)`, {
    group: `reader ${size}`,
  }, async () => {
    const view = borrowing.readBorrowed();
    borrowing.getBuffer(256 * 1024).set(data);
    borrowing.bufferUpdated(size);
    await view;
  });
  // A message that arrives in two reads (as 100 KB does over loopback).
  const split = new StreamReader({ limit: 1 << 20 });
  const half = data.subarray(0, size >> 1), rest = data.subarray(size >> 1);
  Deno.bench(`reader: two feedData, then one read() (${size} bytes)`, {
    group: `reader ${size}`,
  }, async () => {
    split.feedData(half);
    split.feedData(rest);
    await split.read(size);
  });
}
