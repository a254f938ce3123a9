import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { IncompleteReadError, LimitOverrunError, StreamReader, type Transport } from "../mod.ts";
import { readerBuffers } from "../src/streams/stream_reader.ts";
import { decode, encode } from "./_helpers.ts";

function readerWith(...parts: string[]): StreamReader {
  const reader = new StreamReader({ limit: 16 });
  for (const part of parts) reader.feedData(encode(part));
  return reader;
}

Deno.test("read(n) returns what is buffered, up to n, and null at end of input", async () => {
  const reader = readerWith("abcdef");
  assertEquals(decode((await reader.read(4))!), "abcd");
  assertEquals(decode((await reader.read(100))!), "ef");
  reader.feedEof();
  assertEquals(await reader.read(10), null);
  assertEquals(reader.atEof(), true);
});

Deno.test("read(-1) reads until end of input", async () => {
  const reader = readerWith("ab");
  const all = reader.read(-1);
  reader.feedData(encode("cd"));
  reader.feedEof();
  assertEquals(decode((await all)!), "abcd");
});

Deno.test("a waiting read wakes when data arrives", async () => {
  const reader = new StreamReader();
  const pending = reader.read(10);
  reader.feedData(encode("late"));
  assertEquals(decode((await pending)!), "late");
});

Deno.test("readExactly waits for all bytes and reports a short input with the partial bytes", async () => {
  const reader = readerWith("12");
  const four = reader.readExactly(4);
  reader.feedData(encode("345"));
  assertEquals(decode(await four), "1234");
  reader.feedEof();
  const error = await assertRejects(() => reader.readExactly(3), IncompleteReadError);
  assertEquals(decode(error.partial), "5");
  assertEquals(error.expected, 3);
});

Deno.test("readLine splits lines, returns the unterminated tail, then null", async () => {
  const reader = readerWith("one\ntw", "o\nthr");
  reader.feedEof();
  assertEquals(decode((await reader.readLine())!), "one\n");
  assertEquals(decode((await reader.readLine())!), "two\n");
  assertEquals(decode((await reader.readLine())!), "thr");
  assertEquals(await reader.readLine(), null);
});

Deno.test("readUntil finds a separator split across feeds", async () => {
  const reader = readerWith("hello qu");
  const pending = reader.readUntil("quit\n");
  reader.feedData(encode("i"));
  reader.feedData(encode("t\nrest"));
  assertEquals(decode(await pending), "hello quit\n");
  assertEquals(decode((await reader.read())!), "rest");
});

Deno.test("readUntil past the limit throws LimitOverrunError and keeps the data", async () => {
  const reader = readerWith("0123456789abcdefXYZ");
  const error = await assertRejects(() => reader.readUntil("\n"), LimitOverrunError);
  assertEquals(error.consumed, 19);
  assertEquals(reader.buffered, 19);
});

Deno.test("readLine past the limit drops the overlong line so the next line reads clean", async () => {
  const reader = readerWith("0123456789abcdefXYZ\nok\n");
  await assertRejects(() => reader.readLine(), LimitOverrunError, "limit of 16 bytes");
  assertEquals(decode((await reader.readLine())!), "ok\n");
});

Deno.test("readUntil at end of input without the separator gives everything as partial", async () => {
  const reader = readerWith("no separator");
  reader.feedEof();
  const error = await assertRejects(() => reader.readUntil("\n"), IncompleteReadError);
  assertEquals(decode(error.partial), "no separator");
  assertEquals(error.expected, null);
});

Deno.test("a failed reader hands out buffered bytes, then rejects with the error", async () => {
  const reader = readerWith("kept");
  reader.setException(new Deno.errors.ConnectionReset("reset by peer"));
  assertEquals(decode((await reader.read())!), "kept");
  await assertRejects(() => reader.read(), Deno.errors.ConnectionReset, "reset by peer");
});

Deno.test("two reads may not wait at once", async () => {
  const reader = new StreamReader();
  const first = reader.read();
  await assertRejects(() => reader.read(), Error, "another read is waiting");
  reader.feedEof();
  assertEquals(await first, null);
});

Deno.test("async iteration yields chunks until end of input", async () => {
  const reader = readerWith("ab", "cd");
  reader.feedEof();
  const chunks: string[] = [];
  for await (const chunk of reader) chunks.push(decode(chunk));
  assertEquals(chunks.join(""), "abcd");
});

