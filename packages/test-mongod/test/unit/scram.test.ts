// SCRAM-SHA-256 server side against the example exchange of RFC 7677 (section 3), and the ways a
// conversation must fail.
import { describe, expect, it } from 'vitest';
import { passwordMatches, ScramServer, scramCredentials } from '../../src/auth/scram.js';

// RFC 7677 section 3: user "user", password "pencil".
const SALT = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
const CLIENT_FIRST = 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO';
const SERVER_NONCE = '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
const SERVER_FIRST =
  'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';
const CLIENT_FINAL =
  'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=';
const SERVER_FINAL = 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=';

const pencil = scramCredentials('pencil', SALT, 4096);
const server = (): ScramServer =>
  new ScramServer(
    (u) => (u === 'user' ? pencil : undefined),
    () => SERVER_NONCE,
  );

function code(f: () => unknown): number | undefined {
  try {
    f();
  } catch (err) {
    return (err as { code?: number }).code;
  }
  return undefined;
}

describe('ScramServer (RFC 7677)', () => {
  it('answers the RFC example exchange byte for byte', () => {
    const s = server();
    expect(s.first(CLIENT_FIRST)).toBe(SERVER_FIRST);
    expect(s.verified).toBe(false);
    expect(s.final(CLIENT_FINAL)).toBe(SERVER_FINAL);
    expect(s.verified).toBe(true);
    expect(s.user).toBe('user');
  });

  it('fails a wrong proof, an unknown user and a changed nonce with 18, bad messages with 17', () => {
    const wrong = server();
    wrong.first(CLIENT_FIRST);
    const badProof = CLIENT_FINAL.replace('p=dHzb', 'p=dHzc');
    expect(code(() => wrong.final(badProof))).toBe(18);
    expect(wrong.verified).toBe(false);
    expect(code(() => server().first('n,,n=nobody,r=abc'))).toBe(18);
    const s = server();
    s.first(CLIENT_FIRST);
    expect(code(() => s.final(CLIENT_FINAL.replace('r=rOpr', 'r=xOpr')))).toBe(17);
    expect(code(() => server().first('p=tls-unique,,n=user,r=abc'))).toBe(17);
    expect(code(() => server().first('n,a=admin,n=user,r=abc'))).toBe(17);
    expect(code(() => server().first('n,,r=abc'))).toBe(17);
    expect(code(() => server().final(CLIENT_FINAL))).toBe(17);
  });

  it('decodes escaped user names and SASLprep-normalises passwords', () => {
    const creds = scramCredentials('I\u00ADX', SALT, 4096); // soft hyphen is mapped to nothing
    expect(passwordMatches('IX', creds)).toBe(true);
    expect(passwordMatches('IY', creds)).toBe(false);
    const s = new ScramServer((u) => (u === 'a,b=c' ? pencil : undefined));
    expect(s.first('n,,n=a=2Cb=3Dc,r=abc')).toMatch(/^r=abc.+,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096$/);
  });
});
