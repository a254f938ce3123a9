/**
 * The socket-option layer's logger.
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";

/** Logger of the socket-option layer: category `["echo", "sockopt"]`. */
export const sockoptLogger: Logger = getLogger(["echo", "sockopt"]);
