/**
 * The echo server program:
 *
 * ```sh
 * deno run -A jsr:@x/echo/server --port 8888
 * ```
 *
 * Prints where it listens on stdout and logs to stderr. SIGINT or SIGTERM
 * shuts it down gracefully (pending echoes are flushed) and it exits 0; a
 * second signal exits at once. Bad flags print one line and exit 2.
 *
 * @example Run it from code, as the command line does
 * ```ts ignore
 * import { main } from "@x/echo/server";
 *
 * Deno.exit(await main(["--port", "8888", "--mode", "prefix", "--prefix", "GOT:"]));
 * ```
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { type EchoApi, type EchoServerOptions, serveEcho } from "../echo/serve.ts";
import { ECHO_MODES, type EchoMode, resolveEchoOptions } from "../echo/behavior.ts";
import { formatAddress } from "../_address.ts";
import {
  choiceFlag,
  collectUnknown,
  helpOrVersion,
  integerFlag,
  rejectUnknown,
  textFlag,
  unescape,
  UsageError,
} from "./_args.ts";
import { LOG_FORMATS, LOG_LEVELS, setUpLogging } from "./_logging.ts";
import {
  DEFAULT_BACKLOG,
  describeSocketOptions,
  effectiveBacklog,
  SOCKET_FLAGS,
  SOCKET_FLAGS_USAGE,
  socketOptionsFromFlags,
} from "./_socket_flags.ts";
import type { TcpServer } from "../tcp/server.ts";
import { hasUnstableNet } from "../_unstable.ts";

const APIS: readonly EchoApi[] = ["protocol", "stream"];

/** The `--help` text of the server program. */
export const SERVER_USAGE = `Usage: deno run -A jsr:@x/echo/server [options]

A TCP echo server (RFC 862 and variants).

Options:
  --hostname, --host ADDR   address to listen on (default 127.0.0.1)
  --port N                  port to listen on, 0 for any free one (default 8888)
  --api protocol|stream     API the server runs on (default protocol)
  --mode echo|once|prefix|until
                            echo: send back every byte (default)
                            once: answer the first read, then close
                            prefix: answer each read with --prefix in front
                            until: keep all until --until arrives, send it back, close
  --prefix TEXT             prefix for --mode prefix (default "GOT:"; implies it)
  --until TEXT              terminator for --mode until (default "quit\\n"; implies it)
                            (\\n, \\r, \\t and \\\\ in TEXT are turned into those characters)

${SOCKET_FLAGS_USAGE}

Logging and information:
  --log-level debug|info|warning|error
                            what to log on stderr (default info; debug shows each
                            connection's socket options read back from the kernel)
  --log-format text|json    how log lines look (default text)
  --version                 print the version and exit
  -h, --help                print this help and exit

SIGINT or SIGTERM: stop accepting, flush pending echoes, exit 0. A second signal exits at once.
`;

/** What the server's flags say to do; see {@linkcode parseServerArgs}. */
export interface ServerCommand {
  /** `"help"` or `"version"` print and exit; `"serve"` runs the server. */
  action: "serve" | "help" | "version";
  /** The server's options, for `"serve"`. */
  options: EchoServerOptions;
  /** The log level. */
  logLevel: "debug" | "info" | "warning" | "error";
  /** The log line format. */
  logFormat: "text" | "json";
}

/**
 * Parses the server's flags.
 *
 * @example
 * ```ts
 * import { parseServerArgs } from "@x/echo/server";
 *
 * const command = parseServerArgs(["--port", "9000", "--api", "stream"]);
 * console.log(command.options.port); // 9000
 * ```
 *
 * @throws {UsageError} naming the flag, the bad value and what to use.
 */
