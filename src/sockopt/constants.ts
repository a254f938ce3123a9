/**
 * Socket option numbers per operating system, checked against the system
 * headers (Linux: asm-generic/socket.h, netinet/tcp.h; macOS: sys/socket.h,
 * netinet/tcp.h). Other systems have none: the options report "not supported".
 *
 * @module
 */

/** Where an option lives and how its value is encoded. */
export interface OptionCode {
  /** The `level` argument of `setsockopt` (SOL_SOCKET or IPPROTO_TCP). */
  level: number;
  /** The `optname` argument. */
  name: number;
}

/** The options this module sets, by our name. */
export type OptionName =
  | "reuseAddress"
  | "reusePort"
  | "receiveBufferSize"
  | "sendBufferSize"
  | "keepAlive"
  | "noDelay"
  | "keepAliveIdle"
  | "keepAliveInterval"
  | "keepAliveCount"
  | "quickAck";

/** The numbers of one operating system; `undefined` where it has no such option. */
export interface PlatformConstants {
  /** The shared library that holds `setsockopt`. */
  libc: string;
  /** The symbol that returns the address of the thread's `errno`. */
  errnoLocation: string;
  /** Address families, as in `sockaddr`. */
  AF_INET: number;
  /** IPv6 address family. */
  AF_INET6: number;
  /** `sockaddr` starts with a length byte (BSD) instead of a 16-bit family (Linux). */
  sockaddrHasLength: boolean;
  /** SOL_SOCKET and SO_TYPE, to tell stream from datagram sockets. */
  soType: OptionCode;
  /** SOCK_STREAM and SOCK_DGRAM. */
  SOCK_STREAM: number;
  /** SOCK_DGRAM. */
  SOCK_DGRAM: number;
  /** Where the process's open descriptors are listed. */
  fdDirectory: string;
  /**
   * Options a listening socket does not pass on to the sockets it accepts,
   * which must be set on each connection (macOS keeps TCP_KEEPALIVE, the idle
   * time, per socket; Linux passes everything this module sets on).
   */
  notInherited: readonly OptionName[];
  /** Option codes by our name. */
  options: Partial<Record<OptionName, OptionCode>>;
}

const SOL_SOCKET_LINUX = 1;
const SOL_SOCKET_BSD = 0xffff;
const IPPROTO_TCP = 6;

const LINUX: PlatformConstants = {
  libc: "libc.so.6",
  errnoLocation: "__errno_location",
  AF_INET: 2,
  AF_INET6: 10,
  sockaddrHasLength: false,
  soType: { level: SOL_SOCKET_LINUX, name: 3 },
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  fdDirectory: "/proc/self/fd",
  notInherited: [],
  options: {
    reuseAddress: { level: SOL_SOCKET_LINUX, name: 2 },
    sendBufferSize: { level: SOL_SOCKET_LINUX, name: 7 },
    receiveBufferSize: { level: SOL_SOCKET_LINUX, name: 8 },
    keepAlive: { level: SOL_SOCKET_LINUX, name: 9 },
    reusePort: { level: SOL_SOCKET_LINUX, name: 15 },
    noDelay: { level: IPPROTO_TCP, name: 1 },
    keepAliveIdle: { level: IPPROTO_TCP, name: 4 },
    keepAliveInterval: { level: IPPROTO_TCP, name: 5 },
    keepAliveCount: { level: IPPROTO_TCP, name: 6 },
    quickAck: { level: IPPROTO_TCP, name: 12 },
  },
};

const MACOS: PlatformConstants = {
  libc: "libSystem.B.dylib",
  errnoLocation: "__error",
  AF_INET: 2,
  AF_INET6: 30,
  sockaddrHasLength: true,
  soType: { level: SOL_SOCKET_BSD, name: 0x1008 },
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  fdDirectory: "/dev/fd",
  // XNU's tcp_input copies TF_NODELAY, t_keepcnt and t_keepintvl from the listener, not t_keepidle.
  notInherited: ["keepAliveIdle"],
  options: {
    reuseAddress: { level: SOL_SOCKET_BSD, name: 0x0004 },
    keepAlive: { level: SOL_SOCKET_BSD, name: 0x0008 },
    reusePort: { level: SOL_SOCKET_BSD, name: 0x0200 },
    sendBufferSize: { level: SOL_SOCKET_BSD, name: 0x1001 },
    receiveBufferSize: { level: SOL_SOCKET_BSD, name: 0x1002 },
    noDelay: { level: IPPROTO_TCP, name: 0x01 },
    keepAliveIdle: { level: IPPROTO_TCP, name: 0x10 }, // TCP_KEEPALIVE
    keepAliveInterval: { level: IPPROTO_TCP, name: 0x101 },
    keepAliveCount: { level: IPPROTO_TCP, name: 0x102 },
    // No TCP_QUICKACK on macOS.
  },
};

/** The constants of the running system, or `null` where we know none. */
export function platformConstants(
  os: typeof Deno.build.os = Deno.build.os,
): PlatformConstants | null {
  switch (os) {
    case "linux":
      return LINUX;
    case "darwin":
      return MACOS;
    default:
      return null;
  }
}
