/**
 * The echo behaviours in the stream shape.
 *
 * @module
 */

import type { StreamHandler } from "../streams/streams.ts";
import type { StreamReader } from "../streams/stream_reader.ts";
import type { StreamWriter } from "../streams/stream_writer.ts";
import {
  type EchoOptions,
  EchoSession,
  type ResolvedEchoOptions,
  resolveEchoOptions,
} from "./behavior.ts";
import { connectionInfoLine } from "./info.ts";
import { untilHooks } from "./protocol.ts";
import type { EchoFaultCounters } from "./faults.ts";
import { FaultyEcho, newFaultCounters, type ResolvedEchoFaults } from "./_faults.ts";

/**
 * A {@linkcode StreamHandler} that echoes per `options`, for
 * {@linkcode serveTcpStreams}. It drains after each answer, so a peer that does
 * not read stops the server reading from it.
 *
 * @example
 * ```ts
 * import { echoStreamHandler, serveTcpStreams } from "@x/echo";
 *
 * const server = serveTcpStreams({ port: 0 }, echoStreamHandler({ mode: "until", until: "quit\n" }));
 * await server.shutdown();
 * ```
 *
 * @throws {RangeError} for invalid options, naming the bad value: an unknown mode, an empty
 * terminator, `prefix` and `until` both given, an `untilLimit` that is not a positive integer,
 * or a fault out of range.
 */
export function echoStreamHandler(options: EchoOptions = {}): StreamHandler {
  return echoStreamHandlerCounting(options, newFaultCounters());
}

/** {@linkcode echoStreamHandler}, its faults counting in `counters` (a server's). */
export function echoStreamHandlerCounting(
  options: EchoOptions,
  counters: EchoFaultCounters,
): StreamHandler {
  const resolved = resolveEchoOptions(options);
  const faults = resolved.faultsInForce;
  const info = resolved.infoInForce;
  if (faults !== null) {
    return (reader, writer) => {
      if (info !== null) writer.write(connectionInfoLine(writer.transport, info));
      return echoWithFaults(reader, writer, resolved, faults, counters);
    };
  }
  return async (reader, writer) => {
    if (info !== null) writer.write(connectionInfoLine(writer.transport, info));
    const hooks = resolved.mode === "until" ? untilHooks(() => writer.transport) : undefined;
    const session = new EchoSession(resolved, hooks);
    // Borrowed views: no copy and no garbage per read. The session copies what it keeps.
    for (let chunk; (chunk = await reader.readBorrowed()) !== null;) {
      session.received(chunk, writer);
      if (session.done) return;
      // Nothing queued means nothing to wait for; skipping the await answers the next read sooner.
      if (writer.transport.getWriteBufferSize() > 0) await writer.drain();
    }
    session.ended(writer);
  };
}

/**
 * The stream echo with faults: the same loop, through a {@linkcode FaultyEcho},
 * which says when to stop reading; the handler returns once what it holds
 * went out.
 */
async function echoWithFaults(
  reader: StreamReader,
  writer: StreamWriter,
  resolved: ResolvedEchoOptions,
  faults: ResolvedEchoFaults,
  counters: EchoFaultCounters,
): Promise<void> {
  const transport = writer.transport;
  const hooks = resolved.mode === "until" ? untilHooks(() => transport) : undefined;
  const faulty = new FaultyEcho(new EchoSession(resolved, hooks), faults, counters, transport, {
    pause() {},
    resume() {},
    drained: () => writer.drain(),
  });
  const stop = () => faulty.stop();
  transport.closed.then(stop, stop);
  try {
    for (let chunk; (chunk = await reader.readBorrowed()) !== null;) {
      faulty.received(chunk);
      if (faulty.cut) break;
      if (faulty.full) await faulty.room();
    }
    faulty.ended();
    await faulty.finished;
  } finally {
    faulty.stop();
  }
}
