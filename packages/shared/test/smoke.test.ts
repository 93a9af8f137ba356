import { expect, test } from 'vitest';
import { PRODUCT } from '../src/index.js';

test('product name', () => {
  expect(PRODUCT).toBe('changeq');
});
