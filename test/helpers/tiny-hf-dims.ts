// The dimensions of the tiny synthetic checkpoints that the HuggingFace conversion tests build
// (transformer-hf, transformer-tinystories): small enough for their float64 reference forwards,
// with two heads and two layers so that a head or layer indexing error shows.

export const TINY_HF_DIMS = { dModel: 8, heads: 2, dHead: 4, dMlp: 16, vocab: 11, layers: 2 } as const;
