/**
 * The echo client program, for any echo server and every mode of ours:
 *
 * ```sh
 * deno run -A jsr:@x/echo/client --port 8888 --message hello
 * deno run -A jsr:@x/echo/client --port 8888 --message hello --check
 * deno run -A jsr:@x/echo/client --port 8888     # interactive: lines typed, answers printed
 * deno run -A jsr:@x/echo/client --port 8888 --udp --message hello
 * ```
 *
 * With `--message` it sends once and prints what the server answers: it
 * reads until `--quiet-ms` milliseconds pass without more bytes after the
 * first one (200 by default), until the server closes the connection, or,
 * with `--expect BYTES`, until that many bytes came. It exits 0 if an answer
 * came and 1 if none came within `--timeout` seconds. With `--check` it also
 * exits 1 when the answer is not the message itself, saying how it differs;
 * without it, any answer will do (a `GOT:hello` from a server in prefix
 * mode, say).
 *
 * Without `--message`, each line typed is sent and every byte the server
 * sends is printed as it comes; the next line goes out once the answer has
 * been quiet for `--quiet-ms`. A line is sent byte for byte, as nc would,
 * up to and including its LF: a CR and bytes that are not UTF-8 are kept,
 * and a last line without an LF is sent as it is (over UDP, each line is
 * one datagram). A line longer than 64 KiB goes out over TCP in pieces as
 * it is read, without waiting for its answer; over UDP it is refused. A
 * line that is just `q` (then LF or CR LF) or the end of
 * input ends the session: over TCP the client then half-closes the
 * connection and prints what still comes until the server closes it or
 * `--quiet-ms` passes in silence.
 *
 * Over UDP, a port nothing listens on is reported at once (exit 1) when the
 * host says so with ICMP port unreachable, as loopback does, instead of
 * after `--timeout`.
 *
 * @example
 * ```ts ignore
 * import { main } from "@x/echo/client";
 *
 * Deno.exit(await main(["--port", "8888", "--message", "ping"]));
 * ```
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { connectTcpStreams, type StreamConnection } from "../streams/streams.ts";
import { connectUdp } from "../udp/client.ts";
import type { DatagramTransport } from "../udp/protocol.ts";
import { formatAddress } from "../_address.ts";
import {
  collectUnknown,
  helpOrVersion,
  integerFlag,
  rejectSwitchValues,
  rejectUnknown,
  sendProxyFlag,
  textFlag,
  transportFlag,
  UsageError,
} from "./_args.ts";
import {
  CLIENT_TLS_UNIX_FLAGS,
  CLIENT_TLS_UNIX_USAGE,
  connectFromFlags,
} from "./_tls_unix_flags.ts";
import type { TlsConnectOptions } from "../tcp/client.ts";
import { MAX_DATAGRAM_SIZE } from "../udp/socket.ts";

/**
 * The `--help` text of the client program.
 *
 * @example
 * ```ts
 * import { CLIENT_USAGE } from "@x/echo/client";
 *
 * console.log(CLIENT_USAGE.includes("--message")); // true
 * ```
 */
export const CLIENT_USAGE = `Usage: deno run -A jsr:@x/echo/client [options]

Sends to an echo server and prints what it answers.

Options:
  --hostname, --host ADDR   server address (default 127.0.0.1)
  --port N                  server port (default 8888)
  --transport tcp|udp       the protocol to use (default tcp)
  --udp                     same as --transport udp
  --message TEXT            send TEXT once, print the answer, exit 0 (1 if none comes)
  --check                   with --message: exit 1 unless the answer is TEXT itself, and
                            say how it differs (default: any answer will do)
  --timeout S               seconds to wait for the first byte of an answer (default 5)
  --quiet-ms MS             an answer is over once MS milliseconds pass without more
                            bytes, or when the server closes the connection (default 200)
  --expect BYTES            with --message: read until BYTES bytes came, all within
                            --timeout, instead of waiting for a quiet interval; print
                            those BYTES; exit 1 if fewer came
  --send-proxy v1|v2        TCP: begin with a PROXY protocol header of that version, naming
                            this connection's own addresses, as a load balancer would (to
                            test a server started with --proxy-protocol)
${CLIENT_TLS_UNIX_USAGE}
  --retries N               UDP: send again when no answer comes, up to N times, all within
                            --timeout (default 2)
  --version                 print the version and exit
  -h, --help                print this help and exit

Without --message: each line typed is sent, and every byte the server sends is printed as it
comes; the next line goes out once the answer has been quiet for --quiet-ms. Lines go out byte
for byte, up to and including their LF (CR and bytes that are not UTF-8 kept; a last line
without LF as it is; over UDP, a datagram each). A line that is just "q" or end of input ends
the session: over TCP the client half-closes the connection and prints what still comes until
the server closes it or --quiet-ms passes in silence. A server that closes the connection ends
the session too (exit 1 if input was left unsent).

Over UDP, when the server's host answers that nothing listens on the port (ICMP port
unreachable; loopback always does), the client says so at once and exits 1.
`;

