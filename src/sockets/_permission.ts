/**
 * The net permission a socket opened through libc needs: Deno asks for it
 * in `Deno.listen`, `Deno.connect` and `Deno.listenDatagram`, and a socket
 * this module opens itself must ask the same.
 *
 * @module
 */

import { formatAddress } from "../_address.ts";

/**
 * Throws unless net access to `hostname`:`port` is granted.
 *
 * @throws {Deno.errors.NotCapable} naming what could not be done (`action`,
 * such as "listen on") and the flag that grants it.
 */
export function requireNetAccess(
  transport: "tcp" | "udp",
  hostname: string,
  port: number,
  action: string,
): void {
  const host = `${hostname}:${port}`;
  if (Deno.permissions.querySync({ name: "net", host }).state === "granted") return;
  throw new Deno.errors.NotCapable(
    `Cannot ${action} ${formatAddress({ transport, hostname, port })}: it requires net access ` +
      `to "${host}"; run again with the --allow-net flag`,
  );
}
