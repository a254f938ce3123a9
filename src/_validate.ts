/**
 * Up-front checks of option values shared by every layer, so a bad value
 * fails before any socket is opened, with a message naming the option, the
 * value and what to use instead.
 *
 * @module
 */

/**
 * Throws a `RangeError` naming `name`, `value` and the range unless `value`
 * is an integer in `[min, max]`.
 */
export function checkInteger(name: string, value: unknown, min: number, max: number): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot use ${name} ${JSON.stringify(value) ?? String(value)}: ` +
        `it must be a whole number from ${min} to ${max}`,
    );
  }
}

/** Throws a `TypeError` naming `name` and `value` unless it is a boolean or undefined. */
export function checkBoolean(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== "boolean") {
    throw new TypeError(`Cannot use ${name} ${JSON.stringify(value)}: it must be true or false`);
  }
}

/** Checks the `hostname` and `port` of a server or client; `port` 0 means any free port. */
export function checkAddress(hostname: unknown, port: unknown, minPort: number): void {
  if (typeof hostname !== "string" || hostname === "") {
    throw new TypeError(
      `Cannot use hostname ${JSON.stringify(hostname)}: it must be a host name or IP ` +
        `address such as "127.0.0.1", "::1" or "localhost"`,
    );
  }
  checkInteger("port", port, minPort, 65535);
}
