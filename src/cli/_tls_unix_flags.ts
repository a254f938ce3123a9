/**
 * The TLS and Unix socket flags of the programs: the server's `--tls-cert`,
 * `--tls-key`, `--alpn` and `--unix`; the client's and bench's `--tls`,
 * `--ca`, `--server-name`, `--insecure` and `--unix`. Files are read here,
 * up front, so a missing or unreadable one is one line naming it (exit 2)
 * before anything listens.
 *
 * @module
 */

import type { EchoServerOptions } from "../echo/serve.ts";
import type { TlsConnectOptions } from "../tcp/client.ts";
import { textFlag, UsageError } from "./_args.ts";
import { SOCKET_FLAGS } from "./_socket_flags.ts";

/** The server's flags, for `parseArgs`. */
export const SERVER_TLS_UNIX_FLAGS = { string: ["tls-cert", "tls-key", "alpn", "unix"] } as const;

/** The client's and bench's flags, for `parseArgs`. */
export const CLIENT_TLS_UNIX_FLAGS = {
  string: ["ca", "server-name", "unix"],
  boolean: ["tls", "insecure"],
} as const;

/** The server's part of `--help`. */
export const SERVER_TLS_UNIX_USAGE =
  `TLS and Unix sockets (TCP; both run on the deno backend, the default with them):
  --tls-cert FILE           serve TLS with this PEM certificate chain (needs --tls-key)
  --tls-key FILE            the PEM private key of --tls-cert
  --alpn LIST               ALPN protocols to offer, such as h2,http/1.1 (default none)
                            A failed handshake (a plain TCP client, a client that
                            rejects the certificate) is counted (tlsFailed) and logged
                            at debug; the handshake's ALPN protocol is logged at debug
  --unix PATH               listen on this Unix domain socket instead of a TCP port;
                            a stale socket file (nothing listens) is replaced, a live
                            one or a file that is not a socket refused; removed at exit`;

/** The client's part of `--help`. */
export const CLIENT_TLS_UNIX_USAGE =
  `  --tls                     connect over TLS (Deno's TLS; the system's roots are trusted)
  --ca FILE                 also trust this PEM certificate (a CA's, or the server's own
                            self-signed one); implies --tls
  --server-name NAME        the name to send (SNI) and check the certificate against
                            (default: --hostname); implies --tls
  --insecure                refused: Deno cannot skip verification from code; run
                            deno run -A --unsafely-ignore-certificate-errors=HOST ... --tls
  --unix PATH               connect to this Unix domain socket instead of --hostname/--port`;

/** The server flags this module reads. */
export interface ServerTlsUnixFlags {
  "tls-cert"?: string;
  "tls-key"?: string;
  alpn?: string;
  unix?: string;
  "proxy-protocol"?: boolean;
  "proxy-from"?: string;
  "reuse-port"?: boolean;
}

/**
 * Puts `--tls-cert`/`--tls-key`/`--alpn` and `--unix` into the TCP server's
 * `options`, reading the certificate and key files. TLS and Unix sockets run
 * on the deno backend: it becomes the default, and `--backend epoll` is refused.
 *
 * @throws {UsageError} for a missing or unreadable file, or flags that conflict.
 */
export function tlsUnixFromFlags(
  flags: ServerTlsUnixFlags,
  args: readonly string[],
  command: { transports: readonly string[]; workers: number | null; options: EchoServerOptions },
): void {
  const cert = flags["tls-cert"], key = flags["tls-key"], unix = flags.unix;
  const tls = cert !== undefined || key !== undefined;
  if (!tls && flags.alpn !== undefined) {
    throw new UsageError(
      "Cannot use --alpn without --tls-cert and --tls-key: it is offered in the TLS " +
        "handshake; add them or drop --alpn",
    );
  }
  if (!tls && unix === undefined) return;
  const flag = unix !== undefined ? "--unix" : "--tls-cert";
  if (command.transports.includes("udp")) {
    throw new UsageError(
      `Cannot use ${flag} with UDP: it is for TCP only here (no DTLS, no datagram Unix ` +
        `sockets); drop it or use --transport tcp`,
    );
  }
  const { options } = command;
  if (options.backend === "epoll") {
    throw new UsageError(
      `Cannot use ${flag} with --backend epoll: ${
        unix !== undefined ? "Unix sockets" : "TLS"
      } run on Deno's own sockets; drop --backend (deno is then the default) or use --backend deno`,
    );
  }
  if (tls && unix !== undefined) {
    throw new UsageError(
      "Cannot use --unix with --tls-cert: Deno's TLS listens on TCP only; drop one of them",
    );
  }
  if (tls && flags["proxy-protocol"]) {
    throw new UsageError(
      "Cannot use --proxy-protocol with --tls-cert: Deno's TLS listener reads the handshake " +
        "first, while a proxy sends the PROXY header before it; drop one of them",
    );
  }
  if (unix !== undefined) {
    const given = (name: string) => args.some((a) => a === name || a.startsWith(`${name}=`));
    for (const other of ["--port", "--hostname", "--host"]) {
      if (given(other)) {
        throw new UsageError(
          `Cannot use --unix with ${other}: the server listens on the socket file instead; ` +
            `drop ${other}`,
        );
      }
    }
    if (command.workers !== null) {
      throw new UsageError(
        "Cannot use --unix with --workers: a Unix socket has no SO_REUSEPORT to share; " +
          "drop --workers",
      );
    }
    // Deno's Unix listener takes none of the socket options, and gives no descriptor to set.
    const socketFlags = [
      ...SOCKET_FLAGS.string,
      ...SOCKET_FLAGS.boolean,
      ...SOCKET_FLAGS.negatable.map((name) => `no-${name}`),
    ];
    const ignored = socketFlags.filter((name) => given(`--${name}`));
    if (ignored.length > 0) {
      const names = ignored.map((name) => `--${name}`).join(", ");
      throw new UsageError(
        `Cannot use --unix with ${names}: ${
          ignored.length === 1 ? "it is a TCP socket option" : "they are TCP socket options"
        }, which a Unix socket does not take here; drop ${ignored.length === 1 ? "it" : "them"}`,
      );
    }
    if (flags["proxy-from"] !== undefined) {
      throw new UsageError(
        "Cannot use --proxy-from with --unix: a Unix socket's peers have no address to " +
          "match; drop --proxy-from (the socket file's permissions say who may connect)",
      );
    }
    options.path = textFlag("unix", unix);
    refuseNonSocket(options.path);
  } else {
    if (cert === undefined || key === undefined) {
      const [has, lacks] = cert === undefined ? ["--tls-key", "--tls-cert"] : [
        "--tls-cert",
        "--tls-key",
      ];
      throw new UsageError(
        `Cannot use ${has} without ${lacks}: TLS needs the certificate and its key; ` +
          `add ${lacks} FILE`,
      );
    }
    options.tls = {
      cert: readPem("tls-cert", cert, "CERTIFICATE-----", "PEM certificate"),
      key: readPem("tls-key", key, "PRIVATE KEY-----", "PEM private key"),
    };
    if (flags.alpn !== undefined) options.tls.alpnProtocols = alpnFlag(flags.alpn);
  }
  options.backend = "deno";
}

