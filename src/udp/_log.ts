/**
 * The UDP layer's logger. The library only logs; configuring LogTape is up
 * to the application.
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";

/** Logger of the UDP layer: category `["echo", "udp"]`. */
export const udpLogger: Logger = getLogger(["echo", "udp"]);
