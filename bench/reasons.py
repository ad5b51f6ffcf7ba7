"""Why Numba or Cython loses an op by more than 20% (issue 4's head-to-head table).

(op, size) -> one line, shown after "cython slower in this run; the analysis on record
for this pair: " (or numba): a line was written when one side lost, and a later run may
find the other side slower; the line is the pair's analysis, not that run's verdict.
Every line
states what was measured (interleaved A/B in one process, 1 and 2 threads, on the
shared 2-core machine, 2026-11-28; scripts in the kernels engineer's report), not a
guess; where a cause was not isolated the line says so. An op that loses by more than
20% with no entry here is shown as "not analysed yet".

Numbers behind the per-call lines (1 thread, median of 15 x 2000 calls):
- a Cython ``def`` over fused typed memoryviews costs ~0.27 us per array argument
  (two arrays: 0.60 us; plus 0.17 us for the fused-type dispatch), measured on a
  minimal kernel; until d9d86fa an OpenMP region with one thread added ~0.6-1 us to
  every small call;
- a numba kernel through ``config.Kernel.__call__`` costs ~0.5 us (0.28 us for the
  compiled dispatch); a 1-element relu through each backend's wrapper: numba 1.5 us,
  cython 1.1 us.
Course-size calls take 1-12 us, so a few tenths of a microsecond are 10-40%.

Since then the elementwise entries (activations and their backward passes, 855b32d),
the Linear, softmax cross-entropy with labels, SGD and Adam entries (2356fe5), and the
elementwise losses, the probability cross-entropy and the softmax rows (after it) read
the ndarrays' data pointers after C checks instead of acquiring memoryviews (a 1x1 Linear
forward 2.5 -> 1.1 us, an SGD update of 4 values 2.7 -> 0.6 us, mse_loss on 128x10
3.6 -> 2.1 us against numba's 2.9, softmax_backward 2.6 -> 1.65 against 1.6, on the
2-core AMD host): the lines below that blame memoryviews for those ops describe the
builds before, until a run on the Xeon says whether they still lose. BatchNorm, dropout
and LayerNorm followed on 5 Dec 2026, and the other optimizer entries (Adagrad, RMSprop,
Adamax, NAdam/RAdam, Adadelta, Rprop, ASGD) on 6 Dec: 340 float32 values, 1 thread,
callgrind, 19,800-39,900 -> 7,200-20,200 instructions a call (Rprop 25,000 -> 7,800).
"""

_ENTRY_3 = ("per-call cost, not the loop: a 2-10 us call where Cython's entry acquires a "
            "typed memoryview per array (~0.27 us each); at 16M values the same ops run "
            "level (0.86-1.06x, interleaved, 1 and 2 threads)")
_ENTRY_BN = ("per-call cost on a 3-8 us call: until 61bf3b5 Cython's entries "
             "acquired 8-9 typed memoryviews (~0.27 us each); they now read the arrays' "
             "pointers (_ndarrays.pxd): 16x100 float32, 1 thread, forward 7.5 -> 4.4-5.3 us, "
             "backward 6.8 -> 3.1 us (numba 4.3 and 4.6 us), 45,700 -> 20,600 and 48,300 "
             "-> 18,900 instructions a call")
_ENTRY_LOSS = ("per-call cost: 1.7-2.7 us calls where Cython's entry (three memoryviews, "
               "~0.8 us) outweighs numba's (~0.5 us); 16M values run level (0.85-1.14x)")
_CLAMPS = ("same formula as numba's (one exp, one division), but gcc compiles the "
           "NaN-preserving clamps (a < lo ? lo : a) as compare + blend pairs (34-35 "
           "instructions per 16 values in the main loop): 0.37-0.39 vs 0.33 ns per value "
           "in cache (1 thread, 64K values; 0.43-0.45 before 1be8c73)")
_SIN_CODEGEN = ("same algorithms in both (sine: fnn_sinf / vmath.sin_fast, since d9fb05e on "
                "|x| with an int quadrant and the signs XORed into the result, 64K float32 "
                "in cache, 1 thread, 0.317 Cython vs 0.344 ns per value numba; "
                "sine_backward: fnn_cosf / vmath._cos32, where gcc rewrites p*z*r + r as "
                "r*(1 + z*p)); at 16M the 2-thread gap moved between 1.2x and 1.6x in "
                "loaded runs")
_BN_PLANES = ("BatchNorm2d (32x128x16x16): until 2026-12-03 Cython summed a channel in "
              "one parallel loop and wrote grad_in (and y) in a second, so the second read "
              "of the planes came from L3, and both backends added each value in double; "
              "now each channel is one task in both (statistics or sums, then the output, "
              "its planes still in L2) and the backward's sums add 1024-value spans in "
              "x's type: interleaved, 2 threads, backward numba 285 / Cython 284 us "
              "(PyTorch 268 us), forward 211 / 246 us (PyTorch 695 us); 1 thread "
              "backward 572 / 587 us")
