/**
 * One error-message style across the module (issue 21), denoland/std's:
 * "Cannot <what was attempted> <the bad value>: <why>; <the fix>", sentence
 * case, one sentence, no trailing period. Checked twice with the one
 * predicate of `_error_style.ts`: (a) over every message written in `src/`,
 * read from the source, and (b) over the errors bad input provokes from the
 * public API and the command-line programs.
 */

import { assert, assertEquals, assertGreater } from "@std/assert";
import { assertStdStyle, styleProblems } from "./_error_style.ts";
import { BAD_FLAGS } from "./_bad_flags.ts";
import { BENCH, CLIENT, SERVER } from "./_programs.ts";
import {
  connectTcp,
  getSocketOptions,
  type Protocol,
  serveTcp,
  type Transport,
  TransportClosedError,
} from "../src/tcp/mod.ts";
import {
  connectTcpStreams,
  IncompleteReadError,
  LimitOverrunError,
  serveEcho,
  serveTcpStreams,
  serveUdpEcho,
  StreamReader,
} from "../mod.ts";
import {
  connectUdp,
  connectUdpClient,
  type DatagramProtocol,
  type DatagramTransport,
  openDatagramSocket,
  serveUdp,
} from "../src/udp/mod.ts";
import { resolveEchoOptions } from "../src/echo/behavior.ts";
import { resolveUdpEchoPrefix } from "../src/echo/datagram.ts";
import { main as serverMain } from "../src/cli/server.ts";
import { main as clientMain } from "../src/cli/client.ts";
import { main as benchMain } from "../src/cli/bench.ts";

// ---- (a) Every message in the source ------------------------------------

/** Stands for an interpolated or computed part of a message read from the source. */
const HOLE = "${}";

/** What `\\n` and the like stand for in a string literal (others stand for themselves). */
const ESCAPES: Record<string, string> = { n: "\n", r: "\r", t: "\t" };

/** A message written in the source: where, and each text it can take (one per ternary branch). */
interface SourceMessage {
  where: string;
  texts: string[];
}

/** The `.ts` files under `dir`, recursively. */
function sourceFiles(dir: URL): URL[] {
  const files: URL[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) files.push(...sourceFiles(url));
    else if (entry.name.endsWith(".ts")) files.push(url);
  }
  return files;
}

/**
 * Reads one TypeScript expression far enough to know the message texts it
 * can build: string and template literals joined by `+`, both branches of a
 * `?:`, anything else a {@linkcode HOLE}. Works on source whose comments
 * were blanked out ({@linkcode blankComments}).
 */
class MessageReader {
  constructor(readonly src: string, public at: number) {}

  /** The texts of the expression at `at`, which ends at a top-level `,` or `)`. */
  expression(): string[] {
    const first = this.#concatenation();
    this.#space();
    if (this.src[this.at] === "?" && !"?.".includes(this.src[this.at + 1])) {
      this.at++;
      const yes = this.expression();
      this.#space();
      assertEquals(this.src[this.at], ":", `ternary at ${this.at}`);
      this.at++;
      return [...yes, ...this.expression()]; // the condition is no message
    }
    return first;
  }

