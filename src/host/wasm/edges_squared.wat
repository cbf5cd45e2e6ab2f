;; edges_squared: the per-row arithmetic of the host squared-edge pass (src/host/edges-squared.ts)
;; in WebAssembly SIMD, two float64 lanes per v128 over the columns j. The JS loops of
;; edges-squared.ts (updateRow, updateRowIdentity) are the reference; this module gives the same
;; bits: every entry sees the same float64 operations in the same order (f64x2.mul then f64x2.add,
;; never fused: no relaxed-SIMD), lanes are independent columns, and the register blocking only
;; changes which entries are computed together, never the order of one entry's sum.
;;
;; Exports:
;;   memory                       one private (non-shared) linear memory; the caller grows it once
;;                                to its layout and keeps typed-array views over it.
;;   update_row(nf, fresh, ro4, rp, A, B, J, E, F, U, C, S, BO)
;;     With A given: for every row i < ro4 and column j < rp
;;       J[i, j] = (fresh ? 0 : J[i, j]) + Σ_{k < nf, in order} (C[k]·A[U[k], i])·B[U[k], j]
;;       E[i, j] += (J[i, j]·F[j])²
;;   update_row_identity(nf, fresh, h, rp, B, J, E, F, U, C)
;;     With the identity A (ro = h): J = 0 when fresh; J[U[k], :] += C[k]·B[U[k], :] for k < nf;
;;     then E[i, j] += (J[i, j]·F[j])² over all h × rp entries.
;;
;; Memory layout (every argument after the sizes is a byte offset into memory, 16-byte aligned):
;;   A  f64 [h × ro4]   the next basis rows a_h, rows padded from ro to ro4 = ⌈ro/4⌉·4 with zeros
;;   B  f64 [h × rp]    b_h, columns padded from r to rp = ⌈r/4⌉·4 with zeros
;;   J  f64 [ro4 × rp]  the carried Jacobian (h × rp for the identity)
;;   E  f64 [ro4 × rp]  the squared sums being added into (h × rp for the identity)
;;   F  f64 [rp]        this row's f̂, padded with zeros
;;   U  i32 [nf]        the row's listed units (indices < h), C f64 [nf] their coefficients
;;   S  f64 [4·nf]      scratch: S[4k + q] = C[k]·A[U[k], i + q] for the current four rows
;;   BO i32 [nf]        scratch: byte offset of row U[k] of B
;; Invariants: ro4 and rp are multiples of 4; the regions do not overlap; padded entries of A, B and
;; F are zero, so padded rows and columns of J and E hold values the caller never reads (they may
;; be NaN where B holds ±∞; they never mix into real entries: lanes and rows are independent).
;; Blocking: 4 rows × 4 columns of J in eight v128 accumulators across all listed units; each
;; pair of B loads serves four rows and each S value is one load-and-splat, so the inner loop does
;; 16 SIMD multiply/adds per 6 loads and J and E are loaded and stored once per row.
(module
  (memory (export "memory") 1)

  (func (export "update_row")
    (param $nf i32) (param $fresh i32) (param $ro4 i32) (param $rp i32)
    (param $A i32) (param $B i32) (param $J i32) (param $E i32) (param $F i32)
    (param $U i32) (param $C i32) (param $S i32) (param $BO i32)
    (local $rowb i32) (local $arow i32) (local $i i32) (local $jb i32) (local $k i32)
    (local $p i32) (local $q i32) (local $end i32) (local $o i32) (local $bo i32) (local $e i32)
    (local $c v128) (local $x0 v128) (local $x1 v128) (local $s v128) (local $f0 v128) (local $f1 v128)
    (local $a00 v128) (local $a01 v128) (local $a10 v128) (local $a11 v128)
    (local $a20 v128) (local $a21 v128) (local $a30 v128) (local $a31 v128)
    (local.set $rowb (i32.shl (local.get $rp) (i32.const 3)))
    (local.set $arow (i32.shl (local.get $ro4) (i32.const 3)))
    ;; BO[k] = B + U[k]·rowb, once per row.
    (local.set $k (i32.const 0))
    (block $bo_done
      (loop $bo_loop
        (br_if $bo_done (i32.ge_u (local.get $k) (local.get $nf)))
        (i32.store
          (i32.add (local.get $BO) (i32.shl (local.get $k) (i32.const 2)))
          (i32.add (local.get $B)
            (i32.mul (i32.load (i32.add (local.get $U) (i32.shl (local.get $k) (i32.const 2)))) (local.get $rowb))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $bo_loop)))
    (local.set $end (i32.add (local.get $BO) (i32.shl (local.get $nf) (i32.const 2))))
    (local.set $i (i32.const 0))
    (block $rows_done
      (loop $rows
        (br_if $rows_done (i32.ge_u (local.get $i) (local.get $ro4)))
        ;; S[4k + q] = C[k]·A[U[k], i + q], q < 4 (the same product as the JS coef[k]·a[…]).
        (local.set $k (i32.const 0))
        (block $s_done
          (loop $s_loop
            (br_if $s_done (i32.ge_u (local.get $k) (local.get $nf)))
            (local.set $c (v128.load64_splat (i32.add (local.get $C) (i32.shl (local.get $k) (i32.const 3)))))
            (local.set $o
              (i32.add (local.get $A)
                (i32.add
                  (i32.mul (i32.load (i32.add (local.get $U) (i32.shl (local.get $k) (i32.const 2)))) (local.get $arow))
                  (i32.shl (local.get $i) (i32.const 3)))))
            (local.set $q (i32.add (local.get $S) (i32.shl (local.get $k) (i32.const 5))))
            (v128.store (local.get $q) (f64x2.mul (local.get $c) (v128.load (local.get $o))))
            (v128.store offset=16 (local.get $q) (f64x2.mul (local.get $c) (v128.load offset=16 (local.get $o))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $s_loop)))
        ;; Four columns at a time across the row block.
        (local.set $jb (i32.const 0))
        (block $cols_done
          (loop $cols
            (br_if $cols_done (i32.ge_u (local.get $jb) (local.get $rowb)))
            ;; $o: byte offset of J[i, j] (and, relative to E, of E[i, j]).
            (local.set $o (i32.add (i32.mul (local.get $i) (local.get $rowb)) (local.get $jb)))
            (if (local.get $fresh)
              (then
                (local.set $a00 (v128.const f64x2 0 0)) (local.set $a01 (v128.const f64x2 0 0))
                (local.set $a10 (v128.const f64x2 0 0)) (local.set $a11 (v128.const f64x2 0 0))
                (local.set $a20 (v128.const f64x2 0 0)) (local.set $a21 (v128.const f64x2 0 0))
                (local.set $a30 (v128.const f64x2 0 0)) (local.set $a31 (v128.const f64x2 0 0)))
              (else
                (local.set $p (i32.add (local.get $J) (local.get $o)))
                (local.set $a00 (v128.load (local.get $p))) (local.set $a01 (v128.load offset=16 (local.get $p)))
                (local.set $p (i32.add (local.get $p) (local.get $rowb)))
                (local.set $a10 (v128.load (local.get $p))) (local.set $a11 (v128.load offset=16 (local.get $p)))
                (local.set $p (i32.add (local.get $p) (local.get $rowb)))
                (local.set $a20 (v128.load (local.get $p))) (local.set $a21 (v128.load offset=16 (local.get $p)))
                (local.set $p (i32.add (local.get $p) (local.get $rowb)))
                (local.set $a30 (v128.load (local.get $p))) (local.set $a31 (v128.load offset=16 (local.get $p)))))
            ;; Σ over the listed units, in the listed order.
            (local.set $p (local.get $BO))
            (local.set $q (local.get $S))
            (block $k_done
              (loop $k_loop
                (br_if $k_done (i32.ge_u (local.get $p) (local.get $end)))
                (local.set $bo (i32.add (i32.load (local.get $p)) (local.get $jb)))
                (local.set $x0 (v128.load (local.get $bo)))
                (local.set $x1 (v128.load offset=16 (local.get $bo)))
                (local.set $s (v128.load64_splat (local.get $q)))
                (local.set $a00 (f64x2.add (local.get $a00) (f64x2.mul (local.get $s) (local.get $x0))))
                (local.set $a01 (f64x2.add (local.get $a01) (f64x2.mul (local.get $s) (local.get $x1))))
                (local.set $s (v128.load64_splat offset=8 (local.get $q)))
                (local.set $a10 (f64x2.add (local.get $a10) (f64x2.mul (local.get $s) (local.get $x0))))
                (local.set $a11 (f64x2.add (local.get $a11) (f64x2.mul (local.get $s) (local.get $x1))))
                (local.set $s (v128.load64_splat offset=16 (local.get $q)))
                (local.set $a20 (f64x2.add (local.get $a20) (f64x2.mul (local.get $s) (local.get $x0))))
                (local.set $a21 (f64x2.add (local.get $a21) (f64x2.mul (local.get $s) (local.get $x1))))
                (local.set $s (v128.load64_splat offset=24 (local.get $q)))
                (local.set $a30 (f64x2.add (local.get $a30) (f64x2.mul (local.get $s) (local.get $x0))))
                (local.set $a31 (f64x2.add (local.get $a31) (f64x2.mul (local.get $s) (local.get $x1))))
                (local.set $p (i32.add (local.get $p) (i32.const 4)))
                (local.set $q (i32.add (local.get $q) (i32.const 32)))
                (br $k_loop)))
            ;; Store J; E += (J·f)² (E + v², as the JS E[…] += v·v).
            (local.set $p (i32.add (local.get $J) (local.get $o)))
            (v128.store (local.get $p) (local.get $a00)) (v128.store offset=16 (local.get $p) (local.get $a01))
            (local.set $p (i32.add (local.get $p) (local.get $rowb)))
            (v128.store (local.get $p) (local.get $a10)) (v128.store offset=16 (local.get $p) (local.get $a11))
            (local.set $p (i32.add (local.get $p) (local.get $rowb)))
            (v128.store (local.get $p) (local.get $a20)) (v128.store offset=16 (local.get $p) (local.get $a21))
            (local.set $p (i32.add (local.get $p) (local.get $rowb)))
            (v128.store (local.get $p) (local.get $a30)) (v128.store offset=16 (local.get $p) (local.get $a31))
            (local.set $f0 (v128.load (i32.add (local.get $F) (local.get $jb))))
            (local.set $f1 (v128.load offset=16 (i32.add (local.get $F) (local.get $jb))))
            (local.set $e (i32.add (local.get $E) (local.get $o)))
            (local.set $x0 (f64x2.mul (local.get $a00) (local.get $f0)))
            (v128.store (local.get $e) (f64x2.add (v128.load (local.get $e)) (f64x2.mul (local.get $x0) (local.get $x0))))
            (local.set $x1 (f64x2.mul (local.get $a01) (local.get $f1)))
            (v128.store offset=16 (local.get $e) (f64x2.add (v128.load offset=16 (local.get $e)) (f64x2.mul (local.get $x1) (local.get $x1))))
            (local.set $e (i32.add (local.get $e) (local.get $rowb)))
            (local.set $x0 (f64x2.mul (local.get $a10) (local.get $f0)))
            (v128.store (local.get $e) (f64x2.add (v128.load (local.get $e)) (f64x2.mul (local.get $x0) (local.get $x0))))
            (local.set $x1 (f64x2.mul (local.get $a11) (local.get $f1)))
            (v128.store offset=16 (local.get $e) (f64x2.add (v128.load offset=16 (local.get $e)) (f64x2.mul (local.get $x1) (local.get $x1))))
            (local.set $e (i32.add (local.get $e) (local.get $rowb)))
            (local.set $x0 (f64x2.mul (local.get $a20) (local.get $f0)))
            (v128.store (local.get $e) (f64x2.add (v128.load (local.get $e)) (f64x2.mul (local.get $x0) (local.get $x0))))
            (local.set $x1 (f64x2.mul (local.get $a21) (local.get $f1)))
            (v128.store offset=16 (local.get $e) (f64x2.add (v128.load offset=16 (local.get $e)) (f64x2.mul (local.get $x1) (local.get $x1))))
            (local.set $e (i32.add (local.get $e) (local.get $rowb)))
            (local.set $x0 (f64x2.mul (local.get $a30) (local.get $f0)))
            (v128.store (local.get $e) (f64x2.add (v128.load (local.get $e)) (f64x2.mul (local.get $x0) (local.get $x0))))
            (local.set $x1 (f64x2.mul (local.get $a31) (local.get $f1)))
            (v128.store offset=16 (local.get $e) (f64x2.add (v128.load offset=16 (local.get $e)) (f64x2.mul (local.get $x1) (local.get $x1))))
            (local.set $jb (i32.add (local.get $jb) (i32.const 32)))
            (br $cols)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $rows))))

  (func (export "update_row_identity")
    (param $nf i32) (param $fresh i32) (param $h i32) (param $rp i32)
    (param $B i32) (param $J i32) (param $E i32) (param $F i32) (param $U i32) (param $C i32)
    (local $rowb i32) (local $k i32) (local $o i32) (local $p i32) (local $end i32) (local $jb i32)
    (local $c v128) (local $v v128)
    (local.set $rowb (i32.shl (local.get $rp) (i32.const 3)))
    (if (local.get $fresh)
      (then (memory.fill (local.get $J) (i32.const 0) (i32.mul (local.get $h) (local.get $rowb)))))
    ;; J[U[k], :] += C[k]·B[U[k], :] (units are distinct, so each entry gets at most one term).
    (local.set $k (i32.const 0))
    (block $k_done
      (loop $k_loop
        (br_if $k_done (i32.ge_u (local.get $k) (local.get $nf)))
        (local.set $c (v128.load64_splat (i32.add (local.get $C) (i32.shl (local.get $k) (i32.const 3)))))
        (local.set $o (i32.mul (i32.load (i32.add (local.get $U) (i32.shl (local.get $k) (i32.const 2)))) (local.get $rowb)))
        (local.set $jb (i32.const 0))
        (block $j_done
          (loop $j_loop
            (br_if $j_done (i32.ge_u (local.get $jb) (local.get $rowb)))
            (local.set $p (i32.add (local.get $o) (local.get $jb)))
            (v128.store (i32.add (local.get $J) (local.get $p))
              (f64x2.add
                (v128.load (i32.add (local.get $J) (local.get $p)))
                (f64x2.mul (local.get $c) (v128.load (i32.add (local.get $B) (local.get $p))))))
            (local.set $jb (i32.add (local.get $jb) (i32.const 16)))
            (br $j_loop)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $k_loop)))
    ;; E += (J·f)² over every entry; $p walks J and E together, $jb the columns of F.
    (local.set $p (i32.const 0))
    (local.set $end (i32.mul (local.get $h) (local.get $rowb)))
    (local.set $jb (i32.const 0))
    (block $e_done
      (loop $e_loop
        (br_if $e_done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $v
          (f64x2.mul (v128.load (i32.add (local.get $J) (local.get $p))) (v128.load (i32.add (local.get $F) (local.get $jb)))))
        (v128.store (i32.add (local.get $E) (local.get $p))
          (f64x2.add (v128.load (i32.add (local.get $E) (local.get $p))) (f64x2.mul (local.get $v) (local.get $v))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (local.set $jb (i32.add (local.get $jb) (i32.const 16)))
        (if (i32.ge_u (local.get $jb) (local.get $rowb)) (then (local.set $jb (i32.const 0))))
        (br $e_loop))))
)
