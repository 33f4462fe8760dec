//! A real FFT of power-of-two length built on rustfft's *scalar* complex FFT of half the length.
//!
//! `realfft` picks AVX/SSE/NEON code at run time, which rounds differently from CPU to CPU; the built-in teacher's
//! weights must rebuild bit for bit, so its features use this fixed scalar path instead (a 512-point real
//! transform costs about a microsecond either way).

use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlannerScalar};

/// Forward (real → half spectrum) and inverse (half spectrum → real) transforms of length `n`.
pub struct RealFft {
    n: usize,
    fwd: Arc<dyn Fft<f32>>,
    inv: Arc<dyn Fft<f32>>,
    /// `e^{-2πik/n}` for k in 0..n/2.
    twiddles: Vec<Complex32>,
    buf: Vec<Complex32>,
    scratch: Vec<Complex32>,
}

impl RealFft {
    /// `n` must be a power of two ≥ 4.
    pub fn new(n: usize) -> RealFft {
        assert!(n >= 4 && n.is_power_of_two(), "RealFft length must be a power of two >= 4");
        let mut planner = FftPlannerScalar::<f32>::new();
        let m = n / 2;
        let fwd = planner.plan_fft_forward(m);
        let inv = planner.plan_fft_inverse(m);
        let scratch_len = fwd.get_inplace_scratch_len().max(inv.get_inplace_scratch_len());
        let twiddles = (0..m)
            .map(|k| {
                let a = -2.0 * std::f64::consts::PI * k as f64 / n as f64;
                Complex32::new(a.cos() as f32, a.sin() as f32)
            })
            .collect();
        RealFft {
            n,
            fwd,
            inv,
            twiddles,
            buf: vec![Complex32::default(); m],
            scratch: vec![Complex32::default(); scratch_len],
        }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// `out[k] = Σ x[j] e^{-2πijk/n}` for k in 0..=n/2. `x.len() == n`, `out.len() == n/2 + 1`.
    pub fn forward(&mut self, x: &[f32], out: &mut [Complex32]) {
        let m = self.n / 2;
        debug_assert!(x.len() == self.n && out.len() == m + 1);
        for (j, z) in self.buf.iter_mut().enumerate() {
            *z = Complex32::new(x[2 * j], x[2 * j + 1]);
        }
        self.fwd.process_with_scratch(&mut self.buf, &mut self.scratch);
        let z = &self.buf;
        // k = 0 and k = m from Z[0].
        out[0] = Complex32::new(z[0].re + z[0].im, 0.0);
        out[m] = Complex32::new(z[0].re - z[0].im, 0.0);
        for k in 1..m {
            let a = z[k];
            let b = z[m - k].conj();
            let fe = (a + b) * 0.5;
            let d = (a - b) * 0.5;
            // fo = d / i = -i d
            let fo = Complex32::new(d.im, -d.re);
            out[k] = fe + self.twiddles[k] * fo;
        }
    }

    /// Inverse of [`forward`](Self::forward) *without* the 1/n normalisation: `x[j] = Σ_k X[k] e^{2πijk/n}` over
    /// the full Hermitian spectrum. `spec.len() == n/2 + 1`, `x.len() == n`.
    pub fn inverse(&mut self, spec: &[Complex32], x: &mut [f32]) {
        let m = self.n / 2;
        debug_assert!(spec.len() == m + 1 && x.len() == self.n);
        for k in 0..m {
            let a = spec[k];
            let b = spec[m - k].conj();
            let fe = a + b;
            let fo = (a - b) * self.twiddles[k].conj();
            // Z = Fe + i Fo
            self.buf[k] = fe + Complex32::new(-fo.im, fo.re);
        }
        self.inv.process_with_scratch(&mut self.buf, &mut self.scratch);
        for (j, z) in self.buf.iter().enumerate() {
            x[2 * j] = z.re;
            x[2 * j + 1] = z.im;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_inverse_match_a_naive_dft() {
        let n = 64;
        let x: Vec<f32> = (0..n).map(|i| ((i * 7919 % 61) as f32 / 30.0 - 1.0) + (i as f32 * 0.3).sin()).collect();
        let mut f = RealFft::new(n);
        let mut out = vec![Complex32::default(); n / 2 + 1];
        f.forward(&x, &mut out);
        for (k, o) in out.iter().enumerate() {
            let (mut re, mut im) = (0f64, 0f64);
            for (j, &v) in x.iter().enumerate() {
                let a = -2.0 * std::f64::consts::PI * (j * k) as f64 / n as f64;
                re += v as f64 * a.cos();
                im += v as f64 * a.sin();
            }
            assert!((o.re as f64 - re).abs() < 1e-3 && (o.im as f64 - im).abs() < 1e-3, "bin {k}: {o} vs {re}+{im}i");
        }
        let mut back = vec![0f32; n];
        f.inverse(&out, &mut back);
        for (a, b) in x.iter().zip(&back) {
            assert!((a - b / n as f32).abs() < 1e-4, "{a} vs {}", b / n as f32);
        }
    }
}
