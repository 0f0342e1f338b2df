/** Test helpers for random inputs. */

/** A finite double with uniformly random bits (any exponent, sign and mantissa), from a [0, 1) generator. */
export function randomDouble(rnd: () => number): number {
  const f = new Float64Array(1);
  const u = new Uint32Array(f.buffer);
  do {
    u[0] = Math.floor(rnd() * 2 ** 32);
    u[1] = Math.floor(rnd() * 2 ** 32);
  } while (!Number.isFinite(f[0]!));
  return f[0]!;
}
