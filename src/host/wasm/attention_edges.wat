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
;;   edge_prep(H, P, rp, rho, prob, u, at, bt, U, Gam)
;;     One sample's U and Γ from the row tables, as addEdgeAttentionTableSums writes them
;;     (t* = P − 1, every column j < rp; the padding columns of the tables are zero):
;;       U[0, j] = u[ρ_t*, j];  U[h + 1, j] = 0 + Σ_{q < P, p ≠ 0, in order} prob[h·P + q]·u[ρ_q, j]
;;       Gam[h·P + q, j] = at[ρ_q·H + h, j]·u[ρ_t*, j] + bt[ρ_t*·H + h, j]·u[ρ_q, j]
;;     rho i32 [P], prob f64 [H × P], u f64 [R × rp], at and bt f64 [R·H × rp].
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

  ;; dst[j] = 0 + Σ_{q < P, p_q ≠ 0, in order} p_q·u[ρ_q, j] for j < rp (pairs of lanes).
  (func $mix (param $P i32) (param $rp i32) (param $rho i32) (param $pr i32) (param $u i32) (param $dst i32)
    (local $q i32) (local $p f64) (local $v v128) (local $x i32) (local $y i32) (local $e i32)
    (memory.fill (local.get $dst) (i32.const 0) (i32.shl (local.get $rp) (i32.const 3)))
    (block $q_done
      (loop $q_loop
        (br_if $q_done (i32.ge_u (local.get $q) (local.get $P)))
        (local.set $p (f64.load (i32.add (local.get $pr) (i32.shl (local.get $q) (i32.const 3)))))
        (if (f64.ne (local.get $p) (f64.const 0))
          (then
            (local.set $v (f64x2.splat (local.get $p)))
            (local.set $x
              (i32.add (local.get $u)
                (i32.shl (i32.mul (i32.load (i32.add (local.get $rho) (i32.shl (local.get $q) (i32.const 2)))) (local.get $rp)) (i32.const 3))))
            (local.set $y (local.get $dst))
            (local.set $e (i32.add (local.get $dst) (i32.shl (local.get $rp) (i32.const 3))))
            (block $j_done
              (loop $j_loop
                (br_if $j_done (i32.ge_u (local.get $y) (local.get $e)))
                (v128.store (local.get $y) (f64x2.add (v128.load (local.get $y)) (f64x2.mul (local.get $v) (v128.load (local.get $x)))))
                (local.set $x (i32.add (local.get $x) (i32.const 16)))
                (local.set $y (i32.add (local.get $y) (i32.const 16)))
                (br $j_loop)))))
        (local.set $q (i32.add (local.get $q) (i32.const 1)))
        (br $q_loop))))

  (func (export "edge_prep")
    (param $H i32) (param $P i32) (param $rp i32) (param $rho i32) (param $prob i32)
    (param $u i32) (param $at i32) (param $bt i32) (param $U i32) (param $Gam i32)
    (local $rowb i32) (local $t i32) (local $ut i32) (local $h i32) (local $q i32) (local $rq i32)
    (local $a i32) (local $b i32) (local $x i32) (local $g i32) (local $e i32)
    (local.set $rowb (i32.shl (local.get $rp) (i32.const 3)))
    (local.set $t (i32.sub (local.get $P) (i32.const 1)))
    (local.set $ut
      (i32.add (local.get $u)
        (i32.mul (i32.load (i32.add (local.get $rho) (i32.shl (local.get $t) (i32.const 2)))) (local.get $rowb))))
    ;; U_0 = u_t*.
    (memory.copy (local.get $U) (local.get $ut) (local.get $rowb))
    (block $h_done
      (loop $h_loop
        (br_if $h_done (i32.ge_u (local.get $h) (local.get $H)))
        ;; U_{h+1} = Σ_q p_q^h u_q.
        (call $mix (local.get $P) (local.get $rp) (local.get $rho)
          (i32.add (local.get $prob) (i32.shl (i32.mul (local.get $h) (local.get $P)) (i32.const 3)))
          (local.get $u)
          (i32.add (local.get $U) (i32.mul (i32.add (local.get $h) (i32.const 1)) (local.get $rowb))))
        ;; Γ_(h,q) = at[ρ_q, h] ⊙ u_t* + bt[ρ_t*, h] ⊙ u_q.
        (local.set $b
          (i32.add (local.get $bt)
            (i32.mul
              (i32.add (i32.mul (i32.load (i32.add (local.get $rho) (i32.shl (local.get $t) (i32.const 2)))) (local.get $H)) (local.get $h))
              (local.get $rowb))))
        (local.set $q (i32.const 0))
        (block $q_done
          (loop $q_loop
            (br_if $q_done (i32.ge_u (local.get $q) (local.get $P)))
            (local.set $rq (i32.load (i32.add (local.get $rho) (i32.shl (local.get $q) (i32.const 2)))))
            (local.set $a (i32.add (local.get $at) (i32.mul (i32.add (i32.mul (local.get $rq) (local.get $H)) (local.get $h)) (local.get $rowb))))
            (local.set $x (i32.add (local.get $u) (i32.mul (local.get $rq) (local.get $rowb))))
            (local.set $g (i32.add (local.get $Gam) (i32.mul (i32.add (i32.mul (local.get $h) (local.get $P)) (local.get $q)) (local.get $rowb))))
            (local.set $e (i32.add (local.get $g) (local.get $rowb)))
            (local.set $rq (local.get $ut))
            (local.set $t (local.get $b))
            (block $j_done
              (loop $j_loop
                (br_if $j_done (i32.ge_u (local.get $g) (local.get $e)))
                (v128.store (local.get $g)
                  (f64x2.add
                    (f64x2.mul (v128.load (local.get $a)) (v128.load (local.get $rq)))
                    (f64x2.mul (v128.load (local.get $t)) (v128.load (local.get $x)))))
                (local.set $a (i32.add (local.get $a) (i32.const 16)))
                (local.set $rq (i32.add (local.get $rq) (i32.const 16)))
                (local.set $t (i32.add (local.get $t) (i32.const 16)))
                (local.set $x (i32.add (local.get $x) (i32.const 16)))
                (local.set $g (i32.add (local.get $g) (i32.const 16)))
                (br $j_loop)))
            (local.set $t (i32.sub (local.get $P) (i32.const 1)))
            (local.set $q (i32.add (local.get $q) (i32.const 1)))
            (br $q_loop)))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br $h_loop))))
)
