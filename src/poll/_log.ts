/**
 * The poll layer's logger. The library only logs; configuring LogTape is up
 * to the application.
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";

/** Logger of the poll layer: category `["echo", "poll"]`. */
export const pollLogger: Logger = getLogger(["echo", "poll"]);