_BN_RANGES = ("the same method in both since f0a6240 (fixed row chunks; sum, squared "
              "deviations, normalise; four rows per float64 accumulate): interleaved "
              "256x1024 Cython/numba 1.00x forward, 1.04-1.10x backward, 1.00-1.04x the "
              "pair (1 and 2 threads, 2026-11-28 16:20 UTC); a 0.1-0.2 ms op bound by "
              "cache traffic, whose single-run gaps are machine noise")
_ADAM_SPLITS = ("cache-line splits until this run's build: the bench's four arrays start "
                "16-48 bytes off a 64-byte boundary, so each of gcc's 512-bit loads and "
                "stores straddled two lines: 62-70 us for 78400 values against 22 us aligned "
                "(1 thread; not denormals, FTZ changed nothing), numba 27 us either way. "
                "_optim.pyx is now built with 256-bit vectors and fastnn's own buffers are "
                "64-byte aligned: interleaved 2026-11-29 05:05 UTC, course 1.00x (1 thread) "
                "and 1.19x (2); 16M values 1.23-1.27x remain, not isolated (numba's fastmath "
                "arcp/afn square root and division against gcc's vsqrtps + vdivps is the "
                "candidate)")
_MOMENTS = ("the same one-pass loop as numba's (NAdam/RAdam: since 5 Dec 2026 "
            "sqrt(v / s^-2) + eps and two divided terms, PyTorch's rounding, three divisions "
            "a value where the row's run had one; in cache, 1M float32 values on 1 thread, "
            "Cython 419 -> 679 us, numba 501 -> 699 (its divisions no longer reciprocals: "
            "DIVIDING_OPTIONS); 16M values unchanged, 24-25 ms; "
            "Adamax: m / u), in _optim.pyx's 256-bit build "
            "(see adam_update) against numba's 512-bit fastmath loop; interleaved "
            "Cython/numba 2026-11-29 17:35 UTC: adaptive_moments 0.96x course and 1.22x "
            "16M values on 1 thread, 1.19-1.26x and 1.07-1.19x on 2; adamax 0.91-0.98x "
            "course, 1.10-1.19x 16M values; not isolated further")
_ADADELTA = ("one root a value in both since this run (sqrt((u + eps) / (v + eps)); "
             "Cython's two roots and a division had made it 1.45x course, 1.24x 16M values "
             "on 1 thread): interleaved Cython/numba 2026-11-29 20:40 UTC 1.04x course and "
             "1.22x 16M values on 1 thread, 1.22x and 1.12x on 2; a 512-bit build of "
             "_optim.pyx took them to 0.94-1.16x and 1.01-1.08x: the 256-bit build (see "
             "adam_update)")
_RPROP = ("the same select chain as numba's (factor from the sign of g * prev, clamp, "
          "sign of g), which gcc vectorizes at 256 bits in _optim.pyx's build (see "
          "adam_update) against numba's 512: interleaved Cython/numba 2026-11-29 20:40 UTC "
          "1.46-1.50x at 16M values (1 and 2 threads), 1.07-1.11x with a 512-bit build; "
          "course 1.5-1.9x with either build, the four memoryviews' entry (~1.1 us, "
          "pointers since 6 Dec 2026) and unaligned 78400-value arrays on a 12-20 us "
          "call, not isolated further")
_GEMM_LEVEL = ("the same BLAS product dominates both: level when timed interleaved "
               "(1.00x and 0.99x Cython/numba on 1 and 2 threads, 15 alternating blocks, "
               "2026-11-29 04:59 UTC); a single suite run's gap is noise")
_LEVEL = ("level when timed interleaved (0.90-1.07x Cython/numba, 1 and 2 threads, 9 "
          "alternating blocks, 2026-11-28 11:20 UTC); a single suite run's gap is noise")
_CONV_SMALL_GEMM = ("128x1x28x28 -> 32: both run W (32x9) @ col (9x784) per sample, but "
                    "numba's np.dot takes OpenBLAS's beta=0 small-matrix kernel and spends "
                    "2x the time in it (perf, 3000 calls on 1 thread: 17.2K vs 8.5K "
                    "samples) where Cython pre-fills the bias and calls sgemm with beta=1; "
                    "interleaved 0.56x (1 thread) / 0.69x (2) forward, the pair 0.75x")
