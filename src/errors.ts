// Errors that name the problem and the fix. Every error the library throws on purpose is an
// IbgpuError, so callers (and the CLI) can tell bad input from bugs and print `hint` as advice.

export type IbgpuErrorCode =
  | 'NO_ADAPTER'
  | 'DEVICE_LOST'
  | 'DEVICE_ERROR'
  | 'LIMIT_EXCEEDED'
  | 'SHAPE'
  | 'NON_FINITE'
  | 'BAD_FILE'
  | 'MISSING_TENSOR'
  | 'BAD_CONFIG'
  | 'BAD_OUTPUT'
  | 'DISPOSED'
  | 'HOST_THREAD';

export class IbgpuError extends Error {
  readonly code: IbgpuErrorCode;
  readonly hint: string | undefined;

  constructor(code: IbgpuErrorCode, message: string, hint?: string) {
    super(hint ? `${message}\n  fix: ${hint}` : message);
    this.name = 'IbgpuError';
    this.code = code;
    this.hint = hint;
  }
}

export function shapeError(message: string, hint?: string): IbgpuError {
  return new IbgpuError('SHAPE', message, hint);
}

/** Throws a SHAPE error unless `cond` holds. */
export function checkShape(cond: boolean, message: string, hint?: string): asserts cond {
  if (!cond) throw shapeError(message, hint);
}

/**
 * Rejects NaN and ±Infinity in an input array, naming the array and the first offending index.
 * Kernels never see non-finite input: one NaN would silently poison a whole Gram or eigensolve.
 */
export function checkFinite(name: string, data: ArrayLike<number>, shape?: readonly number[]): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (!Number.isFinite(v)) {
      const where = shape ? ` at index [${unravel(i, shape).join(', ')}]` : ` at flat index ${i}`;
      throw new IbgpuError(
        'NON_FINITE',
        `${name} contains ${v}${where}`,
        'remove or impute non-finite values before calling ibgpu (NaN/Inf would poison every sum)',
      );
    }
  }
}

function unravel(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  let r = flat;
  for (let d = shape.length - 1; d >= 0; d--) {
    const s = shape[d]!;
    idx[d] = r % s;
    r = Math.floor(r / s);
  }
  return idx;
}
