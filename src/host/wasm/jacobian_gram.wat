;; jacobian_gram: the per-datapoint loops of the host degeneracy observer (src/host/degeneracy.ts)
;; in WebAssembly SIMD, two float64 lanes per v128. The JS loops there (addGram, CarriedProduct's
;; update) are the reference and this module gives their bits: every output entry sees the same
;; float64 operations in the same order (mul then add, no FMA; lanes are independent entries).
;;
;; Exports:
;;   memory                                   one private linear memory, grown once by the caller.
;;   gram_upper(G, sb, n, m, idx, M, hb)
;;       M[idx[k], idx[q]] += Σ_{o < n, in order, from 0} G[o, k]·G[o, q] for 0 ≤ k ≤ q < m:
;;       the upper triangle of one datapoint's GᵀG scattered into the layer's h × h sum M (idx
;;       increasing). G is output-major: G[o, k] at G + o·sb + 8k. A lane holds one q, so each
;;       sum runs over o from zero exactly as addGram's scalar sums do.
;;   rank1_rows(T, tb, Wa, ab, Wb, cb, rows, sign)
;;       T[a, :] += w_a·Wb[:] for a < rows with w_a = sign·Wa[a] ≠ 0 (w_a = 0 skipped), where
;;       T[a, :] is the row at T + a·tb (cb bytes), Wa[a] the float64 at Wa + a·ab and Wb the row at
;;       Wb: the rank-1 term W_a[:, b] ⊗ W_b[b, :] of CarriedProduct.
;;
;; Invariants: every offset 8-byte aligned (the loads are unaligned-safe v128 loads); cb a
;; multiple of 16 (T and Wb rows padded with zero columns to an even count); G readable for 16
;; bytes past G + (n−1)·sb + 8m (the last odd q reads one discarded lane); M, T disjoint from G,
;; Wa, Wb.
;; Blocking: gram_upper takes rows k, k + 1 together, 4 columns q in four f64x2 accumulators per
;; two loads of G[o, q..] and two splats, then a last pair (a last odd row alone, the same way with
;; one splat); rank1_rows one f64x2 per two columns of T.
(module
  (memory (export "memory") 1)

  (func (export "gram_upper")
    (param $G i32) (param $sb i32) (param $n i32) (param $m i32) (param $idx i32) (param $M i32) (param $hb i32)
    (local $k i32) (local $q i32) (local $o i32) (local $row i32) (local $gk i32) (local $gq i32)
    (local $ip i32) (local $at i32) (local $row1 i32) (local $s v128) (local $t v128) (local $x0 v128) (local $x1 v128)
    (local $y0 v128) (local $y1 v128) (local $b0 v128) (local $b1 v128)
        ;; rows k and k + 1 together (each load of G[o, q..] serves both): first the entries
        ;; (k, k), (k, k + 1) in one pair of lanes and (k + 1, k + 1) in another (its second lane
        ;; discarded), then the columns q ≥ k + 2 four and then two at a time
        (block $pairs_done
          (loop $pairs
            (br_if $pairs_done (i32.ge_s (i32.add (local.get $k) (i32.const 1)) (local.get $m)))
            (local.set $ip (i32.add (local.get $idx) (i32.shl (local.get $k) (i32.const 2))))
            (local.set $row (i32.add (local.get $M) (i32.mul (i32.load (local.get $ip)) (local.get $hb))))
            (local.set $row1 (i32.add (local.get $M) (i32.mul (i32.load offset=4 (local.get $ip)) (local.get $hb))))
            (local.set $x0 (v128.const f64x2 0 0))
            (local.set $x1 (v128.const f64x2 0 0))
            (local.set $q (local.get $k))
            (local.set $gk (i32.add (local.get $G) (i32.shl (local.get $k) (i32.const 3))))
            (local.set $gq (i32.add (local.get $G) (i32.shl (local.get $q) (i32.const 3))))
            (local.set $o (i32.const 0))
            (block $hd_done
              (loop $hd
                (br_if $hd_done (i32.ge_s (local.get $o) (local.get $n)))
                (local.set $x0 (f64x2.add (local.get $x0) (f64x2.mul (v128.load64_splat (local.get $gk)) (v128.load (local.get $gq)))))
                (local.set $x1 (f64x2.add (local.get $x1) (f64x2.mul (v128.load64_splat offset=8 (local.get $gk)) (v128.load offset=8 (local.get $gq)))))
                (local.set $gk (i32.add (local.get $gk) (local.get $sb)))
                (local.set $gq (i32.add (local.get $gq) (local.get $sb)))
                (local.set $o (i32.add (local.get $o) (i32.const 1)))
                (br $hd)))
            (local.set $at (i32.add (local.get $row) (i32.shl (i32.load offset=0 (local.get $ip)) (i32.const 3))))
            (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 0 (local.get $x0))))
            (local.set $at (i32.add (local.get $row) (i32.shl (i32.load offset=4 (local.get $ip)) (i32.const 3))))
            (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 1 (local.get $x0))))
            (local.set $at (i32.add (local.get $row1) (i32.shl (i32.load offset=4 (local.get $ip)) (i32.const 3))))
            (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 0 (local.get $x1))))
            (local.set $q (i32.add (local.get $k) (i32.const 2)))
            (block $p4_done
              (loop $p4
                (br_if $p4_done (i32.gt_s (i32.add (local.get $q) (i32.const 4)) (local.get $m)))
                (local.set $x0 (v128.const f64x2 0 0))
                (local.set $x1 (v128.const f64x2 0 0))
                (local.set $y0 (v128.const f64x2 0 0))
                (local.set $y1 (v128.const f64x2 0 0))
                (local.set $gk (i32.add (local.get $G) (i32.shl (local.get $k) (i32.const 3))))
                (local.set $gq (i32.add (local.get $G) (i32.shl (local.get $q) (i32.const 3))))
                (local.set $o (i32.const 0))
                (block $po4_done
                  (loop $po4
                    (br_if $po4_done (i32.ge_s (local.get $o) (local.get $n)))
                    (local.set $s (v128.load64_splat (local.get $gk)))
                    (local.set $t (v128.load64_splat offset=8 (local.get $gk)))
                    (local.set $b0 (v128.load (local.get $gq)))
                    (local.set $b1 (v128.load offset=16 (local.get $gq)))
                    (local.set $x0 (f64x2.add (local.get $x0) (f64x2.mul (local.get $s) (local.get $b0))))
                    (local.set $x1 (f64x2.add (local.get $x1) (f64x2.mul (local.get $s) (local.get $b1))))
                    (local.set $y0 (f64x2.add (local.get $y0) (f64x2.mul (local.get $t) (local.get $b0))))
                    (local.set $y1 (f64x2.add (local.get $y1) (f64x2.mul (local.get $t) (local.get $b1))))
                    (local.set $gk (i32.add (local.get $gk) (local.get $sb)))
                    (local.set $gq (i32.add (local.get $gq) (local.get $sb)))
                    (local.set $o (i32.add (local.get $o) (i32.const 1)))
                    (br $po4)))
                (local.set $ip (i32.add (local.get $idx) (i32.shl (local.get $q) (i32.const 2))))
                (local.set $at (i32.add (local.get $row) (i32.shl (i32.load offset=0 (local.get $ip)) (i32.const 3))))
                (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 0 (local.get $x0))))
                (local.set $at (i32.add (local.get $row) (i32.shl (i32.load offset=4 (local.get $ip)) (i32.const 3))))
                (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 1 (local.get $x0))))
                (local.set $at (i32.add (local.get $row) (i32.shl (i32.load offset=8 (local.get $ip)) (i32.const 3))))
                (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 0 (local.get $x1))))
                (local.set $at (i32.add (local.get $row) (i32.shl (i32.load offset=12 (local.get $ip)) (i32.const 3))))
                (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 1 (local.get $x1))))
                (local.set $at (i32.add (local.get $row1) (i32.shl (i32.load offset=0 (local.get $ip)) (i32.const 3))))
                (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 0 (local.get $y0))))
                (local.set $at (i32.add (local.get $row1) (i32.shl (i32.load offset=4 (local.get $ip)) (i32.const 3))))
                (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 1 (local.get $y0))))
                (local.set $at (i32.add (local.get $row1) (i32.shl (i32.load offset=8 (local.get $ip)) (i32.const 3))))
                (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 0 (local.get $y1))))
                (local.set $at (i32.add (local.get $row1) (i32.shl (i32.load offset=12 (local.get $ip)) (i32.const 3))))
                (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 1 (local.get $y1))))
                (local.set $q (i32.add (local.get $q) (i32.const 4)))
                (br $p4)))
            (block $p2_done
              (loop $p2
                (br_if $p2_done (i32.ge_s (local.get $q) (local.get $m)))
                (local.set $x0 (v128.const f64x2 0 0))
                (local.set $y0 (v128.const f64x2 0 0))
                (local.set $gk (i32.add (local.get $G) (i32.shl (local.get $k) (i32.const 3))))
                (local.set $gq (i32.add (local.get $G) (i32.shl (local.get $q) (i32.const 3))))
                (local.set $o (i32.const 0))
                (block $po2_done
                  (loop $po2
                    (br_if $po2_done (i32.ge_s (local.get $o) (local.get $n)))
                    (local.set $b0 (v128.load (local.get $gq)))
                    (local.set $x0 (f64x2.add (local.get $x0) (f64x2.mul (v128.load64_splat (local.get $gk)) (local.get $b0))))
                    (local.set $y0 (f64x2.add (local.get $y0) (f64x2.mul (v128.load64_splat offset=8 (local.get $gk)) (local.get $b0))))
                    (local.set $gk (i32.add (local.get $gk) (local.get $sb)))
                    (local.set $gq (i32.add (local.get $gq) (local.get $sb)))
                    (local.set $o (i32.add (local.get $o) (i32.const 1)))
                    (br $po2)))
                (local.set $ip (i32.add (local.get $idx) (i32.shl (local.get $q) (i32.const 2))))
                (local.set $at (i32.add (local.get $row) (i32.shl (i32.load offset=0 (local.get $ip)) (i32.const 3))))
                (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 0 (local.get $x0))))
                (local.set $at (i32.add (local.get $row1) (i32.shl (i32.load offset=0 (local.get $ip)) (i32.const 3))))
                (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 0 (local.get $y0))))
                (if (i32.lt_s (i32.add (local.get $q) (i32.const 1)) (local.get $m))
                  (then
                    (local.set $at (i32.add (local.get $row) (i32.shl (i32.load offset=4 (local.get $ip)) (i32.const 3))))
                    (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 1 (local.get $x0))))
                    (local.set $at (i32.add (local.get $row1) (i32.shl (i32.load offset=4 (local.get $ip)) (i32.const 3))))
                    (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 1 (local.get $y0))))))
                (local.set $q (i32.add (local.get $q) (i32.const 2)))
                (br $p2)))
            (local.set $k (i32.add (local.get $k) (i32.const 2)))
            (br $pairs)))
        ;; a last row (m odd) alone
    (block $rows_done
      (loop $rows
        (br_if $rows_done (i32.ge_s (local.get $k) (local.get $m)))
        (local.set $row (i32.add (local.get $M)
          (i32.mul (i32.load (i32.add (local.get $idx) (i32.shl (local.get $k) (i32.const 2)))) (local.get $hb))))
        (local.set $q (local.get $k))
        ;; four columns at a time
        (block $q4_done
          (loop $q4
            (br_if $q4_done (i32.gt_s (i32.add (local.get $q) (i32.const 4)) (local.get $m)))
            (local.set $x0 (v128.const f64x2 0 0))
            (local.set $x1 (v128.const f64x2 0 0))
            (local.set $gk (i32.add (local.get $G) (i32.shl (local.get $k) (i32.const 3))))
            (local.set $gq (i32.add (local.get $G) (i32.shl (local.get $q) (i32.const 3))))
            (local.set $o (i32.const 0))
            (block $o_done
              (loop $ol
                (br_if $o_done (i32.ge_s (local.get $o) (local.get $n)))
                (local.set $s (v128.load64_splat (local.get $gk)))
                (local.set $x0 (f64x2.add (local.get $x0) (f64x2.mul (local.get $s) (v128.load (local.get $gq)))))
                (local.set $x1 (f64x2.add (local.get $x1) (f64x2.mul (local.get $s) (v128.load offset=16 (local.get $gq)))))
                (local.set $gk (i32.add (local.get $gk) (local.get $sb)))
                (local.set $gq (i32.add (local.get $gq) (local.get $sb)))
                (local.set $o (i32.add (local.get $o) (i32.const 1)))
                (br $ol)))
            ;; M[idx[k], idx[q + j]] += lane j
            (local.set $ip (i32.add (local.get $idx) (i32.shl (local.get $q) (i32.const 2))))
            (local.set $at (i32.add (local.get $row) (i32.shl (i32.load offset=0 (local.get $ip)) (i32.const 3))))
            (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 0 (local.get $x0))))
            (local.set $at (i32.add (local.get $row) (i32.shl (i32.load offset=4 (local.get $ip)) (i32.const 3))))
            (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 1 (local.get $x0))))
            (local.set $at (i32.add (local.get $row) (i32.shl (i32.load offset=8 (local.get $ip)) (i32.const 3))))
            (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 0 (local.get $x1))))
            (local.set $at (i32.add (local.get $row) (i32.shl (i32.load offset=12 (local.get $ip)) (i32.const 3))))
            (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 1 (local.get $x1))))
            (local.set $q (i32.add (local.get $q) (i32.const 4)))
            (br $q4)))
        ;; the last one to three columns, a pair at a time (an odd last q's second lane is discarded)
        (block $q2_done
          (loop $q2
            (br_if $q2_done (i32.ge_s (local.get $q) (local.get $m)))
            (local.set $x0 (v128.const f64x2 0 0))
            (local.set $gk (i32.add (local.get $G) (i32.shl (local.get $k) (i32.const 3))))
            (local.set $gq (i32.add (local.get $G) (i32.shl (local.get $q) (i32.const 3))))
            (local.set $o (i32.const 0))
            (block $o2_done
              (loop $ol2
                (br_if $o2_done (i32.ge_s (local.get $o) (local.get $n)))
                (local.set $x0 (f64x2.add (local.get $x0)
                  (f64x2.mul (v128.load64_splat (local.get $gk)) (v128.load (local.get $gq)))))
                (local.set $gk (i32.add (local.get $gk) (local.get $sb)))
                (local.set $gq (i32.add (local.get $gq) (local.get $sb)))
                (local.set $o (i32.add (local.get $o) (i32.const 1)))
                (br $ol2)))
            (local.set $ip (i32.add (local.get $idx) (i32.shl (local.get $q) (i32.const 2))))
            (local.set $at (i32.add (local.get $row) (i32.shl (i32.load offset=0 (local.get $ip)) (i32.const 3))))
            (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 0 (local.get $x0))))
            (if (i32.lt_s (i32.add (local.get $q) (i32.const 1)) (local.get $m))
              (then
                (local.set $at (i32.add (local.get $row) (i32.shl (i32.load offset=4 (local.get $ip)) (i32.const 3))))
                (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (f64x2.extract_lane 1 (local.get $x0))))))
            (local.set $q (i32.add (local.get $q) (i32.const 2)))
            (br $q2)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $rows))))

  (func (export "rank1_rows")
    (param $T i32) (param $tb i32) (param $Wa i32) (param $ab i32) (param $Wb i32) (param $cb i32) (param $rows i32) (param $sign f64)
    (local $a i32) (local $c i32) (local $t i32) (local $w f64) (local $s v128)
    (block $done
      (loop $al
        (br_if $done (i32.ge_s (local.get $a) (local.get $rows)))
        (local.set $w (f64.mul (local.get $sign) (f64.load (local.get $Wa))))
        (if (f64.ne (local.get $w) (f64.const 0))
          (then
            (local.set $s (f64x2.splat (local.get $w)))
            (local.set $c (i32.const 0))
            (block $c_done
              (loop $cl
                (br_if $c_done (i32.ge_s (local.get $c) (local.get $cb)))
                (local.set $t (i32.add (local.get $T) (local.get $c)))
                (v128.store (local.get $t) (f64x2.add (v128.load (local.get $t))
                  (f64x2.mul (local.get $s) (v128.load (i32.add (local.get $Wb) (local.get $c))))))
                (local.set $c (i32.add (local.get $c) (i32.const 16)))
                (br $cl)))))
        (local.set $T (i32.add (local.get $T) (local.get $tb)))
        (local.set $Wa (i32.add (local.get $Wa) (local.get $ab)))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (br $al))))
)
