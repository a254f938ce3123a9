/**
 * A UDP client for request/response use: send a datagram, await the answer,
 * and retry when it does not come, since datagrams get lost. Built on
 * {@linkcode connectUdp} and the datagram protocol API.
 *
 * @module
 */

import type { DatagramProtocol, DatagramTransport } from "./protocol.ts";
import { connectUdp, type UdpConnectOptions } from "./client.ts";
import { formatAddress } from "../_address.ts";
import { checkInteger } from "../_validate.ts";
import { TransportClosedError } from "../errors.ts";

/**
 * The default time {@linkcode UdpClient.request} waits for each answer: 1 second.
 *
 * @example
 * ```ts
 * import { DEFAULT_REQUEST_TIMEOUT, type UdpRequestOptions } from "@x/echo/udp";
 *
 * const patient: UdpRequestOptions = { timeout: 5 * DEFAULT_REQUEST_TIMEOUT };
 * ```
 */
export const DEFAULT_REQUEST_TIMEOUT = 1000;
/**
 * The default number of times {@linkcode UdpClient.request} sends again: 2.
 *
 * @example
 * ```ts
 * import { DEFAULT_REQUEST_RETRIES, DEFAULT_REQUEST_TIMEOUT } from "@x/echo/udp";
 *
 * const longestWait = (DEFAULT_REQUEST_RETRIES + 1) * DEFAULT_REQUEST_TIMEOUT; // 3 seconds
 * ```
 */
export const DEFAULT_REQUEST_RETRIES = 2;
/**
 * Datagrams a {@linkcode UdpClient} keeps for `receive` at most; later ones are dropped.
 *
 * @example
 * ```ts
 * import { UDP_CLIENT_QUEUE_LIMIT } from "@x/echo/udp";
 *
 * console.log(`read at least every ${UDP_CLIENT_QUEUE_LIMIT} datagrams`);
 * ```
 */
export const UDP_CLIENT_QUEUE_LIMIT = 1024;

/**
 * How {@linkcode UdpClient.request} waits and retries.
 *
 * @example
 * ```ts
 * import type { UdpRequestOptions } from "@x/echo/udp";
 *
 * const hello = new TextEncoder().encode("hello");
 * const options: UdpRequestOptions = {
 *   timeout: 500,
 *   retries: 4,
 *   match: (answer) => answer.length === hello.length,
 * };
 * ```
 */
export interface UdpRequestOptions {
  /** Milliseconds to wait for the answer to each attempt, 1 to 2^31 − 1. Default 1000. */
  timeout?: number;
  /** How many times to send again when no answer comes, 0 to 1000. Default 2. */
  retries?: number;
  /**
   * Which datagram is the answer. Default: the first from the remote. Others
   * (late answers to earlier requests) are discarded and counted in `dropped`.
   */
  match?: (answer: Uint8Array) => boolean;
}

/**
 * A UDP client with a default remote; see {@linkcode connectUdpClient}.
 *
 * @example
 * ```ts
 * import { connectUdpClient } from "@x/echo";
 *
 * async function ping(port: number): Promise<string> {
 *   await using client = await connectUdpClient({ port });
 *   const answer = await client.request(new TextEncoder().encode("ping"));
 *   return new TextDecoder().decode(answer);
 * }
 * ```
 */
export interface UdpClient extends AsyncDisposable {
  /** The local address, with the real port. */
  readonly addr: Deno.NetAddr;
  /** The remote address, resolved. */
  readonly remoteAddr: Deno.NetAddr;
  /**
   * Datagrams discarded: arrived with {@linkcode UDP_CLIENT_QUEUE_LIMIT}
   * unread ones waiting, were waiting unread when a request began, or did
   * not match a request.
   */
  readonly dropped: number;
  /**
   * Queues one datagram to the remote; see `DatagramTransport.send`.
   *
   * @throws {RangeError} for a datagram larger than UDP carries.
   * @throws {TransportClosedError} once closed.
   */
  send(data: Uint8Array): void;
  /**
   * The next datagram from the remote (a copy), or `null` once closed.
   * With `timeout` (ms), rejects with `Deno.errors.TimedOut` when none comes in time.
   */
  receive(timeout?: number): Promise<Uint8Array | null>;
  /**
   * Sends `data` and resolves with the answer. When none comes within
   * `timeout`, sends again, up to `retries` times. Datagrams that arrived
   * before the request and were not read are discarded first. Requests made
   * while one is pending wait their turn.
   *
   * @throws {Deno.errors.TimedOut} when no answer came after every attempt.
   * @throws {TransportClosedError} when the client is closed meanwhile.
   */
  request(data: Uint8Array, options?: UdpRequestOptions): Promise<Uint8Array>;
  /** Closes the socket once queued datagrams are sent; pending `receive`s resolve `null`. */
  close(): Promise<void>;
}

