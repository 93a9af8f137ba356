import { describe, expect, test } from 'vitest';
import { httpSettings } from '../src/index.js';

describe('HTTP settings', () => {
  test('off by default on loopback; flags override the environment', () => {
    expect(httpSettings({})).toEqual({ port: 0, host: '127.0.0.1' });
    expect(httpSettings({ HTTP_PORT: '9464', HTTP_HOST: '0.0.0.0' })).toEqual({
      port: 9464,
      host: '0.0.0.0',
    });
    expect(httpSettings({ HTTP_PORT: '9464' }, { port: '9500', host: '::' })).toEqual({
      port: 9500,
      host: '::',
    });
  });

  test('bad values are one clear UserError', () => {
    expect(() => httpSettings({ HTTP_PORT: 'x' })).toThrow(/HTTP_PORT="x" is not a whole number/);
    expect(() => httpSettings({ HTTP_PORT: '70000' })).toThrow(/HTTP_PORT="70000" is out of range/);
    expect(() => httpSettings({ HTTP_HOST: 'http://h/' })).toThrow(/HTTP_HOST=.* is not a host/);
  });
});
