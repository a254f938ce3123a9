/**
 * The epoll driver: the I/O of a connection on a non-blocking descriptor
 * (one the epoll backend accepted itself), driven by the process's
 * {@linkcode Poller}. A readable socket is read once per event, into the
 * poller's shared buffer, or into the buffer a `BufferedProtocol`
 * lends. A write is tried on the socket at once; the transport queues what
 * the kernel does not take, and this driver sends it when the socket is
 * writable again. Everything else is the transport core's.
 *
 * @module
 */

import type { Driver, SocketTransport } from "../core/_transport.ts";
import { tcpLogger } from "../core/_log.ts";
import {
  EAGAIN,
  EINTR,
  EPOLLERR,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  MSG_NOSIGNAL,
  SHUT_WR,
} from "../libc/_constants.ts";
import { sizeArgument } from "../libc/_libc.ts";
import { MIN_SHARED_BUFFER, type Poller, type PollTarget } from "../poll/_poller.ts";
import { localAddress } from "../sockets/_address.ts";
import {
  lingerZero,
  readConnectionOptions,
  rearmQuickAck,
  setConnectionOptions,
} from "../sockopt/_connection.ts";
import type { ConnectionSetup } from "../sockopt/_setup.ts";
import type { SocketOptionValues } from "../sockopt/read_back.ts";

/** Reads made of what the kernel holds when a shutdown ends reading (see `settleReads`). */
const LAST_READS = 4;
const READ_EVENTS = EPOLLIN | EPOLLHUP | EPOLLERR;
const WRITE_EVENTS = EPOLLOUT | EPOLLHUP | EPOLLERR;

/** A {@linkcode Driver} over a socket descriptor watched by epoll. */
export class EpollDriver implements Driver, PollTarget {
  readonly peerAddr: Deno.NetAddr;
  /** No TLS on this backend. */
  readonly tls: null = null;
  readonly #fd: number;
  readonly #poller: Poller;
  readonly #calls: Poller["libc"]["symbols"];
  readonly #setup: ConnectionSetup;
  /** The setup's `quickAck`, read on every read: kept here, not one object further. */
  readonly #quickAck: boolean;
  /** The most bytes one read takes, and the same as the bigint FFI wants. */
  readonly #readLength: number;
  readonly #readSize: bigint;
  #transport!: SocketTransport;
  #localAddr: Deno.NetAddr | null = null;
  /** The local address when known without asking the kernel (see the constructor). */
  readonly #knownLocal: Deno.NetAddr | null;
  /** Registered with the poller (from `start`). */
  #registered = false;
  #closed = false;

  /**
   * Wraps the non-blocking socket `fd`, whose peer `accept4` reported as
   * `peer`. Reads take at most `readBufferSize` bytes (default 256 KiB).
   * `local` is the socket's address when known without asking (a listener
   * bound to one address gives it to what it accepts); otherwise it is read
   * when first asked for, or at the latest before the socket closes, so it
   * can still be asked for once the connection is over (`connectionLost`).
   */
  constructor(
    fd: number,
    peer: Deno.NetAddr,
    poller: Poller,
    setup: ConnectionSetup,
    readBufferSize: number = MIN_SHARED_BUFFER,
    local: Deno.NetAddr | null = null,
  ) {
    this.#fd = fd;
    this.peerAddr = peer;
    this.#knownLocal = local;
    this.#poller = poller;
    this.#calls = poller.libc.symbols;
    this.#setup = setup;
    this.#quickAck = setup.quickAck;
    this.#readLength = readBufferSize;
    this.#readSize = BigInt(readBufferSize);
  }

