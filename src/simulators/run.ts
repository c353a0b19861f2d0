import { DEFAULT_SIM_PORTS, startScriptedSimulator } from './scripted';

const USAGE = `usage: node dist/simulators/run.js <methodcall|dyn-rest|dyn-soap> [--port N] [--host H]
  (env SIM_PORT and SIM_HOST work too; the default host is 127.0.0.1)`;

/** One demo simulator as its own process: the Docker image's simulator entry point. */
async function main(argv: string[]): Promise<void> {
  const kind = argv[0];
  if (kind !== 'methodcall' && kind !== 'dyn-rest' && kind !== 'dyn-soap') {
    process.stderr.write(`${USAGE}\n`);
    process.exit(2);
  }
  const option = (name: string): string | undefined => {
    const at = argv.indexOf(name);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const port = Number(option('--port') ?? process.env.SIM_PORT ?? DEFAULT_SIM_PORTS[kind]);
  const host = option('--host') ?? process.env.SIM_HOST ?? '127.0.0.1';
  const sim = await startScriptedSimulator(kind, port, host);
  process.stdout.write(`${JSON.stringify({ simulator: kind, url: sim.url, msg: 'listening' })}\n`);
  const stop = (): void => {
    void sim.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main(process.argv.slice(2));
