/**
 * The echo client program, for any echo server:
 *
 * ```sh
 * deno run -A jsr:@x/echo/client --port 8888 --message hello
 * deno run -A jsr:@x/echo/client --port 8888     # interactive: one line, one echo
 * ```
 *
 * With `--message` it sends once, prints the echo and exits 0, or exits 1 if
 * the echo differs or none comes within `--timeout` seconds. Without it, each
 * line typed is sent and its echo printed; `q` or end of input closes.
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
import { TextLineStream } from "@std/streams/text-line-stream";
import { connectTcpStreams, type StreamConnection } from "../tcp/streams.ts";
import { IncompleteReadError } from "../tcp/stream_reader.ts";
import {
  collectUnknown,
  helpOrVersion,
  integerFlag,
  rejectUnknown,
  textFlag,
  UsageError,
} from "./_args.ts";

/** The `--help` text of the client program. */
export const CLIENT_USAGE = `Usage: deno run -A jsr:@x/echo/client [options]

Sends to an echo server and prints what comes back.

Options:
  --hostname, --host ADDR   server address (default 127.0.0.1)
  --port N                  server port (default 8888)
  --message TEXT            send TEXT once, print the echo, exit 0 (1 if it differs or times out)
  --timeout S               seconds to wait for an echo (default 5)
  --version                 print the version and exit
  -h, --help                print this help and exit

Without --message: each line typed is sent and its echo printed; "q" or end of input quits.
`;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

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
    string: ["hostname", "port", "message", "timeout"],
    boolean: ["help", "version"],
    alias: { host: "hostname", h: "help" },
    default: { hostname: "127.0.0.1", port: "8888", timeout: "5" },
    unknown: collectUnknown(unknown),
  });
  const early = helpOrVersion(flags, CLIENT_USAGE);
  if (early !== null) return early;
  let hostname: string, port: number, timeoutMs: number;
  try {
    rejectUnknown(unknown, args);
    hostname = textFlag("hostname", flags.hostname);
    port = integerFlag("port", flags.port, 1, 65535);
    timeoutMs = integerFlag("timeout", flags.timeout, 1, 86400) * 1000;
    if (flags.message !== undefined) textFlag("message", flags.message);
  } catch (error) {
    console.error(`echo client: ${(error as Error).message}`);
    return error instanceof UsageError ? 2 : 1;
  }
  let connection: StreamConnection;
  try {
    connection = await connectTcpStreams({ hostname, port });
  } catch (error) {
    console.error(`echo client: ${(error as Error).message}`);
    return 1;
  }
  try {
    if (flags.message !== undefined) return await sendOnce(connection, flags.message, timeoutMs);
    return await interactive(connection, timeoutMs);
  } finally {
    connection.writer.abort();
  }
}

/** Sends `message` once; exit code 0 if the same bytes come back. */
async function sendOnce(
  connection: StreamConnection,
  message: string,
  timeoutMs: number,
): Promise<number> {
  const sent = encoder.encode(message);
  const echo = await exchange(connection, sent, timeoutMs);
  if (echo === null) return 1;
  console.log(decoder.decode(echo));
  if (!echo.every((byte, i) => byte === sent[i])) {
    console.error("echo client: the echo differs from what was sent.");
    return 1;
  }
  return 0;
}

/** Sends each stdin line and prints its echo, until `q` or end of input. */
async function interactive(connection: StreamConnection, timeoutMs: number): Promise<number> {
  const lines = Deno.stdin.readable
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new TextLineStream() as TransformStream<string, string>);
  for await (const line of lines) {
    if (line.trim() === "q") return 0;
    const echo = await exchange(connection, encoder.encode(line + "\n"), timeoutMs);
    if (echo === null) return 1;
    await Deno.stdout.write(echo);
  }
  return 0;
}

/**
 * Sends `sent` and waits for as many bytes back. On a timeout or an early
 * close, says which on stderr and returns `null`.
 */
async function exchange(
  { reader, writer }: StreamConnection,
  sent: Uint8Array,
  timeoutMs: number,
): Promise<Uint8Array | null> {
  writer.write(sent);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((
    resolve,
  ) => (timer = setTimeout(() => resolve(null), timeoutMs)));
  try {
    const echo = await Promise.race([reader.readExactly(sent.length), timeout]);
    if (echo === null) console.error(`echo client: no complete echo within ${timeoutMs / 1000} s.`);
    return echo;
  } catch (error) {
    const why = error instanceof IncompleteReadError
      ? `the server closed the connection after ${error.partial.length} of ${sent.length} bytes`
      : (error as Error).message;
    console.error(`echo client: ${why}.`);
    return null;
  } finally {
    clearTimeout(timer);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
