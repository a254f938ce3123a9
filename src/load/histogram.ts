/**
 * Latencies in an HdrHistogram (the `hdr-histogram-js` package): three
 * significant digits from 1 µs to an hour, in memory that does not grow with
 * the run (about 370 KiB: the library's counts, and as many of our own that
 * latencies are counted in until the histogram is read), and the
 * percentile-distribution text HdrHistogram's plotters read.
 *
 * @module
 */

import * as hdr from "hdr-histogram-js";

/**
 * Latencies in microseconds: the least, the mean, the greatest, and the
 * percentiles asked for, each keyed by its number's shortest form (`String`
 * of it: `99.90` is `"99.9"`, `1e1` is `"10"`).
 *
 * @example
 * ```ts
 * import type { LatencyReport } from "@x/echo/bench";
 *
 * const latency: LatencyReport = { min: 15, mean: 40, max: 900, percentiles: { "50": 36 } };
 * ```
 */
export interface LatencyReport {
  /** The least latency. */
  min: number;
  /** The mean latency. */
  mean: number;
  /** The greatest latency. */
  max: number;
  /**
   * The latency at each percentile asked for. Like every object, it lists
   * its integer-like keys (`"100"`) before the others (`"99.9"`), whatever
   * the order they were added in: sort them by their number to read them in
   * order (the bench's table and `--json` list them in ascending order).
   */
  percentiles: Record<string, number>;
}

/** The longest latency recorded as itself, in microseconds; longer ones are recorded as this. */
const HIGHEST_US = 3_600_000_000;

/**
 * HdrHistogram's layout for values from 1 with three significant digits:
 * each power of two from 2,048 on is one bucket of 1,024 places (values
 * below 2,048 have a place each).
 */
const HALF_BUCKET_BITS = 10;

/**
 * Where HdrHistogram counts `value` (an integer from 1 to
 * {@linkcode HIGHEST_US}): its `countsArrayIndex`, with integer operations
 * instead of its `log2` and `pow`.
 */
export function countsIndex(value: number): number {
  const bucket = Math.max(0, 31 - Math.clz32(value) - HALF_BUCKET_BITS);
  return (bucket << HALF_BUCKET_BITS) + (value >>> bucket);
}

/** The least value counted at `index`: {@linkcode countsIndex} undone. */
function valueAt(index: number): number {
  if (index < 2 << HALF_BUCKET_BITS) return index;
  const bucket = (index >>> HALF_BUCKET_BITS) - 1;
  return (index - (bucket << HALF_BUCKET_BITS)) * 2 ** bucket;
}

/** How many places the counts take, up to {@linkcode HIGHEST_US}'s. */
const COUNTS_LENGTH = countsIndex(HIGHEST_US) + 1;

/**
 * A {@linkcode LatencyHistogram}'s latencies as plain data, for
 * `postMessage`: HdrHistogram's compressed encoding (base64) and the counts
 * behind the terminal chart.
 *
 * @example
 * ```ts
 * import { LatencyHistogram, type LatencySnapshot } from "@x/echo/bench";
 *
 * const snapshot: LatencySnapshot = new LatencyHistogram().snapshot();
 * console.log(typeof snapshot.hdr); // "string"
 * ```
 */
export interface LatencySnapshot {
  /** The latencies in HdrHistogram's compressed encoding, as base64. */
  readonly hdr: string;
  /** How many latencies fell in each power of two of microseconds. */
  readonly powers: readonly number[];
}

/**
 * Latencies, recorded in microseconds with three significant digits, from
 * 1 µs to an hour (longer ones count as an hour).
 *
 * @example Record two latencies and read a percentile
 * ```ts
 * import { LatencyHistogram } from "@x/echo/bench";
 *
 * const latencies = new LatencyHistogram();
 * latencies.recordMs(0.020);
 * latencies.recordMs(0.030);
 * console.log(latencies.atPercentile(50)); // 20
 * ```
 */
