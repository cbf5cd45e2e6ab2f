;; attention_edges: the per-sample arithmetic of the last-position attention edges in the table
;; form (src/host/attention-table-sums.ts, addEdgeAttentionTableSums) in WebAssembly SIMD, two
;; float64 lanes per v128 over the input directions j. The JS kernel there (jsEdgeSampleKernel) is
;; the reference; this module gives the same bits: every entry sees the same float64 operations
;; in the same order (f64x2.mul then f64x2.add, never fused: no relaxed-SIMD), zero ds terms are
;; skipped as there, and lanes and column blocks are independent.
;;
;; Exports:
;;   memory                                one private (non-shared) linear memory; the caller grows
;;                                         it once to its layout and keeps typed-array views over it.
;;   edge_sample(K, A, NJ, rp, Yt, U, Gam, ds, E)
;;     For every output direction k < K and column j < rp:
;;       e = 0 + Σ_{a < A, in order} Yt[a·K + k, j]·U[a, j] + Σ_{J < NJ, ds[k, J] ≠ 0, in order} ds[k, J]·Gam[J, j]
;;       E[k, j] += e·e
;;
;; Memory layout (every argument after the sizes is a byte offset into memory, 16-byte aligned):
;;   Yt  f64 [A·K × rp]  Ỹ^a = Y^a Ĉp per output direction, columns padded from r to rp with zeros
;;   U   f64 [A × rp]    this sample's U_a (padding zero)
;;   Gam f64 [NJ × rp]   this sample's Γ_(h,u) (padding zero)
;;   ds  f64 [K × NJ]    this sample's ds
;;   E   f64 [K × rp]    the partial being added into
;; Invariants: rp is a multiple of 8; the regions do not overlap. Padded columns of E hold values
;; the caller never reads.
;; Blocking: 8 columns in four v128 accumulators across all A + NJ terms of one k; E is loaded and
;; stored once per block.
(module
  (memory (export "memory") 1)

  (func (export "edge_sample")
    (param $K i32) (param $A i32) (param $NJ i32) (param $rp i32)
    (param $Yt i32) (param $U i32) (param $Gam i32) (param $ds i32) (param $E i32)
    (local $rowb i32) (local $ystep i32) (local $k i32) (local $jb i32) (local $a i32) (local $J i32)
    (local $p i32) (local $q i32) (local $d i32) (local $c f64)
    (local $v v128) (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local.set $rowb (i32.shl (local.get $rp) (i32.const 3)))
    (local.set $ystep (i32.mul (local.get $K) (local.get $rowb)))
    (block $k_done
      (loop $k_loop
        (br_if $k_done (i32.ge_u (local.get $k) (local.get $K)))
        (local.set $jb (i32.const 0))
        (block $cols_done
          (loop $cols
            (br_if $cols_done (i32.ge_u (local.get $jb) (local.get $rowb)))
            (local.set $a0 (f64x2.splat (f64.const 0)))
            (local.set $a1 (f64x2.splat (f64.const 0)))
            (local.set $a2 (f64x2.splat (f64.const 0)))
            (local.set $a3 (f64x2.splat (f64.const 0)))
            ;; Σ_a Yt[a·K + k, j]·U[a, j].
            (local.set $p (i32.add (i32.add (local.get $Yt) (i32.mul (local.get $k) (local.get $rowb))) (local.get $jb)))
            (local.set $q (i32.add (local.get $U) (local.get $jb)))
            (local.set $a (i32.const 0))
            (block $a_done
              (loop $a_loop
                (br_if $a_done (i32.ge_u (local.get $a) (local.get $A)))
                (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (v128.load (local.get $p)) (v128.load (local.get $q)))))
                (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (v128.load offset=16 (local.get $p)) (v128.load offset=16 (local.get $q)))))
                (local.set $a2 (f64x2.add (local.get $a2) (f64x2.mul (v128.load offset=32 (local.get $p)) (v128.load offset=32 (local.get $q)))))
                (local.set $a3 (f64x2.add (local.get $a3) (f64x2.mul (v128.load offset=48 (local.get $p)) (v128.load offset=48 (local.get $q)))))
                (local.set $p (i32.add (local.get $p) (local.get $ystep)))
                (local.set $q (i32.add (local.get $q) (local.get $rowb)))
                (local.set $a (i32.add (local.get $a) (i32.const 1)))
                (br $a_loop)))
            ;; Σ_J ds[k, J]·Gam[J, j] over the non-zero ds.
            (local.set $d (i32.add (local.get $ds) (i32.shl (i32.mul (local.get $k) (local.get $NJ)) (i32.const 3))))
            (local.set $q (i32.add (local.get $Gam) (local.get $jb)))
            (local.set $J (i32.const 0))
            (block $j_done
              (loop $j_loop
                (br_if $j_done (i32.ge_u (local.get $J) (local.get $NJ)))
                (local.set $c (f64.load (local.get $d)))
                (if (f64.ne (local.get $c) (f64.const 0))
                  (then
                    (local.set $v (f64x2.splat (local.get $c)))
                    (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (local.get $v) (v128.load (local.get $q)))))
                    (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (local.get $v) (v128.load offset=16 (local.get $q)))))
                    (local.set $a2 (f64x2.add (local.get $a2) (f64x2.mul (local.get $v) (v128.load offset=32 (local.get $q)))))
                    (local.set $a3 (f64x2.add (local.get $a3) (f64x2.mul (local.get $v) (v128.load offset=48 (local.get $q)))))))
                (local.set $d (i32.add (local.get $d) (i32.const 8)))
                (local.set $q (i32.add (local.get $q) (local.get $rowb)))
                (local.set $J (i32.add (local.get $J) (i32.const 1)))
                (br $j_loop)))
            ;; E[k, j] += e·e.
            (local.set $p (i32.add (i32.add (local.get $E) (i32.mul (local.get $k) (local.get $rowb))) (local.get $jb)))
            (v128.store (local.get $p) (f64x2.add (v128.load (local.get $p)) (f64x2.mul (local.get $a0) (local.get $a0))))
            (v128.store offset=16 (local.get $p) (f64x2.add (v128.load offset=16 (local.get $p)) (f64x2.mul (local.get $a1) (local.get $a1))))
            (v128.store offset=32 (local.get $p) (f64x2.add (v128.load offset=32 (local.get $p)) (f64x2.mul (local.get $a2) (local.get $a2))))
            (v128.store offset=48 (local.get $p) (f64x2.add (v128.load offset=48 (local.get $p)) (f64x2.mul (local.get $a3) (local.get $a3))))
            (local.set $jb (i32.add (local.get $jb) (i32.const 64)))
            (br $cols)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $k_loop))))
)
