import { assert, assertEquals, assertThrows } from "@std/assert";
import { EchoSession, type EchoSink, resolveEchoOptions } from "../src/echo/behavior.ts";
import { decode, encode } from "./_helpers.ts";

/** A sink that records what it is sent, copying views as a transport would send them. */
function recordingSink() {
  const sent: string[] = [];
  let closed = 0;
  const sink: EchoSink = {
    write: (data) => void sent.push(decode(data)),
    close: () => void closed++,
  };
  return { sink, sent, closed: () => closed };
}

Deno.test("until mode: a terminator split over every byte boundary is found once", () => {
  const session = new EchoSession(resolveEchoOptions({ until: "quit\n" }));
  const { sink, sent, closed } = recordingSink();
  for (const part of ["hello ", "q", "u", "i", "t"]) session.received(encode(part), sink);
  assertEquals(sent, []);
  assertEquals(closed(), 0);
  session.received(encode("\n"), sink);
  assertEquals(sent, ["hello quit\n"]);
  assertEquals(closed(), 1);
  session.received(encode("ignored"), sink); // done: nothing more is answered
  session.ended(sink);
  assertEquals(sent, ["hello quit\n"]);
  assertEquals(closed(), 1);
});

Deno.test("until mode: the kept bytes are copies, so a reused read buffer cannot change them", () => {
  const session = new EchoSession(resolveEchoOptions({ until: "!" }));
  const { sink, sent } = recordingSink();
  const buffer = encode("abc");
  session.received(buffer, sink);
  buffer.set(encode("XYZ")); // the transport reuses its read buffer
  session.received(encode("!"), sink);
  assertEquals(sent, ["abc!"]);
});

Deno.test("until mode: at untilLimit without the terminator, the kept bytes go back and the sink closes", () => {
  let limit = 0;
  const charges: number[] = [];
  const session = new EchoSession(resolveEchoOptions({ until: "END", untilLimit: 10 }), {
    charge: (delta) => void charges.push(delta),
    limitReached: (bytes) => void (limit = bytes),
  });
  const { sink, sent, closed } = recordingSink();
  session.received(encode("0123456"), sink);
  assertEquals(closed(), 0);
  session.received(encode("789AB"), sink); // three more fill the limit; the rest is dropped
  assertEquals(sent, ["0123456789"]);
  assertEquals(closed(), 1);
  assertEquals(limit, 10);
  // What it kept was counted, never past the limit, and all given back.
  assert(charges.every((delta) => Math.abs(delta) <= 10), `charges ${charges}`);
  assertEquals(charges.reduce((a, b) => a + b, 0), 0);
});

Deno.test("until mode: what is kept is let go of piece by piece as it is written, not after all of it", () => {
  // The server's budget counts both what the session keeps and what a write keeps of it (the
  // deno backend's writes keep all of it): were the kept bytes let go of only after the last
  // write, a server flushing 100 floods at shutdown held each one's request twice at once.
  const PIECE = 100_000;
  let held = 0;
  let peak = 0;
  const count = (delta: number) => {
    held += delta;
    peak = Math.max(peak, held);
  };
  const session = new EchoSession(resolveEchoOptions({ until: "END" }), { charge: count });
  let written = 0;
  const sink: EchoSink = {
    write: (data) => {
      written += data.length;
      count(data.length); // a queue's copy, which the socket takes later
    },
    close: () => {},
  };
  for (let i = 0; i < 4; i++) session.received(new Uint8Array(PIECE), sink);
  assertEquals([held, written], [4 * PIECE, 0]);
  session.received(encode("END"), sink);
  assertEquals(written, 4 * PIECE + 3);
  // The session let go of all it counted: what is left is the writes' copies.
  assertEquals(held, written);
  assert(peak <= 4 * PIECE + PIECE + 3, `peak ${peak}: the kept bytes and their copies together`);
});

Deno.test("until mode: a request of exactly untilLimit bytes, terminator included, is answered", () => {
  let limit = 0;
  const session = new EchoSession(resolveEchoOptions({ until: "END", untilLimit: 10 }), {
    limitReached: (bytes) => void (limit = bytes),
  });
  const { sink, sent, closed } = recordingSink();
  session.received(encode("01234"), sink);
  session.received(encode("56END"), sink);
  assertEquals([sent, closed(), limit], [["0123456END"], 1, 0]);
});

Deno.test("until mode: what follows the terminator in the same read is not sent back", () => {
  const session = new EchoSession(resolveEchoOptions({ until: "quit\n" }));
  const { sink, sent, closed } = recordingSink();
  session.received(encode("a"), sink);
  session.received(encode("b quit\nand more after it"), sink);
  assertEquals([sent, closed()], [["ab quit\n"], 1]);
});

Deno.test("prefix and once modes answer per read; echo mode closes only at end of input", () => {
  const prefix = recordingSink();
  const p = new EchoSession(resolveEchoOptions({ prefix: "GOT:" }));
  p.received(encode("a"), prefix.sink);
  p.received(encode("b"), prefix.sink);
  assertEquals(prefix.sent, ["GOT:", "a", "GOT:", "b"]);
  const once = recordingSink();
  const o = new EchoSession(resolveEchoOptions({ mode: "once" }));
  o.received(encode("first"), once.sink);
  o.received(encode("second"), once.sink);
  assertEquals([once.sent, once.closed()], [["first"], 1]);
  const echo = recordingSink();
  const e = new EchoSession(resolveEchoOptions());
  e.received(encode("x"), echo.sink);
  assertEquals(echo.closed(), 0);
  e.ended(echo.sink);
  assertEquals([echo.sent, echo.closed()], [["x"], 1]);
});

Deno.test("resolveEchoOptions rejects a bad untilLimit with the value and the range", () => {
  assertThrows(
    () => resolveEchoOptions({ until: "x", untilLimit: 0 }),
    RangeError,
    "Cannot use untilLimit 0: it must be a whole number from 1 to",
  );
  assertThrows(
    () => resolveEchoOptions({ untilLimit: 2.5 }),
    RangeError,
    "Cannot use untilLimit 2.5",
  );
});
