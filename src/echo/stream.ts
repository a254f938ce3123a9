/**
 * The echo behaviours in the stream shape.
 *
 * @module
 */

import type { StreamHandler } from "../streams/streams.ts";
import { type EchoOptions, EchoSession, resolveEchoOptions } from "./behavior.ts";
import { untilHooks } from "./protocol.ts";

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
 * terminator, `prefix` and `until` both given, or an `untilLimit` that is not a positive integer.
 */
export function echoStreamHandler(options: EchoOptions = {}): StreamHandler {
  const resolved = resolveEchoOptions(options);
  return async (reader, writer) => {
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
