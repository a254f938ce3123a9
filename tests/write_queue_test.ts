import { assert, assertEquals } from "@std/assert";
import { LARGE_WRITE_CHUNK_SIZE, WriteQueue } from "../src/core/_write_queue.ts";

/** Drains `queue` in sends of at most `most` bytes; returns what went out. */
function drain(queue: WriteQueue, most = Infinity): number[] {
  const out: number[] = [];
  for (let chunk; (chunk = queue.peek()) !== null;) {
    const n = Math.min(chunk.length, most);
    out.push(...chunk.subarray(0, n));
    queue.consume(n);
  }
  return out;
}

Deno.test("write queue: what is appended is a copy, sent in order across chunks and partial sends", () => {
  const queue = new WriteQueue();
  const scratch = new Uint8Array(100);
  const expected: number[] = [];
  for (let i = 0; i < 1000; i++) {
    scratch.fill(i & 0xff);
    queue.append(scratch, i % 7); // from an offset, as after a partial send
    expected.push(...scratch.subarray(i % 7));
  }
  scratch.fill(0); // the caller reuses its buffer at once
  assertEquals(queue.size, expected.length);
  assertEquals(drain(queue, 333), expected);
  assertEquals([queue.size, queue.peek(), queue.chunkCount], [0, null, 0]);
});

Deno.test("write queue: a view peek() lent is not changed by later appends", () => {
  const queue = new WriteQueue();
  queue.append(new Uint8Array([1, 2, 3]));
  const lent = queue.peek()!; // a send in flight reads this
  queue.append(new Uint8Array([4, 5])); // packed into the same chunk, after the lent bytes
  assertEquals([...lent], [1, 2, 3]);
  queue.consume(2);
  assertEquals([...queue.peek()!], [3, 4, 5]);
});

Deno.test("write queue: a queue that never empties holds no more than a few chunks", () => {
  const queue = new WriteQueue();
  const big = new Uint8Array(2 * LARGE_WRITE_CHUNK_SIZE); // a buffer of its own per write
  for (let i = 0; i < 10_000; i++) {
    queue.append(big);
    queue.consume(big.length - (i === 0 ? 10 : 0)); // 10 bytes always left behind
    assert(queue.chunkCount <= 64, `${queue.chunkCount} chunks held after ${i + 1} writes`);
  }
  assertEquals(queue.size, 10);
});
