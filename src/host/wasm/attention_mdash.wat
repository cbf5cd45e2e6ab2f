;; attention_mdash: the per-sample arithmetic of the last-position attention M′ sums in the table
;; form (src/host/attention-table-sums.ts) in WebAssembly: ds, β = Σ_k ds dsᵀ and the row-space
;; accumulators (tableSampleDs, sampleBeta of attention-sums.ts and tableSampleRows are the JS
;; references). The same bits as the JS: every entry
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
;;   sample_rows(H, P, dH, dV, m, rho, prob, beta, vkq, wv, tmp, Zq, Zk, Zqq, Zqk, Zkk)
;;     One sample's additions to the row-space accumulators Zq, Zk, Zqq, Zqk, Zkk, loop for loop
;;     as tableSampleRows (the formulas are there); wv [H·P × dV] and tmp [max(dV, dH)] are scratch.
;;   omega_rows(dV, d, dH, omq, omk, jqt, jkt, zm)
;;     The closed form's Z = ΩQ Qᵀ + ΩK Kᵀ of one (a, h) block (gpu-attention-closed.ts, the JS
;;     reference): zm[j, i] = 0 + Σ_{c < dH, in order} (omq[j, c]·jqt[c, i] + omk[j, c]·jkt[c, i]),
;;     omq, omk [dV × dH], jqt, jkt [dH × d] (J's q and k columns of head h, transposed), zm [dV × d];
;;     lanes over i.
;;
;; Memory layout (every argument after the sizes is a byte offset into memory):
;;   rho  i32 [P]         the sample's row ids
;;   prob f64 [H × P]     the softmax rows of query t* (zero where masked)
;;   dzv  f64 [R × K × H] dz_k^h·v^h(row) per row (AttentionRowTables.dzv)
;;   ds   f64 [K × NJ]    out
;;   beta f64 [NJ × NJ]   out (in for sample_rows)
;;   vkq  f64 [R × m]     [v | k | q] per row at the integration point (AttentionRowTables.vkq)
;;   Zq, Zk [R × (H+1)·H × dV], Zqq, Zqk [R × H·H × dH], Zkk [R × H·H]   added into
;; Invariants: the regions do not overlap; offsets of f64 regions are multiples of 8; 0 ≤ ρ_u < R.
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

  ;; y[j] += f·x[j] for j < n (two lanes, then an odd last entry).
  (func $axpy (param $n i32) (param $f f64) (param $x i32) (param $y i32)
    (local $e i32) (local $v v128)
    (local.set $v (f64x2.splat (local.get $f)))
    (local.set $e (i32.add (local.get $y) (i32.shl (i32.and (local.get $n) (i32.const -2)) (i32.const 3))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $y) (local.get $e)))
        (v128.store (local.get $y) (f64x2.add (v128.load (local.get $y)) (f64x2.mul (local.get $v) (v128.load (local.get $x)))))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $y (i32.add (local.get $y) (i32.const 16)))
        (br $l)))
    (if (i32.and (local.get $n) (i32.const 1))
      (then (f64.store (local.get $y) (f64.add (f64.load (local.get $y)) (f64.mul (local.get $f) (f64.load (local.get $x))))))))

  ;; y[j] = x[j] − b[j] for j < n.
  (func $sub (param $n i32) (param $x i32) (param $b i32) (param $y i32)
    (local $e i32)
    (local.set $e (i32.add (local.get $y) (i32.shl (i32.and (local.get $n) (i32.const -2)) (i32.const 3))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $y) (local.get $e)))
        (v128.store (local.get $y) (f64x2.sub (v128.load (local.get $x)) (v128.load (local.get $b))))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $b (i32.add (local.get $b) (i32.const 16)))
        (local.set $y (i32.add (local.get $y) (i32.const 16)))
        (br $l)))
    (if (i32.and (local.get $n) (i32.const 1))
      (then (f64.store (local.get $y) (f64.sub (f64.load (local.get $x)) (f64.load (local.get $b)))))))

  ;; y[j] = y[j] + x[j] for j < n.
  (func $addto (param $n i32) (param $x i32) (param $y i32)
    (local $e i32)
    (local.set $e (i32.add (local.get $y) (i32.shl (i32.and (local.get $n) (i32.const -2)) (i32.const 3))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $y) (local.get $e)))
        (v128.store (local.get $y) (f64x2.add (v128.load (local.get $y)) (v128.load (local.get $x))))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $y (i32.add (local.get $y) (i32.const 16)))
        (br $l)))
    (if (i32.and (local.get $n) (i32.const 1))
      (then (f64.store (local.get $y) (f64.add (f64.load (local.get $y)) (f64.load (local.get $x)))))))

  ;; The byte offset of f64 entry i of the region at base.
  (func $at (param $base i32) (param $i i32) (result i32)
    (i32.add (local.get $base) (i32.shl (local.get $i) (i32.const 3))))

  ;; prob[h·P + u].
  (func $prob (param $prob i32) (param $P i32) (param $h i32) (param $u i32) (result f64)
    (f64.load (call $at (local.get $prob) (i32.add (i32.mul (local.get $h) (local.get $P)) (local.get $u)))))

  ;; ρ_u.
  (func $rho (param $rho i32) (param $u i32) (result i32)
    (i32.load (i32.add (local.get $rho) (i32.shl (local.get $u) (i32.const 2)))))

  (func (export "sample_rows")
    (param $H i32) (param $P i32) (param $dH i32) (param $dV i32) (param $m i32)
    (param $rho i32) (param $prob i32) (param $beta i32) (param $vkq i32) (param $wv i32) (param $tmp i32)
    (param $Zq i32) (param $Zk i32) (param $Zqq i32) (param $Zqk i32) (param $Zkk i32)
    (local $t i32) (local $NJ i32) (local $A i32) (local $AH i32) (local $HH i32) (local $HdV i32)
    (local $h i32) (local $u i32) (local $a i32) (local $sp i32) (local $h1 i32) (local $h2 i32)
    (local $u1 i32) (local $u2 i32) (local $rt i32) (local $o i32) (local $w i32) (local $any i32)
    (local $p f64) (local $f f64) (local $pa f64) (local $bb f64) (local $gam f64)
    (local.set $t (i32.sub (local.get $P) (i32.const 1)))
    (local.set $NJ (i32.mul (local.get $H) (local.get $P)))
    (local.set $A (i32.add (local.get $H) (i32.const 1)))
    (local.set $AH (i32.mul (local.get $A) (local.get $H)))
    (local.set $HH (i32.mul (local.get $H) (local.get $H)))
    (local.set $HdV (i32.mul (local.get $H) (local.get $dV)))
    (local.set $rt (call $rho (local.get $rho) (local.get $t)))
    ;; Centred values wv[h, u] = v_u^h − v̄^h, v̄^h = 0 + Σ_{u, p ≠ 0} p_u^h v_u^h (tmp holds v̄).
    (local.set $h (i32.const 0))
    (block $wh_done
      (loop $wh
        (br_if $wh_done (i32.ge_u (local.get $h) (local.get $H)))
        (memory.fill (local.get $tmp) (i32.const 0) (i32.shl (local.get $dV) (i32.const 3)))
        (local.set $u (i32.const 0))
        (block $wu_done
          (loop $wu
            (br_if $wu_done (i32.ge_u (local.get $u) (local.get $P)))
            (local.set $p (call $prob (local.get $prob) (local.get $P) (local.get $h) (local.get $u)))
            (if (f64.ne (local.get $p) (f64.const 0))
              (then
                (call $axpy (local.get $dV) (local.get $p)
                  (call $at (local.get $vkq) (i32.add (i32.mul (call $rho (local.get $rho) (local.get $u)) (local.get $m)) (i32.mul (local.get $h) (local.get $dV))))
                  (local.get $tmp))))
            (local.set $u (i32.add (local.get $u) (i32.const 1)))
            (br $wu)))
        (local.set $u (i32.const 0))
        (block $wc_done
          (loop $wc
            (br_if $wc_done (i32.ge_u (local.get $u) (local.get $P)))
            (call $sub (local.get $dV)
              (call $at (local.get $vkq) (i32.add (i32.mul (call $rho (local.get $rho) (local.get $u)) (local.get $m)) (i32.mul (local.get $h) (local.get $dV))))
              (local.get $tmp)
              (call $at (local.get $wv) (i32.mul (i32.add (i32.mul (local.get $h) (local.get $P)) (local.get $u)) (local.get $dV))))
            (local.set $u (i32.add (local.get $u) (i32.const 1)))
            (br $wc)))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br $wh)))
    (local.set $h (i32.const 0))
    (block $oh_done
      (loop $oh
        (br_if $oh_done (i32.ge_u (local.get $h) (local.get $H)))
        ;; Zq[ρ_u][a, h] += (π_a·p_u^h) w_u^h over p_u^h ≠ 0 and π_a·p_u^h ≠ 0, π = [1, p_t*^1..H].
        (local.set $u (i32.const 0))
        (block $qu_done
          (loop $qu
            (br_if $qu_done (i32.ge_u (local.get $u) (local.get $P)))
            (local.set $p (call $prob (local.get $prob) (local.get $P) (local.get $h) (local.get $u)))
            (if (f64.ne (local.get $p) (f64.const 0))
              (then
                (local.set $w (call $at (local.get $wv) (i32.mul (i32.add (i32.mul (local.get $h) (local.get $P)) (local.get $u)) (local.get $dV))))
                (local.set $a (i32.const 0))
                (block $qa_done
                  (loop $qa
                    (br_if $qa_done (i32.ge_u (local.get $a) (local.get $A)))
                    (local.set $pa
                      (if (result f64) (i32.eqz (local.get $a))
                        (then (f64.const 1))
                        (else (call $prob (local.get $prob) (local.get $P) (i32.sub (local.get $a) (i32.const 1)) (local.get $t)))))
                    (local.set $f (f64.mul (local.get $pa) (local.get $p)))
                    (if (f64.ne (local.get $f) (f64.const 0))
                      (then
                        (call $axpy (local.get $dV) (local.get $f) (local.get $w)
                          (call $at (local.get $Zq)
                            (i32.mul
                              (i32.add (i32.mul (call $rho (local.get $rho) (local.get $u)) (local.get $AH)) (i32.add (i32.mul (local.get $a) (local.get $H)) (local.get $h)))
                              (local.get $dV))))))
                    (local.set $a (i32.add (local.get $a) (i32.const 1)))
                    (br $qa)))))
            (local.set $u (i32.add (local.get $u) (i32.const 1)))
            (br $qu)))
        ;; Zk[ρ_t*][a, h] += f w_s^h, f = π^s_a·p_s^h (π^s_0 = δ_{s,t*}), over f ≠ 0.
        (local.set $a (i32.const 0))
        (block $ka_done
          (loop $ka
            (br_if $ka_done (i32.ge_u (local.get $a) (local.get $A)))
            (local.set $o
              (call $at (local.get $Zk)
                (i32.mul (i32.add (i32.mul (local.get $rt) (local.get $AH)) (i32.add (i32.mul (local.get $a) (local.get $H)) (local.get $h))) (local.get $dV))))
            (local.set $sp (i32.const 0))
            (block $ks_done
              (loop $ks
                (br_if $ks_done (i32.ge_u (local.get $sp) (local.get $P)))
                (local.set $pa
                  (if (result f64) (i32.eqz (local.get $a))
                    (then (if (result f64) (i32.eq (local.get $sp) (local.get $t)) (then (f64.const 1)) (else (f64.const 0))))
                    (else (call $prob (local.get $prob) (local.get $P) (i32.sub (local.get $a) (i32.const 1)) (local.get $sp)))))
                (local.set $f (f64.mul (local.get $pa) (call $prob (local.get $prob) (local.get $P) (local.get $h) (local.get $sp))))
                (if (f64.ne (local.get $f) (f64.const 0))
                  (then
                    (call $axpy (local.get $dV) (local.get $f)
                      (call $at (local.get $wv) (i32.mul (i32.add (i32.mul (local.get $h) (local.get $P)) (local.get $sp)) (local.get $dV)))
                      (local.get $o))))
                (local.set $sp (i32.add (local.get $sp) (i32.const 1)))
                (br $ks)))
            (local.set $a (i32.add (local.get $a) (i32.const 1)))
            (br $ka)))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br $oh)))
    ;; The Ψ accumulators per head pair.
    (local.set $h1 (i32.const 0))
    (block $h1_done
      (loop $h1_loop
        (br_if $h1_done (i32.ge_u (local.get $h1) (local.get $H)))
        (local.set $h2 (i32.const 0))
        (block $h2_done
          (loop $h2_loop
            (br_if $h2_done (i32.ge_u (local.get $h2) (local.get $H)))
            ;; QQ (h2 ≥ h1): Zqq[ρ_u1][h1, h2] += (0 + Σ_{u2, β ≠ 0} β_(h1,u1),(h2,u2) k_u2^h2) where any β ≠ 0.
            (if (i32.ge_u (local.get $h2) (local.get $h1))
              (then
                (local.set $u1 (i32.const 0))
                (block $u1_done
                  (loop $u1_loop
                    (br_if $u1_done (i32.ge_u (local.get $u1) (local.get $P)))
                    (memory.fill (local.get $tmp) (i32.const 0) (i32.shl (local.get $dH) (i32.const 3)))
                    (local.set $any (i32.const 0))
                    (local.set $u2 (i32.const 0))
                    (block $u2_done
                      (loop $u2_loop
                        (br_if $u2_done (i32.ge_u (local.get $u2) (local.get $P)))
                        (local.set $bb
                          (f64.load (call $at (local.get $beta)
                            (i32.add
                              (i32.mul (i32.add (i32.mul (local.get $h1) (local.get $P)) (local.get $u1)) (local.get $NJ))
                              (i32.add (i32.mul (local.get $h2) (local.get $P)) (local.get $u2))))))
                        (if (f64.ne (local.get $bb) (f64.const 0))
                          (then
                            (local.set $any (i32.const 1))
                            (call $axpy (local.get $dH) (local.get $bb)
                              (call $at (local.get $vkq)
                                (i32.add (i32.mul (call $rho (local.get $rho) (local.get $u2)) (local.get $m)) (i32.add (local.get $HdV) (i32.mul (local.get $h2) (local.get $dH)))))
                              (local.get $tmp))))
                        (local.set $u2 (i32.add (local.get $u2) (i32.const 1)))
                        (br $u2_loop)))
                    (if (local.get $any)
                      (then
                        (call $addto (local.get $dH) (local.get $tmp)
                          (call $at (local.get $Zqq)
                            (i32.mul
                              (i32.add (i32.mul (call $rho (local.get $rho) (local.get $u1)) (local.get $HH)) (i32.add (i32.mul (local.get $h1) (local.get $H)) (local.get $h2)))
                              (local.get $dH))))))
                    (local.set $u1 (i32.add (local.get $u1) (i32.const 1)))
                    (br $u1_loop)))))
            ;; QK: Zqk[ρ_t*][h1, h2] += β_(h1,u1),(h2,t*) k_u1^h1 over β ≠ 0.
            (local.set $o
              (call $at (local.get $Zqk)
                (i32.mul (i32.add (i32.mul (local.get $rt) (local.get $HH)) (i32.add (i32.mul (local.get $h1) (local.get $H)) (local.get $h2))) (local.get $dH))))
            (local.set $u1 (i32.const 0))
            (block $qk_done
              (loop $qk_loop
                (br_if $qk_done (i32.ge_u (local.get $u1) (local.get $P)))
                (local.set $bb
                  (f64.load (call $at (local.get $beta)
                    (i32.add
                      (i32.mul (i32.add (i32.mul (local.get $h1) (local.get $P)) (local.get $u1)) (local.get $NJ))
                      (i32.add (i32.mul (local.get $h2) (local.get $P)) (local.get $t))))))
                (if (f64.ne (local.get $bb) (f64.const 0))
                  (then
                    (call $axpy (local.get $dH) (local.get $bb)
                      (call $at (local.get $vkq)
                        (i32.add (i32.mul (call $rho (local.get $rho) (local.get $u1)) (local.get $m)) (i32.add (local.get $HdV) (i32.mul (local.get $h1) (local.get $dH)))))
                      (local.get $o))))
                (local.set $u1 (i32.add (local.get $u1) (i32.const 1)))
                (br $qk_loop)))
            ;; KK (h2 ≥ h1): Zkk[ρ_t*][h1, h2] += 0 + Σ_s β_(h1,s),(h2,s).
            (if (i32.ge_u (local.get $h2) (local.get $h1))
              (then
                (local.set $gam (f64.const 0))
                (local.set $sp (i32.const 0))
                (block $kk_done
                  (loop $kk_loop
                    (br_if $kk_done (i32.ge_u (local.get $sp) (local.get $P)))
                    (local.set $gam
                      (f64.add (local.get $gam)
                        (f64.load (call $at (local.get $beta)
                          (i32.add
                            (i32.mul (i32.add (i32.mul (local.get $h1) (local.get $P)) (local.get $sp)) (local.get $NJ))
                            (i32.add (i32.mul (local.get $h2) (local.get $P)) (local.get $sp)))))))
                    (local.set $sp (i32.add (local.get $sp) (i32.const 1)))
                    (br $kk_loop)))
                (local.set $o (call $at (local.get $Zkk) (i32.add (i32.mul (local.get $rt) (local.get $HH)) (i32.add (i32.mul (local.get $h1) (local.get $H)) (local.get $h2)))))
                (f64.store (local.get $o) (f64.add (f64.load (local.get $o)) (local.get $gam)))))
            (local.set $h2 (i32.add (local.get $h2) (i32.const 1)))
            (br $h2_loop)))
        (local.set $h1 (i32.add (local.get $h1) (i32.const 1)))
        (br $h1_loop))))

  (func (export "omega_rows")
    (param $dV i32) (param $d i32) (param $dH i32)
    (param $omq i32) (param $omk i32) (param $jqt i32) (param $jkt i32) (param $zm i32)
    (local $j i32) (local $i i32) (local $c i32) (local $rowb i32) (local $q i32) (local $k i32)
    (local $x i32) (local $y i32) (local $acc v128) (local $s f64)
    (local.set $rowb (i32.shl (local.get $d) (i32.const 3)))
    (block $j_done
      (loop $j_loop
        (br_if $j_done (i32.ge_u (local.get $j) (local.get $dV)))
        (local.set $i (i32.const 0))
        ;; Pairs of rows i2, i2 + 1 (lanes), then an odd last one.
        (block $i_done
          (loop $i_loop
            (br_if $i_done (i32.gt_u (i32.add (local.get $i) (i32.const 2)) (local.get $d)))
            (local.set $acc (f64x2.splat (f64.const 0)))
            (local.set $q (i32.add (local.get $omq) (i32.shl (i32.mul (local.get $j) (local.get $dH)) (i32.const 3))))
            (local.set $k (i32.add (local.get $omk) (i32.shl (i32.mul (local.get $j) (local.get $dH)) (i32.const 3))))
            (local.set $x (i32.add (local.get $jqt) (i32.shl (local.get $i) (i32.const 3))))
            (local.set $y (i32.add (local.get $jkt) (i32.shl (local.get $i) (i32.const 3))))
            (local.set $c (i32.const 0))
            (block $c_done
              (loop $c_loop
                (br_if $c_done (i32.ge_u (local.get $c) (local.get $dH)))
                (local.set $acc
                  (f64x2.add (local.get $acc)
                    (f64x2.add
                      (f64x2.mul (f64x2.splat (f64.load (local.get $q))) (v128.load (local.get $x)))
                      (f64x2.mul (f64x2.splat (f64.load (local.get $k))) (v128.load (local.get $y))))))
                (local.set $q (i32.add (local.get $q) (i32.const 8)))
                (local.set $k (i32.add (local.get $k) (i32.const 8)))
                (local.set $x (i32.add (local.get $x) (local.get $rowb)))
                (local.set $y (i32.add (local.get $y) (local.get $rowb)))
                (local.set $c (i32.add (local.get $c) (i32.const 1)))
                (br $c_loop)))
            (v128.store
              (i32.add (local.get $zm) (i32.shl (i32.add (i32.mul (local.get $j) (local.get $d)) (local.get $i)) (i32.const 3)))
              (local.get $acc))
            (local.set $i (i32.add (local.get $i) (i32.const 2)))
            (br $i_loop)))
        (if (i32.lt_u (local.get $i) (local.get $d))
          (then
            (local.set $s (f64.const 0))
            (local.set $q (i32.add (local.get $omq) (i32.shl (i32.mul (local.get $j) (local.get $dH)) (i32.const 3))))
            (local.set $k (i32.add (local.get $omk) (i32.shl (i32.mul (local.get $j) (local.get $dH)) (i32.const 3))))
            (local.set $x (i32.add (local.get $jqt) (i32.shl (local.get $i) (i32.const 3))))
            (local.set $y (i32.add (local.get $jkt) (i32.shl (local.get $i) (i32.const 3))))
            (local.set $c (i32.const 0))
            (block $t_done
              (loop $t_loop
                (br_if $t_done (i32.ge_u (local.get $c) (local.get $dH)))
                (local.set $s
                  (f64.add (local.get $s)
                    (f64.add
                      (f64.mul (f64.load (local.get $q)) (f64.load (local.get $x)))
                      (f64.mul (f64.load (local.get $k)) (f64.load (local.get $y))))))
                (local.set $q (i32.add (local.get $q) (i32.const 8)))
                (local.set $k (i32.add (local.get $k) (i32.const 8)))
                (local.set $x (i32.add (local.get $x) (local.get $rowb)))
                (local.set $y (i32.add (local.get $y) (local.get $rowb)))
                (local.set $c (i32.add (local.get $c) (i32.const 1)))
                (br $t_loop)))
            (f64.store
              (i32.add (local.get $zm) (i32.shl (i32.add (i32.mul (local.get $j) (local.get $d)) (local.get $i)) (i32.const 3)))
              (local.get $s))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $j_loop))))
)
