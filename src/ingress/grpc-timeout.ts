// grpc-timeout (gRPC over HTTP/2): 1 to 8 ASCII digits and a unit, H M S m u n. Parsed into
// milliseconds; a malformed value is refused rather than read as "no deadline", as the spec's
// reference servers do.

const UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
const TIMEOUT = /^(\d{1,8})([HMSmun])$/;

/** Milliseconds of a grpc-timeout value; undefined when absent; null when malformed. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined | null {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') return null;
  const m = TIMEOUT.exec(value);
  if (m === null) return null;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}
