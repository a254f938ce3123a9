/**
 * The echo server program:
 *
 * ```sh
 * deno run -A jsr:@x/echo/server --port 8888
 * deno run -A jsr:@x/echo/server --port 8888 --udp
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
import type { EchoApi, EchoServerOptions } from "../echo/serve.ts";
import { ECHO_MODES, type EchoMode } from "../echo/behavior.ts";
import {
  choiceFlag,
  collectUnknown,
  helpOrVersion,
  integerFlag,
  portsFlag,
  rejectSwitchValues,
  rejectUnknown,
  runCommand,
  textFlag,
  transportsFlag,
  unescape,
  UsageError,
  workersFlag,
} from "./_args.ts";
import { flushLogs, LOG_FORMATS, LOG_LEVELS, setUpLogging } from "./_logging.ts";
import {
  SOCKET_FLAGS,
  SOCKET_FLAGS_USAGE,
  socketOptionsFromFlags,
  udpSocketOptionsFromFlags,
} from "./_socket_flags.ts";
import {
  DEFAULT_SHUTDOWN_TIMEOUT,
  type ProxyProtocolOptions,
  TCP_BACKENDS,
  type TcpBackend,
  type TcpServer,
} from "../tcp/server.ts";
import { parseCidrList } from "../proxy/trusted.ts";
import type { DatagramBackend } from "../udp/socket.ts";
import { UDP_ECHO_MODES, type UdpEchoServerOptions } from "../echo/datagram.ts";
import { hasUnstableNet } from "../_unstable.ts";
import { waitOnMainThread } from "../poll/_poller.ts";
import { DEFAULT_BUSY_POLL, setBusyPoll } from "./_busy_poll.ts";
import { type Listener, listeningLine, startListeners } from "./_listeners.ts";
import { logTotals, serverLogger } from "./_server_log.ts";
import { sharedCounter } from "../tcp/_shared_limit.ts";
import { startWorkers, type WorkerPool } from "../workers/pool.ts";
import type { ServerWorkerData } from "./_server_worker.ts";
import { ADMIN_FLAGS, ADMIN_FLAGS_USAGE, adminFromFlags } from "./_admin_flags.ts";
import { type Admin, openAdmin } from "./_admin.ts";
import { poolSnapshots, snapshotOf } from "./_metrics.ts";
import { FAULT_FLAGS, FAULT_FLAGS_USAGE, faultsFromFlags } from "./_fault_flags.ts";
import {
  SERVER_TLS_UNIX_FLAGS,
  SERVER_TLS_UNIX_USAGE,
  tlsUnixFromFlags,
} from "./_tls_unix_flags.ts";

/** The UDP backends, in the order the default tries them. */
const DATAGRAM_BACKENDS: readonly DatagramBackend[] = ["epoll", "deno", "node"];

const APIS: readonly EchoApi[] = ["protocol", "stream"];

/**
 * The `--help` text of the server program.
 *
 * @example
 * ```ts
 * import { SERVER_USAGE } from "@x/echo/server";
 *
 * console.log(SERVER_USAGE.split("\n")[0]); // Usage: deno run -A jsr:@x/echo/server [options]
 * ```
 */
