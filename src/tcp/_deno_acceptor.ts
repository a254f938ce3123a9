/**
 * Accepting on a listener Deno opened (`Deno.listen`), with `for await`:
 * the `deno` backend, on any system and without FFI. Each connection is
 * served through a {@linkcode ConnDriver}. Errors such as running out of
 * descriptors are logged and retried with a growing pause.
 *
 * @module
 */

import { ConnDriver } from "../drivers/_conn_driver.ts";
import type { Driver } from "../core/_transport.ts";
import { isLocalCancel, isPeerFault } from "../errors.ts";
import { formatAddress } from "../_address.ts";
import { getSocketOptions, type SocketOptionValues } from "../sockopt/read_back.ts";
import type { ConnectionSetup } from "../sockopt/_setup.ts";
import { AcceptBackoff, type Acceptor } from "./_acceptor.ts";
import { tcpLogger } from "../core/_log.ts";

/** An {@linkcode Acceptor} over a `Deno.TcpListener`. */
export class DenoAcceptor implements Acceptor {
  readonly addr: Deno.NetAddr;
  readonly backend = "deno" as const;
  readonly #listener: Deno.TcpListener;
  readonly #setup: ConnectionSetup;
  readonly #readBufferSize: number | undefined;
  readonly #backoff = new AcceptBackoff();
  #stopping = false;
  #loop: Promise<void> = Promise.resolve();
  #pause: { timer: ReturnType<typeof setTimeout>; resolve: () => void } | undefined;

  /** Accepts on `listener`, set up as `setup` says; reads take at most `readBufferSize`. */
  constructor(listener: Deno.TcpListener, setup: ConnectionSetup, readBufferSize?: number) {
    this.#listener = listener;
    this.addr = listener.addr;
    this.#setup = setup;
    this.#readBufferSize = readBufferSize;
  }

  start(onConnection: (driver: Driver) => void, onEnd: (error?: Error) => void): void {
    this.#loop = this.#acceptLoop(onConnection, onEnd);
  }

  acceptQueued(): void {
    // Deno's accept always waits: what the kernel queued is reset by the close.
  }

  stop(): Promise<void> {
    this.#stopping = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    if (this.#pause) {
      clearTimeout(this.#pause.timer);
      this.#pause.resolve();
    }
    return this.#loop;
  }

  idle(): Promise<void> {
    return Promise.resolve();
  }

  getSocketOptions(): SocketOptionValues {
    return getSocketOptions(this.#listener);
  }

  /**
   * Hands `conn` on. Whatever goes wrong there is that connection's: a throw
   * inside the `for await` would end the iterator, and close the listener.
   */
  #hand(conn: Deno.TcpConn, onConnection: (driver: Driver) => void): void {
    const driver = new ConnDriver(conn, this.#setup, this.#readBufferSize);
    try {
      onConnection(driver);
    } catch (error) {
      tcpLogger.error("Serving {peer} failed: {error}", {
        peer: formatAddress(conn.remoteAddr),
        error,
      });
      driver.close();
    }
  }

  async #acceptLoop(
    onConnection: (driver: Driver) => void,
    onEnd: (error?: Error) => void,
  ): Promise<void> {
    while (!this.#stopping) {
      try {
        // The iterator ends when the listener is closed and throws on other
        // accept errors, after which a fresh iterator carries on.
        for await (const conn of this.#listener) {
          this.#backoff.reset();
          this.#hand(conn, onConnection);
        }
      } catch (error) {
        if (this.#stopping || isLocalCancel(error)) break;
        // The peer gave up between the kernel's accept and Deno's look at it (a health
        // check that resets at once): that connection is gone, the listener is fine.
        if (isPeerFault(error)) {
          tcpLogger.debug("A connection to {address} ended before it was accepted: {error}", {
            address: formatAddress(this.addr),
            error,
          });
          continue;
        }
        const ms = this.#backoff.failed(formatAddress(this.addr), error);
        await new Promise<void>((resolve) => {
          this.#pause = { timer: setTimeout(resolve, ms), resolve };
        });
        this.#pause = undefined;
        continue;
      }
      break;
    }
    // The listener was closed under us: the server treats it as a shutdown.
    if (!this.#stopping) onEnd();
  }
}