_POOL_ORDER = ("until 2026-12-03 numba's max-pool forward scanned each window with branches "
               "and range(start, stop, step) loops (a division each): 2x Cython's; now "
               "selects over tap numbers and unsigned flat indices, and both backends run "
               "2x2 stride-2 windows (the course case) through a kernel of their own, a "
               "tree of selects per window (Cython's as index arithmetic: gcc made float "
               "selects branches). Interleaved, 2 threads: 128x32x28x28 2x2/2 numba 0.88 / "
               "Cython 0.86 ms, 128x64x14x14 0.48 / 0.78 ms (Cython's 7-wide rows, not "
               "isolated further), 32x64x16x16 3x3/2 pad 1 0.86 / 0.97 ms")

_DEPTHWISE = ("the same phase split and per-tap loops in both; until 2026-12-03 numba ran "
              "2x Cython at stride 2 (its strided phase copy indexed with wraparound "
              "code; both read each row once per phase) and neither ran faster on 2 "
              "threads than on 1 where the threads' scratch rows shared a 4 KB page "
              "(kernels/scratch.py thread_stride). Now a row goes to its two phases in "
              "one pass and each thread's scratch has its own pages: 32x128x28x28 stride "
              "2, interleaved, 2 threads: forward numba 885 / Cython 824 us (PyTorch "
              "1017), backward 1707 / 1579 us (PyTorch 2117); a single suite run's gap "
              "is noise")

_NEW_ACT = ("per-call cost: 4.6-5.8 us numba vs 6.0-7.2 us Cython calls on 12800 values "
            "(Cython's entry: memoryviews and the fused-type dispatch); 16M values run "
            "level on 2 threads (0.92-0.96x Cython/numba interleaved) and 1.25-1.39x on 1 "
            "thread, where gcc's exp loop is the slower one (not isolated further; "
            "2026-11-29 10:30 UTC)")

