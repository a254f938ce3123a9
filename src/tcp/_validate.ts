/**
 * Checks of the address a TCP server listens on or a client connects to.
 *
 * @module
 */

import { checkInteger } from "../_validate.ts";

/** Checks the `hostname` and `port` of a server or client; `port` 0 means any free port. */
export function checkAddress(hostname: unknown, port: unknown, minPort: number): void {
  if (typeof hostname !== "string" || hostname === "") {
    throw new TypeError(
      `Invalid hostname: ${JSON.stringify(hostname)}. ` +
        `Use a host name or IP address such as "127.0.0.1", "::1" or "localhost".`,
    );
  }
  checkInteger("port", port, minPort, 65535);
}
