/**
 * The echo layer's logger: a child of the UDP layer's, since only the UDP
 * echo has anything of its own to say (answers it cannot send).
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";

/** Logger of the UDP echo: category `["echo", "udp", "echo"]`. */
export const udpEchoLogger: Logger = getLogger(["echo", "udp", "echo"]);
