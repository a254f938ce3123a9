/**
 * Write-buffer water marks, shared by the TCP and UDP transports: past the
 * high mark a protocol is asked to pause writing, at the low mark to resume.
 *
 * @module
 */

import { checkInteger } from "../_validate.ts";

/**
 * The default write-buffer high water mark: 64 KiB, as in asyncio. The low
 * mark defaults to a quarter of the high one.
 *
 * @example Allow four times the default before pausing the writer
 * ```ts
 * import { DEFAULT_HIGH_WATER_MARK } from "@x/echo/tcp";
 * import { serveEcho } from "@x/echo";
 *
 * const server = serveEcho({ port: 0, highWaterMark: 4 * DEFAULT_HIGH_WATER_MARK });
 * await server.shutdown();
 * ```
 */
export const DEFAULT_HIGH_WATER_MARK = 64 * 1024;

/**
 * Write-buffer water marks in bytes; see `Transport.setWriteBufferLimits`.
 *
 * @example
 * ```ts
 * import type { WaterMarks } from "@x/echo/tcp";
 *
 * const marks: WaterMarks = { high: 256 * 1024, low: 64 * 1024 };
 * ```
 */
export interface WaterMarks {
  /** Past this many buffered bytes the protocol is asked to pause writing. */
  high: number;
  /** At or below this many buffered bytes the protocol may resume writing. */
  low: number;
}

/**
 * The marks in force for the given ones: given only `high`, `low` is a
 * quarter of it; given only `low`, `high` is four times it; neither, the
 * defaults.
 *
 * @throws {RangeError} when `low` ends up above `high`.
 */
export function resolveWaterMarks(high?: number, low?: number): WaterMarks {
  if (high === undefined) high = low === undefined ? DEFAULT_HIGH_WATER_MARK : 4 * low;
  if (low === undefined) low = Math.floor(high / 4);
  if (low > high) {
    throw new RangeError(
      `Cannot use write-buffer limits: low water mark ${low} is above high water mark ` +
        `${high}; make low at most high`,
    );
  }
  return { high, low };
}

/**
 * Checks user-given marks (whole numbers, low at most high) and resolves
 * them; `highName`/`lowName` are the names errors use.
 *
 * @throws {RangeError} naming the bad value.
 */
export function validateWaterMarks(
  high: number | undefined,
  low: number | undefined,
  highName = "highWaterMark",
  lowName = "lowWaterMark",
): WaterMarks {
  if (high !== undefined) checkInteger(highName, high, 0, 2 ** 53 - 1);
  if (low !== undefined) checkInteger(lowName, low, 0, 2 ** 53 - 1);
  return resolveWaterMarks(high, low);
}
