/**
 * The interactive client program sends the bytes it is given, as nc does:
 * each line of stdin up to and including its LF, CR and any byte value kept,
 * a last line without an LF as it is; over UDP, each line is one datagram.
 */

import { assert, assertEquals } from "@std/assert";
import { CLIENT, pipeThrough, ServerProcess } from "./_programs.ts";
import { openDatagramSocket } from "../src/udp/socket.ts";
import { decode } from "./_helpers.ts";

const encoder = new TextEncoder();

/** Text as bytes, and byte values as they are. */
function bytes(...parts: (string | number[])[]): Uint8Array {
  const arrays = parts.map((part) => typeof part === "string" ? encoder.encode(part) : part);
  const all = new Uint8Array(arrays.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of arrays) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}

/** The byte values from `first` to `last`, both included. */
function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, index) => first + index);
}

/** Runs the client program with `args` and `input` on stdin, as bytes. */
async function client(
  args: string[],
  input: Uint8Array,
): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
  return await pipeThrough(
    Deno.execPath(),
    ["run", "-A", "--quiet", CLIENT, ...args],
    input,
  );
}

/**
 * A TCP server that serves one connection: it keeps every byte that comes
 * and sends it back, and closes once the peer half-closes.
 */
function recordingTcpServer(): AsyncDisposable & { port: number; received: Promise<Uint8Array> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received = (async () => {
    using conn = await listener.accept();
    const chunks: number[] = [];
    const buffer = new Uint8Array(4096);
    for (let count; (count = await conn.read(buffer)) !== null;) {
      const chunk = buffer.slice(0, count);
      chunks.push(...chunk);
      await conn.write(chunk);
    }
    return Uint8Array.from(chunks);
  })();
  return {
    port: listener.addr.port,
    received,
    async [Symbol.asyncDispose]() {
      listener.close(); // a client that never connected leaves accept waiting: it ends it
      await received.catch(() => {});
    },
  };
}

/** A UDP server that keeps each datagram that comes and sends it back. */
async function recordingUdpServer(): Promise<
  AsyncDisposable & { port: number; received: Uint8Array[] }
> {
  const socket = await openDatagramSocket({ hostname: "127.0.0.1", port: 0 });
  const received: Uint8Array[] = [];
  const serving = (async () => {
    for (let datagram; (datagram = await socket.receive()) !== null;) {
      const [data, from] = datagram;
      received.push(data.slice()); // a view of a buffer the next receive reuses, on some backends
      await socket.send(data, from);
    }
  })();
  return {
    port: socket.addr.port,
    received,
    async [Symbol.asyncDispose]() {
      socket.close();
      await serving;
      await socket.closed;
    },
  };
}

Deno.test("client program, interactive: CR LF goes out as typed, so --until 'quit\\r\\n' is seen", async () => {
  await using until = await new ServerProcess([
    "--mode",
    "until",
    "--until",
    "quit\\r\\n",
    "--log-level",
    "warning",
  ]).ready();
  const input = bytes("abc\r\nquit\r\n");
  const result = await client(["--port", String(until.port)], input);
  // The server answers at its terminator and closes; the client says so and exits 0.
  assertEquals(decode(result.stdout), "abc\r\nquit\r\n");
  assertEquals(result.code, 0, result.stderr);
});

Deno.test("client program, interactive: bytes 0x80-0xFF (not UTF-8) and every other byte go out as they are", async () => {
  await using server = recordingTcpServer();
  const input = bytes(range(0x80, 0xff), "\n", range(0x00, 0xff), "\n");
  const result = await client(["--port", String(server.port)], input);
  assertEquals(await server.received, input);
  assertEquals(result.stdout, input);
  assertEquals([result.code, result.stderr], [0, ""]);
});

