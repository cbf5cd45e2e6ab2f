// Public API of ibgpu.
//
// The declarations name WebGPU's types (GPUBuffer, GPUDevice, ...): this reference makes a
// consumer's compiler load them from the @webgpu/types dependency, with no setup of its own.
/// <reference types="@webgpu/types" preserve="true" />

export { IbgpuError, type IbgpuErrorCode } from './errors.js';
export { Engine, type EngineOptions, type EngineCounters, type ProfileRecord } from './runtime/engine.js';
export type { BufferScope } from './runtime/buffer-scope.js';
export { acquireGpu, adapterName, BACKENDS, type Backend, type AdapterDescription } from './gpu/acquire.js';
export { defineKernel, type KernelSpec, type BindingSpec } from './runtime/kernel-spec.js';
export { packParams, type ParamValues } from './runtime/params.js';
export { KERNEL_FAMILIES, kernelFamilyOf, type KernelFamily } from './kernels/registry.js';
export type { SelfCheckResult } from './kernels/self-check.js';
export { setTuningStore, tuningStore, type TuningStore } from './runtime/tuning-store.js';
export { useDiskTuningCache, diskTuningStore, tuningCacheDir } from './runtime/tuning-store-node.js';

export { matmul, matmulHost, chooseMatmulVariant, type MatmulShape } from './kernels/matmul.js';
export { GramAccumulator, ColumnSumAccumulator, type GramMode } from './kernels/gram.js';
export * as eigenKernels from './kernels/eigh.js';
export * as signPatterns from './kernels/sign-patterns.js';

export { matmulF64 } from './cpu/matmul.js';
export { gramF64, columnSumsF64 } from './cpu/gram.js';
export { symEig, symEigValues } from './cpu/eigh.js';
export { eigh, refineEig, chooseEighSolver, type EighOptions, type EighResult } from './host/eig-refine.js';

export { parseConfig, DEFAULT_CONFIG, type BuildConfig, type BasisFormula, type EdgeFormula, type ThresholdMode, type DataSpec } from './ib/config.js';
export { arraySource, type DataSource } from './ib/data.js';
export { parseArch, modelFromTensors, foldedWeight, type MlpModel, type MlpLayer, type MlpArch } from './model/mlp.js';
export { buildInteractionBasis, type IbResult, type BuildOptions, type Logger } from './ib/pipeline.js';
// The types a result is made of, so callers can name them.
export type { LayerBasis, NodeStats, GateStats, Threshold } from './ib/basis.js';
export type { StatsResult, Progress } from './ib/stats.js';
export {
  DEGENERACY_FORMAT,
  type DegeneracyReport,
  type SectionReport,
  type SyncReport,
  type SyncGroup,
  type NearPair,
  type GroundTruth,
  type RankRule,
} from './report/degeneracy.js';
export {
  MODULES_FORMAT,
  type ModulesReport,
  type ModuleInfo,
  type ModularityOptions,
  type EdgeNorm,
  type InteractionGraph,
  type GraphNode,
  type GraphLayer,
  type EdgeMatrix,
} from './report/modularity.js';
// Two builds side by side against the fidelity targets (`ibgpu compare`).
export {
  compareBuilds,
  formatComparison,
  FIDELITY_TARGETS,
  type BuildSide,
  type Comparison,
  type CompareTargets,
  type LayerComparison,
  type EdgeComparison,
} from './report/compare.js';
export { readBuildSide, readResultSide, readRibResultsSide, readRibReferenceSide } from './report/compare-files.js';
export { checkReplaceableDir, checkOwnedFiles, RESULT_FORMAT, VIEWER_EXPORT_FORMAT, TRAIN_FORMAT, type OutputGuardOptions } from './io/output-guard.js';
export { ResultDir, writeFileAtomic } from './io/atomic.js';
export { writeResults, basisTensors, edgeTensors, graphJson, type ResultMeta } from './ib/results.js';
export { buildFromConfigFile, type BuildFromFilesOptions, type BuildFromFilesResult } from './build/from-files.js';
// Transformers in memory: a model (TransformerLens / HF names), token ids, a config → an IbResult.
export { buildTransformerBasis, runTransformer, type TransformerRunOptions, type TransformerBuildRun } from './transformer/run.js';
export { parseTransformerConfig, type TransformerConfig } from './model/transformer/config.js';
export {
  loadTransformer,
  loadTransformerFrom,
  tensorsSource,
  safetensorsSource,
  type TransformerModel,
  type TensorSource,
} from './model/transformer/weights.js';
export { modularArithmetic, parseModularArithmetic, type ModularArithmeticSpec, type TokenDataset } from './data/modular-arithmetic.js';
export { loadTokenNpy, tokensFromTensor, type TokenNpyOptions } from './data/tokens.js';
export { compileTransformer } from './model/transformer/compile.js';
export { compileMlp, foldedInput } from './model/mlp-program.js';
export type { ModelProgram, SectionProgram, Op } from './model/program.js';
export { layerIdentities } from './ib/identities.js';
export { trainMlp, type TrainMlpOptions, type TrainMlpResult, type EpochRecord } from './train/train-mlp.js';
export { saveTrainedMlp, checkTrainOutput, type SavedFiles } from './train/save.js';
export { integrationPoints } from './ib/integration.js';

export { openSafetensors, parseSafetensors, writeSafetensors } from './io/safetensors.js';
export { openNpy, writeNpy } from './io/npy.js';
export type { Tensor, DType } from './io/tensor.js';
export { VERSION } from './version.js';
