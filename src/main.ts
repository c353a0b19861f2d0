import { loadConfigFile } from './config/load';
import { PROJECT_ROOT, startGateway, StartupError, type RunningGateway } from './gateway';
import { createLogger, type Logger } from './observability/logger';
import { checkProviderFiles } from './providers/registry';

const USAGE = `usage:
  node dist/main.js [--config FILE]      start the gateway (else $GATEWAY_CONFIG, else config/gateway.yaml)
  node dist/main.js check-config FILE    validate a config file and exit 0 (valid) or 1 (invalid)`;

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function err(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** `check-config FILE`: one summary line and exit 0, or one line per problem and exit 1. */
export async function checkConfig(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const result = loadConfigFile(file, env);
  const problems = result.ok
    ? await checkProviderFiles(result.value.config, PROJECT_ROOT, env)
    : result.problems;
  if (!result.ok || problems.length > 0) {
    for (const problem of problems) err(problem);
    return 1;
  }
  const { config, version } = result.value;
  const types = Object.values(config.providers).map((p) => p.type);
  out(
    `ok: ${file} is valid: ${types.length} provider(s) (${[...new Set(types)].join(', ')}), ` +
      `${Object.keys(config.routes).length} route(s), version ${version}`,
  );
  return 0;
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'check-config') {
    const file = argv[1];
    if (file === undefined || argv.length > 2) {
      err(USAGE);
      return 2;
    }
    return checkConfig(file);
  }
  let configFile = process.env.GATEWAY_CONFIG ?? 'config/gateway.yaml';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--config' && argv[i + 1] !== undefined) {
      configFile = argv[++i] ?? configFile;
    } else if (arg?.startsWith('--config=') === true) {
      configFile = arg.slice('--config='.length);
    } else if (arg === '--help' || arg === '-h') {
      out(USAGE);
      return 0;
    } else {
      err(`unknown argument: ${arg ?? ''}\n${USAGE}`);
      return 2;
    }
  }
  const env = process.env;
  const logger = createLogger(env.LOG_LEVEL === undefined ? {} : { level: env.LOG_LEVEL });
  try {
    handleSignals(await startGateway({ configFile, env, logger }), logger);
    return -1; // keeps running until a signal
  } catch (error) {
    if (error instanceof StartupError) {
      // An operator mistake: the lines say what to change, a stack trace would only hide them.
      if (error.reason === 'config') err(`cannot start: invalid configuration in ${configFile}`);
      for (const problem of error.problems) err(problem);
      if (error.problems.some((p) => p.includes('environment variable'))) {
        err('hint: to try the gateway without real upstream credentials, run `npm run demo`');
      }
      return 1;
    }
    throw error;
  }
}

/**
 * SIGTERM/SIGINT drain and exit 0; a second one exits 1 at once. SIGHUP reloads the config.
 * This is the only place that touches the process's signals and exit code.
 */
function handleSignals(gateway: RunningGateway, logger: Logger): void {
  let signals = 0;
  const stop = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    gateway.shutdown(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'the drain failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {
    void gateway.reload();
  });
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      if (code >= 0) process.exitCode = code;
    },
    (error: unknown) => {
      err(`fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      process.exit(1);
    },
  );
}
