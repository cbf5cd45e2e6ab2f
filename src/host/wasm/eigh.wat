;; eigh: the O(n²)-per-step loops of the float64 symmetric eigensolver (src/cpu/eigh.ts, its
;; EighKernels) in WebAssembly SIMD, two float64 lanes per v128. The JS kernels of src/cpu/eigh.ts
;; are the reference and this module gives their bits: every element sees the same float64
;; operations in the same order (mul then add, no FMA), and where the reference sums a dot product
;; it keeps two partial sums, of the even and the odd terms from the first index, which are exactly
;; the two lanes here (the reference was written that way so that these kernels can match it).
;;
;; Exports (every pointer is a byte offset into `memory`; matrices are row-major n×n float64):
;;   memory        one private linear memory; the caller grows it once and keeps views over it.
;;   symv_upper(w, n, k, p)          Householder step k, the product with the trailing block:
;;       for i = k+1..n-1, v = row k of w: p[j] += w[i,j]·v_i (j > i), p[i] += w[i,i]·v_i + Σ_{j>i} w[i,j]·v_j
;;   rank2_upper(w, n, k, p)         w[i,j] −= v_i·p[j] + p[i]·v_j for k < i <= j < n, v = row k of w
;;   accumulate_pair(zt, n, lo, va, vb, vab, b1, b2, i0, step)
;;       for rows i = i0, i0+step, … < n of zt: u = b1·(row·va), y = b2·(row·vb − u·vab) over
;;       columns lo..n-1, then row[j] −= u·va[j] + y·vb[j] (two Householder reflectors at once)
;;   accumulate_single(zt, n, va, b, i0, step)
;;       the same for one reflector on columns 1..n-1 (its dot product in sequence, as the reference)
;;   rot_chain(zt, n, cs, sn, lo, hi, k0, k1)
;;       Givens rotations i = hi, hi-1, …, lo on rows (i, i+1) of zt, columns k0..k1-1, with
;;       c = cs[i], s = sn[i]: (row i, row i+1) ← (c·row i − s·row i+1, s·row i + c·row i+1);
;;       four neighbouring rotations fused per pass over the columns (the shared row stays in a
;;       register).
;; Invariants: n >= 1; regions do not overlap except as stated (p, va, vb, cs, sn are vectors of
;; n float64 outside the matrices). Loads and stores need no alignment (rows of odd n are not
;; 16-byte aligned).
(module
  (memory (export "memory") 1)

  (func (export "symv_upper") (param $w i32) (param $n i32) (param $k i32) (param $p i32)
    (local $i i32) (local $j i32) (local $ri i32) (local $rk i32) (local $vi f64) (local $viv v128)
    (local $acc v128) (local $a v128) (local $pp i32) (local $aij f64) (local $s f64)
    (local.set $rk (i32.add (local.get $w) (i32.shl (i32.mul (local.get $k) (local.get $n)) (i32.const 3))))
    (local.set $i (i32.add (local.get $k) (i32.const 1)))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
        (local.set $ri (i32.add (local.get $w) (i32.shl (i32.mul (local.get $i) (local.get $n)) (i32.const 3))))
        (local.set $vi (f64.load (i32.add (local.get $rk) (i32.shl (local.get $i) (i32.const 3)))))
        (local.set $viv (f64x2.splat (local.get $vi)))
        (local.set $acc (v128.const f64x2 0 0))
        (local.set $j (i32.add (local.get $i) (i32.const 1)))
        (block $vd
          (loop $vec
            (br_if $vd (i32.ge_s (i32.add (local.get $j) (i32.const 1)) (local.get $n)))
            (local.set $a (v128.load (i32.add (local.get $ri) (i32.shl (local.get $j) (i32.const 3)))))
            (local.set $acc (f64x2.add (local.get $acc)
              (f64x2.mul (local.get $a) (v128.load (i32.add (local.get $rk) (i32.shl (local.get $j) (i32.const 3)))))))
            (local.set $pp (i32.add (local.get $p) (i32.shl (local.get $j) (i32.const 3))))
            (v128.store (local.get $pp) (f64x2.add (v128.load (local.get $pp)) (f64x2.mul (local.get $a) (local.get $viv))))
            (local.set $j (i32.add (local.get $j) (i32.const 2)))
            (br $vec)))
        (local.set $s (f64x2.extract_lane 0 (local.get $acc)))
        (if (i32.lt_s (local.get $j) (local.get $n))
          (then
            (local.set $aij (f64.load (i32.add (local.get $ri) (i32.shl (local.get $j) (i32.const 3)))))
            (local.set $s (f64.add (local.get $s)
              (f64.mul (local.get $aij) (f64.load (i32.add (local.get $rk) (i32.shl (local.get $j) (i32.const 3)))))))
            (local.set $pp (i32.add (local.get $p) (i32.shl (local.get $j) (i32.const 3))))
            (f64.store (local.get $pp) (f64.add (f64.load (local.get $pp)) (f64.mul (local.get $aij) (local.get $vi))))))
        (local.set $pp (i32.add (local.get $p) (i32.shl (local.get $i) (i32.const 3))))
        (f64.store (local.get $pp)
          (f64.add (f64.load (local.get $pp))
            (f64.add
              (f64.mul (f64.load (i32.add (local.get $ri) (i32.shl (local.get $i) (i32.const 3)))) (local.get $vi))
              (f64.add (local.get $s) (f64x2.extract_lane 1 (local.get $acc))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows))))

  (func (export "rank2_upper") (param $w i32) (param $n i32) (param $k i32) (param $p i32)
    (local $i i32) (local $j i32) (local $ri i32) (local $rk i32) (local $vi f64) (local $qi f64)
    (local $viv v128) (local $qiv v128) (local $o i32)
    (local.set $rk (i32.add (local.get $w) (i32.shl (i32.mul (local.get $k) (local.get $n)) (i32.const 3))))
    (local.set $i (i32.add (local.get $k) (i32.const 1)))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
        (local.set $ri (i32.add (local.get $w) (i32.shl (i32.mul (local.get $i) (local.get $n)) (i32.const 3))))
        (local.set $vi (f64.load (i32.add (local.get $rk) (i32.shl (local.get $i) (i32.const 3)))))
        (local.set $qi (f64.load (i32.add (local.get $p) (i32.shl (local.get $i) (i32.const 3)))))
        (local.set $viv (f64x2.splat (local.get $vi)))
        (local.set $qiv (f64x2.splat (local.get $qi)))
        (local.set $j (local.get $i))
        (block $vd
          (loop $vec
            (br_if $vd (i32.ge_s (i32.add (local.get $j) (i32.const 1)) (local.get $n)))
            (local.set $o (i32.shl (local.get $j) (i32.const 3)))
            (v128.store (i32.add (local.get $ri) (local.get $o))
              (f64x2.sub (v128.load (i32.add (local.get $ri) (local.get $o)))
                (f64x2.add
                  (f64x2.mul (local.get $viv) (v128.load (i32.add (local.get $p) (local.get $o))))
                  (f64x2.mul (local.get $qiv) (v128.load (i32.add (local.get $rk) (local.get $o)))))))
            (local.set $j (i32.add (local.get $j) (i32.const 2)))
            (br $vec)))
        (if (i32.lt_s (local.get $j) (local.get $n))
          (then
            (local.set $o (i32.shl (local.get $j) (i32.const 3)))
            (f64.store (i32.add (local.get $ri) (local.get $o))
              (f64.sub (f64.load (i32.add (local.get $ri) (local.get $o)))
                (f64.add
                  (f64.mul (local.get $vi) (f64.load (i32.add (local.get $p) (local.get $o))))
                  (f64.mul (local.get $qi) (f64.load (i32.add (local.get $rk) (local.get $o)))))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows))))

  (func (export "accumulate_pair")
    (param $zt i32) (param $n i32) (param $lo i32) (param $va i32) (param $vb i32)
    (param $vab f64) (param $b1 f64) (param $b2 f64) (param $i0 i32) (param $step i32)
    (local $i i32) (local $j i32) (local $ri i32) (local $o i32) (local $m v128) (local $m0 f64)
    (local $ac v128) (local $cc v128) (local $a0 f64) (local $c0 f64) (local $u f64) (local $y f64)
    (local $uv v128) (local $yv v128)
    (local.set $i (local.get $i0))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
        (local.set $ri (i32.add (local.get $zt) (i32.shl (i32.mul (local.get $i) (local.get $n)) (i32.const 3))))
        (local.set $ac (v128.const f64x2 0 0))
        (local.set $cc (v128.const f64x2 0 0))
        (local.set $j (local.get $lo))
        (block $vd
          (loop $vec
            (br_if $vd (i32.ge_s (i32.add (local.get $j) (i32.const 1)) (local.get $n)))
            (local.set $o (i32.shl (local.get $j) (i32.const 3)))
            (local.set $m (v128.load (i32.add (local.get $ri) (local.get $o))))
            (local.set $ac (f64x2.add (local.get $ac) (f64x2.mul (local.get $m) (v128.load (i32.add (local.get $va) (local.get $o))))))
            (local.set $cc (f64x2.add (local.get $cc) (f64x2.mul (local.get $m) (v128.load (i32.add (local.get $vb) (local.get $o))))))
            (local.set $j (i32.add (local.get $j) (i32.const 2)))
            (br $vec)))
        (local.set $a0 (f64x2.extract_lane 0 (local.get $ac)))
        (local.set $c0 (f64x2.extract_lane 0 (local.get $cc)))
        (if (i32.lt_s (local.get $j) (local.get $n))
          (then
            (local.set $o (i32.shl (local.get $j) (i32.const 3)))
            (local.set $m0 (f64.load (i32.add (local.get $ri) (local.get $o))))
            (local.set $a0 (f64.add (local.get $a0) (f64.mul (local.get $m0) (f64.load (i32.add (local.get $va) (local.get $o))))))
            (local.set $c0 (f64.add (local.get $c0) (f64.mul (local.get $m0) (f64.load (i32.add (local.get $vb) (local.get $o))))))))
        (local.set $u (f64.mul (local.get $b1) (f64.add (local.get $a0) (f64x2.extract_lane 1 (local.get $ac)))))
        (local.set $y (f64.mul (local.get $b2)
          (f64.sub (f64.add (local.get $c0) (f64x2.extract_lane 1 (local.get $cc))) (f64.mul (local.get $u) (local.get $vab)))))
        (local.set $uv (f64x2.splat (local.get $u)))
        (local.set $yv (f64x2.splat (local.get $y)))
        (local.set $j (local.get $lo))
        (block $ud
          (loop $upd
            (br_if $ud (i32.ge_s (i32.add (local.get $j) (i32.const 1)) (local.get $n)))
            (local.set $o (i32.shl (local.get $j) (i32.const 3)))
            (v128.store (i32.add (local.get $ri) (local.get $o))
              (f64x2.sub (v128.load (i32.add (local.get $ri) (local.get $o)))
                (f64x2.add
                  (f64x2.mul (local.get $uv) (v128.load (i32.add (local.get $va) (local.get $o))))
                  (f64x2.mul (local.get $yv) (v128.load (i32.add (local.get $vb) (local.get $o)))))))
            (local.set $j (i32.add (local.get $j) (i32.const 2)))
            (br $upd)))
        (if (i32.lt_s (local.get $j) (local.get $n))
          (then
            (local.set $o (i32.shl (local.get $j) (i32.const 3)))
            (f64.store (i32.add (local.get $ri) (local.get $o))
              (f64.sub (f64.load (i32.add (local.get $ri) (local.get $o)))
                (f64.add
                  (f64.mul (local.get $u) (f64.load (i32.add (local.get $va) (local.get $o))))
                  (f64.mul (local.get $y) (f64.load (i32.add (local.get $vb) (local.get $o)))))))))
        (local.set $i (i32.add (local.get $i) (local.get $step)))
        (br $rows))))

  (func (export "accumulate_single") (param $zt i32) (param $n i32) (param $va i32) (param $b f64) (param $i0 i32) (param $step i32)
    (local $i i32) (local $j i32) (local $ri i32) (local $o i32) (local $acc f64) (local $x f64)
    (local.set $i (local.get $i0))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
        (local.set $ri (i32.add (local.get $zt) (i32.shl (i32.mul (local.get $i) (local.get $n)) (i32.const 3))))
        (local.set $acc (f64.const 0))
        (local.set $j (i32.const 1))
        (block $dd
          (loop $dot
            (br_if $dd (i32.ge_s (local.get $j) (local.get $n)))
            (local.set $o (i32.shl (local.get $j) (i32.const 3)))
            (local.set $acc (f64.add (local.get $acc)
              (f64.mul (f64.load (i32.add (local.get $ri) (local.get $o))) (f64.load (i32.add (local.get $va) (local.get $o))))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $dot)))
        (local.set $x (f64.mul (local.get $b) (local.get $acc)))
        (local.set $j (i32.const 1))
        (block $ud
          (loop $upd
            (br_if $ud (i32.ge_s (local.get $j) (local.get $n)))
            (local.set $o (i32.shl (local.get $j) (i32.const 3)))
            (f64.store (i32.add (local.get $ri) (local.get $o))
              (f64.sub (f64.load (i32.add (local.get $ri) (local.get $o)))
                (f64.mul (local.get $x) (f64.load (i32.add (local.get $va) (local.get $o))))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $upd)))
        (local.set $i (i32.add (local.get $i) (local.get $step)))
        (br $rows))))

  (func (export "rot_chain")
    (param $zt i32) (param $n i32) (param $cs i32) (param $sn i32) (param $lo i32) (param $hi i32) (param $k0 i32) (param $k1 i32)
    (local $i i32) (local $k i32) (local $rb i32) (local $o i32)
    (local $r0 i32) (local $r1 i32) (local $r2 i32) (local $r3 i32) (local $r4 i32)
    (local $c0 f64) (local $s0 f64) (local $c1 f64) (local $s1 f64) (local $c2 f64) (local $s2 f64) (local $c3 f64) (local $s3 f64)
    (local $vc0 v128) (local $vs0 v128) (local $vc1 v128) (local $vs1 v128) (local $vc2 v128) (local $vs2 v128) (local $vc3 v128) (local $vs3 v128)
    (local $t v128) (local $z v128) (local $tf f64) (local $zf f64)
    (local.set $rb (i32.shl (local.get $n) (i32.const 3)))
    (local.set $i (local.get $hi))
    ;; four rotations (i, i-1, i-2, i-3) per pass over the columns
    (block $fours_done
      (loop $fours
        (br_if $fours_done (i32.lt_s (i32.sub (local.get $i) (i32.const 3)) (local.get $lo)))
        (local.set $o (i32.shl (local.get $i) (i32.const 3)))
        (local.set $c0 (f64.load (i32.add (local.get $cs) (local.get $o))))
        (local.set $s0 (f64.load (i32.add (local.get $sn) (local.get $o))))
        (local.set $c1 (f64.load offset=0 (i32.sub (i32.add (local.get $cs) (local.get $o)) (i32.const 8))))
        (local.set $s1 (f64.load offset=0 (i32.sub (i32.add (local.get $sn) (local.get $o)) (i32.const 8))))
        (local.set $c2 (f64.load offset=0 (i32.sub (i32.add (local.get $cs) (local.get $o)) (i32.const 16))))
        (local.set $s2 (f64.load offset=0 (i32.sub (i32.add (local.get $sn) (local.get $o)) (i32.const 16))))
        (local.set $c3 (f64.load offset=0 (i32.sub (i32.add (local.get $cs) (local.get $o)) (i32.const 24))))
        (local.set $s3 (f64.load offset=0 (i32.sub (i32.add (local.get $sn) (local.get $o)) (i32.const 24))))
        (local.set $vc0 (f64x2.splat (local.get $c0)))
        (local.set $vs0 (f64x2.splat (local.get $s0)))
        (local.set $vc1 (f64x2.splat (local.get $c1)))
        (local.set $vs1 (f64x2.splat (local.get $s1)))
        (local.set $vc2 (f64x2.splat (local.get $c2)))
        (local.set $vs2 (f64x2.splat (local.get $s2)))
        (local.set $vc3 (f64x2.splat (local.get $c3)))
        (local.set $vs3 (f64x2.splat (local.get $s3)))
        (local.set $r4 (i32.add (local.get $zt) (i32.mul (i32.add (local.get $i) (i32.const 1)) (local.get $rb))))
        (local.set $r3 (i32.sub (local.get $r4) (local.get $rb)))
        (local.set $r2 (i32.sub (local.get $r3) (local.get $rb)))
        (local.set $r1 (i32.sub (local.get $r2) (local.get $rb)))
        (local.set $r0 (i32.sub (local.get $r1) (local.get $rb)))
        (local.set $k (local.get $k0))
        (block $vd
          (loop $vec
            (br_if $vd (i32.ge_s (i32.add (local.get $k) (i32.const 1)) (local.get $k1)))
            (local.set $o (i32.shl (local.get $k) (i32.const 3)))
            (local.set $t (v128.load (i32.add (local.get $r4) (local.get $o))))
            (local.set $z (v128.load (i32.add (local.get $r3) (local.get $o))))
            (v128.store (i32.add (local.get $r4) (local.get $o))
              (f64x2.add (f64x2.mul (local.get $vs0) (local.get $z)) (f64x2.mul (local.get $vc0) (local.get $t))))
            (local.set $t (f64x2.sub (f64x2.mul (local.get $vc0) (local.get $z)) (f64x2.mul (local.get $vs0) (local.get $t))))
            (local.set $z (v128.load (i32.add (local.get $r2) (local.get $o))))
            (v128.store (i32.add (local.get $r3) (local.get $o))
              (f64x2.add (f64x2.mul (local.get $vs1) (local.get $z)) (f64x2.mul (local.get $vc1) (local.get $t))))
            (local.set $t (f64x2.sub (f64x2.mul (local.get $vc1) (local.get $z)) (f64x2.mul (local.get $vs1) (local.get $t))))
            (local.set $z (v128.load (i32.add (local.get $r1) (local.get $o))))
            (v128.store (i32.add (local.get $r2) (local.get $o))
              (f64x2.add (f64x2.mul (local.get $vs2) (local.get $z)) (f64x2.mul (local.get $vc2) (local.get $t))))
            (local.set $t (f64x2.sub (f64x2.mul (local.get $vc2) (local.get $z)) (f64x2.mul (local.get $vs2) (local.get $t))))
            (local.set $z (v128.load (i32.add (local.get $r0) (local.get $o))))
            (v128.store (i32.add (local.get $r1) (local.get $o))
              (f64x2.add (f64x2.mul (local.get $vs3) (local.get $z)) (f64x2.mul (local.get $vc3) (local.get $t))))
            (v128.store (i32.add (local.get $r0) (local.get $o))
              (f64x2.sub (f64x2.mul (local.get $vc3) (local.get $z)) (f64x2.mul (local.get $vs3) (local.get $t))))
            (local.set $k (i32.add (local.get $k) (i32.const 2)))
            (br $vec)))
        (if (i32.lt_s (local.get $k) (local.get $k1))
          (then
            (local.set $o (i32.shl (local.get $k) (i32.const 3)))
            (local.set $tf (f64.load (i32.add (local.get $r4) (local.get $o))))
            (local.set $zf (f64.load (i32.add (local.get $r3) (local.get $o))))
            (f64.store (i32.add (local.get $r4) (local.get $o))
              (f64.add (f64.mul (local.get $s0) (local.get $zf)) (f64.mul (local.get $c0) (local.get $tf))))
            (local.set $tf (f64.sub (f64.mul (local.get $c0) (local.get $zf)) (f64.mul (local.get $s0) (local.get $tf))))
            (local.set $zf (f64.load (i32.add (local.get $r2) (local.get $o))))
            (f64.store (i32.add (local.get $r3) (local.get $o))
              (f64.add (f64.mul (local.get $s1) (local.get $zf)) (f64.mul (local.get $c1) (local.get $tf))))
            (local.set $tf (f64.sub (f64.mul (local.get $c1) (local.get $zf)) (f64.mul (local.get $s1) (local.get $tf))))
            (local.set $zf (f64.load (i32.add (local.get $r1) (local.get $o))))
            (f64.store (i32.add (local.get $r2) (local.get $o))
              (f64.add (f64.mul (local.get $s2) (local.get $zf)) (f64.mul (local.get $c2) (local.get $tf))))
            (local.set $tf (f64.sub (f64.mul (local.get $c2) (local.get $zf)) (f64.mul (local.get $s2) (local.get $tf))))
            (local.set $zf (f64.load (i32.add (local.get $r0) (local.get $o))))
            (f64.store (i32.add (local.get $r1) (local.get $o))
              (f64.add (f64.mul (local.get $s3) (local.get $zf)) (f64.mul (local.get $c3) (local.get $tf))))
            (f64.store (i32.add (local.get $r0) (local.get $o))
              (f64.sub (f64.mul (local.get $c3) (local.get $zf)) (f64.mul (local.get $s3) (local.get $tf))))))
        (local.set $i (i32.sub (local.get $i) (i32.const 4)))
        (br $fours)))
    ;; the remaining rotations one at a time
    (block $ones_done
      (loop $ones
        (br_if $ones_done (i32.lt_s (local.get $i) (local.get $lo)))
        (local.set $o (i32.shl (local.get $i) (i32.const 3)))
        (local.set $vc0 (v128.load64_splat (i32.add (local.get $cs) (local.get $o))))
        (local.set $vs0 (v128.load64_splat (i32.add (local.get $sn) (local.get $o))))
        (local.set $c0 (f64x2.extract_lane 0 (local.get $vc0)))
        (local.set $s0 (f64x2.extract_lane 0 (local.get $vs0)))
        (local.set $r0 (i32.add (local.get $zt) (i32.mul (local.get $i) (local.get $rb))))
        (local.set $r1 (i32.add (local.get $r0) (local.get $rb)))
        (local.set $k (local.get $k0))
        (block $vd1
          (loop $vec1
            (br_if $vd1 (i32.ge_s (i32.add (local.get $k) (i32.const 1)) (local.get $k1)))
            (local.set $o (i32.shl (local.get $k) (i32.const 3)))
            (local.set $z (v128.load (i32.add (local.get $r0) (local.get $o))))
            (local.set $t (v128.load (i32.add (local.get $r1) (local.get $o))))
            (v128.store (i32.add (local.get $r1) (local.get $o))
              (f64x2.add (f64x2.mul (local.get $vs0) (local.get $z)) (f64x2.mul (local.get $vc0) (local.get $t))))
            (v128.store (i32.add (local.get $r0) (local.get $o))
              (f64x2.sub (f64x2.mul (local.get $vc0) (local.get $z)) (f64x2.mul (local.get $vs0) (local.get $t))))
            (local.set $k (i32.add (local.get $k) (i32.const 2)))
            (br $vec1)))
        (if (i32.lt_s (local.get $k) (local.get $k1))
          (then
            (local.set $o (i32.shl (local.get $k) (i32.const 3)))
            (local.set $zf (f64.load (i32.add (local.get $r0) (local.get $o))))
            (local.set $tf (f64.load (i32.add (local.get $r1) (local.get $o))))
            (f64.store (i32.add (local.get $r1) (local.get $o))
              (f64.add (f64.mul (local.get $s0) (local.get $zf)) (f64.mul (local.get $c0) (local.get $tf))))
            (f64.store (i32.add (local.get $r0) (local.get $o))
              (f64.sub (f64.mul (local.get $c0) (local.get $zf)) (f64.mul (local.get $s0) (local.get $tf))))))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $ones))))
)