/**
 * Opens a {@linkcode UdpClient} to `hostname:port`.
 *
 * @example Ask an echo server, with retries
 * ```ts
 * import { connectUdpClient, serveUdpEcho } from "@x/echo";
 *
 * await using server = await serveUdpEcho({ port: 0 });
 * await using client = await connectUdpClient({ port: server.addr.port });
 * const answer = await client.request(new TextEncoder().encode("hi"), { timeout: 500 });
 * console.log(new TextDecoder().decode(answer)); // "hi"
 * ```
 *
 * @throws {Deno.errors.NotFound} when the host name does not resolve.
 * @throws {RangeError} for an option out of range, before any socket is opened.
 */
export async function connectUdpClient(options: UdpConnectOptions): Promise<UdpClient> {
  const { transport, protocol } = await connectUdp(options, () => new Inbox());
  return new Client(transport, protocol);
}

const TIMED_OUT = Symbol("timed out");

type Waiter = (datagram: Uint8Array | null | typeof TIMED_OUT) => void;

/** The client's protocol: keeps copies of datagrams until they are read. */
class Inbox implements DatagramProtocol {
  readonly queue: Uint8Array[] = [];
  readonly waiters: Waiter[] = [];
  dropped = 0;
  closed = false;

  datagramReceived(data: Uint8Array): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(data.slice());
    else if (this.queue.length < UDP_CLIENT_QUEUE_LIMIT) this.queue.push(data.slice());
    else this.dropped++;
  }

  connectionLost(): void {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter(null);
  }

  /** The next datagram, `null` once closed, or {@linkcode TIMED_OUT} after `ms`. */
  next(ms: number | undefined): Promise<Uint8Array | null | typeof TIMED_OUT> {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift()!);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waiter: Waiter = (datagram) => {
        clearTimeout(timer);
        resolve(datagram);
      };
      this.waiters.push(waiter);
      if (ms !== undefined) {
        timer = setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          resolve(TIMED_OUT);
        }, ms);
      }
    });
  }
}

class Client implements UdpClient {
  readonly addr: Deno.NetAddr;
  readonly remoteAddr: Deno.NetAddr;
  readonly #transport: DatagramTransport;
  readonly #inbox: Inbox;
  #turn: Promise<void> = Promise.resolve();
  #discarded = 0;

  constructor(transport: DatagramTransport, inbox: Inbox) {
    this.#transport = transport;
    this.#inbox = inbox;
    this.addr = transport.getExtraInfo("sockname");
    this.remoteAddr = transport.getExtraInfo("peername")!;
  }

  get dropped(): number {
    return this.#inbox.dropped + this.#discarded;
  }

  send(data: Uint8Array): void {
    this.#transport.send(data);
  }

  async receive(timeout?: number): Promise<Uint8Array | null> {
    if (timeout !== undefined) checkInteger("timeout", timeout, 1, 2 ** 31 - 1);
    const datagram = await this.#inbox.next(timeout);
    if (datagram === TIMED_OUT) {
      throw new Deno.errors.TimedOut(
        `Cannot receive from udp ${formatAddress(this.remoteAddr)}: ` +
          `no datagram came within ${timeout} ms`,
      );
    }
    return datagram;
  }

  async request(data: Uint8Array, options: UdpRequestOptions = {}): Promise<Uint8Array> {
    const {
      timeout = DEFAULT_REQUEST_TIMEOUT,
      retries = DEFAULT_REQUEST_RETRIES,
      match,
    } = options;
    checkInteger("timeout", timeout, 1, 2 ** 31 - 1);
    checkInteger("retries", retries, 0, 1000);
    if (match !== undefined && typeof match !== "function") {
      throw new TypeError(
        `Cannot use match of type ${typeof match}: it must be a function of the answer`,
      );
    }
    // One request at a time: each answer belongs to the request that waits.
    const previous = this.#turn;
    const done = Promise.withResolvers<void>();
    this.#turn = done.promise;
    await previous;
    try {
      this.#discarded += this.#inbox.queue.splice(0).length;
      for (let attempt = 0; attempt <= retries; attempt++) {
        this.send(data);
        const deadline = performance.now() + timeout;
        for (let left = timeout; left > 0; left = deadline - performance.now()) {
          const answer = await this.#inbox.next(Math.ceil(left));
          if (answer === TIMED_OUT) break;
          if (answer === null) {
            throw new TransportClosedError(
              `the client of udp ${formatAddress(this.remoteAddr)} was closed before the ` +
                `answer came`,
            );
          }
          if (match === undefined || match(answer)) return answer;
          this.#discarded++;
        }
      }
      throw new Deno.errors.TimedOut(
        `Cannot get an answer from udp ${formatAddress(this.remoteAddr)}: none came after ` +
          `${retries + 1} attempt${retries === 0 ? "" : "s"} of ${timeout} ms (datagrams get ` +
          `lost, or nothing listens there); check the server, or raise timeout or retries`,
      );
    } finally {
      done.resolve();
    }
  }

  async close(): Promise<void> {
    this.#transport.close();
    await this.#transport.closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
