/**
 * The echo behaviours in the protocol-callback shape.
 *
 * @module
 */

import type { Protocol, ProtocolFactory, Transport } from "../core/protocol.ts";
import { chargeBuffered } from "../core/_transport.ts";
import { lastRead } from "../core/_last_read.ts";
import { formatAddress } from "../_address.ts";
import {
  type EchoOptions,
  EchoSession,
  type EchoSessionHooks,
  type ResolvedEchoOptions,
  resolveEchoOptions,
} from "./behavior.ts";
import { tcpEchoLogger } from "./_log.ts";
import { connectionInfoLine } from "./info.ts";
import type { EchoFaultCounters } from "./faults.ts";
import { FaultyEcho, newFaultCounters } from "./_faults.ts";

/**
 * Options {@linkcode echoProtocolFactory} has checked, with the counters
 * their faults count in: its protocols skip checking them again.
 */
const resolvedByFactory = new WeakMap<EchoOptions, EchoFaultCounters>();

/** Why an {@linkcode EchoProtocol} stopped reading: reading runs when none is set. */
const PAUSED_FOR_WRITES = 1;
const PAUSED_FOR_FAULTS = 2;

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
  readonly #options: ResolvedEchoOptions;
  readonly #counters: EchoFaultCounters | undefined;
  #transport: Transport | null = null;
  /** Between the session and the transport when faults are on. */
  #faulty: FaultyEcho | null = null;
  #paused = 0;
  #drained: PromiseWithResolvers<void> | null = null;

  /**
   * Makes the protocol for one connection.
   *
   * @throws {RangeError} for invalid options (see {@linkcode echoProtocolFactory}).
   */
  constructor(options: EchoOptions = {}) {
    this.#counters = resolvedByFactory.get(options);
    const resolved = this.#counters !== undefined
      ? options as ResolvedEchoOptions
      : resolveEchoOptions(options);
    this.#options = resolved;
    const hooks = resolved.mode === "until" ? untilHooks(() => this.#transport!) : undefined;
    this.#session = new EchoSession(resolved, hooks);
  }

  /** Keeps the transport to answer on. */
  connectionMade(transport: Transport): void {
    this.#transport = transport;
    const info = this.#options.infoInForce;
    if (info !== null) transport.write(connectionInfoLine(transport, info));
    const faults = this.#options.faultsInForce;
    if (faults === null) return;
    this.#faulty = new FaultyEcho(
      this.#session,
      faults,
      this.#counters ?? newFaultCounters(),
      transport,
      {
        pause: () => this.#pause(PAUSED_FOR_FAULTS),
        resume: () => this.#resume(PAUSED_FOR_FAULTS),
        drained: () => (this.#drained ??= Promise.withResolvers<void>()).promise,
      },
    );
  }

  /** Answers per the mode (through the faults, when on). */
  dataReceived(data: Uint8Array): void {
    const faulty = this.#faulty;
    if (faulty === null) this.#session.received(data, this.#transport!);
    else faulty.received(data);
  }

  /**
   * The peer reads slower than it sends: stop reading from it until the
   * echo has drained, so memory stays bounded.
   */
  pauseWriting(): void {
    this.#pause(PAUSED_FOR_WRITES);
  }

  /** The echo drained to the low water mark: read again. */
  resumeWriting(): void {
    this.#resume(PAUSED_FOR_WRITES);
    const drained = this.#drained;
    this.#drained = null;
    drained?.resolve();
  }

  /**
   * Sends back anything kept, then lets the transport close (once what the
   * faults hold went out, when they are on).
   */
  eofReceived(): boolean {
    const faulty = this.#faulty;
    if (faulty === null) {
      this.#session.ended(this.#transport!);
      return false;
    }
    faulty.ended();
    return true; // the faults close it, after what they hold
  }

  /**
   * The server stops (see `core/_last_read.ts`): no more input comes, as at
   * its end. Sends back what was kept, and what the faults hold, then closes.
   */
  [lastRead](): boolean {
    return this.eofReceived();
  }

  /** Drops what the faults hold. */
  connectionLost(): void {
    this.#faulty?.stop();
    this.#drained?.resolve();
  }

  #pause(reason: number): void {
    if (this.#paused === 0) this.#transport!.pauseReading();
    this.#paused |= reason;
  }

  #resume(reason: number): void {
    if (this.#paused === 0) return;
    this.#paused &= ~reason;
    if (this.#paused === 0) this.#transport!.resumeReading();
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
 * terminator, `prefix` and `until` both given, an `untilLimit` that is not a positive integer,
 * or a fault out of range.
 */
export function echoProtocolFactory(options: EchoOptions = {}): ProtocolFactory {
  return echoProtocolFactoryCounting(options, newFaultCounters());
}

/**
 * {@linkcode echoProtocolFactory}, its faults counting in `counters` (a
 * server's).
 */
export function echoProtocolFactoryCounting(
  options: EchoOptions,
  counters: EchoFaultCounters,
): ProtocolFactory {
  const resolved = resolveEchoOptions(options);
  resolvedByFactory.set(resolved, counters);
  return () => new EchoProtocol(resolved);
}