/**
 * The client's and bench's `--tls`, `--ca`, `--server-name` and `--unix`:
 * the options `connectTcp` takes for them.
 *
 * @throws {UsageError} for `--insecure`, a missing or unreadable file, or flags that conflict.
 */
export function connectFromFlags(
  flags: {
    tls?: boolean;
    insecure?: boolean;
    ca?: string;
    "server-name"?: string;
    unix?: string;
    "send-proxy"?: string;
  },
  args: readonly string[],
  transport: "tcp" | "udp",
): { path?: string; tls?: TlsConnectOptions } {
  if (flags.insecure) {
    throw new UsageError(
      "Cannot use --insecure: Deno cannot skip the certificate's verification from code; " +
        "give --ca FILE to trust the server's certificate, or run deno with " +
        "--unsafely-ignore-certificate-errors=HOST (then --tls alone)",
    );
  }
  const tls = flags.tls || flags.ca !== undefined || flags["server-name"] !== undefined;
  const unix = flags.unix;
  if (!tls && unix === undefined) return {};
  const flag = unix !== undefined ? "--unix" : "--tls";
  if (transport === "udp") {
    throw new UsageError(`Cannot use ${flag} with UDP: it is for TCP only; drop it or --udp`);
  }
  if (flags["send-proxy"] !== undefined) {
    throw new UsageError(
      `Cannot use --send-proxy with ${flag}: it is for plain TCP here; drop one of them`,
    );
  }
  if (unix !== undefined) {
    if (tls) throw new UsageError("Cannot use --unix with --tls: Deno's TLS runs on TCP only");
    for (const other of ["--port", "--hostname", "--host"]) {
      if (args.some((a) => a === other || a.startsWith(`${other}=`))) {
        throw new UsageError(
          `Cannot use --unix with ${other}: the client connects to the socket file instead; ` +
            `drop ${other}`,
        );
      }
    }
    return { path: textFlag("unix", unix) };
  }
  const options: TlsConnectOptions = {};
  if (flags.ca !== undefined) {
    options.caCerts = [readPem("ca", flags.ca, "CERTIFICATE-----", "PEM certificate")];
  }
  if (flags["server-name"] !== undefined) {
    options.serverName = textFlag("server-name", flags["server-name"]);
  }
  return { tls: options };
}

/**
 * Refuses `--unix PATH` where a file that is not a socket is: it is never
 * removed (the library refuses it too; this says so before anything starts).
 *
 * @throws {UsageError} naming the path.
 */
function refuseNonSocket(path: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch {
    return; // Nothing there, or not readable: the bind says why.
  }
  if (!info.isSocket) {
    throw new UsageError(
      `Cannot use --unix ${path}: the path exists and is not a socket; remove it yourself ` +
        `or choose another path`,
    );
  }
}

/** `--alpn h2,http/1.1`: names of 1 to 255 bytes. */
function alpnFlag(text: string): string[] {
  const names = text.split(",").map((name) => name.trim());
  if (names.some((name) => name === "" || new TextEncoder().encode(name).length > 255)) {
    throw new UsageError(
      `Cannot use --alpn ${JSON.stringify(text)}: it must be protocol names separated by ` +
        `commas, such as h2,http/1.1`,
    );
  }
  return names;
}

/**
 * The text of the PEM file `file` given to `--name`.
 *
 * @throws {UsageError} naming the file when it is missing, unreadable or holds no `marker`.
 */
function readPem(name: string, file: string, marker: string, what: string): string {
  textFlag(name, file);
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Deno.errors.IsADirectory
      ? "it is a directory"
      : `it cannot be read (${(error as Error).message})`;
    throw new UsageError(`Cannot use --${name} ${file}: ${reason}; give the path of a ${what}`);
  }
  if (!text.includes(marker)) {
    throw new UsageError(
      `Cannot use --${name} ${file}: it holds no ${what} (-----BEGIN ...${marker}); ` +
        `give a PEM file`,
    );
  }
  return text;
}
