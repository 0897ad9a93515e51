// Entry point of the `sluice` CLI: finds the sub-command and turns failures into one clear line.
import { isSluiceError } from '../errors.ts';
import { type CliCommand, UsageError } from './command.ts';
import { commands } from './registry.ts';

function help(of: readonly CliCommand[] = commands, title = 'sluice <command> [options]'): string {
  const width = Math.max(...of.map((c) => c.usage.length));
  return [`usage: ${title}`, '', ...of.map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`), '', 'Every command takes --help.'].join('\n');
}

const isHelp = (a: string): boolean => a === '--help' || a === '-h';

async function commandHelp(cmd: CliCommand): Promise<string> {
  const more = cmd.help === undefined ? '' : `\n${await cmd.help()}`;
  return `usage: ${cmd.usage}\n\n${cmd.summary}\n${more}`;
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(`${help()}\n`);
    return argv.length === 0 ? 2 : 0;
  }
  const cmd = commands.find((c) => {
    const words = c.name.split(' ');
    return words.every((w, i) => argv[i] === w);
  });
  if (cmd === undefined) {
    // A group of commands ("sluice keys --help"): its commands.
    const group = commands.filter((c) => c.name.split(' ').length > 1 && c.name.split(' ')[0] === argv[0]);
    if (group.length > 0 && (argv.length === 1 || (argv.length === 2 && isHelp(argv[1]!)))) {
      process.stdout.write(`${help(group, `sluice ${argv[0]} <command> [options]`)}\n`);
      return argv.length === 1 ? 2 : 0;
    }
    process.stderr.write(`sluice: unknown command "${argv.join(' ')}"; run "sluice --help"\n`);
    return 2;
  }
  const rest = argv.slice(cmd.name.split(' ').length);
  try {
    if (rest.some(isHelp)) {
      process.stdout.write(`${await commandHelp(cmd)}\n`);
      return 0;
    }
    return await cmd.run(rest);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`sluice ${cmd.name}: ${(err as Error).message}\nusage: ${cmd.usage}\n`);
      return 2;
    }
    if (isSluiceError(err)) {
      process.stderr.write(`sluice ${cmd.name}: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`sluice ${cmd.name}: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`sluice: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