export function parseServerArgs(args: string[]): ServerCommand {
  const unknown: string[] = [];
  const flags = parseArgs(args, {
    string: [
      "hostname",
      "port",
      "api",
      "mode",
      "prefix",
      "until",
      "log-level",
      "log-format",
      ...SOCKET_FLAGS.string,
    ],
    boolean: ["help", "version", ...SOCKET_FLAGS.boolean],
    negatable: SOCKET_FLAGS.negatable,
    alias: { host: "hostname", h: "help" },
    default: {
      hostname: "127.0.0.1",
      port: "8888",
      api: "protocol",
      "log-level": "info",
      "log-format": "text",
      ...SOCKET_FLAGS.default,
    },
    unknown: collectUnknown(unknown),
  });
  rejectUnknown(unknown, args);
  const command: ServerCommand = {
    action: flags.help ? "help" : flags.version ? "version" : "serve",
    options: {},
    logLevel: choiceFlag("log-level", flags["log-level"], LOG_LEVELS),
    logFormat: choiceFlag("log-format", flags["log-format"], LOG_FORMATS),
  };
  const options: EchoServerOptions = {
    hostname: textFlag("hostname", flags.hostname),
    port: integerFlag("port", flags.port, 0, 65535),
    api: choiceFlag("api", flags.api, APIS),
    ...socketOptionsFromFlags(flags),
  };
  if (flags.mode !== undefined) options.mode = choiceFlag<EchoMode>("mode", flags.mode, ECHO_MODES);
  if (flags.prefix !== undefined) options.prefix = unescape(textFlag("prefix", flags.prefix));
  if (flags.until !== undefined) options.until = unescape(textFlag("until", flags.until));
  if (options.prefix !== undefined && options.until !== undefined) {
    throw new UsageError("--prefix and --until conflict: use one (prefix mode or until mode).");
  }
  if (options.prefix !== undefined && (options.mode ?? "prefix") !== "prefix") {
    throw new UsageError(`--prefix conflicts with --mode ${options.mode}: drop one of them.`);
  }
  if (options.until !== undefined && (options.mode ?? "until") !== "until") {
    throw new UsageError(`--until conflicts with --mode ${options.mode}: drop one of them.`);
  }
  if (options.reusePort && !hasUnstableNet()) {
    throw new UsageError(
      "--reuse-port needs Deno's --unstable-net flag: " +
        "deno run -A --unstable-net jsr:@x/echo/server --reuse-port ...",
    );
  }
  command.options = options;
  return command;
}

/**
 * Runs the server program with `args`; resolves to the exit code once the
 * server has stopped.
 *
 * @example
 * ```ts ignore
 * import { main } from "@x/echo/server";
 *
 * Deno.exit(await main(Deno.args));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  let command: ServerCommand;
  try {
    command = parseServerArgs(args);
  } catch (error) {
    return fail(error);
  }
  if (command.action !== "serve") {
    return helpOrVersion({ [command.action]: true }, SERVER_USAGE) ?? 0;
  }
  await setUpLogging(command.logLevel, command.logFormat);
  const { options } = command;
  let server;
  try {
    server = serveEcho(options);
  } catch (error) {
    return fail(error);
  }
  const { mode } = resolveEchoOptions(options); // valid: serveEcho accepted them
  console.log(
    `@x/echo server listening on ${
      formatAddress(server.addr)
    } (tcp, ${options.api} API, ${mode} mode; ${optionsInForce(server, options)})`,
  );
  let signals = 0;
  const onSignal = () => {
    if (++signals > 1) Deno.exit(130);
    server.shutdown();
  };
  const signalNames: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM"];
  for (const name of signalNames) Deno.addSignalListener(name, onSignal);
  await server.finished;
  for (const name of signalNames) Deno.removeSignalListener(name, onSignal);
  return 0;
}

/** The socket options read back from the listener, or why they cannot be. */
function optionsInForce(server: TcpServer, options: EchoServerOptions): string {
  const backlog = effectiveBacklog(options.backlog ?? DEFAULT_BACKLOG);
  try {
    return describeSocketOptions(server.getSocketOptions(), backlog, options.quickAck === true);
  } catch (error) {
    return `backlog ${backlog}; other socket options not read back: ${(error as Error).message}`;
  }
}

/** Prints one line for an error a user can fix and returns the exit code. */
function fail(error: unknown): number {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`echo server: ${message}`);
  const usage = error instanceof UsageError || error instanceof RangeError ||
    error instanceof TypeError;
  return usage ? 2 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