const encoder = new TextEncoder();
const NEWLINE = 10;

/** The timing and checks of one run of the program, from its flags. */
interface Settings {
  timeoutMs: number;
  quietMs: number;
  retries: number;
  expect: number | null;
  check: boolean;
}

/** The boolean flags: given a value, it must be true or false (see `rejectSwitchValues`). */
const SWITCHES = ["help", "version", "udp", "check", ...CLIENT_TLS_UNIX_FLAGS.boolean];

/**
 * Runs the client program with `args`; resolves to its exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "@x/echo/client";
 *
 * Deno.exit(await main(Deno.args));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const unknown: string[] = [];
  const flags = parseArgs(args, {
    string: [
      "hostname",
      "port",
      "transport",
      "send-proxy",
      "message",
      "timeout",
      "retries",
      "quiet-ms",
      "expect",
      ...CLIENT_TLS_UNIX_FLAGS.string,
    ],
    boolean: SWITCHES,
    alias: { host: "hostname", h: "help" },
    default: { hostname: "127.0.0.1", port: "8888", timeout: "5" },
    unknown: collectUnknown(unknown),
  });
  const early = helpOrVersion(flags, CLIENT_USAGE, import.meta.url);
  if (early !== null) return early;
  let hostname: string, port: number;
  let transport: "tcp" | "udp";
  let settings: Settings;
  let sendProxy: 1 | 2 | undefined;
  let extra: { path?: string; tls?: TlsConnectOptions };
  try {
    rejectUnknown(unknown, args);
    rejectSwitchValues(args, SWITCHES);
    hostname = textFlag("hostname", flags.hostname);
    port = integerFlag("port", flags.port, 1, 65535);
    const timeoutMs = integerFlag("timeout", flags.timeout, 1, 86400) * 1000;
    if (flags.message !== undefined) textFlag("message", flags.message);
    transport = transportFlag(flags.transport, flags.udp);
    if (transport === "tcp" && flags.retries !== undefined) {
      throw new UsageError(
        "Cannot use --retries with TCP: it is for UDP only; drop it or add --udp",
      );
    }
    const retries = integerFlag("retries", flags.retries ?? "2", 0, 100);
    const quietMs = integerFlag("quiet-ms", flags["quiet-ms"] ?? "200", 1, 3_600_000);
    const expect = flags.expect === undefined
      ? null
      : integerFlag("expect", flags.expect, 1, 2 ** 30);
    for (
      const [given, flag] of [[flags.check, "--check"], [expect !== null, "--expect"]] as const
    ) {
      if (given && flags.message === undefined) {
        throw new UsageError(
          `Cannot use ${flag} without --message: it is about the answer to one message; ` +
            `add --message TEXT`,
        );
      }
    }
    if (expect !== null && flags["quiet-ms"] !== undefined) {
      throw new UsageError(
        "Cannot use --quiet-ms with --expect: --expect reads until that many bytes came, " +
          "within --timeout; drop one of them",
      );
    }
    sendProxy = sendProxyFlag(flags["send-proxy"], transport);
    extra = connectFromFlags(flags, args, transport);
    settings = { timeoutMs, quietMs, retries, expect, check: flags.check };
  } catch (error) {
    console.error(`echo client: ${(error as Error).message}`);
    return error instanceof UsageError ? 2 : 1;
  }
  let session: Session;
  try {
    session = transport === "udp" ? await UdpSession.open(hostname, port) : new TcpSession(
      await connectTcpStreams({ hostname, port, sendProxy, ...extra }),
      extra.path !== undefined
        ? formatAddress({ transport: "unix", path: extra.path })
        : formatAddress({ transport: "tcp", hostname, port }),
    );
  } catch (error) {
    console.error(`echo client: ${(error as Error).message}`);
    return 1;
  }
  try {
    if (flags.message !== undefined) return await sendOnce(session, flags.message, settings);
    return await interactive(session, settings);
  } catch (error) {
    console.error(`echo client: ${(error as Error).message}`);
    return 1;
  } finally {
    await session.close();
  }
}

// ---- What comes from the server -------------------------------------------------------

/**
 * Bytes from the server as they come, and how the connection ended. Each
 * chunk goes to `sink` (kept for `--message`, printed at once interactively).
 */