export const SERVER_USAGE = `Usage: deno run -A jsr:@x/echo/server [options]

A TCP or UDP echo server (RFC 862 and variants).

Options:
  --hostname, --host ADDR   address to listen on (default 127.0.0.1)
  --port N[,N...]           port(s) to listen on, 0 for any free one (default 8888);
                            each port is a listener of its own
  --transport tcp|udp|tcp,udp
                            the protocol(s) to serve on each port (default tcp);
                            tcp,udp serves both on the same port number
  --udp                     same as --transport udp
  --workers N|auto          run N event loops (Web Workers; auto: one per CPU), each
                            with its own SO_REUSEPORT listeners, the kernel spreading
                            connections and datagrams over them (default: one loop,
                            no workers)
  --busy-poll US            after events, a wait looks for more for up to US
                            microseconds before it sleeps, sparing a wake-up per round
                            trip under load; after a look that found nothing, the next
                            1, 2, 4... (up to 64) waits do not look (default 50; 0:
                            never; only with at least 2 CPUs per event loop)
  --api protocol|stream     API the server runs on (default protocol; TCP only)
  --mode echo|once|prefix|until|info
                            echo: send back every byte (default)
                            once: answer the first read, then close (TCP only)
                            prefix: answer each read (UDP: datagram) with --prefix in front
                            until: keep all until --until arrives, send it back, close
                            (TCP only)
                            info: first one JSON line of what the server saw (the client,
                            from the PROXY header where that is on; the local address,
                            host name, worker, transport, TLS), then echo; UDP: each
                            datagram is answered with that line instead
  --prefix TEXT             prefix for --mode prefix (default "GOT:"; implies it)
  --until TEXT              terminator for --mode until (default "quit\\n"; implies it)
                            (\\n, \\r, \\t and \\\\ in TEXT are turned into those characters);
                            what follows the terminator in the same read is not sent back
  --until-limit BYTES       the most --mode until keeps per connection, terminator
                            included (default 8388608): a peer that sends that many
                            without the terminator gets them back and is disconnected

PROXY protocol (TCP; HAProxy's send-proxy/send-proxy-v2, nginx's proxy_protocol on):
  --proxy-protocol          every connection must begin with a PROXY header (v1 or v2),
                            and the client it names is the peer in the log lines; a
                            connection without a valid one is closed unanswered and
                            counted (default off; applies to every TCP listener)
  --proxy-timeout S         seconds the whole header may take (default 3)
  --proxy-from CIDR[,CIDR...]
                            accept connections only from these proxies (addresses or
                            blocks such as 10.0.0.0/8,::1); others are closed at once
                            (default any)

Connections (TCP):
  --max-connections N       the most open at once on each port (with --workers, in all
                            of them together); more are closed as soon as accepted and
                            counted (default no limit)
  --idle-timeout S          close a connection after S seconds without traffic either way
                            (default never)
  --backend epoll|deno      epoll: accept, read and write through libc, one epoll loop
                            (Linux, needs --allow-ffi); deno: Deno's own sockets
                            (default epoll where it can run, else deno). With --udp:
                            epoll|deno|node (epoll: recvmmsg/sendmmsg batches; deno:
                            Deno.listenDatagram, needs --unstable-net; node: node:dgram);
                            default the first of them that can run
  --max-buffered BYTES      the most all connections together hold for their peers
                            (unsent echoes, until-mode requests, unread stream data);
                            past it, those holding the most stop reading until it
                            drains, while the others go on (default 67108864; with
                            --workers, in each worker)

${SERVER_TLS_UNIX_USAGE}

${SOCKET_FLAGS_USAGE}

${FAULT_FLAGS_USAGE}

UDP safety (a UDP echo can be abused to reflect traffic):
  Datagrams from source ports 0, 7, 13, 17, 19 and 37, and from this server's own
  port on this host, are never answered; drops are counted and logged at debug.
  --rate-limit N            answer each source host at most N datagrams a second
                            (bursts of N; default no limit; UDP only)

${ADMIN_FLAGS_USAGE}

Stopping:
  --shutdown-timeout S      on SIGINT or SIGTERM, how long open connections (UDP: queued
                            and delayed answers) may take to send what they hold before
                            they are aborted (default 10); a second signal exits at once

Logging and information:
  --log-level debug|info|warning|error
                            what to log on stderr (default info; debug shows each
                            connection's socket options read back from the kernel)
  --log-format text|json    how log lines look (default text)
  --version                 print the version and exit
  -h, --help                print this help and exit

SIGINT or SIGTERM: stop accepting, flush pending echoes, exit 0. A second signal exits at once.
`;

/**
 * What the server's flags say to do; see {@linkcode parseServerArgs}.
 *
 * @example
 * ```ts
 * import { parseServerArgs, type ServerCommand } from "@x/echo/server";
 *
 * const command: ServerCommand = parseServerArgs(["--udp", "--port", "9000"]);
 * console.log(command.transport, command.udpOptions.port); // udp 9000
 * ```
 */
