;; matmul: C = A·B in float64 with WebAssembly SIMD, for the host's linear algebra (the bases
;; stage's products, src/host/matmul.ts). matmulF64 (src/cpu/matmul.ts) is the reference and this
;; gives its bits: every C[i, j] is the sum over q = 0, 1, …, k-1 in order of A[i, q]·B[q, j],
;; started from zero (mul then add, no FMA); a lane holds one column, so the order is the
;; reference's.
;;
;; Exports:
;;   memory                     one private linear memory; the caller grows it once.
;;   gemm(A, B, C, m, n, k)     A: m × k row-major; B: k × n row-major with n a multiple of 4 (the
;;                              caller pads with zeros); C: m × n, overwritten.
;; Blocking: column panels of 64 (a panel of B, k × 64 float64, stays in L2 while every row block
;; passes over it), 4 rows × 4 columns in eight f64x2 accumulators; the last m % 4 rows one at a
;; time (1 × 4 blocks). Regions disjoint; every offset 16-byte aligned.
(module
  (memory (export "memory") 1)

  (func (export "gemm") (param $A i32) (param $B i32) (param $C i32) (param $m i32) (param $n i32) (param $k i32)
    (local $jp i32) (local $jpEnd i32) (local $i i32) (local $j i32) (local $q i32) (local $m4 i32)
    (local $nb i32) (local $kb i32) (local $a0 i32) (local $bq i32) (local $c i32)
    (local $x00 v128) (local $x01 v128) (local $x10 v128) (local $x11 v128)
    (local $x20 v128) (local $x21 v128) (local $x30 v128) (local $x31 v128)
    (local $b0 v128) (local $b1 v128) (local $s v128)
    (local.set $nb (i32.shl (local.get $n) (i32.const 3)))
    (local.set $kb (i32.shl (local.get $k) (i32.const 3)))
    (local.set $m4 (i32.and (local.get $m) (i32.const -4)))
    (block $panels_done
      (loop $panels
        (br_if $panels_done (i32.ge_s (local.get $jp) (local.get $n)))
        (local.set $jpEnd (i32.add (local.get $jp) (i32.const 64)))
        (if (i32.gt_s (local.get $jpEnd) (local.get $n)) (then (local.set $jpEnd (local.get $n))))
        ;; rows in blocks of four
        (local.set $i (i32.const 0))
        (block $rows4_done
          (loop $rows4
            (br_if $rows4_done (i32.ge_s (local.get $i) (local.get $m4)))
            (local.set $j (local.get $jp))
            (block $cols_done
              (loop $cols
                (br_if $cols_done (i32.ge_s (local.get $j) (local.get $jpEnd)))
                (local.set $x00 (v128.const f64x2 0 0)) (local.set $x01 (v128.const f64x2 0 0))
                (local.set $x10 (v128.const f64x2 0 0)) (local.set $x11 (v128.const f64x2 0 0))
                (local.set $x20 (v128.const f64x2 0 0)) (local.set $x21 (v128.const f64x2 0 0))
                (local.set $x30 (v128.const f64x2 0 0)) (local.set $x31 (v128.const f64x2 0 0))
                (local.set $a0 (i32.add (local.get $A) (i32.mul (local.get $i) (local.get $kb))))
                (local.set $bq (i32.add (local.get $B) (i32.shl (local.get $j) (i32.const 3))))
                (local.set $q (i32.const 0))
                (block $k_done
                  (loop $kl
                    (br_if $k_done (i32.ge_s (local.get $q) (local.get $k)))
                    (local.set $b0 (v128.load (local.get $bq)))
                    (local.set $b1 (v128.load offset=16 (local.get $bq)))
                    (local.set $s (v128.load64_splat (local.get $a0)))
                    (local.set $x00 (f64x2.add (local.get $x00) (f64x2.mul (local.get $s) (local.get $b0))))
                    (local.set $x01 (f64x2.add (local.get $x01) (f64x2.mul (local.get $s) (local.get $b1))))
                    (local.set $s (v128.load64_splat (i32.add (local.get $a0) (local.get $kb))))
                    (local.set $x10 (f64x2.add (local.get $x10) (f64x2.mul (local.get $s) (local.get $b0))))
                    (local.set $x11 (f64x2.add (local.get $x11) (f64x2.mul (local.get $s) (local.get $b1))))
                    (local.set $s (v128.load64_splat (i32.add (local.get $a0) (i32.shl (local.get $kb) (i32.const 1)))))
                    (local.set $x20 (f64x2.add (local.get $x20) (f64x2.mul (local.get $s) (local.get $b0))))
                    (local.set $x21 (f64x2.add (local.get $x21) (f64x2.mul (local.get $s) (local.get $b1))))
                    (local.set $s (v128.load64_splat (i32.add (local.get $a0) (i32.mul (local.get $kb) (i32.const 3)))))
                    (local.set $x30 (f64x2.add (local.get $x30) (f64x2.mul (local.get $s) (local.get $b0))))
                    (local.set $x31 (f64x2.add (local.get $x31) (f64x2.mul (local.get $s) (local.get $b1))))
                    (local.set $a0 (i32.add (local.get $a0) (i32.const 8)))
                    (local.set $bq (i32.add (local.get $bq) (local.get $nb)))
                    (local.set $q (i32.add (local.get $q) (i32.const 1)))
                    (br $kl)))
                (local.set $c (i32.add (local.get $C) (i32.add (i32.mul (local.get $i) (local.get $nb)) (i32.shl (local.get $j) (i32.const 3)))))
                (v128.store (local.get $c) (local.get $x00))
                (v128.store offset=16 (local.get $c) (local.get $x01))
                (local.set $c (i32.add (local.get $c) (local.get $nb)))
                (v128.store (local.get $c) (local.get $x10))
                (v128.store offset=16 (local.get $c) (local.get $x11))
                (local.set $c (i32.add (local.get $c) (local.get $nb)))
                (v128.store (local.get $c) (local.get $x20))
                (v128.store offset=16 (local.get $c) (local.get $x21))
                (local.set $c (i32.add (local.get $c) (local.get $nb)))
                (v128.store (local.get $c) (local.get $x30))
                (v128.store offset=16 (local.get $c) (local.get $x31))
                (local.set $j (i32.add (local.get $j) (i32.const 4)))
                (br $cols)))
            (local.set $i (i32.add (local.get $i) (i32.const 4)))
            (br $rows4)))
        ;; the last m % 4 rows, one at a time
        (block $rows1_done
          (loop $rows1
            (br_if $rows1_done (i32.ge_s (local.get $i) (local.get $m)))
            (local.set $j (local.get $jp))
            (block $cols1_done
              (loop $cols1
                (br_if $cols1_done (i32.ge_s (local.get $j) (local.get $jpEnd)))
                (local.set $x00 (v128.const f64x2 0 0)) (local.set $x01 (v128.const f64x2 0 0))
                (local.set $a0 (i32.add (local.get $A) (i32.mul (local.get $i) (local.get $kb))))
                (local.set $bq (i32.add (local.get $B) (i32.shl (local.get $j) (i32.const 3))))
                (local.set $q (i32.const 0))
                (block $k1_done
                  (loop $kl1
                    (br_if $k1_done (i32.ge_s (local.get $q) (local.get $k)))
                    (local.set $s (v128.load64_splat (local.get $a0)))
                    (local.set $x00 (f64x2.add (local.get $x00) (f64x2.mul (local.get $s) (v128.load (local.get $bq)))))
                    (local.set $x01 (f64x2.add (local.get $x01) (f64x2.mul (local.get $s) (v128.load offset=16 (local.get $bq)))))
                    (local.set $a0 (i32.add (local.get $a0) (i32.const 8)))
                    (local.set $bq (i32.add (local.get $bq) (local.get $nb)))
                    (local.set $q (i32.add (local.get $q) (i32.const 1)))
                    (br $kl1)))
                (local.set $c (i32.add (local.get $C) (i32.add (i32.mul (local.get $i) (local.get $nb)) (i32.shl (local.get $j) (i32.const 3)))))
                (v128.store (local.get $c) (local.get $x00))
                (v128.store offset=16 (local.get $c) (local.get $x01))
                (local.set $j (i32.add (local.get $j) (i32.const 4)))
                (br $cols1)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $rows1)))
        (local.set $jp (local.get $jpEnd))
        (br $panels)))))
