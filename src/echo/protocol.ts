/**
 * The echo behaviours in the protocol-callback shape.
 *
 * @module
 */

import type { Protocol, ProtocolFactory, Transport } from "../core/protocol.ts";
import { chargeBuffered } from "../core/transport.ts";
import { formatAddress } from "../_address.ts";
import {
  type EchoOptions,
  EchoSession,
  type EchoSessionHooks,
  type ResolvedEchoOptions,
  resolveEchoOptions,
} from "./behavior.ts";
import { tcpEchoLogger } from "./_log.ts";

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
 * An echo {@linkcode Protocol} for one connection. Make them with
 * {@linkcode echoProtocolFactory}, which checks the options once.
 *
 * @example
 * ```ts
 * import { EchoProtocol, resolveEchoOptions, serveTcp } from "@x/echo";
 *
 * const options = resolveEchoOptions({ mode: "once" });
 * const server = serveTcp({ port: 0 }, () => new EchoProtocol(options));
 * await server.shutdown();
 * ```
 */
export class EchoProtocol implements Protocol {
  readonly #session: EchoSession;
  #transport: Transport | null = null;

  /** Makes the protocol for one connection. */
  constructor(options: ResolvedEchoOptions) {
    const hooks = options.mode === "until" ? untilHooks(() => this.#transport!) : undefined;
    this.#session = new EchoSession(options, hooks);
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
 * import { echoProtocolFactory, serveTcp } from "@x/echo";
 *
 * const server = serveTcp({ port: 0 }, echoProtocolFactory({ mode: "prefix", prefix: "GOT:" }));
 * await server.shutdown();
 * ```
 *
 * @throws {RangeError} for invalid options (see {@linkcode resolveEchoOptions}).
 */
export function echoProtocolFactory(options: EchoOptions = {}): ProtocolFactory {
  const resolved = resolveEchoOptions(options);
  return () => new EchoProtocol(resolved);
}