class Incoming {
  /** Bytes received so far. */
  received = 0;
  /** Set once the server closed the connection or it failed. */
  ended = false;
  /** Why it ended, when it failed (a reset, a refused datagram). */
  error: Error | null = null;
  sink: (chunk: Uint8Array) => void = () => {};
  readonly #over = Promise.withResolvers<"ended">();
  #changed = Promise.withResolvers<void>();

  /** Resolves once the connection ended. */
  get over(): Promise<"ended"> {
    return this.#over.promise;
  }

  push(chunk: Uint8Array): void {
    if (this.ended) return;
    this.received += chunk.length;
    this.sink(chunk);
    this.#notify();
  }

  end(error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error ?? null;
    this.#over.resolve("ended");
    this.#notify();
  }

  /**
   * Resolves `true` when bytes come or the connection ends (at once if it
   * has), or `false` once `ms` milliseconds passed without either.
   */
  async changed(ms: number): Promise<boolean> {
    if (this.ended) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, Math.ceil(ms)));
    });
    try {
      return await Promise.race([this.#changed.promise.then(() => true), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits until `done()` holds or the connection ends (`true`), or `ms` pass (`false`). */
  async until(done: () => boolean, ms: number): Promise<boolean> {
    const deadline = performance.now() + ms;
    while (!done() && !this.ended) {
      const left = deadline - performance.now();
      if (left <= 0 || !await this.changed(left)) return done() || this.ended;
    }
    return true;
  }

  /** Waits until `ms` milliseconds pass without new bytes, or the connection ends. */
  async quiet(ms: number): Promise<void> {
    while (!this.ended && await this.changed(ms));
  }

  #notify(): void {
    this.#changed.resolve();
    this.#changed = Promise.withResolvers<void>();
  }
}

/** One connection (TCP) or socket with a default remote (UDP) to the server. */
interface Session {
  readonly transport: "tcp" | "udp";
  /** The server, as the messages name it. */
  readonly where: string;
  readonly incoming: Incoming;
  /** Sends `data`; throws when it cannot. */
  send(data: Uint8Array): void;
  /** Resolves once what was sent has left (TCP: the socket took it); UDP sends at once. */
  drained(): Promise<void>;
  /** Says the input is over: TCP half-closes; UDP has nothing to say. */
  endInput(): void;
  close(): Promise<void>;
}

class TcpSession implements Session {
  readonly transport = "tcp";
  readonly where: string;
  readonly incoming: Incoming = new Incoming();
  readonly #connection: StreamConnection;
  readonly #pump: Promise<void>;

  constructor(connection: StreamConnection, where: string) {
    this.#connection = connection;
    this.where = where;
    this.#pump = this.#readAll();
  }

  async #readAll(): Promise<void> {
    try {
      for (let chunk; (chunk = await this.#connection.reader.read()) !== null;) {
        this.incoming.push(chunk);
      }
      this.incoming.end();
    } catch (error) {
      this.incoming.end(error as Error);
    }
  }

  send(data: Uint8Array): void {
    this.#connection.writer.write(data);
  }

  drained(): Promise<void> {
    return this.#connection.writer.drain();
  }

  endInput(): void {
    const { writer } = this.#connection;
    if (!writer.isClosing() && writer.canWriteEof()) writer.writeEof();
  }

  async close(): Promise<void> {
    this.#connection.writer.abort();
    await this.#pump;
  }
}

class UdpSession implements Session {
  readonly transport = "udp";
  readonly where: string;
  readonly incoming: Incoming;
  readonly #transport: DatagramTransport;

  private constructor(transport: DatagramTransport, incoming: Incoming) {
    this.#transport = transport;
    this.incoming = incoming;
    this.where = `udp ${formatAddress(transport.getExtraInfo("peername")!)}`;
  }

  static async open(hostname: string, port: number): Promise<UdpSession> {
    const incoming = new Incoming();
    let where = `udp ${hostname}:${port}`;
    const { transport } = await connectUdp({ hostname, port }, () => ({
      datagramReceived: (data: Uint8Array) => incoming.push(data.slice()),
      // A datagram the kernel refused, or an ICMP error: nothing more will come of this run.
      // Nothing listening is told at once on loopback (port unreachable, on the epoll backend).
      errorReceived: (error: Error) =>
        incoming.end(
          error instanceof Deno.errors.ConnectionRefused
            ? new Deno.errors.ConnectionRefused(
              `Cannot reach ${where}: nothing is listening (connection refused)`,
              { cause: error },
            )
            : error,
        ),
      connectionLost: (error?: Error) => incoming.end(error),
    }));
    const session = new UdpSession(transport, incoming);
    where = session.where;
    return session;
  }

  send(data: Uint8Array): void {
    this.#transport.send(data);
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  endInput(): void {}

  async close(): Promise<void> {
    this.#transport.close();
    await this.#transport.closed;
  }
}

// ---- The two ways to run --------------------------------------------------------------

/**
 * Sends `message` once and prints the answer; see the module documentation
 * for the exit code. Throws an error saying why it exits 1.
 */
async function sendOnce(session: Session, message: string, settings: Settings): Promise<number> {
  const { incoming } = session;
  const { expect, timeoutMs } = settings;
  const chunks: Uint8Array[] = [];
  incoming.sink = (chunk) => chunks.push(chunk);
  const sent = encoder.encode(message);
  const started = performance.now();
  send(session, sent);
  await firstByte(session, sent, settings);
  if (expect === null) await incoming.quiet(settings.quietMs);
  else {
    const left = started + timeoutMs - performance.now();
    await incoming.until(() => incoming.received >= expect, left);
  }
  let answer = concat(chunks);
  if (expect !== null) answer = answer.subarray(0, expect);
  write(answer);
  if (answer.at(-1) !== NEWLINE) write(Uint8Array.of(NEWLINE));
  if (incoming.error !== null) throw sessionError(session, incoming.error);
  if (expect !== null && answer.length < expect) {
    throw new Error(
      `Cannot read ${expect} bytes: only ${answer.length} came ` +
        (incoming.ended
          ? `before the server ${session.where} closed the connection`
          : `within ${timeoutMs / 1000} s; raise --timeout, or lower --expect`),
    );
  }
  if (settings.check) {
    const differs = difference(sent, answer);
    if (differs !== null) throw new Error(`Cannot verify the echo: ${differs}`);
  }
  return 0;
}

/**
 * Sends each stdin line and prints everything the server sends, as it
 * comes, until `q`, end of input or the server's close. Throws an error
 * saying why it exits 1.
 */
async function interactive(session: Session, settings: Settings): Promise<number> {
  const { incoming } = session;
  incoming.sink = write;
  const lines = new LineReader(Deno.stdin.readable.getReader());
  let sent = 0;
  try {
    for (;;) {
      // Each answer was waited for: a server that closed after it is seen here.
      if (incoming.ended) return await afterServerEnded(session, lines);
      const next = lines.read();
      const line = await Promise.race([next, incoming.over]);
      if (line === "ended") return await afterServerEnded(session, lines, next);
      if (line === null || (lines.whole && isQuit(line))) break;
      if (!lines.whole && session.transport === "udp") {
        throw new Error(
          `Cannot send a line of more than ${MAX_LINE_PIECE} bytes to ${session.where}: a ` +
            `datagram carries at most ${MAX_DATAGRAM_SIZE} bytes over IPv4; break it into lines, ` +
            `or use TCP`,
        );
      }
      send(session, line);
      sent += line.length;
      // A piece of a long line goes on with the next piece, once the socket has taken this one
      // (what the server answers meanwhile is printed as it comes).
      if (!lines.endsLine) {
        await session.drained();
        continue;
      }
      if (session.transport === "udp") await firstByte(session, line, settings);
      await incoming.quiet(settings.quietMs);
      if (incoming.error !== null) throw sessionError(session, incoming.error);
    }
    // End of input: let the server know, and print what it still sends.
    session.endInput();
    if (sent > 0 && incoming.received === 0) {
      await incoming.until(() => incoming.received > 0, settings.timeoutMs);
      if (incoming.error === null && incoming.received === 0) throw noAnswer(session, settings);
    }
    await incoming.quiet(settings.quietMs);
    if (incoming.error !== null) throw sessionError(session, incoming.error);
    return 0;
  } finally {
    await lines.cancel();
  }
}

/**
 * The server ended the session, or it failed: throws on an error, or when
 * input was left that could not be sent; returns 0 when input was over
 * anyway.
 */
async function afterServerEnded(
  session: Session,
  lines: LineReader,
  next?: Promise<Uint8Array | null>,
): Promise<number> {
  const { error } = session.incoming;
  if (error !== null) throw sessionError(session, error);
  // Someone typing is not waited for; piped input is looked at, to tell if any was left.
  if (next !== undefined || !Deno.stdin.isTerminal()) {
    const line = await (next ?? lines.read());
    if (line !== null && !isQuit(line)) {
      throw new Error(
        `Cannot send the rest of the input: the server ${session.where} closed the connection`,
      );
    }
  }
  console.error(`echo client: The server ${session.where} closed the connection`);
  return 0;
}

// ---- The lines of the input -----------------------------------------------------------

const CARRIAGE_RETURN = 13;
const Q = 0x71;

/**
 * The most bytes of one line held before they are given out: a longer line
 * comes in pieces, so an input without LFs (a file piped in) does not pile
 * up in memory.
 */
const MAX_LINE_PIECE = 64 * 1024;

/**
 * The lines of a byte stream, as bytes: each up to and including its LF,
 * with every other byte as it came (CR, invalid UTF-8); the last one
 * without an LF when the input ends without one. A line longer than
 * {@linkcode MAX_LINE_PIECE} comes in pieces (`whole` says whether the
 * last one given out was a whole line).
 */
class LineReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Bytes read and not yet given out, with no LF among them. */
  #pending: Uint8Array[] = [];
  /** How many bytes `#pending` holds. */
  #pendingBytes = 0;
  /** The rest of the last chunk read, not yet looked at for an LF. */
  #rest: Uint8Array = new Uint8Array(0);
  #done = false;
  /** The last piece given out left its line to be continued. */
  #midLine = false;
  /** Whether the last piece given out ended its line (with an LF, or the end of the input). */
  endsLine = true;
  /** Whether the last piece given out was a whole line: it began one, and ended it. */
  whole = true;

  constructor(reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.#reader = reader;
  }

  /** The next line (or piece of a long one), or `null` at the end of the input. */
  async read(): Promise<Uint8Array | null> {
    for (;;) {
      const end = this.#rest.indexOf(NEWLINE);
      if (end >= 0) {
        this.#pending.push(this.#rest.subarray(0, end + 1));
        this.#rest = this.#rest.subarray(end + 1);
        return this.#take(true);
      }
      if (this.#rest.length > 0) {
        this.#pending.push(this.#rest);
        this.#pendingBytes += this.#rest.length;
      }
      this.#rest = new Uint8Array(0);
      if (this.#done) return this.#pending.length > 0 ? this.#take(true) : null;
      if (this.#pendingBytes >= MAX_LINE_PIECE) return this.#take(false);
      const { value, done } = await this.#reader.read();
      if (done) this.#done = true;
      else this.#rest = value;
    }
  }

  /** Stops reading the input. */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }

  /**
   * The pending bytes as one piece of its own (a copy: the session may keep
   * it); `ends`: the piece ends its line.
   */
  #take(ends: boolean): Uint8Array {
    const pending = this.#pending;
    const line = pending.length === 1 ? pending[0].slice() : concat(pending);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.whole = ends && !this.#midLine;
    this.endsLine = ends;
    this.#midLine = !ends;
    return line;
  }
}

/** Whether `line` asks to quit: `q` alone, then LF or CR LF (or the end of the input). */
function isQuit(line: Uint8Array): boolean {
  let end = line.length;
  if (line[end - 1] === NEWLINE) end--;
  if (line[end - 1] === CARRIAGE_RETURN) end--;
  return end === 1 && line[0] === Q;
}

// ---- Waiting for the first byte -----------------------------------------------------

/**
 * Waits for the first byte of the answer to `sent`, up to `--timeout`; over
 * UDP, sends `sent` again after each share of it, `--retries` times. Throws
 * an error saying why when none came.
 */
async function firstByte(session: Session, sent: Uint8Array, settings: Settings): Promise<void> {
  const { incoming } = session;
  const before = incoming.received;
  const came = () => incoming.received > before;
  const attempts = session.transport === "udp" ? settings.retries + 1 : 1;
  const share = Math.max(1, Math.floor(settings.timeoutMs / attempts));
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (attempt > 0) send(session, sent);
    if (await incoming.until(came, share)) break;
  }
  if (came()) return;
  if (incoming.error !== null) throw sessionError(session, incoming.error);
  if (incoming.ended) {
    throw new Error(
      `Cannot read the echo: the server ${session.where} closed the connection without answering`,
    );
  }
  throw noAnswer(session, settings);
}

