import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './gateway';

const run = promisify(execFile);

/** A certificate and its key, as PEM text and as files. */
export interface TestCert {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}

/** Certificates made for one test file, in a fresh temp directory. */
export interface TestPki {
  dir: string;
  /** The CA that signed `server` and `client`. */
  ca: TestCert;
  /** A CA that signed nothing here: trusting it alone cannot verify `server`. */
  otherCa: TestCert;
  /** A server certificate for `127.0.0.1`, `127.0.0.2` and `localhost`, signed by `ca`. */
  server: TestCert;
  /** A client certificate (`clientAuth`), signed by `ca`. */
  client: TestCert;
}

const EXTENSIONS = `
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:127.0.0.2, DNS:localhost
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
`;

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd: dir });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') {
      throw new Error('openssl is not installed (.ci/run installs it: apt-get install openssl)');
    }
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
  }
}

function files(dir: string, name: string): TestCert {
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}.key`);
  return {
    certFile,
    keyFile,
    cert: readFileSync(certFile, 'utf8'),
    key: readFileSync(keyFile, 'utf8'),
  };
}

/** A P-256 key in `<name>.key` (PKCS#8 PEM). */
function newKey(dir: string, name: string): Promise<void> {
  return openssl(dir, [
    'genpkey',
    '-algorithm',
    'EC',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-out',
    `${name}.key`,
  ]);
}

async function selfSignedCa(dir: string, name: string, cn: string): Promise<void> {
  await newKey(dir, name);
  await openssl(dir, [
    'req',
    '-new',
    '-x509',
    '-key',
    `${name}.key`,
    '-subj',
    `/CN=${cn}`,
    '-days',
    '2',
    '-config',
    'ext.cnf',
    '-extensions',
    'ca',
    '-out',
    `${name}.pem`,
  ]);
}

async function signed(dir: string, name: string, cn: string, extensions: string): Promise<void> {
  await newKey(dir, name);
  await openssl(dir, [
    'req',
    '-new',
    '-key',
    `${name}.key`,
    '-subj',
    `/CN=${cn}`,
    '-config',
    'ext.cnf',
    '-out',
    `${name}.csr`,
  ]);
  await openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-set_serial',
    `0x${randomBytes(8).toString('hex')}`,
    '-days',
    '2',
    '-extfile',
    'ext.cnf',
    '-extensions',
    extensions,
    '-out',
    `${name}.pem`,
  ]);
}

/**
 * Makes a CA, a server certificate for loopback, a client certificate and an unrelated second CA
 * with the real `openssl` CLI, in a temp directory. Valid from now for two days.
 */
export async function makeTestPki(): Promise<TestPki> {
  const dir = tempDir();
  // `req` needs a config with a [req] section; the extensions are chosen per certificate.
  writeFileSync(
    path.join(dir, 'ext.cnf'),
    `[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n${EXTENSIONS}`,
  );
  await Promise.all([
    selfSignedCa(dir, 'ca', 'cancel-gateway test CA'),
    selfSignedCa(dir, 'other-ca', 'unrelated test CA'),
  ]);
  await Promise.all([
    signed(dir, 'server', 'localhost', 'server'),
    signed(dir, 'client', 'cancel-gateway test client', 'client'),
  ]);
  return {
    dir,
    ca: files(dir, 'ca'),
    otherCa: files(dir, 'other-ca'),
    server: files(dir, 'server'),
    client: files(dir, 'client'),
  };
}