export interface ServerCommand {
  /** `"help"` or `"version"` print and exit; `"serve"` runs the server. */
  action: "serve" | "help" | "version";
  /** The protocol to serve: the first of `transports`. */
  transport: "tcp" | "udp";
  /** The protocols to serve on each port: `["tcp"]`, `["udp"]` or `["tcp", "udp"]`. */
  transports: ("tcp" | "udp")[];
  /** The ports to listen on, in order; 0 picks a free one. */
  ports: number[];
  /** How many workers to run, or `null` for none (one event loop, in this thread). */
  workers: number | null;
  /**
   * How long, in microseconds, a wait of each event loop looks for events
   * before it sleeps (`--busy-poll`; 0: it does not).
   */
  busyPoll: number;
  /** The TCP server's options, for `"serve"` over TCP. */
  options: EchoServerOptions;
  /** The UDP server's options, for `"serve"` over UDP. */
  udpOptions: UdpEchoServerOptions;
  /** The log level. */
  logLevel: "debug" | "info" | "warning" | "error";
  /** The log line format. */
  logFormat: "text" | "json";
  /** Where the admin HTTP listener (health, readiness, metrics) listens; none when absent. */
  admin?: { hostname: string; port: number };
}

/** The boolean flags: given a value, it must be true or false (see `rejectSwitchValues`). */
const SWITCHES = ["help", "version", "udp", "proxy-protocol", ...SOCKET_FLAGS.boolean];

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
      "transport",
      "api",
      "mode",
      "prefix",
      "until",
      "log-level",
      "log-format",
      "rate-limit",
      "max-connections",
      "idle-timeout",
      "shutdown-timeout",
      "backend",
      "until-limit",
      "max-buffered",
      "workers",
      "busy-poll",
      "proxy-timeout",
      "proxy-from",
      ...ADMIN_FLAGS,
      ...SOCKET_FLAGS.string,
      ...FAULT_FLAGS,
      ...SERVER_TLS_UNIX_FLAGS.string,
    ],
    boolean: SWITCHES,
    negatable: SOCKET_FLAGS.negatable,
    alias: { host: "hostname", h: "help" },
    default: {
      hostname: "127.0.0.1",
      port: "8888",
      "log-level": "info",
      "log-format": "text",
      ...SOCKET_FLAGS.default,
    },
    unknown: collectUnknown(unknown),
  });
  rejectUnknown(unknown, args);
  rejectSwitchValues(args, SWITCHES);
  const transports = transportsFlag(flags.transport, flags.udp);
  const ports = portsFlag(flags.port);
  const faults = faultsFromFlags(flags, transports);
  if (faults.tcp?.resetAfter !== undefined && flags.unix !== undefined) {
    throw new UsageError(
      "Cannot use --reset-after with --unix: a Unix socket has no reset (its close always " +
        "ends it cleanly); drop one of them",
    );
  }
  const command: ServerCommand = {
    action: flags.help ? "help" : flags.version ? "version" : "serve",
    transport: transports[0],
    transports,
    ports,
    workers: workersFlag(flags.workers),
    busyPoll: flags["busy-poll"] === undefined
      ? DEFAULT_BUSY_POLL
      : integerFlag("busy-poll", flags["busy-poll"], 0, 1000),
    options: {},
    udpOptions: {},
    logLevel: choiceFlag("log-level", flags["log-level"], LOG_LEVELS),
    logFormat: choiceFlag("log-format", flags["log-format"], LOG_FORMATS),
  };
  // On --unix no TCP port is listened on (the default 8888 stays in `ports` unused).
  const admin = adminFromFlags(flags, flags.unix === undefined ? ports : [], transports);
  if (admin !== undefined) command.admin = admin;
  const hostname = textFlag("hostname", flags.hostname);
  const port = ports[0];
  let mode: EchoMode | undefined;
  if (flags.mode !== undefined) mode = choiceFlag<EchoMode>("mode", flags.mode, ECHO_MODES);
  const prefix = flags.prefix === undefined
    ? undefined
    : unescape(textFlag("prefix", flags.prefix));
  const until = flags.until === undefined ? undefined : unescape(textFlag("until", flags.until));
  if (prefix !== undefined && until !== undefined) {
    throw new UsageError(
      "Cannot use --prefix with --until: they conflict; use one (prefix mode or until mode)",
    );
  }
  if (prefix !== undefined && (mode ?? "prefix") !== "prefix") {
    throw new UsageError(
      `Cannot use --prefix with --mode ${mode}: they conflict; drop one of them`,
    );
  }
  if (until !== undefined && (mode ?? "until") !== "until") {
    throw new UsageError(`Cannot use --until with --mode ${mode}: they conflict; drop one of them`);
  }
  const shutdownTimeout = flags["shutdown-timeout"] === undefined
    ? undefined
    : integerFlag("shutdown-timeout", flags["shutdown-timeout"], 0, 2_000_000) * 1000;
  const alsoTcp = transports.includes("tcp");
  if (transports.includes("udp")) {
    command.udpOptions = udpOptionsFromFlags(
      flags,
      { hostname, port, mode, prefix, until },
      alsoTcp,
    );
    if (faults.udp) command.udpOptions.faults = faults.udp;
  }
  if (shutdownTimeout !== undefined && transports.includes("udp")) {
    command.udpOptions.shutdownTimeout = shutdownTimeout;
  }
  if (!alsoTcp) {
    tlsUnixFromFlags(flags, args, { transports, workers: command.workers, options: {} });
    return command;
  }
  if (flags["rate-limit"] !== undefined && !transports.includes("udp")) {
    throw new UsageError(
      "Cannot use --rate-limit with TCP: it is for UDP only; drop it or add --udp",
    );
  }
  const maxConnections = flags["max-connections"] === undefined
    ? undefined
    : integerFlag("max-connections", flags["max-connections"], 1, 2 ** 31 - 1);
  const idleSeconds = flags["idle-timeout"] === undefined
    ? undefined
    : integerFlag("idle-timeout", flags["idle-timeout"], 1, Math.floor((2 ** 31 - 1) / 1000));
  const options: EchoServerOptions = {
    hostname,
    port,
    api: choiceFlag("api", flags.api ?? "protocol", APIS),
    ...socketOptionsFromFlags(flags),
  };
  if (mode !== undefined) options.mode = mode;
  if (prefix !== undefined) options.prefix = prefix;
  if (until !== undefined) options.until = until;
  if (faults.tcp) options.faults = faults.tcp;
  if (maxConnections !== undefined) options.maxConnections = maxConnections;
  if (shutdownTimeout !== undefined) options.shutdownTimeout = shutdownTimeout;
  if (idleSeconds !== undefined) options.idleTimeout = idleSeconds * 1000;
  if (flags.backend !== undefined) {
    options.backend = choiceFlag<TcpBackend>("backend", flags.backend, TCP_BACKENDS);
  }
  if (flags["until-limit"] !== undefined) {
    if ((options.mode ?? (until !== undefined ? "until" : "echo")) !== "until") {
      throw new UsageError(
        "Cannot use --until-limit without --mode until: it is for --mode until only; " +
          "drop it or add --mode until",
      );
    }
    options.untilLimit = integerFlag("until-limit", flags["until-limit"], 1, 2 ** 53 - 1);
  }
  if (flags["max-buffered"] !== undefined) {
    options.maxBuffered = integerFlag("max-buffered", flags["max-buffered"], 1, 2 ** 53 - 1);
  }
  const proxy = proxyProtocolFromFlags(flags);
  if (proxy !== undefined) options.proxyProtocol = proxy;
  tlsUnixFromFlags(flags, args, { transports, workers: command.workers, options });
  if (
    (options.reusePort || command.workers !== null) && options.backend === "deno" &&
    !hasUnstableNet()
  ) {
    const flag = options.reusePort ? "--reuse-port" : "--workers";
    throw new UsageError(
      `Cannot use ${flag} on --backend deno: it needs Deno's --unstable-net flag; ` +
        `run ${runCommand(import.meta.url).replace("-A", "-A --unstable-net")} ${flag} ... ` +
        "(the epoll backend needs no flag for it)",
    );
  }
  command.options = options;
  return command;
}