/** The error for no answer within `--timeout`. */
function noAnswer(session: Session, settings: Settings): Error {
  const seconds = settings.timeoutMs / 1000;
  if (session.transport === "udp") {
    const attempts = settings.retries + 1;
    return new Deno.errors.TimedOut(
      `Cannot read the echo: no echo within ${seconds} s (${attempts} datagram` +
        `${attempts === 1 ? "" : "s"} sent; is a UDP echo server on ${session.where.slice(4)}?)`,
    );
  }
  return new Deno.errors.TimedOut(
    `Cannot read the echo: there was no complete echo within ${seconds} s (nothing came ` +
      `from ${session.where}); check the server, or raise --timeout`,
  );
}

// ---- Small helpers ----------------------------------------------------------------------

/** Sends `data`; throws an error saying why it could not be sent. */
function send(session: Session, data: Uint8Array): void {
  try {
    session.send(data);
  } catch (error) {
    throw sessionError(session, error as Error);
  }
}

/** `error` of the session as the program says it: as it is when it says what failed. */
function sessionError(session: Session, error: Error): Error {
  if (error.message.startsWith("Cannot")) return error;
  return new Error(`Cannot go on with ${session.where}: ${error.message}`, { cause: error });
}

/** Writes all of `data` to stdout, in order with every other write. */
function write(data: Uint8Array): void {
  for (let done = 0; done < data.length;) done += Deno.stdout.writeSync(data.subarray(done));
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const all = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}

/** How `answer` differs from `sent`, or `null` when it is the same bytes. */
function difference(sent: Uint8Array, answer: Uint8Array): string | null {
  const common = Math.min(sent.length, answer.length);
  let at = 0;
  while (at < common && sent[at] === answer[at]) at++;
  if (at < common) {
    return `it differs from what was sent at byte ${at} (sent ${byte(sent[at])}, got ` +
      `${byte(answer[at])}; ${answer.length} bytes came for ${sent.length} sent)`;
  }
  if (answer.length < sent.length) {
    return `it differs from what was sent: only the first ${answer.length} of the ` +
      `${sent.length} bytes came back`;
  }
  if (answer.length > sent.length) {
    return `it differs from what was sent: ${answer.length - sent.length} more bytes came ` +
      `back after the ${sent.length} sent`;
  }
  return null;
}

/** A byte as a reader knows it: `"a"` when printable ASCII, else `0x0a`. */
function byte(value: number): string {
  return value >= 0x20 && value < 0x7f
    ? JSON.stringify(String.fromCharCode(value))
    : `0x${value.toString(16).padStart(2, "0")}`;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