REASONS = {
    # ---- course size (128x100 elementwise, 128x10 rows): per-call entry cost
    ("relu", "course"): _ENTRY_3,
    ("relu_backward", "course"): _ENTRY_3,
    ("leaky_relu", "course"): _ENTRY_3,
    ("leaky_relu_backward", "course"): _ENTRY_3,
    ("sigmoid_backward", "course"): _ENTRY_3,
    ("tanh_backward", "course"): _ENTRY_3,
    ("dropout_backward", "course"): _ENTRY_3,
    ("gelu", "course"): ("per-call cost of the memoryviews (~0.27 us each) on an 8-10 us "
                         "call; the loops are within 10-20% in cache (0.44 Cython vs 0.49 numba "
                         "ns per value, 1 thread)"),
    ("gelu_backward", "course"): _ENTRY_3,
    ("mish", "course"): ("Cython's activations are built with 512-bit vectors since "
                         "312eede (in cache, 1 thread, 64K values: 0.42 vs numba's 0.48 ns "
                         "a value); timed directly the 128x100 call is 6.4 us Cython against "
                         "6.6-6.7 us numba (2026-12-02 19:20 UTC), so most of one suite run's "
                         "8.2 vs 6.6 us is that run's noise, not isolated further"),
    ("sine", "course"): "per-call cost of the memoryviews on a 5-7 us call; the sin loop "
                        "itself is the faster since d9fb05e (in cache, 1 thread, 64K float32: "
                        "0.317 Cython vs 0.344 ns per value numba)",
    ("sine_backward", "course"): "per-call cost of the memoryviews on a 6-8 us call; the cos "
                                 "loops are level (in cache, 1 thread, 64K float32, loaded "
                                 "machine, 2026-12-07: Cython 0.42-0.45, numba 0.44-0.48 ns "
                                 "per value)",
    ("softmax", "course"): ("128x10: a 3-5 us call; per-call cost of the typed memoryviews "
                            "(~0.27 us each, 1-D)"),
    ("softmax_backward", "course"): ("128x10: a 1.2-2.5 us call; three typed memoryviews "
                                     "(~0.27 us each, 1-D) are the difference"),
    ("softmax_cross_entropy", "course"): "128x10: a 4-6 us call; per-call cost of the memoryviews",
    ("mse_loss", "course"): _ENTRY_LOSS,
    ("bce_loss", "course"): _ENTRY_LOSS,
    ("bce_with_logits_loss", "large"): ("level when timed interleaved: Cython/numba 0.97x "
                                        "on 2 threads, 0.98x on 1 (2026-11-29 23:35 UTC); "
                                        "a single suite run's gap is noise"),
    ("bce_with_logits_loss", "course"): ("per-call cost: 128x10 calls of 3.4-4.6 us where "
                                         "Cython's entry (three memoryviews, ~0.8 us) "
                                         "outweighs numba's; 16M values run level (0.94-0.95x "
                                         "Cython/numba interleaved, 1 and 2 threads, "
                                         "2026-11-29 07:50 UTC)"),
    ("layer_norm_forward", "course"): ("per-call cost: 6.7-6.9 us numba vs 8.8-8.9 us Cython "
                                       "calls on 128x100 (Cython's entry acquires six typed "
                                       "memoryviews, ~0.27 us each); the same loops; 4096x1024 "
                                       "1.13x (2 threads) and 1.18x (1), interleaved "
                                       "2026-11-29 11:40 UTC"),
    ("layer_norm_forward", "large"): ("the same row loops (float64 sums, one output loop "
                                      "per affine case); interleaved Cython/numba 1.13x on 2 "
                                      "threads, 1.18x on 1 (2026-11-29 11:40 UTC), not "
                                      "isolated further"),
    ("softplus", "large"): ("the same formula in both (max(z, 0) + log1p(exp(-|z|)), "
                            "log1p(e) as e Q(e), Q of degree 10, since 8b69a08): level "
                            "when timed interleaved, Cython/numba 0.96x on 2 threads and "
                            "0.99x on 1 (2026-11-29 23:35 UTC); a single suite run's gap "
                            "is noise"),
    ("softplus", "course"): ("per-call cost plus the large size's 1.2x loop: 9.7-10.3 vs "
                             "11.5-11.8 us (2026-11-29 12:00 UTC)"),
    ("softplus_backward", "course"): _NEW_ACT,
    ("softplus_backward", "large"): ("level on 2 threads (1.00x interleaved), 1.25x on 1 "
                                     "(2026-11-29 12:00 UTC): the exp, as softplus"),
    ("softsign_backward", "course"): _NEW_ACT,
    ("gelu_tanh", "large"): ("x sigmoid(2u) in both, one exp and one division; gcc's "
                             "NaN-preserving clamps of the exp argument are compare + "
                             "blend pairs (as _CLAMPS): 0.46 ns per value in cache on 1 "
                             "thread for Cython's loop compiled alone, 0.43 with the "
                             "division folded (v / (1 + e)), fmaxf/fminf 6.0 (libm calls); "
                             "4.5 vs 3.3 ms at 16M values (2026-11-29 15:20 UTC), still "
                             "above the copy ceiling's 70%"),
    ("silu", "large"): ("x sigmoid(x) with the sigmoid's NaN-preserving clamps, as "
                        "_CLAMPS (gcc's compare + blend pairs) plus Cython's multiply by "
                        "1 / (1 + e) where numba divides: interleaved Cython/numba 1.21x "
                        "(1 thread) and 1.20x (2), 2026-11-29 15:25 UTC; in a quiet run "
                        "both are at the copy ceiling"),
    ("layer_norm_backward", "large"): ("level when timed interleaved, Cython the faster: "
                                       "0.94x (1 thread) and 0.96x (2) Cython/numba, "
                                       "2026-11-29 15:25 UTC; a single suite run's gap is "
                                       "noise"),
    ("hardsigmoid", "course"): ("per-call cost: 2.2-2.3 us numba vs 3.0 us Cython calls on "
                                "12800 values (Cython's entry: memoryviews and the fused-type "
                                "dispatch), interleaved 1.33-1.36x on 1 and 2 threads, "
                                "2026-11-29 15:45 UTC; at 16M values both at the copy "
                                "ceiling"),
    ("hardsigmoid_backward", "course"): ("level when timed interleaved: 1.08x Cython/numba on "
                                         "1 and 2 threads (2.8 vs 3.1 us, 2026-11-29 15:45 "
                                         "UTC); a single suite run's gap is noise"),
    ("hardswish", "course"): ("per-call cost, as hardsigmoid: 2.2 vs 3.1 us, interleaved "
                              "1.39-1.44x (2026-11-29 15:45 UTC)"),
    ("hardswish_backward", "course"): ("per-call cost, three arrays: 2.8-2.9 vs 3.6-4.4 us, "
                                       "interleaved 1.24-1.53x (2026-11-29 15:45 UTC)"),
    ("gelu_tanh_backward", "large"): ("compute-bound on one thread, the sigmoid's clamps as "
                                      "gelu_tanh's: interleaved 1.36x on 1 thread, 1.08x on "
                                      "2 (2026-11-29 15:45 UTC)"),
    ("dropout_forward", "course"): ("level when timed interleaved: 1.00x and 0.99x "
                                    "Cython/numba on 1 and 2 threads (6.1 us each, "
                                    "2026-11-29 15:45 UTC); a single suite run's gap is noise"),
    ("mish_backward", "large"): ("level when timed interleaved: 1.10x Cython/numba on 1 "
                                 "thread, 0.99x on 2 (2026-11-29 15:58 UTC); a single suite "
                                 "run's gap is noise"),
    ("mish", "large"): ("level when timed interleaved: Cython/numba 1.08x and 1.06x on 1 and "
                        "2 threads (2026-11-29 17:55 UTC; a suite run had numba at 7.2 ms "
                        "against its usual 3.3-4.1); a single suite run's gap is noise"),
    ("softsign_backward", "large"): ("level when timed interleaved: Cython/numba 1.01x and "
                                     "0.96x on 1 and 2 threads (2026-11-29 17:55 UTC); a "
                                     "single suite run's gap is noise"),
    ("mish_backward", "course"): ("level when timed interleaved: 1.13x and 1.09x Cython/numba "
                                  "on 1 and 2 threads (9.5 vs 8.5 us, 2026-11-29 17:45 UTC); "
                                  "a single suite run's gap is noise"),
    ("hardswish", "large"): ("the output streaming, not the arithmetic: in L2 (64K values, 1 "
                             "thread) the two run level, 0.164 vs 0.172 ns a value; at 16M "
                             "values (2 threads, interleaved, AMD EPYC, 2026-12-01 12:50 UTC) "
                             "Cython/numba 0.63-0.82x on hardswish, and 0.81-0.82x on relu "
                             "and hardtanh in the same run: numba's streamed tiles write "
                             "DRAM slower than Cython's on this machine (both pass the 70% "
                             "bandwidth target)"),
    ("hardtanh", "large"): ("level when timed interleaved: 0.97x and 1.01x Cython/numba on 1 "
                            "and 2 threads (2026-11-29 15:58 UTC); a single suite run's gap "
                            "is noise"),
    ("gelu_tanh", "course"): ("per-call cost plus the large size's loop gap: 7.4 vs 5.9 us "
                              "(2026-11-29 15:20 UTC)"),
    ("gelu_tanh_backward", "course"): ("per-call cost (three arrays) plus the clamps of the "
                                       "sigmoid, as gelu_tanh: 9.5 vs 7.5 us; 16M values "
                                       "5.4 vs 5.1 ms (2026-11-29 15:20 UTC)"),
    ("hardtanh_backward", "large"): ("level when timed interleaved, Cython the faster: "
                                     "0.84x (1 thread) and 0.88-0.94x (2) Cython/numba, "
                                     "2026-11-29 12:00 UTC (after | replaced 'or' in its "
                                     "select); a single suite run's gap is noise"),
    ("silu", "course"): _NEW_ACT,
    ("silu_backward", "course"): _NEW_ACT,
    ("elu", "course"): _NEW_ACT,
    ("elu", "large"): ("the same loop (a select between x and alpha (exp(x) - 1)): "
                       "interleaved Cython/numba 1.12x on 2 threads, 1.41x on 1 thread, "
                       "where gcc's exp loop is the slower one, as in softplus before "
                       "8b69a08 (2026-11-29 23:35 UTC; the suite's 1.81x is mostly noise)"),
    ("elu_backward", "course"): _NEW_ACT,
    ("silu_backward", "large"): ("level when timed interleaved: Cython/numba 1.05x on 2 "
                                 "threads, 1.12x on 1 (2026-11-30 18:00 UTC); a single suite "
                                 "run's gap is noise"),
    ("elu_backward", "large"): ("level when timed interleaved: Cython/numba 1.02x on 2 "
                                "threads, 1.14x on 1 (2026-11-30 18:00 UTC); a single suite "
                                "run's gap is noise"),
    ("hardswish_backward", "large"): ("in this run's build gcc turned the grad_out read "
                                      "under the select into a masked load (vmaskmovps): "
                                      "interleaved Cython/numba 1.17x on 2 threads, 1.35x on "
                                      "1; fixed right after the run (read unconditionally): "
                                      "1.03x and 1.02x (2026-11-30 18:10 UTC)"),
    ("hardtanh", "course"): ("per-call cost: 3.0 vs 3.6 us for 12800 values, 1.23x "
                             "interleaved on 1 and 2 threads (2026-11-30 18:00 UTC), Cython's "
                             "entry (two memoryviews, the fused-type dispatch); 16M values "
                             "level (see hardtanh large)"),
    ("smooth_l1_loss", "large"): ("interleaved with the copy on 16M float32 values, numba "
                                  "82%, Cython 106% of the copy bandwidth (2026-12-04 15:29 "
                                  "UTC; level, 1.01x on 2 threads, on 2026-11-29): the same "
                                  "loop; cause not isolated"),
    ("smooth_l1_loss", "course"): ("per-call cost: 1.7 vs 2.6 us calls (Cython's entry: three "
                                   "memoryviews); 16M values run level (0.97x Cython/numba "
                                   "interleaved, 2 threads; 1.18x on 1, 2026-11-29 10:30 "
                                   "UTC)"),
    ("batchnorm_forward", "course"): _ENTRY_BN,
    ("batchnorm_backward", "course"): _ENTRY_BN,
    ("batchnorm_forward+batchnorm_backward", "course"): _ENTRY_BN,
    ("sigmoid", "course"): _CLAMPS,
    ("tanh", "course"): _CLAMPS,
    # ---- 16M elementwise
    ("sigmoid", "large"): _CLAMPS,
    ("tanh", "large"): _CLAMPS,
    ("gelu", "large"): ("the same log2-polynomial Phi in both (_fastnn_math.h, vmath.gelu), "
                        "within 10-20% in cache (0.44 Cython vs 0.49 numba ns per value, 1 "
                        "thread) and level on 16M values (4.12 vs 4.14 ms, 2026-11-29); "
                        "until 972808e Cython used a 10-term fit and two exps (2.4x numba)"),
    ("sine", "large"): _SIN_CODEGEN,
    ("sine_backward", "large"): _SIN_CODEGEN,
    ("relu", "large"): ("the same memory-bound loop in both (0.95-1.12x in interleaved runs); "
                        "single 2-thread runs on the shared machine differ by more than 20%"),
    ("relu_backward", "large"): ("the same memory-bound loop in both: 1.00x and 0.99x "
                                 "Cython/numba interleaved (1 and 2 threads, 15 alternating "
                                 "blocks, 2026-11-29 05:13 UTC); a single run's gap is noise"),
    ("leaky_relu", "large"): ("the same memory-bound loop in both (0.97-1.16x interleaved, "
                              "1 and 2 threads); a single run's larger gap is machine noise"),
    ("leaky_relu_backward", "large"): ("the same memory-bound loop in both (0.86-0.97x "
                                       "interleaved); a single run's gap is machine noise"),
    ("dropout_forward", "large"): ("same counter-hash per element in both; interleaved "
                                   "runs gave 0.85-1.32x either way: not isolated from "
                                   "machine noise"),
    ("mse_loss", "large"): ("Cython summed in three passes with eight hand-made lanes "
                            "(1.4-1.6x numba) until 91d82ee; since, one vectorized loop in "
                            "both: interleaved with the copy on 16M float32 values numba 87%, "
                            "Cython 110% of the copy bandwidth (2026-12-04 15:29 UTC; "
                            "0.85-1.05x before); cause not isolated"),
    ("tanh_backward", "large"): "memory-bound in both (0.92-1.00x interleaved)",
    ("dropout_backward", "large"): ("one multiply per value in both, memory-bound: "
                                    "interleaved 1.09x (1 thread) and 1.06x (2 threads) "
                                    "Cython/numba, 15 alternating blocks, 2026-11-28 "
                                    "19:45 UTC; a single run's gap is machine noise"),
    # ---- rows
    ("softmax", "large"): ("numba's row max was one max() chain, scalar without fastmath's "
                           "nnan (2.1 ms of 4096x1000), until d00d038 (vmath.row_max, eight "
                           "running maxima): 1 thread 4.94 -> 3.68 ms against Cython's 4.3"),
    ("softmax_cross_entropy", "large"): ("as softmax: numba's scalar row max until d00d038; "
                                         "1 thread 5.01 -> 4.01 ms, Cython 4.3"),
    # ---- Linear
    ("linear_backward", "course"): ("level when timed interleaved: 447 vs 443 us (1 "
                                    "thread), 280 vs 278 us (2 threads) numba/Cython, 15 "
                                    "alternating blocks, 2026-11-28 19:45 UTC; the same "
                                    "two BLAS products dominate both; a single suite run's "
                                    "gap is noise"),
    # ---- optimizers
    ("sgd_update", "course"): ("78400 values, the same loop in both: at 1 thread Cython is "
                               "faster (0.88-0.92x); at 2 threads 1.08-1.42x across runs, "
                               "cause not isolated"),
    ("adam_update", "course"): _ADAM_SPLITS,
    ("adam_update", "large"): _ADAM_SPLITS,
    # ---- BatchNorm
    ("batchnorm_forward", "large"): _BN_RANGES,
    ("batchnorm_backward", "large"): _BN_RANGES,
    ("batchnorm_forward+batchnorm_backward", "large"): _BN_RANGES,
    ("batchnorm_forward", "conv"): _BN_PLANES,
    ("batchnorm_backward", "conv"): _BN_PLANES,
    ("batchnorm_forward+batchnorm_backward", "conv"): _BN_PLANES,
    ("linear_forward", "large"): _LEVEL,
    ("linear_forward", "course"): _GEMM_LEVEL,
    ("linear_backward", "large"): _GEMM_LEVEL,
    ("sigmoid_backward", "large"): _LEVEL,
    ("softmax_backward", "large"): _LEVEL,
    ("log_softmax", "large"): ("one row driver with softmax in both; interleaved "
                               "Cython/numba 1.07x on 2 threads, 1.24x on 1 (2026-11-29 "
                               "10:30 UTC): Cython writes exp(x - m) into the output and reads "
                               "it back for the sum where numba sums in registers"),
    ("log_softmax_backward", "large"): ("interleaved Cython/numba 1.21x on 2 threads, 1.31x "
                                        "on 1 (2026-11-29 10:30 UTC); the same two passes a "
                                        "row (sum of g, then g - exp(y) sum) in both, not "
                                        "isolated further"),
    ("conv2d_forward", "large"): ("level when timed interleaved: numba/Cython 0.90x on 1 "
                                  "and 2 threads (2026-11-29 10:30 UTC); a single suite run's "
                                  "gap is noise"),
    ("sgd_update", "large"): ("level when timed interleaved: Cython/numba 1.04x (1 thread) "
                              "and 1.11x (2 threads), 2026-11-29 10:30 UTC; a single suite "
                              "run's gap is noise"),
    ("adagrad_update", "large"): ("a loop bound by its division (g / (sqrt(s) + eps)): "
                                  "_optim.pyx is built with 256-bit vectors (setup.py: "
                                  "cache-line splits of 512-bit accesses, see adam_update) "
                                  "where numba divides 16 floats at a time; interleaved "
                                  "Cython/numba 1.29x (1 thread) and 1.35x (2), "
                                  "2026-11-29 12:20 UTC"),
    ("adadelta_update", "course"): _ADADELTA,
    ("adadelta_update", "large"): _ADADELTA,
    ("rprop_update", "course"): _RPROP,
    ("rprop_update", "large"): _RPROP,
    ("adaptive_moments_update", "course"): _MOMENTS,
    ("adaptive_moments_update", "large"): _MOMENTS,
    ("adamax_update", "course"): _MOMENTS,
    ("adamax_update", "large"): _MOMENTS,
    ("rmsprop_update", "course"): ("level when timed interleaved: 17.8 vs 20.7 us "
                                   "numba/Cython calls on 2 threads (1.13x), 0.96x on 1 "
                                   "(2026-11-29 23:35 UTC); a single suite run's gap is "
                                   "noise plus Cython's per-call memoryviews (pointers since "
                                   "6 Dec 2026)"),
    ("rmsprop_update", "large"): ("one loop per variant in both since f120ced "
                                  "(NULL tests inside one loop had kept gcc's scalar: 1.34x "
                                  "and 1.99x); then 1.07x (2 threads) and 1.22x (1 thread) "
                                  "Cython/numba interleaved, 2026-11-29 10:33 UTC"),
    ("asgd_update", "course"): ("2 threads only: interleaved Cython/numba 1.38x on 2 "
                                "threads, 0.84x on 1 (2026-12-01, 15 blocks): Cython's "
                                "78400-value update gains little from its second thread "
                                "(20.5 -> 21.5 us; numba 24.4 -> 15.4 us; at 1M values "
                                "494 -> 365 us where its SGD goes 469 -> 242). One loop "
                                "per flag case (decay, average) instead of the tests "
                                "inside the loop took 2 threads to 1.27-1.30x but one "
                                "thread to 1.16x: not kept; cause not isolated"),
    ("bce_loss", "large"): ("not level since the tiled kernels (54c6764, e7c768b) and the "
                            "float32 log1p(-p) fix (93d59ad, numba 71% -> 69% interleaved): "
                            "interleaved with the copy on 16M float32 values, numba 69%, "
                            "Cython 89% of the copy bandwidth (2026-12-04 15:29 UTC), the "
                            "same algorithm; cause not isolated"),
    ("gelu_backward", "large"): ("level when timed interleaved (0.95x Cython/numba on 1 "
                                 "thread, 1.02x on 2); a single suite run's gap is noise"),
    ("avg_pool2d_forward", "large"): ("within 20% when timed interleaved: 0.88x (1 "
                                      "thread) and 0.91x (2 threads) Cython/numba, 15 "
                                      "alternating blocks, 2026-11-28 19:55 UTC (the course "
                                      "size 1.13x the other way); a single run's gap is noise"),
    ("avg_pool2d_forward", "course"): ("within 20% when timed interleaved (1.15x Cython/"
                                       "numba on 1 thread, 1.12x on 2); a single suite "
                                       "run's gap is noise"),
    ("conv2d_forward", "course"): _CONV_SMALL_GEMM,
    ("conv2d_forward+conv2d_backward", "course"): _CONV_SMALL_GEMM,
    ("conv2d_backward", "course"): ("within 20% when timed interleaved (0.82x Cython/numba "
                                    "on 1 thread, 0.87x on 2)"),
    ("conv2d_backward", "large"): ("level when timed interleaved (0.93x Cython/numba on 1 "
                                   "thread, 0.92x on 2); single suite runs moved it to 0.5x"),
    # ---- pooling (the conv engineer's kernels; read and measured, not changed here;
    # the conv rows are theirs to explain: their im2col changed during this session)
    ("max_pool2d_forward", "course"): _POOL_ORDER,
    ("max_pool2d_forward", "large"): _POOL_ORDER,
    ("max_pool2d_forward+max_pool2d_backward", "course"): _POOL_ORDER,
    ("max_pool2d_forward+max_pool2d_backward", "large"): _POOL_ORDER,
    ("max_pool2d_backward", "large"): ("level when timed interleaved (0.98x Cython/numba on "
                                       "1 thread, 0.93x on 2, 2026-11-28 16:20 UTC); a "
                                       "single suite run's gap is noise"),
    ("avg_pool2d_backward", "large"): ("the course row's scalar scatter; within 20% when "
                                       "timed interleaved: 0.87x (1 thread) and 0.89x (2 "
                                       "threads) Cython/numba, 15 alternating blocks, "
                                       "2026-11-28 20:15 UTC; a single run's gap is noise"),
    ("avg_pool2d_backward", "course"): ("the same scalar scatter in both (zero the plane, add "
                                        "each output's share over its 2x2 window, a plane "
                                        "per thread); numba's compile of it runs 1.22x "
                                        "Cython's on 1 thread, 1.15x on 2 (interleaved, "
                                        "2026-11-28 16:20 UTC); not isolated further"),
    # ---- depthwise conv (kernels/numba_cpu/depthwise.py, kernels/cython/_depthwise.pyx)
    ("depthwise_conv2d_forward", "large"): _DEPTHWISE,
    ("depthwise_conv2d_forward", "course"): _DEPTHWISE,
    ("depthwise_conv2d_backward", "large"): _DEPTHWISE,
    ("depthwise_conv2d_backward", "course"): _DEPTHWISE,
    ("conv2d_forward+conv2d_backward", "large"): (
        "Cython the faster when timed interleaved on the Xeon (2026-11-30 23:10 UTC, 11 "
        "alternating blocks): 0.85x Cython/numba on 2 threads (forward 0.80x, backward "
        "0.87x), 0.83x on 1; a single suite run's gap is noise"),
    # ---- rows first over 20% in the Xeon run of 2026-11-30 22:42 UTC, timed interleaved
    # in that session (15 alternating blocks of ~50 ms, 2 threads)
    ("hardsigmoid", "large"): ("level when timed interleaved: 0.88x Cython/numba (numba "
                               "6.4 ms, Cython 5.3 ms on 16M values); a single suite "
                               "run's gap is noise"),
    ("softsign", "large"): ("level when timed interleaved (2026-12-01, 15 blocks): "
                            "0.95-0.97x Cython/numba on 2 threads (numba 5.2 ms, Cython "
                            "5.0 ms on 16M values), 0.93-0.95x on 1; a single suite run's "
                            "gap (0.80x that day) is noise"),
    ("hardsigmoid_backward", "large"): ("level when timed interleaved (2026-12-01, 15 "
                                        "blocks): 0.90x Cython/numba on 2 threads (numba "
                                        "10.0-10.4 ms, Cython 9.0-9.3 ms on 16M values), "
                                        "1.10-1.12x on 1; a single suite run's gap (1.83x "
                                        "that day) is noise"),
    ("hardtanh_backward", "course"): ("per-call cost: 3.4 us numba vs 4.5 us Cython "
                                      "(interleaved, 1.31x), the three memoryviews of "
                                      "Cython's entry (~0.27 us each) on a short call"),
    ("softsign", "course"): ("per-call cost: 4.9-5.0 us numba vs 5.9-6.0 us Cython "
                             "(interleaved, 1.21-1.22x; ReLU on the same 128x100 1.28x), "
                             "the memoryviews of Cython's entry on a short call"),
    ("log_softmax", "course"): ("level when timed interleaved: 0.89x Cython/numba (8.7 vs "
                                "7.7 us); a single suite run's gap is noise"),
    ("log_softmax_backward", "course"): ("per-call cost: 3.7 us numba vs 5.3 us Cython "
                                         "(interleaved, 1.47x) on 128x10 rows, the three "
                                         "memoryviews of Cython's entry and its fused-type "
                                         "dispatch"),
    ("max_pool2d_backward", "course"): ("scatter of each output's gradient to its argmax, "
                                        "one plane per thread in both: 0.94-0.97x at 1 thread "
                                        "(interleaved); a single run's gap is not the kernel"),
}