/** The UDP server's options, refusing what only TCP has. */
function udpOptionsFromFlags(
  flags: Parameters<typeof udpSocketOptionsFromFlags>[0] & {
    api?: string;
    "rate-limit"?: string;
    "max-connections"?: string;
    "idle-timeout"?: string;
    backend?: string;
    "until-limit"?: string;
    "max-buffered"?: string;
  },
  { hostname, port, mode, prefix, until }: {
    hostname: string;
    port: number;
    mode?: EchoMode;
    prefix?: string;
    until?: string;
  },
  alsoTcp: boolean,
): UdpEchoServerOptions {
  if (!alsoTcp) refuseTcpOnlyFlags(flags);
  if (until !== undefined || (mode !== undefined && !UDP_ECHO_MODES.includes(mode as "echo"))) {
    throw new UsageError(
      `Cannot use --mode ${mode ?? "until"} with UDP: it is for TCP only, as a datagram ` +
        `stands alone, so UDP answers each one; use --mode echo or prefix`,
    );
  }
  const options: UdpEchoServerOptions = {
    hostname,
    port,
    ...udpSocketOptionsFromFlags(flags, alsoTcp),
  };
  if (mode !== undefined) options.mode = mode as "echo" | "prefix";
  if (prefix !== undefined) options.prefix = prefix;
  if (flags.backend !== undefined) {
    options.backend = choiceFlag<DatagramBackend>("backend", flags.backend, DATAGRAM_BACKENDS);
  }
  if (flags["rate-limit"] !== undefined) {
    const perSecond = integerFlag("rate-limit", flags["rate-limit"], 1, 1_000_000_000);
    options.rateLimit = { perSecond };
  }
  return options;
}

