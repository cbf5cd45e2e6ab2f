// Assertions on the IbgpuErrors a call must throw, shared by the tests of bad input.

import { expect } from 'vitest';
import { IbgpuError, type IbgpuErrorCode } from '../../src/errors.js';

/** The IbgpuError that `fn` throws (sync or async); fails the test when it throws anything else or nothing. */
export async function caught(fn: () => unknown): Promise<IbgpuError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(IbgpuError);
    return e as IbgpuError;
  }
  throw new Error('expected an IbgpuError, nothing was thrown');
}

/** Expects `fn` to throw an IbgpuError of `code` whose message matches every one of `mentions`; returns it. */
export async function expectError(fn: () => unknown, code: IbgpuErrorCode, ...mentions: RegExp[]): Promise<IbgpuError> {
  const e = await caught(fn);
  expect(e.code, e.message).toBe(code);
  for (const m of mentions) expect(e.message).toMatch(m);
  return e;
}