  #concatenation(): string[] {
    let texts = this.#term();
    for (;;) {
      this.#space();
      if (this.src[this.at] !== "+") return texts;
      this.at++;
      const next = this.#term();
      texts = texts.flatMap((a) => next.map((b) => a + b));
    }
  }

  #term(): string[] {
    this.#space();
    const c = this.src[this.at];
    if (c === '"' || c === "'") return [this.#quoted()];
    if (c === "`") return [this.#template()];
    if (c === "(") {
      const start = this.at;
      this.at++;
      const inner = this.expression();
      this.#space();
      this.at++; // ")"
      if (!".[(".includes(this.src[this.at])) return inner;
      this.at = start; // `(x as Error).message`: computed
    }
    this.#skipComputed();
    return [HOLE];
  }

  /** Skips code up to a top-level `+`, `?` (not `?.` or `??`), `:`, `,` or `)`. */
  #skipComputed(): void {
    let depth = 0;
    while (this.at < this.src.length) {
      const c = this.src[this.at];
      const next = this.src[this.at + 1];
      if (c === '"' || c === "'") {
        this.#quoted();
        continue;
      }
      if (c === "`") {
        this.#template();
        continue;
      }
      const ternary = c === "?" && next !== "." && next !== "?";
      if (depth === 0 && (",+:)]}".includes(c) || ternary)) return;
      if ("([{".includes(c)) depth++;
      else if (")]}".includes(c)) depth--;
      this.at += c === "?" && next === "?" ? 2 : 1;
    }
  }

  #quoted(): string {
    const quote = this.src[this.at++];
    let text = "";
    while (this.src[this.at] !== quote) {
      if (this.src[this.at] === "\\") {
        const escaped = this.src[this.at + 1];
        text += ESCAPES[escaped] ?? escaped;
        this.at += 2;
      } else text += this.src[this.at++];
    }
    this.at++;
    return text;
  }

  #template(): string {
    this.at++; // "`"
    let text = "";
    while (this.src[this.at] !== "`") {
      if (this.src[this.at] === "\\") {
        const escaped = this.src[this.at + 1];
        text += ESCAPES[escaped] ?? escaped;
        this.at += 2;
      } else if (this.src.startsWith("${", this.at)) {
        this.at += 2;
        this.#skipComputedUntilBrace();
        text += HOLE;
      } else text += this.src[this.at++];
    }
    this.at++;
    return text;
  }

  #skipComputedUntilBrace(): void {
    let depth = 0;
    for (;;) {
      const c = this.src[this.at];
      if (c === '"' || c === "'") this.#quoted();
      else if (c === "`") this.#template();
      else {
        this.at++;
        if (c === "{") depth++;
        else if (c === "}" && depth-- === 0) return;
      }
    }
  }

  #space(): void {
    while (/\s/.test(this.src[this.at] ?? "")) this.at++;
  }
}

/**
 * `source` with every comment turned into spaces (line breaks kept), so
 * that JSDoc examples are not read as code; strings, templates and regular
 * expressions are kept as they are.
 */
function blankComments(source: string): string {
  const out = source.split("");
  let i = 0;
  let lastCode = ""; // the last character of code, to tell a regular expression from a division
  const blank = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== "\n") out[k] = " ";
  };
  const skipString = (quote: string) => {
    for (i++; source[i] !== quote; i++) if (source[i] === "\\") i++;
    i++;
  };
  const skipTemplate = () => {
    for (i++; source[i] !== "`"; i++) {
      if (source[i] === "\\") i++;
      else if (source.startsWith("${", i)) {
        i += 2;
        scan("}");
        i--;
      }
    }
    i++;
  };
  const scan = (until: string | null) => {
    let depth = 0;
    while (i < source.length) {
      const c = source[i];
      if (c === until && depth === 0) {
        i++;
        return;
      }
      if (source.startsWith("//", i)) {
        const end = source.indexOf("\n", i);
        blank(i, end === -1 ? source.length : end);
        i = end === -1 ? source.length : end;
      } else if (source.startsWith("/*", i)) {
        const end = source.indexOf("*/", i + 2) + 2;
        blank(i, end);
        i = end;
      } else if (c === '"' || c === "'") {
        skipString(c);
        lastCode = c;
      } else if (c === "`") {
        skipTemplate();
        lastCode = c;
      } else if (c === "/" && (lastCode === "" || "(,=:[!&|?{};+-*%<>~^".includes(lastCode))) {
        let inClass = false; // a "/" in [...] does not end the expression
        for (i++; inClass || source[i] !== "/"; i++) {
          if (source[i] === "\\") i++;
          else if (source[i] === "[") inClass = true;
          else if (source[i] === "]") inClass = false;
        }
        i++;
        lastCode = "/";
      } else {
        if (c === "{") depth++;
        if (c === "}") depth--;
        if (!/\s/.test(c)) lastCode = c;
        i++;
      }
    }
  };
  scan(null);
  return out.join("");
}