/**
 * `--proxy-protocol` and its settings; `undefined` when it is off.
 *
 * @throws {UsageError} for a setting without the flag, or a bad value.
 */
function proxyProtocolFromFlags(flags: {
  "proxy-protocol"?: boolean;
  "proxy-timeout"?: string;
  "proxy-from"?: string;
}): ProxyProtocolOptions | undefined {
  if (!flags["proxy-protocol"]) {
    for (const name of ["proxy-timeout", "proxy-from"] as const) {
      if (flags[name] !== undefined) {
        throw new UsageError(
          `Cannot use --${name} without --proxy-protocol: it sets how the PROXY header is ` +
            `taken; add --proxy-protocol or drop it`,
        );
      }
    }
    return undefined;
  }
  const options: ProxyProtocolOptions = {};
  if (flags["proxy-timeout"] !== undefined) {
    const max = Math.floor((2 ** 31 - 1) / 1000);
    options.timeout = integerFlag("proxy-timeout", flags["proxy-timeout"], 1, max) * 1000;
  }
  if (flags["proxy-from"] !== undefined) {
    const text = textFlag("proxy-from", flags["proxy-from"]);
    try {
      parseCidrList(text);
    } catch (error) {
      throw new UsageError(
        `Cannot use --proxy-from ${JSON.stringify(text)}: ${
          (error as Error).message.replace(/^Cannot use [^:]*: /, "")
        }`,
      );
    }
    options.trusted = text;
  }
  return options;
}

/** Refuses the flags that only TCP has, for a server of UDP only. */
function refuseTcpOnlyFlags(flags: {
  api?: string;
  "max-connections"?: string;
  "idle-timeout"?: string;
  "until-limit"?: string;
  "max-buffered"?: string;
  "proxy-protocol"?: boolean;
}): void {
  if (flags["proxy-protocol"]) {
    throw new UsageError(
      "Cannot use --proxy-protocol with UDP: it is for TCP only here; " +
        "drop it or use --transport tcp (or tcp,udp)",
    );
  }
  if (flags.api !== undefined) {
    throw new UsageError(
      "Cannot use --api with UDP: it is for TCP only (UDP has one API, datagram callbacks); " +
        "drop it or use --transport tcp",
    );
  }
  for (
    const name of [
      "max-connections",
      "idle-timeout",
      "until-limit",
      "max-buffered",
    ] as const
  ) {
    if (flags[name] !== undefined) {
      throw new UsageError(
        `Cannot use --${name} with UDP: it is for TCP only (UDP has no connections); ` +
          `drop it or use --transport tcp`,
      );
    }
  }
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
    return helpOrVersion({ [command.action]: true }, SERVER_USAGE, import.meta.url) ?? 0;
  }
  await setUpLogging(command.logLevel, command.logFormat);
  // On workers, each sets its own; this thread then polls no socket.
  if (command.workers === null) setBusyPoll(command.busyPoll, 1);
  const code = command.workers === null ? await serveHere(command) : await serveOnWorkers(command);
  await flushLogs(); // the last lines (the stop lines) are written unless stderr is stuck
  return code;
}

/** The signals that stop the server: the first drains it, a second exits at once. */
const SIGNALS: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];

/**
 * Calls `stop` on the first SIGINT or SIGTERM and exits 130 on the second;
 * returns the function that stops listening for them.
 */
