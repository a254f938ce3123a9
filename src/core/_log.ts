/**
 * The TCP layer's logger. The library only logs; configuring LogTape is up
 * to the application.
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";

/** Logger of the TCP layer: category `["echo", "tcp"]`. */
export const tcpLogger: Logger = getLogger(["echo", "tcp"]);