Deno.test("client program, interactive: a last line without LF is sent as it is, nothing added", async () => {
  await using server = recordingTcpServer();
  const input = bytes("one\ntwo");
  const result = await client(["--port", String(server.port)], input);
  assertEquals(decode(await server.received), "one\ntwo");
  assertEquals(decode(result.stdout), "one\ntwo");
  assertEquals([result.code, result.stderr], [0, ""]);
});

Deno.test("client program, interactive: a line that is just q (LF or CR LF) quits; any other is sent", async () => {
  await using server = recordingTcpServer();
  const input = bytes("one\r\n q\nq \nq\r\nnever\r\n");
  const result = await client(["--port", String(server.port)], input);
  assertEquals(decode(await server.received), "one\r\n q\nq \n");
  assertEquals(decode(result.stdout), "one\r\n q\nq \n");
  assertEquals([result.code, result.stderr], [0, ""]);
});

Deno.test("client program over UDP, interactive: each line one datagram of the bytes given", async () => {
  {
    await using server = await recordingUdpServer();
    const lines = [bytes("abc\r\n"), bytes(range(0x80, 0xff), "\n"), bytes("last")];
    const result = await client(
      ["--udp", "--port", String(server.port)],
      bytes(...lines.map((line) => [...line])),
    );
    assertEquals(server.received, lines);
    assertEquals(result.stdout, bytes(...lines.map((line) => [...line])));
    assertEquals([result.code, result.stderr], [0, ""]);
  }
  {
    await using server = await recordingUdpServer();
    const result = await client(
      ["--udp", "--port", String(server.port)],
      bytes("x\r\nq\r\nnever\n"),
    );
    assertEquals(server.received, [bytes("x\r\n")]);
    assertEquals(decode(result.stdout), "x\r\n");
    assertEquals([result.code, result.stderr], [0, ""]);
  }
});

Deno.test("client program, interactive: a long line without LF goes out in pieces as it is read, not held whole", async () => {
  await using server = recordingTcpServer();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", CLIENT, "--port", String(server.port)],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const input = new Uint8Array(300 * 1024).map((_, i) => 0x61 + (i % 26)); // no LF
  const writer = child.stdin.getWriter();
  const reader = child.stdout.getReader();
  const output: number[] = [];
  const writing = writer.write(input); // taken as the client reads it: not awaited before
  // The input is still open, with no LF: the echo of what was read comes back meanwhile. (A
  // client that held the line whole would print nothing: the read is then cut short.)
  const timer = setTimeout(() => reader.cancel(), 10_000);
  while (output.length < 128 * 1024) {
    const { value, done } = await reader.read();
    if (done) break;
    output.push(...value);
  }
  clearTimeout(timer);
  const before = output.length;
  if (before < 128 * 1024) {
    // Held whole: end the client before failing, so nothing of it outlives the test.
    child.kill();
    await Promise.allSettled([child.status, writing, stderr, server.received]);
    await reader.cancel().catch(() => {});
  }
  assert(before >= 128 * 1024, `${before} bytes printed before the input ended`);
  await writing;
  await writer.close();
  for (let chunk; !(chunk = await reader.read().catch(() => ({ done: true }))).done;) {
    output.push(...(chunk as ReadableStreamReadResult<Uint8Array>).value!);
  }
  const { code } = await child.status;
  assertEquals(code, 0, await stderr);
  assertEquals(Uint8Array.from(output), input);
  assertEquals(await server.received, input);
});

Deno.test("client program over UDP, interactive: a line longer than a datagram is refused, naming the limit", async () => {
  await using server = await recordingUdpServer();
  const result = await client(
    ["--udp", "--port", String(server.port)],
    bytes("short\n", "x".repeat(200_000)),
  );
  assertEquals(server.received, [bytes("short\n")]);
  assertEquals(result.code, 1);
  assertEquals(
    result.stderr,
    `echo client: Cannot send a line of more than 65536 bytes to udp 127.0.0.1:${server.port}: ` +
      "a datagram carries at most 65507 bytes over IPv4; break it into lines, or use TCP\n",
  );
});