Deno.test("readable is a web stream of the same bytes", async () => {
  const reader = readerWith("web ", "streams");
  reader.feedEof();
  assertEquals(await new Response(reader.readable).text(), "web streams");
});

Deno.test("invalid limits and sizes name the value and the range", async () => {
  assertThrows(() => new StreamReader({ limit: 0 }), RangeError, "Cannot use limit 0");
  assertThrows(() => new StreamReader({ limit: 1.5 }), RangeError, "whole number from 1");
  await assertRejects(() => new StreamReader().read(-2), RangeError, "Cannot use read size -2");
  await assertRejects(
    () => new StreamReader().readUntil(""),
    RangeError,
    'separator "": it is empty',
  );
});

Deno.test("readUntil finds a separator that arrives after the buffer was compacted", async () => {
  const reader = new StreamReader({ limit: 8192 });
  reader.feedData(encode("aaaa\nbbbb")); // 4 KiB buffer; after the first line, data starts at 5
  assertEquals(decode((await reader.readLine())!), "aaaa\n");
  const pending = reader.readUntil("\n");
  // Too large to append after index 9: the reader moves "bbbb" to the front first.
  reader.feedData(encode("x\n" + "y".repeat(4088)));
  assertEquals(decode(await pending), "bbbbx\n");
});

/** A transport stand-in that reports `queued` bytes not yet sent, as a real one's write buffer. */
function transportHolding(state: { queued: number }): Transport {
  return {
    getWriteBufferSize: () => state.queued,
    pauseReading() {},
    resumeReading() {},
  } as Partial<Transport> as Transport;
}

Deno.test("readBorrowed lends a view that more data does not overwrite before the next read", async () => {
  const reader = new StreamReader();
  reader.feedData(encode("first"));
  const view = (await reader.readBorrowed())!;
  assertEquals(decode(view), "first");
  reader.feedData(encode("SECOND")); // arrives while the view is still lent
  assertEquals(decode(view), "first");
  assertEquals(decode((await reader.readBorrowed())!), "SECOND");
  reader.feedEof();
  assertEquals(await reader.readBorrowed(), null);
});

Deno.test("readBorrowed takes at most n bytes and leaves the rest; a bad n names itself", async () => {
  const reader = readerWith("abcdef");
  assertEquals(decode((await reader.readBorrowed(4))!), "abcd");
  assertEquals(decode((await reader.read())!), "ef");
  await assertRejects(() => reader.readBorrowed(0), RangeError, "Cannot use read size 0");
  const waiting = reader.read();
  await assertRejects(() => reader.readBorrowed(), Error, "another read is waiting");
  reader.feedEof();
  assertEquals(await waiting, null);
});

Deno.test("a lent view stays intact until the next read, then its buffer is reused", async () => {
  const state = { queued: 3 }; // what the transport holds does not matter: writes copy
  const reader = new StreamReader();
  reader.setTransport(transportHolding(state));
  reader.feedData(encode("one"));
  const one = (await reader.readBorrowed())!;
  // Data that arrives while the view is lent does not overwrite it.
  reader.feedData(encode("two"));
  assertEquals(decode(one), "one");
  const two = (await reader.readBorrowed())!;
  assertEquals(decode(two), "two");
  // Taken back at the next read: the next data lands in the same memory.
  const next = reader.readBorrowed();
  reader.feedData(encode("333"));
  const three = (await next)!;
  assert(three.buffer === two.buffer, "the buffer is reused");
  assertEquals(decode(three), "333");
});

Deno.test("getBuffer and bufferUpdated receive into the reader; a waiting reader gives the space back", async () => {
  const reader = new StreamReader();
  const space = reader.getBuffer(-1);
  assert(space.length >= 64 * 1024, `offered ${space.length} bytes`);
  // Nothing was received into it: a read that waits returns the buffer to the pool.
  const waiting = reader.read();
  const pooled = readerBuffers.take();
  assert(pooled.buffer === space.buffer, "the unused buffer went back to the pool");
  readerBuffers.give(pooled);
  const into = reader.getBuffer(10);
  into.set(encode("direct"));
  reader.bufferUpdated(6);
  assertEquals(decode((await waiting)!), "direct");
  assertThrows(() => reader.bufferUpdated(reader.getBuffer(1).length + 1), RangeError, "at most");
  assertThrows(
    () => reader.bufferUpdated(-1),
    RangeError,
    "Cannot use byte count -1 in bufferUpdated()",
  );
  reader.feedEof();
  assertThrows(() => reader.getBuffer(1), Error, "Cannot call getBuffer() after feedEof()");
});
