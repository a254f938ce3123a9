/**
 * The echo behaviours in the protocol-callback shape.
 *
 * @module
 */

import type { Protocol, ProtocolFactory, Transport } from "../core/protocol.ts";
import { chargeBuffered } from "../core/_transport.ts";
import { formatAddress } from "../_address.ts";
import {
  type EchoOptions,
  EchoSession,
  type EchoSessionHooks,
  type ResolvedEchoOptions,
  resolveEchoOptions,
} from "./behavior.ts";
import { tcpEchoLogger } from "./_log.ts";

/** Options {@linkcode echoProtocolFactory} has checked: its protocols skip checking them again. */
const resolvedByFactory = new WeakSet<EchoOptions>();

/**
 * The hooks of an `until` session on `transport()`'s connection: what it
 * keeps counts against the server's budget, and reaching the limit is logged.
 */
export function untilHooks(transport: () => Transport): EchoSessionHooks {
  return {
    charge: (delta) => chargeBuffered(transport(), delta),
    limitReached: (bytes) => {
      tcpEchoLogger.info(
        "{peer} sent {bytes} bytes without the terminator (the until limit): " +
          "sending them back and closing",
        { peer: formatAddress(transport().getExtraInfo("peername")), bytes },
      );
    },
  };
}

/**
 * An echo {@linkcode Protocol} for one connection. Servers make them with
 * {@linkcode echoProtocolFactory}, which checks the options once for all
 * connections; `new EchoProtocol(options)` checks them each time.
 *
 * @example
 * ```ts
 * import { serveTcp } from "@x/echo";
 * import { EchoProtocol } from "@x/echo/echo";
 *
 * const server = serveTcp({ port: 0 }, () => new EchoProtocol({ mode: "once" }));
 * await server.shutdown();
 * ```
 */
export class EchoProtocol implements Protocol {
  readonly #session: EchoSession;
  #transport: Transport | null = null;

  /**
   * Makes the protocol for one connection.
   *
   * @throws {RangeError} for invalid options (see {@linkcode echoProtocolFactory}).
   */
  constructor(options: EchoOptions = {}) {
    const resolved = resolvedByFactory.has(options)
      ? options as ResolvedEchoOptions
      : resolveEchoOptions(options);
    const hooks = resolved.mode === "until" ? untilHooks(() => this.#transport!) : undefined;
    this.#session = new EchoSession(resolved, hooks);
  }

  /** Keeps the transport to answer on. */
  connectionMade(transport: Transport): void {
    this.#transport = transport;
  }

  /** Answers per the mode. */
  dataReceived(data: Uint8Array): void {
    this.#session.received(data, this.#transport!);
  }

  /**
   * The peer reads slower than it sends: stop reading from it until the
   * echo has drained, so memory stays bounded.
   */
  pauseWriting(): void {
    this.#transport!.pauseReading();
  }

  /** The echo drained to the low water mark: read again. */
  resumeWriting(): void {
    this.#transport!.resumeReading();
  }

  /** Sends back anything kept, then lets the transport close. */
  eofReceived(): boolean {
    this.#session.ended(this.#transport!);
    return false;
  }
}

/**
 * A {@linkcode ProtocolFactory} of echo protocols, for {@linkcode serveTcp}.
 *
 * @example
 * ```ts
 * import { echoProtocolFactory } from "@x/echo/echo";
 * import { serveTcp } from "@x/echo";
 *
 * const server = serveTcp({ port: 0 }, echoProtocolFactory({ mode: "prefix", prefix: "GOT:" }));
 * await server.shutdown();
 * ```
 *
 * @throws {RangeError} for invalid options, naming the bad value: an unknown mode, an empty
 * terminator, `prefix` and `until` both given, or an `untilLimit` that is not a positive integer.
 */
export function echoProtocolFactory(options: EchoOptions = {}): ProtocolFactory {
  const resolved = resolveEchoOptions(options);
  resolvedByFactory.add(resolved);
  return () => new EchoProtocol(resolved);
}
