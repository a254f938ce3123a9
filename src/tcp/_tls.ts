/**
 * TLS through Deno's own TLS (rustls): listening with `Deno.listenTls`,
 * and a client's handshake with `Deno.startTls` over a connected
 * `Deno.TcpConn` (so the name sent and checked, SNI, can differ from the
 * address connected to). Errors name the address and say what to do.
 *
 * @module
 */

import { shutDownSocket } from "../sockopt/_connection.ts";
import type { TlsInfo } from "../core/protocol.ts";
import { formatAddress } from "../_address.ts";
import { hasUnstableNet } from "../_unstable.ts";
import type { SocketOptions } from "../sockopt/socket_options.ts";
import type { TlsServerOptions } from "./server.ts";
import type { TlsConnectOptions } from "./client.ts";

/** The time a TLS handshake may take, on a server and on a client: 10 seconds. */
export const DEFAULT_TLS_HANDSHAKE_TIMEOUT = 10_000;

/**
 * Checks `tls` server options before anything is opened.
 *
 * @throws {TypeError} for a missing or malformed certificate or key, or bad ALPN names.
 * @throws {RangeError} for a handshake timeout out of range.
 */
export function validateTlsServerOptions(tls: TlsServerOptions): void {
  if (typeof tls !== "object" || tls === null) {
    throw new TypeError(
      `Cannot use tls ${JSON.stringify(tls)}: it must be { cert, key } (PEM text)`,
    );
  }
  for (const name of ["cert", "key"] as const) {
    if (typeof tls[name] !== "string" || !tls[name].includes("-----BEGIN")) {
      throw new TypeError(
        `Cannot use tls.${name}: it must be PEM text (-----BEGIN ...), not a file name; ` +
          `read the file first (Deno.readTextFileSync)`,
      );
    }
  }
  checkAlpn(tls.alpnProtocols, "tls.alpnProtocols");
  checkTimeout(tls.handshakeTimeout, "tls.handshakeTimeout");
}

/**
 * Checks `tls` client options before connecting.
 *
 * @throws {TypeError} for a value of the wrong kind.
 * @throws {RangeError} for a handshake timeout out of range.
 */
export function validateTlsConnectOptions(tls: TlsConnectOptions): void {
  if (typeof tls !== "object" || tls === null) {
    throw new TypeError(
      `Cannot use tls ${JSON.stringify(tls)}: it must be an object such as ` +
        `{ caCerts: [pem] } (or {} to trust the system's roots)`,
    );
  }
  const { caCerts, serverName } = tls;
  if (
    caCerts !== undefined &&
    (!Array.isArray(caCerts) || caCerts.some((pem) => typeof pem !== "string"))
  ) {
    throw new TypeError(
      "Cannot use tls.caCerts: it must be an array of PEM certificates (text, not file names)",
    );
  }
  if (serverName !== undefined && (typeof serverName !== "string" || serverName === "")) {
    throw new TypeError(
      `Cannot use tls.serverName ${JSON.stringify(serverName)}: it must be a host name`,
    );
  }
  checkAlpn(tls.alpnProtocols, "tls.alpnProtocols");
  checkTimeout(tls.handshakeTimeout, "tls.handshakeTimeout");
}

function checkAlpn(alpn: unknown, name: string): void {
  if (alpn === undefined) return;
  if (
    !Array.isArray(alpn) ||
    alpn.some((p) => typeof p !== "string" || p === "" || new TextEncoder().encode(p).length > 255)
  ) {
    throw new TypeError(
      `Cannot use ${name} ${JSON.stringify(alpn)}: it must be an array of protocol names ` +
        `of 1 to 255 bytes, such as ["h2", "http/1.1"]`,
    );
  }
}

function checkTimeout(ms: unknown, name: string): void {
  if (ms === undefined) return;
  if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 1 || ms > 2 ** 31 - 1) {
    throw new RangeError(
      `Cannot use ${name} ${JSON.stringify(ms)}: it must be a whole number of milliseconds ` +
        `from 1 to ${2 ** 31 - 1}`,
    );
  }
}

/**
 * `Deno.listenTls` with the backlog and `reusePort`, and errors that name
 * the address and say what to try.
 *
 * @throws {TypeError} when the certificate or key cannot be used.
 * @throws {Deno.errors.NotSupported} for `reusePort` without `--unstable-net`.
 */