  attach(transport: SocketTransport): void {
    this.#transport = transport;
    if (transport.bufferedProtocol === null) this.#poller.reserveReadBuffer(this.#readLength);
    const { noDelay, keepAlive, perConnection } = this.#setup;
    try {
      if (perConnection.length > 0) setConnectionOptions(this.#fd, perConnection);
      // Set on the listener whenever FFI works, which epoll needs: only a fallback left them here.
      if (noDelay !== undefined) setConnectionOptions(this.#fd, [["noDelay", "noDelay", noDelay]]);
      if (keepAlive !== undefined) {
        setConnectionOptions(this.#fd, [["keepAlive", "keepAlive", keepAlive]]);
      }
    } catch (error) {
      tcpLogger.warning("Cannot set socket options of {peer}: {error}", {
        peer: transport.peer,
        error,
      });
    }
    if (transport.debug) {
      try {
        const values = readConnectionOptions(this.#fd);
        tcpLogger.debug("Socket options of {peer}: {values}", { peer: transport.peer, values });
      } catch (error) {
        tcpLogger.debug("Cannot read socket options of {peer}: {error}", {
          peer: transport.peer,
          error,
        });
      }
    }
  }

  start(): void {
    try {
      this.#poller.add(this.#fd, this, this.#wantedEvents());
      this.#registered = true;
    } catch (error) {
      this.#transport.fail(error);
    }
  }

  setReading(): void {
    this.#updateEvents();
  }

  trySend(data: Uint8Array): number {
    const sent = this.#calls.send(this.#fd, data, sizeArgument(data.length), MSG_NOSIGNAL);
    if (sent >= 0) return sent;
    const { libc } = this.#poller;
    const code = libc.errno();
    if (code === EAGAIN || code === EINTR) return 0;
    throw libc.error(code, "send");
  }

  startWriting(): void {
    this.#updateEvents();
  }

  shutdownWrite(): void {
    if (this.#calls.shutdown(this.#fd, SHUT_WR) < 0) {
      const { libc } = this.#poller;
      throw libc.error(libc.errno(), "shut down the sending side");
    }
  }

  /**
   * No read is ever in flight here (reads happen when the socket is ready),
   * but what the kernel already holds is the peer's last words before a
   * shutdown: it is read now, a few reads at most, and delivered (answered),
   * unless reading was paused (then nothing more is taken in).
   */
  settleReads(): Promise<void> {
    // A paused connection (its peer's echo waits, or the budget is spent) takes no more.
    if (this.#transport.readingPaused) return Promise.resolve();
    for (let i = 0; i < LAST_READS && !this.#closed && !this.#transport.isClosing(); i++) {
      if (!this.#read()) break;
    }
    return Promise.resolve();
  }

  close(): void {
    if (this.#closed) return;
    // The last chance to read the local address, unless it is known without the socket.
    if (this.#localAddr === null && this.#knownLocal === null) {
      this.#localAddr = localAddress(this.#fd);
    }
    this.#closed = true;
    // Out of the poller first, with this batch's events: the number may be reused at once.
    this.#poller.remove(this.#fd);
    this.#calls.close(this.#fd);
  }

  lingerZero(): boolean {
    return !this.#closed && lingerZero(this.#fd);
  }

  localAddr(): Deno.NetAddr | null {
    if (this.#localAddr === null) {
      const known = this.#knownLocal;
      if (known !== null) {
        this.#localAddr = { transport: "tcp", hostname: known.hostname, port: known.port };
      } else if (!this.#closed) {
        this.#localAddr = localAddress(this.#fd);
      }
    }
    return this.#localAddr;
  }

  socketOptions(): SocketOptionValues {
    return readConnectionOptions(this.#fd);
  }

  // ---- Poller ------------------------------------------------------------

  /** Called by the poller with the ready events. */
  onEvents(events: number): void {
    const transport = this.#transport;
    if ((events & WRITE_EVENTS) !== 0 && transport.queue.size > 0) this.#flush();
    if ((events & READ_EVENTS) !== 0 && transport.reading) this.#read();
  }

  /** The poller failed for good: so does this connection. */
  onPollerError(error: Error): void {
    this.#transport.fail(error);
  }

  #wantedEvents(): number {
    const transport = this.#transport;
    return (transport.reading ? EPOLLIN : 0) | (transport.queue.size > 0 ? EPOLLOUT : 0);
  }

  #updateEvents(): void {
    if (this.#closed || !this.#registered) return;
    try {
      this.#poller.modify(this.#fd, this.#wantedEvents());
    } catch (error) {
      this.#transport.fail(error);
    }
  }

  /** One read; `true` when it brought bytes. */
  #read(): boolean {
    const transport = this.#transport;
    if (transport.bufferedProtocol !== null) return this.#readInto(transport);
    const poller = this.#poller;
    const length = transport.readLength(this.#readLength);
    const size = length === this.#readLength ? this.#readSize : sizeArgument(length);
    const n = this.#calls.recv(this.#fd, poller.readBuffer, size, 0);
    if (n > 0) {
      poller.delivered += n;
      if (this.#quickAck) rearmQuickAck(this.#fd);
      transport.received(poller.readView(n));
      return true;
    }
    this.#readEnded(n);
    return false;
  }

  /** A read straight into the buffer the protocol lends (a `BufferedProtocol`). */
  #readInto(transport: SocketTransport): boolean {
    const most = transport.readLength(this.#readLength);
    const buffer = transport.receiveBuffer(most);
    // getBuffer may have closed the connection: then read nothing. (A pause it caused,
    // such as the budget's for the buffer it just took, applies from the next read on.)
    if (buffer === null || this.#closed || transport.isClosing()) return false;
    const length = Math.min(buffer.length, most);
    const n = this.#calls.recv(this.#fd, buffer, sizeArgument(length), 0);
    if (n > 0) {
      this.#poller.delivered += n;
      if (this.#quickAck) rearmQuickAck(this.#fd);
      transport.receivedInto(n);
      return true;
    }
    this.#readEnded(n);
    return false;
  }

  /** After a `recv` that returned `n` ≤ 0: end of input, or an error unless it would block. */
  #readEnded(n: number): void {
    if (n === 0) return this.#transport.endOfInput();
    const { libc } = this.#poller;
    const code = libc.errno();
    if (code !== EAGAIN && code !== EINTR) this.#transport.fail(libc.error(code, "recv"));
  }

  /** Sends what is queued until the kernel takes no more. */
  #flush(): void {
    const transport = this.#transport;
    const queue = transport.queue;
    const calls = this.#calls;
    const fd = this.#fd;
    for (let chunk; (chunk = queue.peek()) !== null;) {
      const sent = calls.send(fd, chunk, sizeArgument(chunk.length), MSG_NOSIGNAL);
      if (sent < 0) {
        const { libc } = this.#poller;
        const code = libc.errno();
        if (code === EAGAIN || code === EINTR) break;
        return transport.fail(libc.error(code, "send"));
      }
      transport.sent(sent); // may close the connection, and this driver with it
      if (this.#closed) return;
      if (sent < chunk.length) break;
    }
    // Emptied: stop watching for room (the transport may also have stopped reading).
    if (queue.size === 0) this.#updateEvents();
  }
}
