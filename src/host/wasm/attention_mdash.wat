;; attention_mdash: the per-sample ds and β = Σ_k ds dsᵀ of the last-position attention M′ sums in
;; the table form (src/host/attention-table-sums.ts: TableSample.run and sampleBeta of
;; attention-sums.ts are the JS references) in WebAssembly. The same bits as the JS: every entry
;; sees the same float64 operations in the same order (mul then add/sub, never fused: no
;; relaxed-SIMD), the zero factors are skipped where the JS skips them, and entries are independent,
;; so how they are grouped into lanes does not change them.
;;
;; Exports:
;;   memory                                one private (non-shared) linear memory; the caller grows
;;                                         it once to its layout and keeps typed-array views over it.
;;   sample_ds(K, H, P, rho, prob, dzv, ds)
;;     For k < K, h < H (NJ = H·P):
;;       b = 0 + Σ_{u < P, p_u ≠ 0, in order} p_u·dzv[ρ_u, k, h]         (p_u = prob[h·P + u])
;;       ds[k·NJ + h·P + u] = p_u = 0 ? +0 : p_u·(dzv[ρ_u, k, h] − b)
;;   beta_sym(K, NJ, ds, beta)
;;     For j1 ≤ j2 < NJ: beta[j1, j2] = 0 + Σ_{k < K, ds[k, j1] ≠ 0, in order} ds[k, j1]·ds[k, j2],
;;     and beta[j2, j1] = beta[j1, j2] (the mirrored upper triangle, as the JS writes it).
;;
;; Memory layout (every argument after the sizes is a byte offset into memory):
;;   rho  i32 [P]         the sample's row ids
;;   prob f64 [H × P]     the softmax rows of query t* (zero where masked)
;;   dzv  f64 [R × K × H] dz_k^h·v^h(row) per row (AttentionRowTables.dzv)
;;   ds   f64 [K × NJ]    out
;;   beta f64 [NJ × NJ]   out
;; Invariants: the regions do not overlap; offsets of f64 regions are multiples of 8.
;; Blocking of beta_sym: two columns j2 per v128 accumulator, summed over all k before one store;
;; an odd last column in a scalar accumulator.
(module
  (memory (export "memory") 1)

  (func (export "sample_ds")
    (param $K i32) (param $H i32) (param $P i32)
    (param $rho i32) (param $prob i32) (param $dzv i32) (param $ds i32)
    (local $k i32) (local $h i32) (local $u i32) (local $KH i32)
    (local $pp i32) (local $out i32) (local $p f64) (local $b f64) (local $z i32)
    (local.set $KH (i32.mul (local.get $K) (local.get $H)))
    (local.set $out (local.get $ds))
    (block $k_done
      (loop $k_loop
        (br_if $k_done (i32.ge_u (local.get $k) (local.get $K)))
        (local.set $h (i32.const 0))
        (block $h_done
          (loop $h_loop
            (br_if $h_done (i32.ge_u (local.get $h) (local.get $H)))
            ;; prob row of head h, and dzv[ρ_u, k, h] at z = dzv + ((ρ_u·K + k)·H + h)·8.
            (local.set $pp (i32.add (local.get $prob) (i32.shl (i32.mul (local.get $h) (local.get $P)) (i32.const 3))))
            (local.set $b (f64.const 0))
            (local.set $u (i32.const 0))
            (block $b_done
              (loop $b_loop
                (br_if $b_done (i32.ge_u (local.get $u) (local.get $P)))
                (local.set $p (f64.load (i32.add (local.get $pp) (i32.shl (local.get $u) (i32.const 3)))))
                (if (f64.ne (local.get $p) (f64.const 0))
                  (then
                    (local.set $z
                      (i32.add (local.get $dzv)
                        (i32.shl
                          (i32.add
                            (i32.mul (i32.load (i32.add (local.get $rho) (i32.shl (local.get $u) (i32.const 2)))) (local.get $KH))
                            (i32.add (i32.mul (local.get $k) (local.get $H)) (local.get $h)))
                          (i32.const 3))))
                    (local.set $b (f64.add (local.get $b) (f64.mul (local.get $p) (f64.load (local.get $z)))))))
                (local.set $u (i32.add (local.get $u) (i32.const 1)))
                (br $b_loop)))
            (local.set $u (i32.const 0))
            (block $d_done
              (loop $d_loop
                (br_if $d_done (i32.ge_u (local.get $u) (local.get $P)))
                (local.set $p (f64.load (i32.add (local.get $pp) (i32.shl (local.get $u) (i32.const 3)))))
                (if (f64.eq (local.get $p) (f64.const 0))
                  (then (f64.store (local.get $out) (f64.const 0)))
                  (else
                    (local.set $z
                      (i32.add (local.get $dzv)
                        (i32.shl
                          (i32.add
                            (i32.mul (i32.load (i32.add (local.get $rho) (i32.shl (local.get $u) (i32.const 2)))) (local.get $KH))
                            (i32.add (i32.mul (local.get $k) (local.get $H)) (local.get $h)))
                          (i32.const 3))))
                    (f64.store (local.get $out) (f64.mul (local.get $p) (f64.sub (f64.load (local.get $z)) (local.get $b))))))
                (local.set $out (i32.add (local.get $out) (i32.const 8)))
                (local.set $u (i32.add (local.get $u) (i32.const 1)))
                (br $d_loop)))
            (local.set $h (i32.add (local.get $h) (i32.const 1)))
            (br $h_loop)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $k_loop))))

  (func (export "beta_sym")
    (param $K i32) (param $NJ i32) (param $ds i32) (param $beta i32)
    (local $rowb i32) (local $j1 i32) (local $j2 i32) (local $k i32)
    (local $d1 i32) (local $d2 i32) (local $v f64) (local $s f64) (local $acc v128)
    (local.set $rowb (i32.shl (local.get $NJ) (i32.const 3)))
    (block $j1_done
      (loop $j1_loop
        (br_if $j1_done (i32.ge_u (local.get $j1) (local.get $NJ)))
        (local.set $j2 (local.get $j1))
        ;; Pairs of columns j2, j2 + 1.
        (block $pair_done
          (loop $pair_loop
            (br_if $pair_done (i32.gt_u (i32.add (local.get $j2) (i32.const 2)) (local.get $NJ)))
            (local.set $acc (f64x2.splat (f64.const 0)))
            (local.set $d1 (i32.add (local.get $ds) (i32.shl (local.get $j1) (i32.const 3))))
            (local.set $d2 (i32.add (local.get $ds) (i32.shl (local.get $j2) (i32.const 3))))
            (local.set $k (i32.const 0))
            (block $k_done
              (loop $k_loop
                (br_if $k_done (i32.ge_u (local.get $k) (local.get $K)))
                (local.set $v (f64.load (local.get $d1)))
                (if (f64.ne (local.get $v) (f64.const 0))
                  (then
                    (local.set $acc (f64x2.add (local.get $acc) (f64x2.mul (f64x2.splat (local.get $v)) (v128.load (local.get $d2)))))))
                (local.set $d1 (i32.add (local.get $d1) (local.get $rowb)))
                (local.set $d2 (i32.add (local.get $d2) (local.get $rowb)))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $k_loop)))
            (v128.store
              (i32.add (local.get $beta) (i32.shl (i32.add (i32.mul (local.get $j1) (local.get $NJ)) (local.get $j2)) (i32.const 3)))
              (local.get $acc))
            (f64.store
              (i32.add (local.get $beta) (i32.shl (i32.add (i32.mul (local.get $j2) (local.get $NJ)) (local.get $j1)) (i32.const 3)))
              (f64x2.extract_lane 0 (local.get $acc)))
            (f64.store
              (i32.add (local.get $beta) (i32.shl (i32.add (i32.mul (i32.add (local.get $j2) (i32.const 1)) (local.get $NJ)) (local.get $j1)) (i32.const 3)))
              (f64x2.extract_lane 1 (local.get $acc)))
            (local.set $j2 (i32.add (local.get $j2) (i32.const 2)))
            (br $pair_loop)))
        ;; The odd last column.
        (if (i32.lt_u (local.get $j2) (local.get $NJ))
          (then
            (local.set $s (f64.const 0))
            (local.set $d1 (i32.add (local.get $ds) (i32.shl (local.get $j1) (i32.const 3))))
            (local.set $d2 (i32.add (local.get $ds) (i32.shl (local.get $j2) (i32.const 3))))
            (local.set $k (i32.const 0))
            (block $t_done
              (loop $t_loop
                (br_if $t_done (i32.ge_u (local.get $k) (local.get $K)))
                (local.set $v (f64.load (local.get $d1)))
                (if (f64.ne (local.get $v) (f64.const 0))
                  (then (local.set $s (f64.add (local.get $s) (f64.mul (local.get $v) (f64.load (local.get $d2)))))))
                (local.set $d1 (i32.add (local.get $d1) (local.get $rowb)))
                (local.set $d2 (i32.add (local.get $d2) (local.get $rowb)))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $t_loop)))
            (f64.store
              (i32.add (local.get $beta) (i32.shl (i32.add (i32.mul (local.get $j1) (local.get $NJ)) (local.get $j2)) (i32.const 3)))
              (local.get $s))
            (f64.store
              (i32.add (local.get $beta) (i32.shl (i32.add (i32.mul (local.get $j2) (local.get $NJ)) (local.get $j1)) (i32.const 3)))
              (local.get $s))))
        (local.set $j1 (i32.add (local.get $j1) (i32.const 1)))
        (br $j1_loop))))
)
