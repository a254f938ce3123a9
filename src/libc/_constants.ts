/**
 * The system's numbers, checked against its headers: socket option numbers
 * per operating system (Linux: asm-generic/socket.h, netinet/tcp.h; macOS:
 * sys/socket.h, netinet/tcp.h; other systems have none, and the options
 * report "not supported"), and the Linux numbers of epoll, sockets and errno
 * that the epoll backend uses (sys/epoll.h, fcntl.h, sys/socket.h, errno.h;
 * the same on x86_64 and aarch64).
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
  /**
   * SO_LINGER, whose value is a `struct linger` (two ints: on, seconds), not
   * an int: set to {1, 0}, a close sends a reset (RST) instead of FIN.
   */
  linger?: OptionCode;
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
  linger: { level: SOL_SOCKET_LINUX, name: 13 },
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
  linger: { level: SOL_SOCKET_BSD, name: 0x0080 },
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

// ---- Linux: epoll, sockets, errno -------------------------------------------

/** Readable (or a listener has a connection waiting). */
export const EPOLLIN = 0x001;
/** Writable. */
export const EPOLLOUT = 0x004;
/** An error is pending on the socket (the next `recv` or `send` reports it). */
export const EPOLLERR = 0x008;
/** Both directions are shut down. */
export const EPOLLHUP = 0x010;
/** `epoll_ctl`: add a descriptor. */
export const EPOLL_CTL_ADD = 1;
/** `epoll_ctl`: remove a descriptor. */
export const EPOLL_CTL_DEL = 2;
/** `epoll_ctl`: change a descriptor's events. */
export const EPOLL_CTL_MOD = 3;
/**
 * Bytes per `struct epoll_event`: packed (12) on x86_64, naturally aligned
 * (16) elsewhere; the 64-bit `data` field follows the 32-bit `events`.
 */
export const EPOLL_EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
/** Where `data` starts in a `struct epoll_event`. */
export const EPOLL_DATA_OFFSET = Deno.build.arch === "x86_64" ? 4 : 8;

/** `clock_gettime`: the clock that only goes forward, from boot. */
export const CLOCK_MONOTONIC = 1;
/** Close-on-exec, for `epoll_create1`, `eventfd` and `accept4`. */
export const O_CLOEXEC = 0x80000;
/** Non-blocking, for `eventfd` and `accept4`. */
export const O_NONBLOCK = 0x800;
/** `socket` type flag: close-on-exec. */
export const SOCK_CLOEXEC = O_CLOEXEC;
/** `socket` type flag: non-blocking. */
export const SOCK_NONBLOCK = O_NONBLOCK;
/** `send` flag: a closed peer gives EPIPE, not a SIGPIPE that kills the process. */
export const MSG_NOSIGNAL = 0x4000;
/** `shutdown` of the sending direction. */
export const SHUT_WR = 1;

/** Interrupted by a signal: try again. */
export const EINTR = 4;
/** Bad descriptor. */
export const EBADF = 9;
/** Nothing to read, or no room to write, now. */
export const EAGAIN = 11;
/** Permission denied (a privileged port). */
export const EACCES = 13;
/** The peer closed: writing is not possible. */
export const EPIPE = 32;
/** The address is taken. */
export const EADDRINUSE = 98;
/** No local interface has the address. */
export const EADDRNOTAVAIL = 99;
/** The connection was aborted before `accept` took it. */
export const ECONNABORTED = 103;
/** The peer reset the connection. */
export const ECONNRESET = 104;
/** The socket is not connected. */
export const ENOTCONN = 107;
/** A non-blocking `connect` is under way: the socket turns writable when it is done. */
export const EINPROGRESS = 115;
/** Linux's `SOL_SOCKET` level. */
export const SOL_SOCKET = 1;
/** Linux's `SO_ERROR`: a socket's pending error (an async connect's result, an ICMP error). */
export const SO_ERROR = 4;
/** Nothing listens there: a connected UDP socket learns it from an ICMP port unreachable. */
export const ECONNREFUSED = 111;
/** The connection timed out (keep-alive probes went unanswered). */
export const ETIMEDOUT = 110;
/** The process has no descriptor left. */
export const EMFILE = 24;
/** The system has no descriptor left. */
export const ENFILE = 23;