export function listenTls(
  hostname: string,
  port: number,
  tls: TlsServerOptions,
  { backlog, reusePort }: Pick<SocketOptions, "backlog" | "reusePort">,
  explain: (error: unknown) => unknown,
): Deno.TlsListener {
  if (reusePort && !hasUnstableNet()) {
    throw new Deno.errors.NotSupported(
      "Cannot use reusePort with TLS: TLS runs on the deno backend, whose reusePort needs " +
        "Deno's --unstable-net flag; run deno with --unstable-net",
    );
  }
  try {
    return Deno.listenTls({
      hostname,
      port,
      transport: "tcp",
      cert: tls.cert,
      key: tls.key,
      ...(tls.alpnProtocols ? { alpnProtocols: tls.alpnProtocols } : {}),
      ...(backlog === undefined ? {} : { tcpBacklog: backlog }),
      ...(reusePort ? { reusePort } : {}),
    });
  } catch (error) {
    if (isTlsMaterialError(error)) {
      throw new TypeError(
        `Cannot listen with TLS on ${formatAddress({ transport: "tcp", hostname, port })}: ` +
          `the certificate or key cannot be used (${(error as Error).message}); give a PEM ` +
          `certificate chain and the private key that matches it`,
        { cause: error },
      );
    }
    throw explain(error);
  }
}

/** Whether `error` is Deno's complaint about a certificate or a key (not about the address). */
export function isTlsMaterialError(error: unknown): boolean {
  return error instanceof Error &&
    /certificate|No keys found|KeyMismatch|keys may not be consistent|private key|BadEncoding/i
      .test(error.message);
}

/**
 * Runs the client side of TLS over the connected `tcp`: the name sent
 * (SNI) and checked against the certificate is `tls.serverName`, else
 * `hostname`. Resolves once the handshake is over, within its timeout.
 *
 * @throws {Deno.errors.InvalidData} naming the server when the handshake
 * fails (its certificate is not trusted, or names another host), and what to do.
 * @throws {Deno.errors.TimedOut} when it takes longer than the timeout.
 */
export async function startClientTls(
  tcp: Deno.TcpConn,
  hostname: string,
  port: number,
  tls: TlsConnectOptions,
): Promise<{ conn: Deno.TlsConn; info: TlsInfo }> {
  const serverName = tls.serverName ?? hostname;
  const where = formatAddress({ transport: "tcp", hostname, port });
  // The addresses, while the TCP conn is ours: a timed-out handshake's socket is shut down by them.
  const local = tcp.localAddr, remote = tcp.remoteAddr;
  let conn: Deno.TlsConn;
  try {
    conn = await Deno.startTls(tcp, {
      hostname: serverName,
      ...(tls.caCerts ? { caCerts: tls.caCerts } : {}),
      ...(tls.alpnProtocols ? { alpnProtocols: tls.alpnProtocols } : {}),
    });
  } catch (error) {
    try {
      tcp.close(); // startTls refused (such as a server name that is no name): the TCP is ours
    } catch {
      // Already taken over and closed.
    }
    throw error;
  }
  const timeout = tls.handshakeTimeout ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const info = await Promise.race([
      conn.handshake(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() =>
          reject(
            new Deno.errors.TimedOut(
              `Cannot connect to ${where} over TLS: no complete handshake within ${timeout} ms ` +
                `(is it a TLS server?)`,
            ),
          ), timeout);
      }),
    ]);
    return { conn, info: { serverName, alpnProtocol: info.alpnProtocol, version: null } };
  } catch (error) {
    // Deno's close waits for the handshake it cannot cancel: shut the socket down first.
    if (error instanceof Deno.errors.TimedOut) shutDownSocket(local, remote);
    try {
      conn.close();
    } catch {
      // Already closed.
    }
    if (error instanceof Deno.errors.TimedOut) throw error;
    const reason = (error as Error).message;
    const hint = /certificate|UnknownIssuer|NotValidForName|CertExpired|BadSignature/i.test(reason)
      ? `; trust the CA that signed the server's certificate (tls.caCerts, --ca FILE), and ` +
        `connect by a name the certificate holds (tls.serverName)`
      : "; check that a TLS server listens there";
    throw new Deno.errors.InvalidData(
      `Cannot connect to ${where} over TLS as ${JSON.stringify(serverName)}: the handshake ` +
        `failed (${reason})${hint}`,
      { cause: error },
    );
  } finally {
    clearTimeout(timer);
  }
}
