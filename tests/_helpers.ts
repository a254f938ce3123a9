/**
 * Test helpers: deterministic random data, chunked senders, and raw
 * `Deno.connect` readers, so server tests do not depend on our own client.
 */

import { assert } from "@std/assert";

/** A small seeded PRNG (mulberry32), so failures are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` pseudo-random bytes from `seed`. */
export function randomBytes(n: number, seed = 1): Uint8Array {
  const random = prng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (random() * 256) | 0;
  return out;
}

/** Writes all of `data` to `conn` in chunks of 1..maxChunk bytes. */
export async function writeInChunks(
  conn: Deno.Conn,
  data: Uint8Array,
  seed = 7,
  maxChunk = 65536,
): Promise<void> {
  const random = prng(seed);
  for (let offset = 0; offset < data.length;) {
    const size = Math.min(data.length - offset, 1 + Math.floor(random() * maxChunk));
    await writeAll(conn, data.subarray(offset, offset + size));
    offset += size;
  }
}

/** Writes all of `data`, looping over partial writes. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let offset = 0; offset < data.length;) offset += await conn.write(data.subarray(offset));
}

/** Reads until end of input; returns everything read. */
export async function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  let total = 0;
  for (let n; (n = await conn.read(buffer)) !== null;) {
    chunks.push(buffer.slice(0, n));
    total += n;
  }
  return concat(chunks, total);
}

/** Reads exactly `n` bytes; fails the test on an early end of input. */
export async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let total = 0;
  while (total < n) {
    const got = await conn.read(out.subarray(total));
    if (got === null) throw new Error(`end of input after ${total} of ${n} bytes`);
    total += got;
  }
  return out;
}

/** Joins chunks into one array. */
export function concat(chunks: Uint8Array[], total = chunks.reduce((s, c) => s + c.length, 0)) {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Connects a raw client to a server's address. */
export function dial(addr: Deno.NetAddr): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: addr.hostname, port: addr.port });
}

/** Compares byte arrays without printing megabytes on failure. */
export function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what = "bytes"): void {
  assert(
    actual.length === expected.length,
    `${what}: got ${actual.length} bytes, expected ${expected.length}`,
  );
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) {
      throw new Error(`${what}: first difference at byte ${i}: ${actual[i]} != ${expected[i]}`);
    }
  }
}

/** Waits until `condition()` is true, checking every `intervalMs`; fails after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = 10_000,
  intervalMs = 5,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export const encode = (text: string): Uint8Array => new TextEncoder().encode(text);
export const decode = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/** Sends `text` to the echo server on `port`, half-closes, and returns all that came back. */
export async function echoOf(port: number, text: string): Promise<string> {
  const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port });
  await writeAll(conn, encode(text));
  conn.closeWrite();
  const got = decode(await readToEnd(conn));
  conn.close();
  return got;
}

/** `promise`'s outcome, or "pending" if it has not settled within `ms` (a bound, not a wait for it). */
export function outcome(promise: Promise<unknown>, ms = 5_000): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.then(() => "resolved", (error) => `rejected: ${error}`),
    new Promise<string>((resolve) => timer = setTimeout(() => resolve("pending"), ms)),
  ]).finally(() => clearTimeout(timer));
}

/**
 * The descriptors this process holds that are not files: sockets, pipes,
 * epoll instances and eventfds (Deno's own cache files come and go while it
 * compiles, so they are left out).
 */
export function openIoDescriptors(): number {
  let count = 0;
  for (const { name } of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (!Deno.readLinkSync(`/proc/self/fd/${name}`).startsWith("/")) count++;
    } catch {
      // Closed since the directory was read.
    }
  }
  return count;
}
