;; sparse_gram: the raw Gram Σ x xᵀ (upper triangle) and column sums Σ x of mostly-zero float32
;; rows, accumulated in float64 over each row's non-zeros only (src/cpu/sparse-gram.ts's
;; SparseGramF64.add is the reference). It gives the reference's bits: each Gram entry (a, b)
;; receives one product x_a·x_b per row whose a and b are both non-zero, rows in order, and each
;; sum one x_a per row; within a row the entries are distinct, so the order of the pairs does not
;; matter. (No SIMD: the updates are scattered; what this saves over JS is bounds checks and
;; boxed loads, and the pair loop is unrolled by four for independent adds.)
;;
;; Exports:
;;   memory                          one private linear memory; the caller grows it once.
;;   add_rows(x, rows, d, g, s, idx, val)
;;       x: rows × d float32 (row-major); g: d × d float64 (only i <= j written); s: d float64;
;;       idx: d i32 and val: d float64 of scratch. Adds every row's x_a·x_b (a <= b, both
;;       non-zero) into g[a, b] and x_a into s[a].
;; Invariants: every region 8-byte aligned and disjoint; d >= 1.
(module
  (memory (export "memory") 1)

  (func (export "add_rows")
    (param $x i32) (param $rows i32) (param $d i32) (param $g i32) (param $s i32) (param $idx i32) (param $val i32)
    (local $r i32) (local $j i32) (local $m i32) (local $a i32) (local $b i32) (local $v f64) (local $va f64)
    (local $row i32) (local $xr i32) (local $rowb i32) (local $p i32) (local $q i32) (local $end i32) (local $o i32)
    (local.set $rowb (i32.shl (local.get $d) (i32.const 3)))
    (local.set $xr (local.get $x))
    (block $rows_done
      (loop $rows_loop
        (br_if $rows_done (i32.ge_s (local.get $r) (local.get $rows)))
        ;; gather: idx[m] = 8·j (the column's byte offset in a Gram row), val[m] = x_j
        (local.set $m (i32.const 0))
        (local.set $j (i32.const 0))
        (block $g_done
          (loop $gather
            (br_if $g_done (i32.ge_s (local.get $j) (local.get $d)))
            (local.set $v (f64.promote_f32 (f32.load (i32.add (local.get $xr) (i32.shl (local.get $j) (i32.const 2))))))
            (if (f64.ne (local.get $v) (f64.const 0))
              (then
                (i32.store (i32.add (local.get $idx) (i32.shl (local.get $m) (i32.const 2))) (i32.shl (local.get $j) (i32.const 3)))
                (f64.store (i32.add (local.get $val) (i32.shl (local.get $m) (i32.const 3))) (local.get $v))
                (local.set $m (i32.add (local.get $m) (i32.const 1)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $gather)))
        (local.set $end (i32.add (local.get $idx) (i32.shl (local.get $m) (i32.const 2))))
        (local.set $a (i32.const 0))
        (block $a_done
          (loop $pairs
            (br_if $a_done (i32.ge_s (local.get $a) (local.get $m)))
            (local.set $o (i32.load (i32.add (local.get $idx) (i32.shl (local.get $a) (i32.const 2)))))
            (local.set $va (f64.load (i32.add (local.get $val) (i32.shl (local.get $a) (i32.const 3)))))
            ;; s[a] += x_a
            (f64.store (i32.add (local.get $s) (local.get $o))
              (f64.add (f64.load (i32.add (local.get $s) (local.get $o))) (local.get $va)))
            ;; row = &g[a, 0]
            (local.set $row (i32.add (local.get $g) (i32.mul (i32.shr_u (local.get $o) (i32.const 3)) (local.get $rowb))))
            (local.set $p (i32.add (local.get $idx) (i32.shl (local.get $a) (i32.const 2))))
            (local.set $q (i32.add (local.get $val) (i32.shl (local.get $a) (i32.const 3))))
            (block $b4_done
              (loop $b4
                (br_if $b4_done (i32.ge_u (i32.add (local.get $p) (i32.const 12)) (local.get $end)))
                (local.set $o (i32.add (local.get $row) (i32.load (local.get $p))))
                (f64.store (local.get $o) (f64.add (f64.load (local.get $o)) (f64.mul (local.get $va) (f64.load (local.get $q)))))
                (local.set $o (i32.add (local.get $row) (i32.load offset=4 (local.get $p))))
                (f64.store (local.get $o) (f64.add (f64.load (local.get $o)) (f64.mul (local.get $va) (f64.load offset=8 (local.get $q)))))
                (local.set $o (i32.add (local.get $row) (i32.load offset=8 (local.get $p))))
                (f64.store (local.get $o) (f64.add (f64.load (local.get $o)) (f64.mul (local.get $va) (f64.load offset=16 (local.get $q)))))
                (local.set $o (i32.add (local.get $row) (i32.load offset=12 (local.get $p))))
                (f64.store (local.get $o) (f64.add (f64.load (local.get $o)) (f64.mul (local.get $va) (f64.load offset=24 (local.get $q)))))
                (local.set $p (i32.add (local.get $p) (i32.const 16)))
                (local.set $q (i32.add (local.get $q) (i32.const 32)))
                (br $b4)))
            (block $b1_done
              (loop $b1
                (br_if $b1_done (i32.ge_u (local.get $p) (local.get $end)))
                (local.set $o (i32.add (local.get $row) (i32.load (local.get $p))))
                (f64.store (local.get $o) (f64.add (f64.load (local.get $o)) (f64.mul (local.get $va) (f64.load (local.get $q)))))
                (local.set $p (i32.add (local.get $p) (i32.const 4)))
                (local.set $q (i32.add (local.get $q) (i32.const 8)))
                (br $b1)))
            (local.set $a (i32.add (local.get $a) (i32.const 1)))
            (br $pairs)))
        (local.set $xr (i32.add (local.get $xr) (i32.shl (local.get $d) (i32.const 2))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rows_loop))))
)
