/**
 * The stream API, after asyncio's streams: a handler per connection gets a
 * {@linkcode StreamReader} (`read`, `readExactly`, `readUntil`, `readLine`,
 * borrowed views, web streams) and a {@linkcode StreamWriter} (`write`,
 * `drain`, `close`). The root entry point (`@x/echo`) re-exports the part
 * most programs use.
 *
 * @example A line-at-a-time server, and a client for it
 * ```ts
 * import { connectTcpStreams, serveTcpStreams } from "@x/echo/streams";
 *
 * const server = serveTcpStreams({ port: 0 }, async (reader, writer) => {
 *   for (let line; (line = await reader.readLine()) !== null;) {
 *     writer.write(line);
 *     await writer.drain();
 *   }
 * });
 * const { reader, writer } = await connectTcpStreams({ port: server.addr.port });
 * writer.write("hello\n");
 * console.log(new TextDecoder().decode(await reader.readLine() ?? undefined)); // "hello\n"
 * await writer.close();
 * await server.shutdown();
 * ```
 *
 * @module
 */

export {
  DEFAULT_STREAM_LIMIT,
  IncompleteReadError,
  LimitOverrunError,
  StreamReader,
  type StreamReaderOptions,
} from "./stream_reader.ts";
export { StreamWriter } from "./stream_writer.ts";
export {
  connectTcpStreams,
  serveTcpStreams,
  type StreamConnection,
  type StreamConnectOptions,
  type StreamHandler,
  type StreamServerOptions,
} from "./streams.ts";
