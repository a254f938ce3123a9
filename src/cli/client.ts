/**
 * The echo client program, for any echo server:
 *
 * ```sh
 * deno run -A jsr:@x/echo/client --port 8888 --message hello
 * deno run -A jsr:@x/echo/client --port 8888     # interactive: one line, one echo
 * deno run -A jsr:@x/echo/client --port 8888 --udp --message hello
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
import { connectTcpStreams, type StreamConnection } from "../streams/streams.ts";
import { IncompleteReadError } from "../streams/stream_reader.ts";
import { connectUdpClient, type UdpClient } from "../udp/request_client.ts";
import {
  collectUnknown,
  helpOrVersion,
  integerFlag,
  rejectUnknown,
  textFlag,
  transportFlag,
  UsageError,
} from "./_args.ts";

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

Sends to an echo server and prints what comes back.

Options:
  --hostname, --host ADDR   server address (default 127.0.0.1)
  --port N                  server port (default 8888)
  --transport tcp|udp       the protocol to use (default tcp)
  --udp                     same as --transport udp
  --message TEXT            send TEXT once, print the echo, exit 0 (1 if it differs or times out)
  --timeout S               seconds to wait for an echo (default 5)
  --retries N               UDP: send again when no echo comes, up to N times, all within
                            --timeout (default 2)
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
    string: ["hostname", "port", "transport", "message", "timeout", "retries"],
    boolean: ["help", "version", "udp"],
    alias: { host: "hostname", h: "help" },
    default: { hostname: "127.0.0.1", port: "8888", timeout: "5" },
    unknown: collectUnknown(unknown),
  });
  const early = helpOrVersion(flags, CLIENT_USAGE);
  if (early !== null) return early;
  let hostname: string, port: number, timeoutMs: number, retries: number;
  let transport: "tcp" | "udp";
  try {
    rejectUnknown(unknown, args);
    hostname = textFlag("hostname", flags.hostname);
    port = integerFlag("port", flags.port, 1, 65535);
    timeoutMs = integerFlag("timeout", flags.timeout, 1, 86400) * 1000;
    if (flags.message !== undefined) textFlag("message", flags.message);
    transport = transportFlag(flags.transport, flags.udp);
    if (transport === "tcp" && flags.retries !== undefined) {
      throw new UsageError(
        "Cannot use --retries with TCP: it is for UDP only; drop it or add --udp",
      );
    }
    retries = integerFlag("retries", flags.retries ?? "2", 0, 100);
  } catch (error) {
    console.error(`echo client: ${(error as Error).message}`);
    return error instanceof UsageError ? 2 : 1;
  }
  let exchanger: Exchanger;
  try {
    exchanger = transport === "udp"
      ? new UdpExchanger(await connectUdpClient({ hostname, port }), timeoutMs, retries)
      : new TcpExchanger(await connectTcpStreams({ hostname, port }), timeoutMs);
  } catch (error) {
    console.error(`echo client: ${(error as Error).message}`);
    return 1;
  }
  try {
    if (flags.message !== undefined) return await sendOnce(exchanger, flags.message);
    return await interactive(exchanger);
  } finally {
    await exchanger.close();
  }
}

/** Sends bytes and waits for their echo, over one transport. */
interface Exchanger {
  /** The echo of `sent`, or `null` after saying on stderr why none came. */
  exchange(sent: Uint8Array): Promise<Uint8Array | null>;
  close(): Promise<void>;
}

/** Sends `message` once; exit code 0 if the same bytes come back. */
async function sendOnce(exchanger: Exchanger, message: string): Promise<number> {
  const sent = encoder.encode(message);
  const echo = await exchanger.exchange(sent);
  if (echo === null) return 1;
  console.log(decoder.decode(echo));
  if (echo.length !== sent.length || !echo.every((byte, i) => byte === sent[i])) {
    console.error("echo client: Cannot confirm the echo: it differs from what was sent");
    return 1;
  }
  return 0;
}

/** Sends each stdin line and prints its echo, until `q` or end of input. */
async function interactive(exchanger: Exchanger): Promise<number> {
  const lines = Deno.stdin.readable
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new TextLineStream() as TransformStream<string, string>);
  for await (const line of lines) {
    if (line.trim() === "q") return 0;
    const echo = await exchanger.exchange(encoder.encode(line + "\n"));
    if (echo === null) return 1;
    await Deno.stdout.write(echo);
  }
  return 0;
}

/** TCP: waits for as many bytes as were sent. */
class TcpExchanger implements Exchanger {
  readonly #connection: StreamConnection;
  readonly #timeoutMs: number;

  constructor(connection: StreamConnection, timeoutMs: number) {
    this.#connection = connection;
    this.#timeoutMs = timeoutMs;
  }

  async exchange(sent: Uint8Array): Promise<Uint8Array | null> {
    const { reader, writer } = this.#connection;
    writer.write(sent);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), this.#timeoutMs);
    });
    try {
      const echo = await Promise.race([reader.readExactly(sent.length), timeout]);
      if (echo === null) {
        console.error(
          `echo client: Cannot read the echo: there was no complete echo within ` +
            `${this.#timeoutMs / 1000} s`,
        );
      }
      return echo;
    } catch (error) {
      const why = error instanceof IncompleteReadError
        ? `Cannot read the echo: the server closed the connection after ` +
          `${error.partial.length} of ${sent.length} bytes`
        : (error as Error).message;
      console.error(`echo client: ${why}`);
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    this.#connection.writer.abort();
    return Promise.resolve();
  }
}

/** UDP: one datagram out, the next one from the server is its echo; lost ones are sent again. */
class UdpExchanger implements Exchanger {
  readonly #client: UdpClient;
  readonly #timeoutMs: number;
  readonly #retries: number;

  constructor(client: UdpClient, timeoutMs: number, retries: number) {
    this.#client = client;
    this.#timeoutMs = timeoutMs;
    this.#retries = retries;
  }

  async exchange(sent: Uint8Array): Promise<Uint8Array | null> {
    const attempts = this.#retries + 1;
    try {
      return await this.#client.request(sent, {
        timeout: Math.max(1, Math.floor(this.#timeoutMs / attempts)),
        retries: this.#retries,
      });
    } catch (error) {
      const why = error instanceof Deno.errors.TimedOut
        ? `Cannot read the echo: no echo within ${this.#timeoutMs / 1000} s (${attempts} datagram` +
          `${attempts === 1 ? "" : "s"} sent; is a UDP echo server on ` +
          `${this.#client.remoteAddr.hostname}:${this.#client.remoteAddr.port}?)`
        : (error as Error).message;
      console.error(`echo client: ${why}`);
      return null;
    }
  }

  close(): Promise<void> {
    return this.#client.close();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
