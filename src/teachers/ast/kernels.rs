//! CPU kernels for the two element-wise hot spots of the AST forward pass that burn-flex runs with scalar libm
//! calls: the softmax of attention (≈ 35 M `exp` per layer for a batch of two segments) and the exact GELU of the
//! MLP (`erf` on 7.5 M values per layer). Measured before this module (perf, AST-base, batch 2): `expf` + `erff`
//! took a third of the forward time once gemm ran at full speed.
//!
//! Both are written as plain branch-free loops over `f32` so LLVM vectorises them, compiled three times (AVX-512,
//! AVX2+FMA, baseline) and picked at run time; the work is split over rayon's threads. Accuracy (checked in the
//! tests against `f64` references): `exp` within 2 ulp, `erf` within 5e-7 absolute (A&S 7.1.26 plus f32 rounding), far inside the port's
//! 1e-4 parity bound.
//!
//! Used only for inference on the CPU (the tensors leave burn's graph, so autodiff never sees them).

use rayon::prelude::*;

/// Chunk of elements per rayon task (large enough to amortise scheduling, small enough to balance).
const CHUNK: usize = 1 << 15;

/// `e^x` for `x` in the float range (clamped to [−87.3, 88.7]; below that the result is the smallest normal,
/// which a softmax treats as zero). Cephes' `expf`: `x = n·ln 2 + r`, a degree-6 polynomial in `r`, `2^n` from the
/// exponent bits.
#[inline(always)]
fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // Round-to-nearest through the 1.5·2^23 trick (no branches, no `round` call).
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.7);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    // n as an integer, straight from t's mantissa (a float→int `as` cast would saturate and stop vectorisation).
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = x - n * C1 - n * C2;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    let y = p * r2 + r + 1.0;
    y * f32::from_bits((ni.wrapping_add(127) as u32) << 23)
}

/// `erf(x)`: Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), odd-extended without a branch.
#[inline(always)]
fn erf_approx(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_8;
    const A4: f32 = -1.453_152;
    const A5: f32 = 1.061_405_4;
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
    let y = 1.0 - poly * exp_approx(-a * a);
    y.copysign(x)
}

#[inline(always)]
fn gelu_body(v: &mut [f32]) {
    const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    for x in v.iter_mut() {
        *x = 0.5 * *x * (1.0 + erf_approx(*x * FRAC_1_SQRT_2));
    }
}

/// Lanes of the partial maxima and sums (float reductions only vectorise when written with explicit lanes).
const LANES: usize = 16;

#[inline(always)]
fn softmax_body(v: &mut [f32], row: usize) {
    for r in v.chunks_exact_mut(row) {
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let mut chunks = r.chunks_exact(LANES);
        for c in &mut chunks {
            for (m, &x) in lanes.iter_mut().zip(c) {
                *m = if x > *m { x } else { *m };
            }
        }
        let max = chunks.remainder().iter().chain(&lanes).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
        for x in r.iter_mut() {
            *x = exp_approx(*x - max);
        }
        let mut sums = [0f32; LANES];
        let mut chunks = r.chunks_exact(LANES);
        for c in &mut chunks {
            for (s, &x) in sums.iter_mut().zip(c) {
                *s += x;
            }
        }
        let sum: f32 = chunks.remainder().iter().sum::<f32>() + sums.iter().sum::<f32>();
        let inv = 1.0 / sum;
        for x in r.iter_mut() {
            *x *= inv;
        }
    }
}

macro_rules! dispatch {
    ($name:ident, $body:ident ($($arg:ident : $ty:ty),*)) => {
        fn $name(v: &mut [f32] $(, $arg: $ty)*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512(v: &mut [f32] $(, $arg: $ty)*) {
                    $body(v $(, $arg)*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2(v: &mut [f32] $(, $arg: $ty)*) {
                    $body(v $(, $arg)*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { avx512(v $(, $arg)*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { avx2(v $(, $arg)*) };
                }
            }
            $body(v $(, $arg)*)
        }
    };
}

dispatch!(gelu_chunk, gelu_body());
dispatch!(softmax_chunk, softmax_body(row: usize));

/// Exact GELU, `x·Φ(x) = ½·x·(1 + erf(x/√2))`, in place.
pub fn gelu_inplace(v: &mut [f32]) {
    v.par_chunks_mut(CHUNK).for_each(gelu_chunk);
}

/// Softmax over consecutive rows of `row` values, in place (a trailing partial row is left as it is).
pub fn softmax_rows_inplace(v: &mut [f32], row: usize) {
    if row == 0 {
        return;
    }
    let rows_per_task = (CHUNK / row).max(1);
    v.par_chunks_mut(rows_per_task * row).for_each(|c| softmax_chunk(c, row));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf64(x: f64) -> f64 {
        // A&S 7.1.28-free reference: the Taylor series near 0 and the continued fraction beyond (f64 is plenty).
        if x.abs() < 2.5 {
            let (mut term, mut sum, x2) = (x, x, x * x);
            for n in 1..200 {
                term *= -x2 / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let a = x.abs();
            let mut f = 0.0;
            for k in (1..200).rev() {
                f = (k as f64 / 2.0) / (a + f);
            }
            let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f);
            (1.0 - erfc).copysign(x)
        }
    }

    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let e = x as f64;
            let want = e.exp();
            let got = exp_approx(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 2.5e-7, "max relative error {worst:e}");
        assert_eq!(exp_approx(0.0), 1.0);
        assert!(exp_approx(-1000.0) < 1e-37 && exp_approx(-1000.0) >= 0.0);
    }

    #[test]
    fn erf_and_gelu_match_the_reference() {
        let mut worst = 0f64;
        for i in 0..=100_000 {
            let x = -8.0 + 16.0 * i as f32 / 100_000.0;
            worst = worst.max((erf_approx(x) as f64 - erf64(x as f64)).abs());
        }
        assert!(worst < 1e-6, "erf max abs error {worst:e}");
        let mut v: Vec<f32> = (0..70_001).map(|i| -10.0 + 20.0 * i as f32 / 70_000.0).collect();
        let x = v.clone();
        gelu_inplace(&mut v);
        for (g, x) in v.iter().zip(&x) {
            let want = 0.5 * *x as f64 * (1.0 + erf64(*x as f64 / std::f64::consts::SQRT_2));
            assert!((*g as f64 - want).abs() < 2e-6, "gelu({x}) = {g}, want {want}");
        }
    }

    #[test]
    fn softmax_rows_sum_to_one_and_match_the_definition() {
        let row = 1214;
        let mut v: Vec<f32> = (0..row * 7).map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0).collect();
        let x = v.clone();
        softmax_rows_inplace(&mut v, row);
        for (r, xr) in v.chunks_exact(row).zip(x.chunks_exact(row)) {
            let m = xr.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let s: f64 = xr.iter().map(|&a| (a as f64 - m).exp()).sum();
            for (p, a) in r.iter().zip(xr) {
                let want = (*a as f64 - m).exp() / s;
                assert!((*p as f64 - want).abs() < 1e-7 + 1e-6 * want, "{p} vs {want}");
            }
            assert!((r.iter().map(|&p| p as f64).sum::<f64>() - 1.0).abs() < 1e-5);
        }
    }
}