export class LatencyHistogram {
  readonly #recorded = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: 3,
    bitBucketSize: 64,
    autoResize: false,
    useWebAssembly: false,
  });

  /** Counts by power of two of microseconds, for {@linkcode LatencyHistogram.chart}. */
  readonly #powers = new Float64Array(33);

  /**
   * Latencies recorded since the histogram was last read, counted where
   * HdrHistogram counts them ({@linkcode countsIndex}); they join it when it
   * is read. Recording through the library costs a `log2` and two `pow`
   * calls per latency: about 1% of the bench's CPU over UDP.
   */
  readonly #pending = new Float64Array(COUNTS_LENGTH);
  /** The least and greatest latency pending (`Infinity` and 0 when none is). */
  #pendingMin = Infinity;
  #pendingMax = 0;

  /** The histogram with every latency recorded so far. */
  get #histogram(): hdr.Histogram {
    if (this.#pendingMax > 0) this.#flush();
    return this.#recorded;
  }

  /**
   * Moves the pending counts into the histogram, each at the least latency
   * its place stands for, except the least and the greatest latency, which
   * go in as they were (the histogram reports them exactly).
   */
  #flush(): void {
    const pending = this.#pending;
    const min = this.#pendingMin;
    const max = this.#pendingMax;
    const first = countsIndex(min);
    const last = countsIndex(max);
    for (let i = first; i <= last; i++) {
      let count = pending[i];
      if (count === 0) continue;
      pending[i] = 0;
      if (i === first) {
        // The least latency, and the others counted with it (the greatest too, when one place
        // holds both).
        const rest = i === last && min !== max ? 1 : 0;
        this.#recorded.recordValueWithCount(min, count - rest);
        if (rest === 0) continue;
        count = rest;
      }
      this.#recorded.recordValueWithCount(i === last ? max : valueAt(i), count);
    }
    this.#pendingMin = Infinity;
    this.#pendingMax = 0;
  }

  /**
   * Records one latency given in milliseconds (as `performance.now()`
   * differences are).
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const latencies = new LatencyHistogram();
   * const sent = performance.now();
   * latencies.recordMs(performance.now() - sent);
   * ```
   */
  recordMs(ms: number): void {
    let us = Math.round(ms * 1000);
    us = us < 1 ? 1 : us > HIGHEST_US ? HIGHEST_US : us;
    this.#pending[countsIndex(us)]++;
    if (us < this.#pendingMin) this.#pendingMin = us;
    if (us > this.#pendingMax) this.#pendingMax = us;
    this.#powers[31 - Math.clz32(us)]++;
  }

  /**
   * Adds every latency `other` recorded to this histogram: the latencies of
   * several event loops (the bench's workers) become one distribution.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const a = new LatencyHistogram();
   * const b = new LatencyHistogram();
   * a.recordMs(0.010);
   * b.recordMs(0.030);
   * a.add(b);
   * console.log(a.count, a.maxUs); // 2 30
   * ```
   */
  add(other: LatencyHistogram): void {
    this.#histogram.add(other.#histogram);
    for (let i = 0; i < this.#powers.length; i++) this.#powers[i] += other.#powers[i];
  }

  /**
   * The latencies as plain data that `postMessage` can carry to another
   * worker, where {@linkcode LatencyHistogram.fromSnapshot} makes them a
   * histogram again.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const latencies = new LatencyHistogram();
   * latencies.recordMs(0.020);
   * const copy = LatencyHistogram.fromSnapshot(structuredClone(latencies.snapshot()));
   * console.log(copy.atPercentile(50)); // 20
   * ```
   */
  snapshot(): LatencySnapshot {
    return {
      hdr: hdr.encodeIntoCompressedBase64(this.#histogram),
      powers: Array.from(this.#powers),
    };
  }

  /**
   * A histogram holding the latencies of a {@linkcode LatencyHistogram.snapshot}.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const empty = LatencyHistogram.fromSnapshot(new LatencyHistogram().snapshot());
   * console.log(empty.count); // 0
   * ```
   *
   * @throws {TypeError} when `snapshot` is not one `snapshot()` made.
   */
  static fromSnapshot(snapshot: LatencySnapshot): LatencyHistogram {
    const latencies = new LatencyHistogram();
    const { powers } = snapshot;
    if (!Array.isArray(powers) || powers.length !== latencies.#powers.length) {
      throw new TypeError(
        "Cannot read the latency snapshot: it was not made by LatencyHistogram.snapshot()",
      );
    }
    latencies.#histogram.add(hdr.decodeFromCompressedBase64(snapshot.hdr, 64, false));
    latencies.#powers.set(powers);
    return latencies;
  }

  /**
   * How many latencies were recorded.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * console.log(new LatencyHistogram().count); // 0
   * ```
   */
  get count(): number {
    return this.#histogram.totalCount;
  }

  /**
   * The least latency recorded, in microseconds (0 when none was).
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const latencies = new LatencyHistogram();
   * latencies.recordMs(1.5);
   * console.log(latencies.minUs); // 1500
   * ```
   */
  get minUs(): number {
    return this.count === 0 ? 0 : this.#histogram.minNonZeroValue;
  }

  /**
   * The greatest latency recorded, in microseconds (0 when none was), to
   * three significant digits.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const latencies = new LatencyHistogram();
   * latencies.recordMs(2);
   * console.log(latencies.maxUs); // 2000 (or within 0.1% of it)
   * ```
   */
  get maxUs(): number {
    return this.count === 0 ? 0 : this.#histogram.maxValue;
  }

  /**
   * The mean latency, in microseconds (0 when none was recorded).
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const latencies = new LatencyHistogram();
   * latencies.recordMs(0.010);
   * latencies.recordMs(0.030);
   * console.log(latencies.meanUs); // 20
   * ```
   */
  get meanUs(): number {
    return this.count === 0 ? 0 : this.#histogram.mean;
  }

  /**
   * The latency at `percentile` (0 to 100), in microseconds; 0 when nothing
   * was recorded.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const latencies = new LatencyHistogram();
   * for (let ms = 1; ms <= 100; ms++) latencies.recordMs(ms);
   * console.log(latencies.atPercentile(99)); // 99000 (to three significant digits)
   * ```
   */
  atPercentile(percentile: number): number {
    return this.count === 0 ? 0 : this.#histogram.getValueAtPercentile(percentile);
  }

  /**
   * HdrHistogram's percentile-distribution text (the `.hgrm` format its
   * plotters read), in milliseconds, five ticks per half-distance.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const latencies = new LatencyHistogram();
   * latencies.recordMs(0.5);
   * console.log(latencies.percentileDistribution().includes("Percentile")); // true
   * ```
   */
  percentileDistribution(): string {
    return this.#histogram.outputPercentileDistribution(5, 1000);
  }

  /**
   * One bar per power of two of microseconds from the least to the most
   * latency recorded (1-2 µs, 2-4 µs, ...), `width` characters for the
   * fullest: how many latencies fell in each. Empty when nothing was
   * recorded.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const latencies = new LatencyHistogram();
   * latencies.recordMs(0.020);
   * console.log(latencies.chart().join("\n"));
   * ```
   */
  chart(width = 40): string[] {
    const counts = this.#powers;
    let first = 0;
    while (first < counts.length && counts[first] === 0) first++;
    let last = counts.length - 1;
    while (last > first && counts[last] === 0) last--;
    if (first === counts.length) return [];
    let most = 0;
    for (let i = first; i <= last; i++) most = Math.max(most, counts[i]);
    const lines: string[] = [];
    for (let i = first; i <= last; i++) {
      const range = `${formatMicroseconds(2 ** i)} – ${formatMicroseconds(2 ** (i + 1))}`;
      const bar = "█".repeat(Math.round((counts[i] / most) * width));
      lines.push(`${range.padStart(19)} │${bar} ${counts[i]}`);
    }
    return lines;
  }
}

/**
 * `us` microseconds as a short text: µs below a millisecond, ms below a
 * second, s above.
 *
 * @example
 * ```ts
 * import { formatMicroseconds } from "@x/echo/bench";
 *
 * console.log(formatMicroseconds(1500)); // "1.50 ms"
 * ```
 */
export function formatMicroseconds(us: number): string {
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

/** The report's figures of `latencies`. */
export function latencyReport(
  latencies: LatencyHistogram,
  percentiles: readonly number[],
): LatencyReport {
  const byPercentile: Record<string, number> = {};
  // A percentile is its bucket's highest value, which may pass the greatest latency recorded.
  for (const p of [...percentiles].sort((a, b) => a - b)) {
    byPercentile[String(p)] = Math.min(latencies.atPercentile(p), latencies.maxUs);
  }
  return {
    min: latencies.minUs,
    mean: Math.round(latencies.meanUs),
    max: latencies.maxUs,
    percentiles: byPercentile,
  };
}