/** An error made with a literal message: `new XxxError(`, `new Deno.errors.Xxx(`, `super(` in an error class. */
const ERROR_CALL = /\bnew\s+((?:Deno\.errors\.)?[A-Z]\w*)\s*\(|\bsuper\s*\(/g;

/** Messages a program prints on stderr: `console.error("echo server: ...")`. */
const PRINTED = /\bconsole\.error\s*\(/g;

/** Errors for an errno, whose message is the second argument: `errnoError(code, "...")`. */
const ERRNO_CALL = /\berrnoError\s*\(/g;

/**
 * Makes the message an error class builds from its first argument, for the
 * classes whose argument is not the message itself.
 */
const BUILT_FROM_REASON: Record<string, (reason: string) => string> = {
  TransportClosedError: (reason) => new TransportClosedError(reason).message,
};

/** Every message written in `src/`, with the texts it can take. */
function sourceMessages(): SourceMessage[] {
  const root = new URL("../src/", import.meta.url);
  const messages: SourceMessage[] = [];
  for (const file of sourceFiles(root)) {
    const source = blankComments(Deno.readTextFileSync(file));
    const name = file.pathname.slice(root.pathname.length - 4);
    const lineOf = (at: number) => source.slice(0, at).split("\n").length;
    for (const match of source.matchAll(ERROR_CALL)) {
      const callee = match[1];
      // `super(` only in a class that extends Error; other `new X(` only for errors.
      if (callee === undefined && !/class \w+ extends Error\b/.test(source)) continue;
      if (callee !== undefined && !/Error$|^Deno\.errors\./.test(callee)) continue;
      const at = match.index + match[0].length;
      let texts = new MessageReader(source, at).expression();
      const build = callee && BUILT_FROM_REASON[callee];
      if (build) texts = texts.map(build);
      // A message passed on whole (a variable, String(cause)) was checked where it was written.
      texts = texts.filter((text) => text.replaceAll(HOLE, "").trim() !== "");
      if (texts.length > 0) messages.push({ where: `${name}:${lineOf(at)}`, texts });
    }
    for (const match of source.matchAll(ERRNO_CALL)) {
      const reader = new MessageReader(source, match.index + match[0].length);
      reader.expression(); // the code
      if (source[reader.at] !== ",") continue; // the declaration
      reader.at++;
      const texts = reader.expression().filter((text) => text.replaceAll(HOLE, "").trim() !== "");
      if (texts.length > 0) messages.push({ where: `${name}:${lineOf(reader.at)}`, texts });
    }
    for (const match of source.matchAll(PRINTED)) {
      const at = match.index + match[0].length;
      const texts = new MessageReader(source, at).expression()
        .map((text) => text.replace(/^echo \w+: /, ""))
        .filter((text) => !text.startsWith(HOLE)); // a message passed on whole
      if (texts.length > 0) messages.push({ where: `${name}:${lineOf(at)}`, texts });
    }
  }
  return messages;
}

Deno.test("error style (a): every message written in src/ follows the style", () => {
  const messages = sourceMessages();
  // About a hundred sites: far fewer means the scan lost its way.
  assertGreater(messages.length, 60);
  const wrong = messages.flatMap(({ where, texts }) =>
    texts.flatMap((text) => {
      const problems = styleProblems(text);
      return problems.length ? [`${where}: ${JSON.stringify(text)} ${problems.join(", ")}`] : [];
    })
  );
  assertEquals(wrong, []);
});

Deno.test("error style (a): the source scan reads what a message can be", () => {
  const read = (code: string) => new MessageReader(blankComments(code), 0).expression();
  assertEquals(read('"Cannot a: " + b + `c ${d} e`)'), ["Cannot a: ${}c ${} e"]);
  assertEquals(read('`Cannot ${x}: ` + (y ? "one" : `two ${z}`), { cause })'), [
    "Cannot ${}: one",
    "Cannot ${}: two ${}",
  ]);
  assertEquals(read("x === null ? `A ${(e as Error).message}.` : 'B; c')"), ["A ${}.", "B; c"]);
  assertEquals(read("message)"), ["${}"]);
  assertEquals(read("(error as Error).message + /* note */ '. Tail')"), ["${}. Tail"]);
  // What the style refuses, as the scan sees it.
  for (
    const text of [
      "Invalid port: ${}",
      "Cannot use port ${}: it must be from 0 to 65535.",
      "${} and ${} are bound",
      "Cannot use port ${}. Use 0 to 65535",
      "unknown option ${}",
      "Failed to bind ${}",
    ]
  ) {
    assert(styleProblems(text).length > 0, text);
  }
  for (
    const text of [
      'Cannot use separator "": it is empty; use at least one byte',
      'Cannot use until "quit. now": it is fine, such as "a. b"',
      "Cannot use --reuse-port: run deno run ... --reuse-port ... (no flag)",
    ]
  ) {
    assertEquals(styleProblems(text), [], text);
  }
});

// ---- (b) The errors bad input provokes ---------------------------------

/** The error `make` throws or rejects with; fails if it returns. */
async function provoke(what: string, make: () => unknown): Promise<Error> {
  let result: unknown;
  try {
    result = await make();
  } catch (error) {
    if (error instanceof Error) return error;
    throw new Error(`${what}: threw ${String(error)}, not an Error`);
  }
  throw new Error(`${what}: no error (returned ${String(result)})`);
}

/** A protocol that hands out its transport once connected. */
function holder<T>(): { protocol: () => Protocol & DatagramProtocol; transport: Promise<T> } {
  const made = Promise.withResolvers<T>();
  return {
    protocol: () => ({
      connectionMade: (transport: unknown) => made.resolve(transport as T),
    }),
    transport: made.promise,
  };
}

/** A port nothing listens on (TCP): taken and given back. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listener.close();
  return listener.addr.port;
}

Deno.test("error style (b): bad options of every entry point throw in the style", async () => {
  const cases: [string, () => unknown][] = [
    ["serveEcho port", () => serveEcho({ port: 70000 })],
    ["serveEcho hostname", () => serveEcho({ hostname: "" })],
    ["serveEcho backlog", () => serveEcho({ port: 0, backlog: -1 })],
    ["serveEcho highWaterMark", () => serveEcho({ port: 0, highWaterMark: -5 })],
    ["serveEcho low > high", () => serveEcho({ port: 0, highWaterMark: 10, lowWaterMark: 20 })],
    ["serveEcho readBufferSize", () => serveEcho({ port: 0, readBufferSize: 0 })],
    ["serveEcho maxConnections", () => serveEcho({ port: 0, maxConnections: 0 })],
    ["serveEcho idleTimeout", () => serveEcho({ port: 0, idleTimeout: -1 })],
    ["serveEcho shutdownTimeout", () => serveEcho({ port: 0, shutdownTimeout: -1 })],
    ["serveEcho maxBuffered", () => serveEcho({ port: 0, maxBuffered: 0 })],
    ["serveEcho limit 0", () => serveEcho({ port: 0, limit: 0 })],
    ["serveEcho mode", () => serveEcho({ port: 0, mode: bad("loud") })],
    ["serveEcho prefix and mode", () => serveEcho({ port: 0, mode: "echo", prefix: "x" })],
    ["serveEcho until and mode", () => serveEcho({ port: 0, mode: "echo", until: "x" })],
    ["serveEcho prefix and until", () => serveEcho({ port: 0, prefix: "x", until: "y" })],
    ["serveEcho empty until", () => serveEcho({ port: 0, until: "" })],
    ["serveEcho untilLimit", () => serveEcho({ port: 0, mode: "until", untilLimit: 0 })],
    ["serveEcho api", () => serveEcho({ port: 0, api: bad("rest") })],
    ["serveEcho faults", () => serveEcho({ port: 0, faults: bad(300) })],
    ["serveEcho faults.delay", () => serveEcho({ port: 0, faults: { delay: -1 } })],
    ["serveEcho faults.jitter", () => serveEcho({ port: 0, faults: { jitter: 5 } })],
    ["serveEcho faults.throttle", () => serveEcho({ port: 0, faults: { throttle: 0 } })],
    ["serveEcho faults.resetAfter", () => serveEcho({ port: 0, faults: { resetAfter: 0.5 } })],
    ["serveEcho keepAlive", () => serveEcho({ port: 0, keepAlive: bad("yes") })],
    ["serveEcho keepAlive.count", () => serveEcho({ port: 0, keepAlive: { count: 1000 } })],
    ["serveEcho noDelay", () => serveEcho({ port: 0, noDelay: bad("yes") })],
    ["resolveEchoOptions mode", () => resolveEchoOptions({ mode: bad("shout") })],
    ["serveTcp factory", () => serveTcp({ port: 0 }, bad(undefined))],
    ["serveTcp backend", () => serveTcp({ port: 0, backend: bad("bsd") }, () => ({}))],
    ["serveTcpStreams handler", () => serveTcpStreams({ port: 0 }, bad(42))],
    ["serveTcpStreams limit", () => serveTcpStreams({ port: 0, limit: -1 }, async () => {})],
    ["StreamReader limit 0", () => new StreamReader({ limit: 0 })],
    ["StreamReader limit negative", () => new StreamReader({ limit: -4 })],
    ["StreamReader read(-2)", () => new StreamReader().read(-2)],
    ["StreamReader readBorrowed(0)", () => new StreamReader().readBorrowed(0)],
    ["StreamReader readExactly(-1)", () => new StreamReader().readExactly(-1)],
    ["StreamReader readUntil empty", () => new StreamReader().readUntil("")],
    ["StreamReader bufferUpdated", () => new StreamReader().bufferUpdated(-1)],
    ["connectTcp port", () => connectTcp({ port: -1 }, () => ({}))],
    ["connectTcp hostname", () => connectTcp({ hostname: bad(7), port: 1 }, () => ({}))],
    ["connectTcpStreams port", () => connectTcpStreams({ port: 70000 })],
    ["serveUdp port", () => serveUdp({ port: 70000 }, () => ({}))],
    ["serveUdp factory", () => serveUdp({ port: 0 }, bad("nope"))],
    ["serveUdp rateLimit", () => serveUdp({ port: 0, rateLimit: bad(5) }, () => ({}))],
    [
      "serveUdp rateLimit.perSecond",
      () => serveUdp({ port: 0, rateLimit: { perSecond: 0 } }, () => ({})),
    ],
    [
      "serveUdp low > high",
      () => serveUdp({ port: 0, highWaterMark: 10, lowWaterMark: 20 }, () => ({})),
    ],
    ["serveUdpEcho mode until", () => serveUdpEcho({ port: 0, mode: bad("until") })],
    ["serveUdpEcho faults.drop", () => serveUdpEcho({ port: 0, faults: { drop: 101 } })],
    ["serveUdpEcho receiveBufferSize", () => serveUdpEcho({ port: 0, receiveBufferSize: -1 })],
    ["resolveUdpEchoPrefix mode", () => resolveUdpEchoPrefix({ mode: bad("loud") })],
    ["openDatagramSocket backend", () => openDatagramSocket({ backend: bad("bsd") })],
    ["openDatagramSocket reuseAddress", () => openDatagramSocket({ reuseAddress: bad(1) })],
    ["connectUdp port", () => connectUdp({ port: 0 }, () => ({}))],
    ["connectUdp localPort", () => connectUdp({ port: 9, localPort: 70000 }, () => ({}))],
    ["connectUdpClient port", () => connectUdpClient({ port: 0 })],
    ["connectUdpClient IPv6", () => connectUdpClient({ hostname: "::zz", port: 9 })],
    ["getSocketOptions", () => getSocketOptions(bad(null))],
  ];
  if (typeof (Deno as { listenDatagram?: unknown }).listenDatagram !== "function") {
    // Without --unstable-net, as the suite runs.
    cases.push(
      [
        "serveTcp reusePort",
        () => serveTcp({ port: 0, reusePort: true, backend: "deno" }, () => ({})),
      ],
      ["openDatagramSocket deno", () => openDatagramSocket({ backend: "deno" })],
    );
  }
  for (const [what, make] of cases) {
    assertStdStyle((await provoke(what, make)).message, what);
  }
});

Deno.test("error style (b): a stream reader's read errors follow the style", async () => {
  const encoder = new TextEncoder();
  const ended = new StreamReader();
  ended.feedData(new Uint8Array([1, 2, 3]));
  ended.feedEof();
  const incomplete = await provoke("readExactly past end", () => ended.readExactly(10));
  assert(incomplete instanceof IncompleteReadError);
  assertStdStyle(incomplete.message, "readExactly past end");
  const noSeparator = new StreamReader();
  noSeparator.feedData(encoder.encode("no separator"));
  noSeparator.feedEof();
  const partial = await provoke("readUntil past end", () => noSeparator.readUntil("\n"));
  assert(partial instanceof IncompleteReadError);
  assertStdStyle(partial.message, "readUntil past end");
  const long = new StreamReader({ limit: 4 });
  long.feedData(encoder.encode("far too long\n"));
  const overrun = await provoke("readLine over the limit", () => long.readLine());
  assert(overrun instanceof LimitOverrunError);
  assertStdStyle(overrun.message, "readLine over the limit");
  const unseen = new StreamReader({ limit: 4 });
  unseen.feedData(encoder.encode("far too long"));
  assertStdStyle((await provoke("readUntil over the limit", () => unseen.readUntil("\n"))).message);
  assertStdStyle(
    (await provoke("feedData after feedEof", () => ended.feedData(new Uint8Array(1)))).message,
  );
  assertStdStyle((await provoke("getBuffer after feedEof", () => ended.getBuffer(1))).message);
  const busy = new StreamReader();
  const waiting = busy.read();
  assertStdStyle((await provoke("two reads at once", () => busy.read())).message);
  busy.feedEof();
  assertEquals(await waiting, null);
});

Deno.test("error style (b): closed, lost and refused connections throw in the style", async () => {
  const messages: [string, string][] = [];
  const add = async (what: string, make: () => unknown) => {
    messages.push([what, (await provoke(what, make)).message]);
  };
  await using server = serveEcho({ port: 0 });
  const { port } = server.addr;

  // TCP: writes after close() and writeEof(), extra info, a closed server.
  const closing = holder<Transport>();
  await connectTcp({ port }, closing.protocol);
  const transport = await closing.transport;
  await add("getExtraInfo unknown", () => transport.getExtraInfo(bad<"peername">("nonsense")));
  transport.writeEof();
  await add("write after writeEof", () => transport.write(new Uint8Array(1)));
  transport.close();
  await add("write after close", () => transport.write(new Uint8Array(1)));
  await transport.closed;
  await add("socketOptions after close", () => transport.getExtraInfo("socketOptions"));
  const aborted = holder<Transport>();
  await connectTcp({ port }, aborted.protocol);
  const abortedTransport = await aborted.transport;
  abortedTransport.abort();
  await add("write after abort", () => abortedTransport.write(new Uint8Array(1)));
  const streams = await connectTcpStreams({ port });
  streams.writer.abort();
  await streams.writer.closed;
  await add("drain after abort", () => streams.writer.drain());
  await add("port in use", () => serveEcho({ port }));
  await add("connection refused", () => connectTcp({ port: freePort() }, () => ({})));

  // UDP: sends a socket refuses, after close, a request nobody answers.
  await using silent = await openDatagramSocket();
  const udp = holder<DatagramTransport>();
  await using udpServer = await serveUdp({ port: 0 }, udp.protocol);
  const unconnected = await udp.transport;
  await add("send a string", () => unconnected.send(bad("text")));
  await add("send without address", () => unconnected.send(new Uint8Array(1)));
  await add("send to a bad address", () => unconnected.send(new Uint8Array(1), bad({ port: 0 })));
  await add("send too large", () => unconnected.send(new Uint8Array(70000), silent.addr));
  await add(
    "send to IPv6 from IPv4",
    () => silent.send(new Uint8Array(1), { transport: "udp", hostname: "::1", port: 9 }),
  );
  await add("datagram extra info", () => unconnected.getExtraInfo(bad<"sockname">("nonsense")));
  await add("bind in use", () => openDatagramSocket({ port: udpServer.addr.port }));
  const connected = holder<DatagramTransport>();
  const { transport: udpClient } = await connectUdp({ port: silent.addr.port }, connected.protocol);
  await add(
    "send to another address",
    () => udpClient.send(new Uint8Array(1), { transport: "udp", hostname: "127.0.0.1", port: 9 }),
  );
  udpClient.close();
  await add("send after close", () => udpClient.send(new Uint8Array(1)));
  await udpClient.closed;
  await using client = await connectUdpClient({ port: silent.addr.port });
  await add("request timeout", () => client.request(new Uint8Array(1), { timeout: 0 }));
  await add("request match", () => client.request(new Uint8Array(1), { match: bad("x") }));
  await add("no answer", () => client.request(new Uint8Array(1), { timeout: 20, retries: 0 }));
  await add("nothing received", () => client.receive(20));
  await server.shutdown();
  await add("TCP server options after shutdown", () => server.getSocketOptions());
  await udpServer.shutdown();
  await add("UDP server options after shutdown", () => udpServer.getSocketOptions());

  for (const [what, message] of messages) assertStdStyle(message, what);
  assert(messages.find(([what]) => what === "write after close")![1].includes("127.0.0.1:"));
});

Deno.test({
  name: "error style (b): an errno error names the call, the errno and its text",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const { setOption } = await import("../src/sockopt/_options.ts");
    const { loadLibc } = await import("../src/libc/_libc.ts");
    const libc = loadLibc() as import("../src/libc/_libc.ts").Libc;
    const fd = libc.symbols.socket(libc.constants.AF_INET, libc.constants.SOCK_STREAM, 0);
    try {
      const error = await provoke("TCP_KEEPIDLE 0", () => setOption(libc, fd, "keepAliveIdle", 0));
      assertStdStyle(error.message, "TCP_KEEPIDLE 0");
      assert(error.message.endsWith(": EINVAL (invalid argument, os error 22)"), error.message);
    } finally {
      libc.symbols.close(fd);
    }
  },
});

Deno.test("error style (b): each program's line for a bad flag follows the style", async () => {
  const mains: Record<string, (args: string[]) => Promise<number>> = {
    [SERVER]: serverMain,
    [CLIENT]: clientMain,
    [BENCH]: benchMain,
  };
  const printed: string[] = [];
  const error = console.error;
  console.error = (...data: unknown[]) => printed.push(data.join(" "));
  try {
    for (const [program, args] of BAD_FLAGS) {
      printed.length = 0;
      const code = await mains[program](args);
      const what = `${program.split("/").pop()} ${args.join(" ")}`;
      assertEquals([code, printed.length], [2, 1], `${what}: ${printed.join("\n")}`);
      const [, name, message] = printed[0].match(/^echo (\w+): (.*)$/s)!;
      assert(program.endsWith(`/${name}.ts`), printed[0]);
      assertStdStyle(message, what);
    }
  } finally {
    console.error = error;
  }
});

/** `value` typed as whatever the call wants: the point is that it is wrong. */
function bad<T>(value: unknown): T {
  return value as T;
}
