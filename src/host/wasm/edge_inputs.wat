;; edge_inputs: the sums of the host edge pass's block preparation (src/host/edge-inputs.ts) in
;; WebAssembly SIMD, two float64 lanes per v128 over the output columns. The JS loops of
;; edge-inputs.ts (sectionRows) and mlp-forward.ts (affineRow) are the reference; this module gives
;; the same bits: every output column j sees the same float64 operations in the same order,
;;   out[j] = init[j] + v_0·M[i_0, j] + v_1·M[i_1, j] + …   (left to right, mul then add, no FMA)
;; and lanes and column blocks are independent.
;;
;; Exports:
;;   memory                            one private (non-shared) linear memory; the caller grows it
;;                                     once to its layout and keeps typed-array views over it.
;;   gather_nonzeros(x, d, M, rowb, idx, val) -> m
;;       Lists the non-zero x[i], i < d, in increasing i: idx[t] = M + i·rowb (the byte offset of
;;       row i of M), val[t] = x[i]; returns their number m. (A skipped zero would have added an
;;       exact ±0, which is why the JS loops skip them too: the same values either way.)
;;   gemv_rows(m, rowb, init, idx, val, out)
;;       out[j] = init[j] + Σ_{t < m, in order} val[t]·M_t[j] for every column j < rowb/8, where
;;       M_t is the row at byte offset idx[t]. With init = zeros and idx listing every row of a
;;       matrix, this is the dense product xᵀM (p' = Qᵀ f̂); with the non-zeros of x it is the
;;       sparse one (f̂ = C[d, :] + Σ x_i C[i, :]; a layer's pre-activation b + Σ x_i W[i, :]).
;;
;; Memory layout: chosen by the caller (src/host/edge-inputs-wasm.ts); every argument is a byte
;; offset, 16-byte aligned. Invariants: rowb is a multiple of 64 (rows padded to a multiple of 8
;; columns, padding zero in every matrix and init); idx holds i32, val and x f64; out does not
;; overlap init, val or any M row (it may be any other region).
;; Blocking: 8 columns in four v128 accumulators across all m terms; each term is one
;; load-and-splat of val[t] and four loads of its M row, so out is stored once per block.
(module
  (memory (export "memory") 1)

  (func (export "gather_nonzeros")
    (param $x i32) (param $d i32) (param $M i32) (param $rowb i32) (param $idx i32) (param $val i32)
    (result i32)
    (local $i i32) (local $m i32) (local $v f64)
    (block $done
      (loop $scan
        (br_if $done (i32.ge_u (local.get $i) (local.get $d)))
        (local.set $v (f64.load (i32.add (local.get $x) (i32.shl (local.get $i) (i32.const 3)))))
        (if (f64.ne (local.get $v) (f64.const 0))
          (then
            (i32.store (i32.add (local.get $idx) (i32.shl (local.get $m) (i32.const 2)))
              (i32.add (local.get $M) (i32.mul (local.get $i) (local.get $rowb))))
            (f64.store (i32.add (local.get $val) (i32.shl (local.get $m) (i32.const 3))) (local.get $v))
            (local.set $m (i32.add (local.get $m) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (local.get $m))

  (func (export "gemv_rows")
    (param $m i32) (param $rowb i32) (param $init i32) (param $idx i32) (param $val i32) (param $out i32)
    (local $jb i32) (local $p i32) (local $q i32) (local $end i32) (local $o i32)
    (local $v v128) (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local.set $end (i32.add (local.get $idx) (i32.shl (local.get $m) (i32.const 2))))
    (block $cols_done
      (loop $cols
        (br_if $cols_done (i32.ge_u (local.get $jb) (local.get $rowb)))
        (local.set $o (i32.add (local.get $init) (local.get $jb)))
        (local.set $a0 (v128.load (local.get $o)))
        (local.set $a1 (v128.load offset=16 (local.get $o)))
        (local.set $a2 (v128.load offset=32 (local.get $o)))
        (local.set $a3 (v128.load offset=48 (local.get $o)))
        (local.set $p (local.get $idx))
        (local.set $q (local.get $val))
        (block $t_done
          (loop $terms
            (br_if $t_done (i32.ge_u (local.get $p) (local.get $end)))
            (local.set $o (i32.add (i32.load (local.get $p)) (local.get $jb)))
            (local.set $v (v128.load64_splat (local.get $q)))
            (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (local.get $v) (v128.load (local.get $o)))))
            (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (local.get $v) (v128.load offset=16 (local.get $o)))))
            (local.set $a2 (f64x2.add (local.get $a2) (f64x2.mul (local.get $v) (v128.load offset=32 (local.get $o)))))
            (local.set $a3 (f64x2.add (local.get $a3) (f64x2.mul (local.get $v) (v128.load offset=48 (local.get $o)))))
            (local.set $p (i32.add (local.get $p) (i32.const 4)))
            (local.set $q (i32.add (local.get $q) (i32.const 8)))
            (br $terms)))
        (local.set $o (i32.add (local.get $out) (local.get $jb)))
        (v128.store (local.get $o) (local.get $a0))
        (v128.store offset=16 (local.get $o) (local.get $a1))
        (v128.store offset=32 (local.get $o) (local.get $a2))
        (v128.store offset=48 (local.get $o) (local.get $a3))
        (local.set $jb (i32.add (local.get $jb) (i32.const 64)))
        (br $cols))))
)