function onSignals(stop: () => void): () => void {
  let signals = 0;
  const onSignal = () => {
    if (++signals > 1) Deno.exit(130);
    stop();
  };
  for (const name of SIGNALS) Deno.addSignalListener(name, onSignal);
  return () => {
    for (const name of SIGNALS) Deno.removeSignalListener(name, onSignal);
  };
}

/** Runs the listeners in this thread's event loop. */
async function serveHere(command: ServerCommand): Promise<number> {
  let listeners: Listener[];
  let admin: Admin | undefined;
  try {
    admin = openAdmin(command.admin);
    listeners = await startListeners(command, false);
  } catch (error) {
    await admin?.close();
    return fail(error);
  }
  // Listen for signals before saying we listen: a SIGTERM sent on seeing the line must be graceful.
  const stopListening = onSignals(() => {
    admin.draining();
    logDrain(command, listeners);
    for (const { server } of listeners) server.shutdown();
  });
  for (const { server, description } of listeners) {
    console.log(listeningLine(server.addr, description));
  }
  admin.serving(() => snapshotOf(listeners.map(({ server }) => server)));
  await Promise.all(listeners.map(({ server }) => server.finished));
  stopListening();
  await admin.close();
  return 0;
}

/** Runs the listeners in `command.workers` workers, each with SO_REUSEPORT sockets of its own. */
async function serveOnWorkers(command: ServerCommand): Promise<number> {
  const workers = command.workers!;
  let pool: WorkerPool;
  let admin: Admin | undefined;
  try {
    admin = openAdmin(command.admin);
    // --max-connections holds for each port in all workers together, not in each.
    const connectionCounters = command.options.maxConnections === undefined
      ? undefined
      : command.ports.map(() => sharedCounter());
    pool = await startWorkers<ServerWorkerData>(new URL("./_server_worker.ts", import.meta.url), {
      count: workers,
      // Worker 0 takes the ports; the others join it on the ports it was given.
      data: (_, first) => ({
        command,
        ports: first === null
          ? command.ports
          : command.ports.map((_, i) => first[i * command.transports.length].addr.port),
        connectionCounters,
      }),
    });
  } catch (error) {
    await admin?.close();
    return fail(error);
  }
  const stopListening = onSignals(() => {
    admin.draining();
    logDrain(command, null);
    pool.shutdown();
  });
  const plural = workers === 1 ? "worker" : "workers";
  for (const { addr, label } of pool.listeners) {
    console.log(listeningLine(addr, `${label}; ${workers} ${plural}`));
  }
  admin.serving(poolSnapshots(pool));
  const final = await pool.finished;
  stopListening();
  await admin.close();
  logTotals(final);
  return 0;
}

/**
 * Says what the drain that starts now waits for, for how long, and that a
 * second signal ends it (`listeners`: those of this thread, whose open
 * connections and held bytes can be counted; `null` on workers).
 */
function logDrain(command: ServerCommand, listeners: Listener[] | null): void {
  const seconds = (command.options.shutdownTimeout ?? command.udpOptions.shutdownTimeout ??
    DEFAULT_SHUTDOWN_TIMEOUT) / 1000;
  if (listeners === null) {
    serverLogger.info(
      "Draining {workers} workers: each lets its connections send what they hold, for up to " +
        "{seconds} s; a second signal exits at once",
      { workers: command.workers, seconds },
    );
    return;
  }
  let open = 0;
  let held = 0;
  for (const { server, transport } of listeners) {
    if (transport !== "tcp") continue;
    const tcp = server as TcpServer;
    open += tcp.connections;
    held += tcp.counters.buffered;
  }
  serverLogger.info(
    "Draining: waiting up to {seconds} s for {open} open connections to send the {held} bytes " +
      "they hold and close; a second signal exits at once",
    { seconds, open, held },
  );
}

/** Prints one line for an error a user can fix and returns the exit code. */
function fail(error: unknown): number {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`echo server: ${message}`);
  const usage = error instanceof UsageError || error instanceof RangeError ||
    error instanceof TypeError || error instanceof Deno.errors.NotSupported;
  return usage ? 2 : 1;
}

if (import.meta.main) {
  // The program's I/O all goes through the poller: its waits may sleep on the main thread
  // (see waitOnMainThread; not for main() called from a program with sockets of its own).
  waitOnMainThread(true);
  Deno.exit(await main(Deno.args));
}
