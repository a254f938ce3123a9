/**
 * The UDP echo server: each datagram is answered with one datagram, the
 * same bytes (`echo`) or the same bytes after a prefix (`prefix`). The
 * stream modes (`once`, `until`) have no meaning for datagrams, which stand
 * alone.
 *
 * @module
 */

import { type CountsTooLarge, countTooLarge } from "../udp/_drops.ts";
import type { DatagramProtocol, DatagramTransport } from "../udp/protocol.ts";
import { serveUdp, type UdpServer, type UdpServerOptions } from "../udp/server.ts";
import { MAX_DATAGRAM_SIZE_IPV6 } from "../udp/socket.ts";
import { udpEchoLogger } from "./_log.ts";
import { formatAddress } from "../_address.ts";
import { resolveEchoOptions } from "./behavior.ts";

/**
 * The echo modes a UDP echo server has.
 *
 * @example
 * ```ts
 * import type { UdpEchoMode } from "@x/echo/echo";
 *
 * const mode: UdpEchoMode = "prefix";
 * ```
 */
export type UdpEchoMode = "echo" | "prefix";

/**
 * Every {@linkcode UdpEchoMode}, for validation and help texts.
 *
 * @example
 * ```ts
 * import { UDP_ECHO_MODES } from "@x/echo/echo";
 *
 * console.log(`modes: ${UDP_ECHO_MODES.join(", ")}`);
 * ```
 */
export const UDP_ECHO_MODES: readonly UdpEchoMode[] = ["echo", "prefix"];

/**
 * What a UDP echo server does with each datagram.
 *
 * @example
 * ```ts
 * import type { UdpEchoOptions } from "@x/echo/echo";
 *
 * const options: UdpEchoOptions = { mode: "prefix", prefix: "GOT:" };
 * ```
 */
export interface UdpEchoOptions {
  /**
   * `"echo"` (default): answer each datagram with its bytes; `"prefix"`:
   * with `prefix` in front. Giving `prefix` alone means `"prefix"`.
   */
  mode?: UdpEchoMode;
  /** The prefix of `"prefix"` mode (UTF-8 if a string). Default `"GOT:"`. */
  prefix?: string | Uint8Array;
}

/**
 * Checks UDP echo options and returns the prefix to put in front of each
 * answer (empty in `echo` mode).
 *
 * @example
 * ```ts
 * import { resolveUdpEchoPrefix } from "./datagram.ts";
 *
 * console.log(resolveUdpEchoPrefix({ prefix: "GOT:" }).length); // 4
 * ```
 *
 * @throws {RangeError} for another mode (such as `once` or `until`), naming the modes that apply.
 */
export function resolveUdpEchoPrefix(options: UdpEchoOptions = {}): Uint8Array {
  const { mode } = options;
  if (mode !== undefined && !UDP_ECHO_MODES.includes(mode)) {
    const stream = (mode as string) === "once" || (mode as string) === "until";
    throw new RangeError(
      `Cannot use echo mode ${JSON.stringify(mode)} for UDP: ` +
        (stream
          ? "a datagram stands alone, so there is no stream to answer once or to wait on; " +
            'use "echo" or "prefix"'
          : 'it must be "echo" or "prefix"'),
    );
  }
  return resolveEchoOptions({ mode: options.mode, prefix: options.prefix }).prefix;
}

/**
 * The UDP echo protocol: answers each datagram to its source. In `prefix`
 * mode the answer is built in one buffer reused while no answer is queued,
 * so a steady echo allocates nothing per datagram. An answer that would
 * pass the UDP maximum with its prefix is not sent (logged at debug).
 *
 * @example
 * ```ts
 * import { EchoDatagramProtocol } from "@x/echo/echo";
 * import { serveUdp } from "@x/echo";
 *
 * const server = await serveUdp({ port: 0 }, () => new EchoDatagramProtocol());
 * await server.shutdown();
 * ```
 */
export class EchoDatagramProtocol implements DatagramProtocol {
  readonly #prefix: Uint8Array;
  #transport: DatagramTransport | null = null;
  #scratch: Uint8Array | null = null;

  /**
   * Makes the protocol: in `prefix` mode, `options.prefix` goes before each answer.
   *
   * @throws {RangeError} for invalid options (see {@linkcode serveUdpEcho}).
   */
  constructor(options: UdpEchoOptions = {}) {
    this.#prefix = resolveUdpEchoPrefix(options);
  }

  /** Keeps the transport to answer on. */
  connectionMade(transport: DatagramTransport): void {
    this.#transport = transport;
  }

  /** Answers `data` to `from`. */
  datagramReceived(data: Uint8Array, from: Deno.NetAddr): void {
    const transport = this.#transport!;
    const prefix = this.#prefix;
    if (prefix.length === 0) return transport.send(data, from);
    const size = prefix.length + data.length;
    if (size > MAX_DATAGRAM_SIZE_IPV6) return this.#tooLarge(size, from);
    // The scratch buffer is free once nothing is queued: every answer in it is non-empty.
    let answer: Uint8Array;
    if (transport.getWriteBufferSize() === 0) {
      answer = (this.#scratch ??= this.#makeScratch()).subarray(0, size);
    } else {
      answer = new Uint8Array(size);
      answer.set(prefix);
    }
    answer.set(data, prefix.length);
    try {
      transport.send(answer, from);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      this.#tooLarge(size, from); // Over IPv4's smaller maximum.
    }
  }

  #makeScratch(): Uint8Array {
    const scratch = new Uint8Array(MAX_DATAGRAM_SIZE_IPV6);
    scratch.set(this.#prefix);
    return scratch;
  }

  #tooLarge(size: number, from: Deno.NetAddr): void {
    (this.#transport as Partial<CountsTooLarge>)[countTooLarge]?.();
    udpEchoLogger.debug(
      "Not answering {source}: the answer with its prefix would be {size} bytes, more than UDP carries",
      { source: formatAddress(from), size },
    );
  }
}

/**
 * Options of {@linkcode serveUdpEcho}: the server's, and the echo mode.
 *
 * @example
 * ```ts
 * import type { UdpEchoServerOptions } from "@x/echo";
 *
 * const options: UdpEchoServerOptions = { port: 8888, mode: "prefix", prefix: "GOT:" };
 * ```
 */
export interface UdpEchoServerOptions extends UdpServerOptions, UdpEchoOptions {}

/**
 * Starts a UDP echo server, bound to 127.0.0.1 unless `hostname` says
 * otherwise, behind the reflection guard (see {@linkcode serveUdp}).
 *
 * @example Echo on port 8888 until Ctrl-C
 * ```ts ignore
 * import { serveUdpEcho } from "@x/echo";
 *
 * const server = await serveUdpEcho({ port: 8888 });
 * Deno.addSignalListener("SIGINT", () => server.shutdown());
 * await server.finished;
 * ```
 *
 * @throws {RangeError} for an invalid option (such as mode `until`), before any socket is opened.
 * @throws {Deno.errors.AddrInUse} when the port is taken.
 */
export function serveUdpEcho(options: UdpEchoServerOptions = {}): Promise<UdpServer> {
  try {
    resolveUdpEchoPrefix(options); // checked before any socket is opened
  } catch (error) {
    return Promise.reject(error);
  }
  return serveUdp(options, () => new EchoDatagramProtocol(options));
}
